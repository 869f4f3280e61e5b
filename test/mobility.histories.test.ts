import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { childOperationId } from '../activities/drainSteps.js';
import { hostHealthSteps } from '../activities/hostHealth.js';
import { workflowIdOf } from '../domain/operation.js';
import * as commands from '../schema/commands/index.js';
import { startHostOperation } from '../schema/commands/hostOperations.js';
import { startApi } from '../server/api.js';
import { findTemporalCli } from '../server/temporalCli.js';
import { startWorker } from '../server/worker.js';
import { hostStream, instanceStream } from '../domain/events.js';
import { hostHealthWorkflowId } from '../schema/commands/hostHealth.js';
import { waitFor } from './support/guest.js';
import type { AgentProcess } from './support/hostagent.js';
import { uploadImage } from './support/images.js';
import { adminCaller, hostOf, instanceOf, lifecycleRuntime, setFaults, settled, simHost } from './support/lifecycleStack.js';

/**
 * Records the mobility workflows' histories into test/histories, which workflowReplay.test.ts replays
 * against the current code (DESIGN.md invariant 7). Only on request, after a deliberate, versioned
 * change: RECORD_HISTORIES=1 npx vitest run test/mobility.histories
 */
const historiesDir = fileURLToPath(new URL('./histories', import.meta.url));

