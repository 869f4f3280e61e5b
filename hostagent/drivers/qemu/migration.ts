import { AgentError, type CallContext, type MigrationResult } from '../../driver.js';
import type { QmpClient } from './qmp.js';

/**
 * QEMU's `migrate`, used two ways: live migration to another QEMU (`tcp:`) and suspend to a file
 * (`exec:cat > file`; QEMU 7.2 has no `file:` URI). Progress comes from polling `query-migrate`.
 */

interface QueryMigrate {
  status?: string;
  'total-time'?: number;
  downtime?: number;
  'error-desc'?: string;
  ram?: { transferred: number; total: number; remaining: number };
  disk?: { transferred: number; total: number; remaining: number };
}

export async function runMigration(
  qmp: QmpClient,
  uri: string,
  opts: { block: boolean; ctx?: CallContext; what: string },
): Promise<MigrationResult> {
  // Block migration copies the disk as well; `block-incremental` sends only what the top qcow2 layer holds,
  // which is right because the destination made the same overlay on the same base (or the same blank disk).
  await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'block', state: opts.block }] });
  // The default cap is 32 MiB/s, meant for shared links; on a host link it only stretches the migration.
  await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 8 * 2 ** 30, 'block-incremental': opts.block });
  const started = Date.now();
  await qmp.execute('migrate', { uri });
  let cancelled = false;
  const onAbort = () => {
    cancelled = true;
    qmp.execute('migrate_cancel').catch(() => undefined);
  };
  opts.ctx?.signal.addEventListener('abort', onAbort, { once: true });
  try {
    let lastReport = 0;
    for (;;) {
      const m = await qmp.execute<QueryMigrate>('query-migrate');
      switch (m.status) {
        case 'completed':
          return {
            downtimeMs: m.downtime ?? 0,
            totalMs: m['total-time'] ?? Date.now() - started,
            transferredBytes: (m.ram?.transferred ?? 0) + (m.disk?.transferred ?? 0),
          };
        case 'failed':
          throw new AgentError('HYPERVISOR_ERROR', `${opts.what} failed: ${m['error-desc'] ?? 'QEMU reported failure'}`);
        case 'cancelled':
          throw new AgentError('CANCELLED', `${opts.what} cancelled`);
      }
      if (opts.ctx && Date.now() - lastReport >= 250) {
        lastReport = Date.now();
        const total = (m.ram?.total ?? 0) + (m.disk?.total ?? 0);
        const remaining = (m.ram?.remaining ?? 0) + (m.disk?.remaining ?? 0);
        const percent = total > 0 ? Math.min(99, Math.max(0, Math.round((100 * (total - remaining)) / total))) : undefined;
        opts.ctx.progress({ percent, message: `${opts.what}: ${m.status ?? 'starting'}` });
      }
      if (cancelled && m.status !== 'cancelling') onAbort();
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    opts.ctx?.signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Live migration of a VM with a local disk and shared volumes: QEMU's block migration (`block`) would copy
 * every writable block device, the shared volumes too (onto themselves), so instead the local disk alone
 * is mirrored over NBD, as libvirt does: the target exports its empty twin of the disk, the source
 * mirrors into it until in step (`drive-mirror`, write-blocking: from then on every guest write lands on
 * both), the migration moves memory and devices only, and the shared volumes are simply reopened by
 * the target once the source has let go of them at the switch-over.
 */
export const MIRROR_JOB = 'migrate-disk0';

/** Target side: the disk (`-drive id=disk0`) exported writable over NBD until the incoming state is in. */
export async function exportDisk(qmp: QmpClient, host: string, port: number): Promise<void> {
  const blocks = await qmp.execute<{ device: string; inserted?: { 'node-name': string } }[]>('query-block');
  const node = blocks.find((b) => b.device === 'disk0')?.inserted?.['node-name'];
  if (!node) throw new AgentError('HYPERVISOR_ERROR', 'the destination QEMU has no disk0 to export');
  await qmp.execute('nbd-server-start', { addr: { type: 'inet', data: { host, port: String(port) } } });
  await qmp.execute('block-export-add', { type: 'nbd', id: 'disk0', 'node-name': node, name: 'disk0', writable: true });
}

/** Target side, once the VM runs here: the export goes (the source's mirror has nothing more to write). */
export async function unexportDisk(qmp: QmpClient): Promise<void> {
  await qmp.execute('nbd-server-stop');
}

interface BlockJob {
  device: string;
  len: number;
  offset: number;
  ready: boolean;
  status: string;
}

/** Source side: mirrors the disk into the target's export and resolves once the two are in step. */
export async function mirrorDisk(qmp: QmpClient, target: { host: string; port: number }, opts: { ctx?: CallContext; timeoutMs: number }): Promise<void> {
  await qmp.execute('drive-mirror', {
    'job-id': MIRROR_JOB,
    device: 'disk0',
    target: `nbd:${target.host}:${target.port}:exportname=disk0`,
    format: 'raw',
    mode: 'existing',
    // Only what the top qcow2 layer holds: the target made the same overlay on the same base (or the same blank disk).
    sync: 'top',
    'copy-mode': 'write-blocking',
  });
  const until = Date.now() + opts.timeoutMs;
  let lastReport = 0;
  for (;;) {
    const jobs = await qmp.execute<BlockJob[]>('query-block-jobs');
    const job = jobs.find((j) => j.device === MIRROR_JOB);
    if (!job) throw new AgentError('HYPERVISOR_ERROR', 'disk mirror to the target ended before it was in step');
    if (job.ready) return;
    if (Date.now() > until) throw new AgentError('HYPERVISOR_ERROR', `disk mirror not in step after ${opts.timeoutMs} ms`);
    if (opts.ctx && Date.now() - lastReport >= 250) {
      lastReport = Date.now();
      opts.ctx.progress({ message: `mirroring the disk: ${job.offset} of ${job.len} bytes` });
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Source side, after the migration (or instead of it): the mirror stops. After a completed migration
 * the source is paused and in step, so this only closes the connection; after a failed one the target's
 * copy is thrown away anyway (`force`).
 */
export async function stopMirror(qmp: QmpClient, force: boolean): Promise<void> {
  await qmp.execute('block-job-cancel', { device: MIRROR_JOB, force }).catch(() => undefined);
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    const jobs = await qmp.execute<BlockJob[]>('query-block-jobs').catch(() => []);
    if (!jobs.some((j) => j.device === MIRROR_JOB)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The destination (or a resumed VM) reports `inmigrate` until the whole state has arrived. */
export async function waitIncomingDone(qmp: QmpClient, timeoutMs: number): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const s = await qmp.execute<{ status: string }>('query-status');
    if (s.status !== 'inmigrate') return s.status;
    if (Date.now() > until) throw new AgentError('HYPERVISOR_ERROR', `incoming migration not finished after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** How long a read of a VM waits for an incoming migration that has begun to land (see `stateOf`). */
export const INCOMING_SETTLE_MS = 30_000;

/**
 * Destination side: the run state once an incoming migration that has begun (`active`, or `completed`
 * while QEMU activates the disks and starts the CPUs) has landed, or `inmigrate` when none has begun or it
 * has not landed within `timeoutMs`.
 */
export async function settleIncoming(qmp: QmpClient, timeoutMs: number): Promise<string> {
  const incoming = await qmp.execute<QueryMigrate>('query-migrate');
  if (incoming.status !== 'active' && incoming.status !== 'completed') return 'inmigrate';
  return waitIncomingDone(qmp, timeoutMs).catch(() => 'inmigrate');
}

/** A shell-safe single-quoted path for `exec:` migration URIs. */
export const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
