import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { killWithParent } from './childProcesses.js';
import { componentLog } from './log.js';
import { findTemporalCli } from './temporalCli.js';
import { commandLineOf } from './procfs.js';

const log = componentLog('temporal-dev');

const SQLITE_PRAGMAS = (process.env.STRATUS_TEMPORAL_SQLITE_PRAGMAS ?? 'journal_mode=WAL,synchronous=NORMAL').split(',').filter(Boolean);

/**
 * Eager activity dispatch: when a workflow task schedules an activity on the worker's own task queue,
 * the server hands the activity back in its reply instead of queueing it for a poll, saving a round
 * trip per step (the SDK asks for it by default; the server needs the flag). Eager workflow start: an
 * operation started beside an in-process worker gets its first workflow task in the start's reply
 * (server/worker.ts). Production clusters set the same flags in their dynamic config.
 */
const DYNAMIC_CONFIG = (process.env.STRATUS_TEMPORAL_DYNAMIC_CONFIG ?? 'system.enableActivityEagerExecution=true,system.enableEagerWorkflowStart=true')
  .split(',')
  .filter(Boolean);

export interface TemporalDevServer {
  address: string;
  port: number;
  /** The Temporal Web UI, when its port was free. */
  uiUrl: string | undefined;
  pid: number;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

export interface TemporalDevServerOptions {
  dataDir: string;
  /** Preferred gRPC port (default 7233; 0 = any free one); when taken, a free one is picked and the choice is said. */
  port?: number;
  say?: (msg: string) => void;
  readyTimeoutMs?: number;
}

/**
 * The embedded default's Temporal: the pinned CLI's dev server with its SQLite file in the data dir,
 * so workflows survive a restart. The port does not have to be stable across starts: every role gets
 * the address from this process, and the SQLite file holds no address.
 */
export async function startTemporalDevServer(opts: TemporalDevServerOptions): Promise<TemporalDevServer> {
  const say = opts.say ?? ((m: string) => log.info(m));
  const cli = await findTemporalCli(say);
  // A dev server left running on this data dir by a controller that was killed outright (its own
  // process group outlives it) still holds the database file: a second one on it exits at start.
  const pidFile = join(opts.dataDir, 'temporal.pid');
  await stopLeftover(pidFile, join(opts.dataDir, 'temporal.db'), say);
  const preferred = opts.port ?? 7233;
  let port = preferred;
  if (port === 0) port = await freePort();
  else if (!(await portIsFree(port))) {
    port = await freePort();
    say(`port ${preferred} is taken (another Temporal?); the dev server uses ${port} instead (set STRATUS_TEMPORAL_PORT to choose)`);
  }
  // The Web UI sits at port+1000 by the CLI's habit; without a free port there it runs headless.
  const uiPort = port + 1000;
  const withUi = uiPort <= 65535 && (await portIsFree(uiPort));
  const args = ['server', 'start-dev', '--db-filename', join(opts.dataDir, 'temporal.db'), '--ip', '127.0.0.1', '--port', String(port)];
  args.push(...(withUi ? ['--ui-port', String(uiPort)] : ['--headless']), '--log-level', 'warn', '--color', 'never');
  // WAL with synchronous=NORMAL: SQLite's default (rollback journal, fsync per commit) ran 5 bare
  // 4-activity workflows/s at concurrency 32 here, WAL 16/s. A crash of the process still loses nothing
  // committed; only a power cut can lose the last commits, acceptable for a dev server.
  for (const pragma of SQLITE_PRAGMAS) args.push('--sqlite-pragma', pragma);
  for (const setting of DYNAMIC_CONFIG) args.push('--dynamic-config-value', setting);
  // Its own process group: a terminal's Ctrl-C must not stop Temporal before the worker has drained.
  const child = spawn(cli.path, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  killWithParent(child);
  if (child.pid) writeFileSync(pidFile, `${child.pid}\n`);
  child.once('exit', () => rmSync(pidFile, { force: true }));
  let output = '';
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-8000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', (code, signal) => keep(Buffer.from(`(exited with ${signal ?? `code ${code}`})\n`)));
  const gone = () => child.exitCode !== null || child.signalCode !== null;

  const stop = async (graceMs = 10_000) => {
    if (gone()) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      log.warn({ pid: child.pid }, `Temporal dev server still running ${graceMs} ms after SIGTERM; killing it`);
      child.kill('SIGKILL');
    }, graceMs);
    await exited;
    clearTimeout(timer);
  };

  const address = `127.0.0.1:${port}`;
  try {
    await waitUntilAnswering(address, opts.readyTimeoutMs ?? 60_000, () => (gone() ? output : undefined));
  } catch (e) {
    await stop(2_000);
    throw e;
  }
  return { address, port, uiUrl: withUi ? `http://127.0.0.1:${uiPort}` : undefined, pid: child.pid!, stop };
}

/**
 * Stops the dev server a pid file names if it is still alive and serves this data dir's database (the
 * pid may have been reused by an unrelated process: its command line must name the file).
 */
async function stopLeftover(pidFile: string, dbFile: string, say: (m: string) => void): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return;
  }
  const alive = () => commandLineOf(pid)?.includes(dbFile) ?? false;
  if (!Number.isInteger(pid) || pid <= 0 || !alive()) {
    rmSync(pidFile, { force: true });
    return;
  }
  say(`a Temporal dev server left running on this data dir (pid ${pid}) is stopped first`);
  process.kill(pid, 'SIGTERM');
  for (let waited = 0; alive() && waited < 10_000; waited += 100) await new Promise((r) => setTimeout(r, 100));
  if (alive()) process.kill(pid, 'SIGKILL');
  for (let waited = 0; alive() && waited < 5_000; waited += 100) await new Promise((r) => setTimeout(r, 100));
  rmSync(pidFile, { force: true });
}

/** Polls getSystemInfo until the frontend answers; fails at once if the process died (with its output). */
async function waitUntilAnswering(address: string, timeoutMs: number, deadOutput: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const dead = deadOutput();
    if (dead !== undefined) throw new Error(`the Temporal dev server exited during start:\n${dead}`);
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1_000 });
      try {
        await connection.workflowService.getSystemInfo({});
        return;
      } finally {
        await connection.close();
      }
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`the Temporal dev server at ${address} did not answer within ${timeoutMs} ms: ${String(last)}`);
}

export function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
