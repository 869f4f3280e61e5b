import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHANGES_CHANNEL, projections, rebuildProjection, startProjections, waitForProjections, type Change, type ProjectionRunner } from '../projections/index.js';
import type { Runtime } from '../server/runtime.js';
import { eventsOfStream } from '../schema/readModel.js';
import { bootstrapAdminCaller } from '../server/adminToken.js';
import { domainWriter, dumpReadModel, runtimeLike, testRuntime } from './support/projectionFixtures.js';

const allTables = projections.flatMap((p) => p.tables);

describe('read-model projections on PostgreSQL', () => {
  let rt: Runtime;
  let runner: ProjectionRunner;
  let write: ReturnType<typeof domainWriter>;

  beforeAll(async () => {
    rt = await testRuntime('projections_main');
    write = domainWriter(rt);
    runner = await startProjections(rt);
    await runner.caughtUp;
  });
  afterAll(async () => {
    await runner?.stop();
    await rt?.close();
  });

  it('folds a boot into instance, host, operation and audit rows with the same evolve the deciders use', async () => {
    const projectId = await write.project();
    const flavor = await write.flavor();
    const imageId = await write.image();
    const hostId = await write.host();
    const { instanceId, operationId } = await write.bootedInstance({ projectId, hostId, flavor, imageId, name: 'web-1' });
    await waitForProjections(rt);

    const [instance] = await rt.db.query<Record<string, unknown>>('SELECT * FROM rm_instances WHERE id = $1', [instanceId]);
    expect(instance).toMatchObject({ project_id: projectId, name: 'web-1', state: 'RUNNING', task: null, host_id: hostId, vcpus: 1, version: 4 });
    expect(instance!.launched_at).toBeInstanceOf(Date);

    const [host] = await rt.db.query<Record<string, unknown>>('SELECT * FROM rm_hosts WHERE id = $1', [hostId]);
    expect(host).toMatchObject({ state: 'UP', capacity_vcpus: 8, allocated_vcpus: 1, allocated_memory_mb: 512, allocated_disk_gb: 1, version: 2 });

    const [op] = await rt.db.query<{ status: string; steps: { name: string; status: string }[] }>('SELECT * FROM rm_operations WHERE id = $1', [operationId]);
    expect(op!.status).toBe('SUCCEEDED');
    expect(op!.steps.map((s) => [s.name, s.status])).toEqual([['schedule', 'SUCCEEDED'], ['createVm', 'SUCCEEDED']]);

    const audit = await rt.db.query<{ stream_id: string; project_id: string | null }>('SELECT stream_id, project_id FROM rm_audit');
    for (const row of audit) {
      if (row.stream_id === `instance-${instanceId}` || row.stream_id === `operation-${operationId}`) expect(row.project_id).toBe(projectId);
      if (row.stream_id.startsWith('host-') || row.stream_id.startsWith('flavor-')) expect(row.project_id).toBeNull();
    }
    const [{ count }] = (await rt.db.query<{ count: string }>('SELECT count(*)::text AS count FROM events')) as [{ count: string }];
    expect(audit.length).toBe(Number(count));
  });

  it('a failure shows as ERROR with its code and message, and a FAILED operation', async () => {
    const projectId = await write.project();
    const { instanceId } = await write.bootedInstance({ projectId, hostId: await write.host(), flavor: await write.flavor(), imageId: await write.image() });
    const { operationId, lastEvent } = await write.failedStop({ instanceId, projectId });
    await waitForProjections(rt, lastEvent);
    const [instance] = await rt.db.query('SELECT state, error_code, error_message, task FROM rm_instances WHERE id = $1', [instanceId]);
    expect(instance).toEqual({ state: 'ERROR', error_code: 'INTERNAL', error_message: 'qmp timed out', task: null });
    const [op] = await rt.db.query('SELECT status, error FROM rm_operations WHERE id = $1', [operationId]);
    expect(op).toEqual({ status: 'FAILED', error: { code: 'INTERNAL', message: 'qmp timed out' } });
  });

  it('NOTIFYs stratus_changes after each commit, naming the resource and its project', async () => {
    const seen: Change[] = [];
    const unlisten = await rt.db.listen(CHANGES_CHANNEL, (p) => seen.push(JSON.parse(p) as Change));
    try {
      const projectId = await write.project();
      const { instanceId, operationId } = await write.bootedInstance({ projectId, hostId: await write.host(), flavor: await write.flavor(), imageId: await write.image() });
      await waitForProjections(rt);
      // The NOTIFY follows the commit, so it may land just after waitForProjections returns.
      await expect.poll(() => seen.some((c) => c.kind === 'operation' && c.id === operationId && c.projectId === projectId)).toBe(true);
      await expect.poll(() => seen.some((c) => c.kind === 'instance' && c.id === instanceId && c.projectId === projectId)).toBe(true);
      await expect.poll(() => seen.some((c) => c.kind === 'event' && c.streamId === `instance-${instanceId}` && c.projectId === projectId)).toBe(true);
      await expect.poll(() => seen.some((c) => c.kind === 'host' && c.projectId === null)).toBe(true);
    } finally {
      await unlisten();
    }
  });

  it('rebuilding each projection from the log, while its runner is live, yields identical tables', async () => {
    await waitForProjections(rt);
    const before = await dumpReadModel(rt, allTables);
    expect(before['rm_instances']!.length).toBeGreaterThan(0);
    for (const p of projections) await rebuildProjection(rt, p.name);
    expect(await dumpReadModel(rt, allTables)).toEqual(before);

    // The live runner restarted from the rebuilt checkpoint: new events still arrive, once each.
    const projectId = await write.project();
    await waitForProjections(rt);
    const [row] = await rt.db.query<{ n: number }>('SELECT count(*)::int AS n FROM rm_projects WHERE id = $1', [projectId]);
    expect(row!.n).toBe(1);
    const [audit] = await rt.db.query<{ a: number; e: number }>('SELECT (SELECT count(*)::int FROM rm_audit) AS a, (SELECT count(*)::int FROM events) AS e');
    expect(audit!.a).toBe(audit!.e);
  });

  it('only one runner per projection is active; the standby takes over when the holder stops, applying each event once', async () => {
    const other = await runtimeLike(rt);
    const standby = await startProjections(other);
    try {
      await runner.stop();
      const projectId = await write.project(`takeover-${randomUUID().slice(0, 6)}`);
      await standby.caughtUp;
      await waitForProjections(rt, undefined, { timeoutMs: 15_000 });
      const [row] = await rt.db.query<{ n: number }>('SELECT count(*)::int AS n FROM rm_projects WHERE id = $1', [projectId]);
      expect(row!.n).toBe(1);
      const [audit] = await rt.db.query<{ a: number; e: number }>('SELECT (SELECT count(*)::int FROM rm_audit) AS a, (SELECT count(*)::int FROM events) AS e');
      expect(audit!.a).toBe(audit!.e);
    } finally {
      await standby.stop();
      await other.close();
      runner = await startProjections(rt);
    }
  });
  it("a stream's events come back in version order after global positions gain a digit", async () => {
    // Positions are bigints shown as text; ordering by the text ("10" < "9") once listed 26, 27, 28 before 1.
    const projectId = await write.project();
    const hostId = await write.host();
    const { instanceId } = await write.bootedInstance({ projectId, hostId, flavor: await write.flavor(), imageId: await write.image() });
    const [{ max }] = (await rt.db.query<{ max: string }>('SELECT max(position)::text AS max FROM events')) as [{ max: string }];
    // Pad the log with other streams' events up to the next power of ten, then write more of this stream past it.
    const nextPower = 10 ** max.length;
    for (let p = Number(max); p < nextPower; p++) await write.project();
    const { lastEvent } = await write.failedStop({ instanceId, projectId });
    await waitForProjections(rt, lastEvent);
    const listed = await eventsOfStream(rt, bootstrapAdminCaller, `instance-${instanceId}`, null, 100);
    const positions = listed.map((e) => BigInt(e.position));
    expect(positions.some((p) => p < BigInt(nextPower)) && positions.some((p) => p >= BigInt(nextPower))).toBe(true);
    expect(listed.map((e) => e.version)).toEqual(listed.map((_, i) => i + 1));
  });
});
