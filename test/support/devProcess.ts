import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../server/temporalDevServer.js';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export interface DevProcess {
  child: ChildProcess;
  url: string;
  dataDir: string;
  adminToken: string;
  output(): string;
  /** Live sim faults for the dev stack's own agent (hostagent/drivers/sim/simFaults.ts). */
  setFaults(faults: Record<string, unknown>): Promise<void>;
  /** SIGINT and wait; the data dir goes too unless `keepData` (for a second start on it). */
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

/** The variables of the test run that must not reach a child: its own stack embeds Temporal and the database. */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['TEMPORAL_ADDRESS', 'DATABASE_URL', 'STRATUS_ADMIN_TOKEN', 'STRATUS_API_URL', 'STRATUS_TOKEN', 'VITEST', 'VITEST_POOL_ID', 'VITEST_WORKER_ID']) delete env[k];
  return env;
}

/** `npm start` (stratus dev) as a real child process on a data dir and ports of its own, once healthy. */
export async function startDevProcess(extraEnv: NodeJS.ProcessEnv = {}, opts: { dataDir?: string } = {}): Promise<DevProcess> {
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'stratus-dev-')));
  const port = await freePort();
  const child = spawn(process.execPath, ['cli/bin.mjs', 'dev'], {
    cwd: repoRoot,
    env: { ...cleanEnv(), STRATUS_LOG_LEVEL: 'warn', STRATUS_DATA_DIR: dataDir, STRATUS_PORT: String(port), STRATUS_TEMPORAL_PORT: String(await freePort()), ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async (o: { keepData?: boolean } = {}) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    if (!o.keepData) await rm(dataDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 150_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`stratus dev exited (${child.exitCode}) before it was healthy:\n${output}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`stratus dev not healthy within 150 s:\n${output}`);
    }
    const healthy = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
    if (healthy && output.includes('Ctrl-C stops everything')) break;
    await new Promise((r) => setTimeout(r, 300));
  }
  return {
    child,
    url,
    dataDir,
    adminToken: (await readFile(join(dataDir, 'admin.token'), 'utf8')).trim(),
    output: () => output,
    setFaults: (faults) => writeFile(join(dataDir, 'hostagent', 'faults.json'), JSON.stringify(faults)),
    stop,
  };
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** The `stratus` command as a user runs it: its own process, its own environment, exit code kept. */
export function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['cli/bin.mjs', ...args], { cwd: repoRoot, env: { ...cleanEnv(), ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
