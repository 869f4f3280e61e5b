import { execFileSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { workflowIdOf } from '../domain/operation.js';
import * as commands from '../schema/commands/index.js';
import { findTemporalCli } from '../server/temporalCli.js';
import { startWorker } from '../server/worker.js';
import { adminCaller, lifecycleRuntime, setFaults, settled, simHost } from './support/lifecycleStack.js';

/**
 * Records real runs of the instance snapshot workflow, succeeded and undone, into test/histories, where
 * workflowReplay.test.ts replays every file against the current code (DESIGN.md invariant 7), so a later
 * change to snapshotInstance's steps must come with a version marker. Record them anew, after a
 * deliberate, versioned change, with:
 *   RECORD_STORAGE_HISTORIES=1 npx vitest run test/storage.histories
 */
const historiesDir = fileURLToPath(new URL('./histories', import.meta.url));

describe('storage workflow histories', () => {
  it('a recorded history of snapshotInstance, succeeded and failed, is there for workflowReplay to replay', () => {
    expect(readdirSync(historiesDir)).toEqual(expect.arrayContaining(['snapshotInstance.json', 'snapshotInstance-failed.json']));
  });

  it.runIf(process.env.RECORD_STORAGE_HISTORIES)('records fresh histories of snapshotInstance from a real run', async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'record_storage_histories');
    const { rt } = stack;
    const worker = await startWorker(rt);
    const caller = adminCaller();
    const { agent } = await simHost(rt, caller, stack.key.publicKey, 'sim-storage-rec');
    try {
      const flavorId = (await commands.createFlavor(rt, caller, { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 })).flavor.id;
      const imageId = (await commands.registerImage(rt, caller, { name: 'cirros', format: 'qcow2', sizeBytes: 1 })).image.id;
      const cli = (await findTemporalCli()).path;
      const save = async (name: string, operationId: string, status: string) => {
        expect((await settled(rt, operationId)).status).toBe(status);
        const json = execFileSync(cli, ['workflow', 'show', '--address', inject('temporalAddress'), '--workflow-id', workflowIdOf(operationId), '--output', 'json'], { maxBuffer: 64 << 20 });
        writeFileSync(join(historiesDir, `${name}.json`), JSON.stringify(JSON.parse(json.toString()), null, 1) + '\n');
      };
      const boot = await commands.bootInstance(rt, caller, { name: 'rec-snap', flavorId, imageId });
      expect((await settled(rt, boot.operation.id)).status).toBe('SUCCEEDED');
      const id = boot.instance!.id;
      await save('snapshotInstance', (await commands.snapshotInstance(rt, caller, { id, imageName: 'rec-snap-image' })).operation.id, 'SUCCEEDED');
      await setFaults(agent, { failMethods: 'snapshotVm' });
      await save('snapshotInstance-failed', (await commands.snapshotInstance(rt, caller, { id, imageName: 'rec-snap-failed' })).operation.id, 'FAILED');
    } finally {
      await worker.shutdown();
      await agent.stop();
      await rt.close();
    }
  });
});
