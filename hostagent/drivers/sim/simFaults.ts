import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { AgentError, AgentErrorCode, type CallContext } from '../../driver.js';
import { componentLog } from '../../../server/log.js';

const log = componentLog('hostagent.sim');

const list = z.union([z.array(z.string()), z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))]);
const num = z.coerce.number().min(0);

/**
 * Latency and failure injection, after Nova's fake driver and its failing subclasses. Set from
 * `--driver-option` at start and, live, from `<stateDir>/faults.json` (same keys; the file wins),
 * which is re-read whenever its mtime changes, so a test can change faults without a restart.
 *
 * - latencyMs: each mutating call takes this long (sleeps in steps, reporting progress, abortable);
 *   limited to latencyMethods (comma list) and latencyNamePattern (regex on the VM name) when set.
 * - failMethods, failNamePattern, failRate: a call fails when it matches every one that is set
 *   (failRate alone fails that share of all mutating calls). The failure comes after the latency and
 *   before anything is changed, with code failCode (default HYPERVISOR_ERROR).
 * - holdMethods, holdNamePattern: a call that matches every one that is set waits, before its latency and
 *   failure, until the faults no longer hold it: a test's gate that keeps a step at a known point while
 *   something else happens, then lets it go on (or fail) when the test says so.
 */
export const SimFaults = z.object({
  latencyMs: num.default(0),
  latencyMethods: list.optional(),
  latencyNamePattern: z.string().optional(),
  failMethods: list.optional(),
  failNamePattern: z.string().optional(),
  failRate: num.max(1).optional(),
  failCode: AgentErrorCode.default('HYPERVISOR_ERROR'),
  holdMethods: list.optional(),
  holdNamePattern: z.string().optional(),
});
export type SimFaults = z.infer<typeof SimFaults>;

export class SimFaultInjector {
  private fileText: string | undefined;
  private reloading: Promise<void> | undefined;
  private current: SimFaults;

  constructor(
    private readonly stateDir: string,
    private readonly fromOptions: Record<string, unknown>,
  ) {
    this.current = SimFaults.parse(fromOptions);
  }

  /** Applies the faults for one mutating call: waits out the latency, then maybe fails. */
  async apply(method: string, vmName: string, ctx: CallContext): Promise<void> {
    if (holds(await this.faults(), method, vmName)) {
      // Said once as progress, so the caller can tell a hold from a hang.
      ctx.progress({ message: `${method}: held by the sim's faults` });
      do await pause(HOLD_POLL_MS, method, ctx);
      while (holds(await this.faults(), method, vmName));
    }
    const f = await this.faults();
    const delayed =
      f.latencyMs > 0 &&
      (!f.latencyMethods || f.latencyMethods.includes(method)) &&
      (!f.latencyNamePattern || new RegExp(f.latencyNamePattern).test(vmName));
    if (delayed) await slowly(f.latencyMs, method, ctx);
    const armed = f.failMethods !== undefined || f.failNamePattern !== undefined || f.failRate !== undefined;
    const fails =
      armed &&
      (!f.failMethods || f.failMethods.includes(method)) &&
      (!f.failNamePattern || new RegExp(f.failNamePattern).test(vmName)) &&
      Math.random() < (f.failRate ?? 1);
    if (fails) throw new AgentError(f.failCode, `sim: injected ${method} failure for ${vmName}`);
  }

  private async faults(): Promise<SimFaults> {
    // One reload at a time: concurrent calls must all see the new faults, not the old ones while a read runs.
    this.reloading ??= this.reload().finally(() => (this.reloading = undefined));
    await this.reloading;
    return this.current;
  }

  /**
   * Keyed on the file's content, not its mtime: file times tick coarsely (a few ms), so two writes in
   * quick succession can share one mtime and the second would go unseen. The file is tiny.
   */
  private async reload(): Promise<void> {
    const path = join(this.stateDir, 'faults.json');
    const text = await readFile(path, 'utf8').catch(() => '');
    if (text === this.fileText) return;
    this.fileText = text;
    try {
      const fromFile = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
      this.current = SimFaults.parse({ ...this.fromOptions, ...fromFile });
      log.info({ faults: this.current }, 'sim faults changed');
    } catch (err) {
      // A bad file keeps the previous faults rather than silently dropping them.
      log.warn({ err, path }, 'faults.json ignored');
    }
  }
}

/** How often a held call looks at the faults again. */
const HOLD_POLL_MS = 25;

const holds = (f: SimFaults, method: string, vmName: string) =>
  (f.holdMethods !== undefined || f.holdNamePattern !== undefined) &&
  (!f.holdMethods || f.holdMethods.includes(method)) &&
  (!f.holdNamePattern || new RegExp(f.holdNamePattern).test(vmName));

/** Sleeps `ms` in ten steps, each reported as progress, and stops at once when the call is cancelled. */
async function slowly(ms: number, what: string, ctx: CallContext): Promise<void> {
  const steps = 10;
  for (let i = 0; i < steps; i++) {
    ctx.progress({ percent: (i * 100) / steps, message: `${what}: step ${i + 1} of ${steps}` });
    await pause(ms / steps, what, ctx);
  }
}

function pause(ms: number, what: string, ctx: CallContext): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (ctx.signal.aborted) return reject(new AgentError('CANCELLED', `${what} cancelled`));
    const t = setTimeout(() => {
      ctx.signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new AgentError('CANCELLED', `${what} cancelled`));
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
  });
}
