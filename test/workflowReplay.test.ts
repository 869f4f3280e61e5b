import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { Worker } from '@temporalio/worker';
import { describe, expect, inject, it } from 'vitest';
import { workflowIdOf } from '../domain/operation.js';
import * as commands from '../schema/commands/index.js';
import { findTemporalCli } from '../server/temporalCli.js';
import { startWorker, workflowsPath } from '../server/worker.js';
import { adminCaller, lifecycleRuntime, setFaults, settled, simHost } from './support/lifecycleStack.js';

/**
 * DESIGN.md invariant 7: workflow histories recorded from real runs are replayed against the current
 * workflow code, so a change that would break running workflows (a step added, removed or reordered
 * without a version marker) fails here instead of in production.
 * Record them anew, after a deliberate, versioned change, with: RECORD_HISTORIES=1 npx vitest run test/workflowReplay
 */
const historiesDir = fileURLToPath(new URL('./histories', import.meta.url));
const histories = readdirSync(historiesDir).filter((f) => f.endsWith('.json'));

describe('recorded workflow histories replay against the current workflow code', () => {
  it('there are recorded histories of each kind of runbook to replay', () => {
    expect(histories).toEqual(
      expect.arrayContaining([
        'bootInstance.json', 'bootInstance-failed.json', 'stopInstance.json', 'startInstance.json', 'rebootInstance.json', 'pauseInstance.json',
        'unpauseInstance.json', 'suspendInstance.json', 'resumeInstance.json', 'deleteInstance.json',
      ]),
    );
    // Recorded before the event-only steps became local activities (workflows/runbook.ts eventSteps):
    // workflows started then must still replay on the path they took.
    expect(histories).toEqual(
      expect.arrayContaining(['bootInstance.v1.json', 'bootInstance-failed.v1.json', 'stopInstance.v1.json', 'rebootInstance.v1.json', 'deleteInstance.v1.json']),
    );
    // Boots recorded before the host's steps ran as one activity (BOOT_HOST_STEPS_AS_ONE).
    expect(histories).toEqual(expect.arrayContaining(['bootInstance.v2.json', 'bootInstance-failed.v2.json']));
    // Cold moves recorded before they copied the disk (COLD_MOVE_COPIES_DISK), and since.
    expect(histories).toEqual(
      expect.arrayContaining(['migrateInstance-cold.v1.json', 'resizeInstance-cold.v1.json', 'migrateInstance-cold.json', 'resizeInstance-cold.json']),
    );
    // Live migrations as they ran one activity per step, before MIGRATION_STEPS_COMPOSED, and since.
    expect(histories).toEqual(
      expect.arrayContaining(['migrateInstance.v1.json', 'migrateInstance-failed.v1.json', 'migrateInstance.json', 'migrateInstance-failed.json']),
    );
    // Moves of an instance booted from an uploaded image, which fetch it to their target (MOVES_FETCH_IMAGE).
    expect(histories).toEqual(expect.arrayContaining(['migrateInstance-image.json', 'resizeInstance-image.json', 'evacuateInstance-image.json']));
    // Host health and evacuation as they ran before an evacuation moved the instance before starting it
    // and before a fresh health run reconciled on its first answer (test/mobility.histories.test.ts), and since.
    expect(histories).toEqual(expect.arrayContaining(['hostHealth.v1.json', 'evacuateInstance.v1.json', 'evacuateInstance-failed.v1.json']));
    expect(histories).toEqual(expect.arrayContaining(['hostHealth.json', 'evacuateInstance.json', 'evacuateInstance-failed.json']));
  });

  it.each(histories)('%s replays deterministically', async (file) => {
    const history = JSON.parse(readFileSync(join(historiesDir, file), 'utf8'));
    await Worker.runReplayHistory({ workflowsPath }, history, `replay-${file}`);
  });

  it.runIf(process.env.RECORD_HISTORIES)('records fresh histories from a real run', async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'record_histories');
    const { rt } = stack;
    const worker = await startWorker(rt);
    const caller = adminCaller();
    const { agent } = await simHost(rt, caller, stack.key.publicKey, 'sim-rec');
    try {
      const flavorId = (await commands.createFlavor(rt, caller, { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 })).flavor.id;
      const imageId = (await commands.registerImage(rt, caller, { name: 'cirros', format: 'qcow2', sizeBytes: 1 })).image.id;
      const cli = (await findTemporalCli()).path;
      // The CLI writes the proto-JSON history format that replay reads, as Temporal's docs record fixtures.
      const save = async (name: string, operationId: string) => {
        await settled(rt, operationId);
        const json = execFileSync(cli, ['workflow', 'show', '--address', inject('temporalAddress'), '--workflow-id', workflowIdOf(operationId), '--output', 'json'], { maxBuffer: 64 << 20 });
        writeFileSync(join(historiesDir, `${name}.json`), JSON.stringify(JSON.parse(json.toString()), null, 1) + '\n');
      };
      const boot = await commands.bootInstance(rt, caller, { name: 'rec-1', flavorId, imageId });
      await save('bootInstance', boot.operation.id);
      const id = boot.instance!.id;
      await save('stopInstance', (await commands.stopInstance(rt, caller, { id })).operation.id);
      await save('rebootInstance', (await commands.rebootInstance(rt, caller, { id, hard: true })).operation.id);
      await save('deleteInstance', (await commands.deleteInstance(rt, caller, { id })).operation.id);
      await setFaults(agent, { failMethods: 'startVm' });
      const failed = await commands.bootInstance(rt, caller, { name: 'rec-2', flavorId, imageId });
      await save('bootInstance-failed', failed.operation.id);
    } finally {
      await worker.shutdown();
      await agent.stop();
      await rt.close();
    }
  });
});