describe('mobility workflow histories', () => {
  it.runIf(process.env.RECORD_HISTORIES)('records migrate, resize and drain histories from a real run', async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'record_mobility_histories');
    const { rt } = stack;
    const worker = await startWorker(rt);
    const caller = adminCaller();
    const a = await simHost(rt, caller, stack.key.publicKey, 'rec-a');
    try {
      const flavorId = (await commands.createFlavor(rt, caller, { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 })).flavor.id;
      const bigger = (await commands.createFlavor(rt, caller, { name: 'm1.small', vcpus: 1, memoryMb: 2048, diskGb: 20 })).flavor.id;
      const imageId = (await commands.registerImage(rt, caller, { name: 'cirros', format: 'qcow2', sizeBytes: 1 })).image.id;
      const cli = (await findTemporalCli()).path;
      const save = async (name: string, operationId: string) => {
        await settled(rt, operationId);
        const json = execFileSync(cli, ['workflow', 'show', '--address', inject('temporalAddress'), '--workflow-id', workflowIdOf(operationId), '--output', 'json'], { maxBuffer: 64 << 20 });
        writeFileSync(join(historiesDir, `${name}.json`), JSON.stringify(JSON.parse(json.toString()), null, 1) + '\n');
      };
      const boots = await Promise.all(['rec-m1', 'rec-m2'].map((name) => commands.bootInstance(rt, caller, { name, flavorId, imageId })));
      for (const b of boots) await settled(rt, b.operation.id);
      const b = await simHost(rt, caller, stack.key.publicKey, 'rec-b');
      const [first, second] = boots.map((x) => x.instance!.id) as [string, string];
      await save('migrateInstance', (await commands.migrateInstance(rt, caller, { id: first, targetHostId: b.host.id })).operation.id);
      await setFaults(a.agent, { failMethods: 'migrateSend' });
      await save('migrateInstance-failed', (await commands.migrateInstance(rt, caller, { id: second, targetHostId: b.host.id })).operation.id);
      await setFaults(a.agent, {});
      await save('resizeInstance', (await commands.resizeInstance(rt, caller, { id: first, flavorId: bigger })).operation.id);
      const drain = await commands.setHostState(rt, caller, { id: a.host.id, state: 'MAINTENANCE' });
      await save('drainHost', drain.operation!.id);
      expect((await settled(rt, drain.operation!.id)).status).toBe('SUCCEEDED');
      await b.agent.stop();
    } finally {
      await worker.shutdown();
      await a.agent.stop();
      await rt.close();
    }
  });

  /**
   * Cold moves: a stopped instance migrated, and a running one resized onto another host. The `.v1` files
   * were recorded with the workflows as they were before COLD_MOVE_COPIES_DISK (no copyDisk step):
   * RECORD_COLD_HISTORIES=.v1 with those two workflow files checked out; RECORD_COLD_HISTORIES=1 for today's.
   */
  it.runIf(process.env.RECORD_COLD_HISTORIES)('records cold migrate and resize-elsewhere histories from a real run', async () => {
    const suffix = process.env.RECORD_COLD_HISTORIES === '.v1' ? '.v1' : '';
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), `record_cold_histories${suffix.replace('.', '_')}`);
    const { rt } = stack;
    const worker = await startWorker(rt);
    const caller = adminCaller();
    const a = await simHost(rt, caller, stack.key.publicKey, 'cold-a', { vcpus: 4, memoryMb: 4096, diskGb: 100 });
    const b = await simHost(rt, caller, stack.key.publicKey, 'cold-b', { vcpus: 4, memoryMb: 2048, diskGb: 100 });
    try {
      const flavorId = (await commands.createFlavor(rt, caller, { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 })).flavor.id;
      const roomier = (await commands.createFlavor(rt, caller, { name: 'm1.mid', vcpus: 1, memoryMb: 3072, diskGb: 1 })).flavor.id;
      const imageId = (await commands.registerImage(rt, caller, { name: 'cirros', format: 'qcow2', sizeBytes: 1 })).image.id;
      const cli = (await findTemporalCli()).path;
      const save = async (name: string, operationId: string) => {
        expect((await settled(rt, operationId)).status).toBe('SUCCEEDED');
        const json = execFileSync(cli, ['workflow', 'show', '--address', inject('temporalAddress'), '--workflow-id', workflowIdOf(operationId), '--output', 'json'], { maxBuffer: 64 << 20 });
        writeFileSync(join(historiesDir, `${name}${suffix}.json`), JSON.stringify(JSON.parse(json.toString()), null, 1) + '\n');
      };
      const boot = await commands.bootInstance(rt, caller, { name: 'rec-cold', flavorId, imageId });
      expect((await settled(rt, boot.operation.id)).status).toBe('SUCCEEDED');
      const id = boot.instance!.id;
      const stop = await commands.stopInstance(rt, caller, { id });
      await settled(rt, stop.operation.id);
      const target = (await instanceOf(rt, id)).hostId === a.host.id ? b.host.id : a.host.id;
      await save('migrateInstance-cold', (await commands.migrateInstance(rt, caller, { id, targetHostId: target })).operation.id);
      const start = await commands.startInstance(rt, caller, { id });
      await settled(rt, start.operation.id);
      // m1.mid fits host a only: from b the resize is a cold move; from a it would be in place.
      if ((await instanceOf(rt, id)).hostId === a.host.id) {
        await settled(rt, (await commands.migrateInstance(rt, caller, { id, targetHostId: b.host.id })).operation.id);
      }
      const resize = await commands.resizeInstance(rt, caller, { id, flavorId: roomier });
      await save('resizeInstance-cold', resize.operation.id);
      expect(await instanceOf(rt, id)).toMatchObject({ hostId: a.host.id, state: 'RUNNING' });
    } finally {
      await worker.shutdown();
      await Promise.all([a.agent.stop(), b.agent.stop()]);
      await rt.close();
    }
  });

  /**
   * Moves of an instance booted from an uploaded image, which fetch the image to their target first
   * (MOVES_FETCH_IMAGE): a live migration, a resize onto another host and an evacuation's child.
   * RECORD_IMAGE_HISTORIES=1.
   */
  it.runIf(process.env.RECORD_IMAGE_HISTORIES)('records migrate, resize-elsewhere and evacuate histories of an image-backed instance', async () => {
    const admin = `admin-${randomUUID()}`;
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'record_image_histories');
    const { rt } = stack;
    rt.config.adminToken = admin;
    const worker = await startWorker(rt);
    const api = await startApi(rt, { port: 0 });
    const caller = adminCaller();
    const agents: AgentProcess[] = [];
    const work = mkdtempSync(join(tmpdir(), 'stratus-image-histories-'));
    const host = async (name: string, memoryMb: number) => {
      const { agent, host } = await simHost(rt, caller, stack.key.publicKey, name, { vcpus: 4, memoryMb, diskGb: 100 });
      agents.push(agent);
      return host.id;
    };
    try {
      const file = join(work, 'base.qcow2');
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', file, '16M']);
      const image = await uploadImage(rt, caller, api, admin, file, 'rec-image');
      const tiny = (await commands.createFlavor(rt, caller, { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 })).flavor.id;
      const big = (await commands.createFlavor(rt, caller, { name: 'm1.big', vcpus: 1, memoryMb: 3072, diskGb: 1 })).flavor.id;
      const cli = (await findTemporalCli()).path;
      const save = async (name: string, operationId: string) => {
        expect((await settled(rt, operationId)).status).toBe('SUCCEEDED');
        const json = execFileSync(cli, ['workflow', 'show', '--address', inject('temporalAddress'), '--workflow-id', workflowIdOf(operationId), '--output', 'json'], { maxBuffer: 64 << 20 });
        writeFileSync(join(historiesDir, `${name}.json`), JSON.stringify(JSON.parse(json.toString()), null, 1) + '\n');
      };
      await host('img-rec-a', 2048);
      const boot = await commands.bootInstance(rt, caller, { name: 'rec-image', flavorId: tiny, imageId: image.id });
      expect((await settled(rt, boot.operation.id)).status).toBe('SUCCEEDED');
      const id = boot.instance!.id;
      // Each target has never seen the image: it is sent there by every move.
      await save('migrateInstance-image', (await commands.migrateInstance(rt, caller, { id, targetHostId: await host('img-rec-b', 2048) })).operation.id);
      const roomy = await host('img-rec-c', 8192);
      await save('resizeInstance-image', (await commands.resizeInstance(rt, caller, { id, flavorId: big })).operation.id);
      expect(await instanceOf(rt, id)).toMatchObject({ hostId: roomy, state: 'RUNNING' });
      await host('img-rec-d', 8192);
      await hostHealthSteps(rt).hostLost(roomy, 3);
      const evacuation = await startHostOperation(rt, caller, roomy, 'EVACUATE_HOST');
      expect((await settled(rt, evacuation.id)).status).toBe('SUCCEEDED');
      await save('evacuateInstance-image', childOperationId(evacuation.id, id));
    } finally {
      await api.close();
      await worker.shutdown();
      await Promise.all(agents.map((a) => a.stop()));
      await rt.close();
      rmSync(work, { recursive: true, force: true });
    }
  });

  /**
   * Host health and evacuation: a host's check through two outages (the first one's evacuation fails to
   * rebuild, the second one's succeeds) and the two evacuations. RECORD_HEALTH_HISTORIES=.v1 with the
   * workflows as they were before EVACUATION_MOVES_BEFORE_START and HEALTH_RUN_RECONCILES; =1 for today's.
   */
  it.runIf(process.env.RECORD_HEALTH_HISTORIES)('records host health and evacuation histories from a real run', async () => {
    const suffix = process.env.RECORD_HEALTH_HISTORIES === '.v1' ? '.v1' : '';
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), `record_health_histories${suffix.replace('.', '_')}`);
    const { rt } = stack;
    rt.config.hostHealth = { intervalMs: 250, missesToDown: 3, evacuate: true };
    const worker = await startWorker(rt);
    const caller = adminCaller();
    const victim = await simHost(rt, caller, stack.key.publicKey, 'rec-victim');
    let spare: Awaited<ReturnType<typeof simHost>> | undefined;
    const cli = (await findTemporalCli()).path;
    const save = (name: string, workflowId: string) => {
      const json = execFileSync(cli, ['workflow', 'show', '--address', inject('temporalAddress'), '--workflow-id', workflowId, '--output', 'json'], { maxBuffer: 64 << 20 });
      writeFileSync(join(historiesDir, `${name}${suffix}.json`), JSON.stringify(JSON.parse(json.toString()), null, 1) + '\n');
    };
    try {
      const flavorId = (await commands.createFlavor(rt, caller, { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 })).flavor.id;
      const imageId = (await commands.registerImage(rt, caller, { name: 'cirros', format: 'qcow2', sizeBytes: 1 })).image.id;
      const boot = await commands.bootInstance(rt, caller, { name: 'rec-evacuee', flavorId, imageId });
      expect((await settled(rt, boot.operation.id)).status).toBe('SUCCEEDED');
      const id = boot.instance!.id;
      spare = await simHost(rt, caller, stack.key.publicKey, 'rec-spare');
      const evacuations = async () =>
        (await rt.store.readStream(instanceStream(id))).filter((e) => e.type === 'InstanceTaskStarted' && e.data.kind === 'EVACUATE').map((e) => (e.data as { operationId: string }).operationId);
      const outage = async (done: number) => {
        await victim.agent.kill();
        const [operationId] = (await waitFor('an evacuation', 30_000, async () => ((await evacuations()).length > done ? evacuations() : undefined))).slice(done);
        await settled(rt, operationId!);
        await victim.agent.restart();
        await waitFor('the victim UP', 30_000, async () => ((await hostOf(rt, victim.host.id)).state === 'UP' ? true : undefined));
        return operationId!;
      };
      await setFaults(spare.agent, { failMethods: 'createVm' });
      save('evacuateInstance-failed', workflowIdOf(await outage(0)));
      await setFaults(spare.agent, {});
      save('evacuateInstance', workflowIdOf(await outage(1)));
      expect(await instanceOf(rt, id)).toMatchObject({ hostId: spare.host.id, state: 'RUNNING' });
      const ups = (await rt.store.readStream(hostStream(victim.host.id))).filter((e) => e.type === 'HostStateChanged' && e.data.state === 'UP');
      expect(ups).toHaveLength(2);
      const health = rt.temporal.workflow.getHandle(hostHealthWorkflowId(victim.host.id));
      save('hostHealth', hostHealthWorkflowId(victim.host.id));
      await health.terminate('recorded');
      await rt.temporal.workflow.getHandle(hostHealthWorkflowId(spare.host.id)).terminate('recorded');
    } finally {
      await worker.shutdown();
      await Promise.all([victim.agent.stop(), spare?.agent.stop()]);
      await rt.close();
    }
  });
});
