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

/** A shell-safe single-quoted path for `exec:` migration URIs. */
export const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
