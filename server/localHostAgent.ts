import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../hostagent/atomicFile.js';
import { killWithParent } from './childProcesses.js';
import { componentLog } from './log.js';
import { portIsFree } from './temporalDevServer.js';

const log = componentLog('local-agent');
const repoRoot = fileURLToPath(new URL('..', import.meta.url));

export interface LocalHostAgent {
  host: string;
  port: number;
  fingerprint: string;
  driver: string;
  pid: number;
  stop(graceMs?: number): Promise<void>;
}

export interface LocalHostAgentOptions {
  /** `<data>/hostagent`: its host key, journal, driver state, authorized_keys and the port it keeps. */
  stateDir: string;
  /** The controller's public key, the one key this agent accepts. */
  controllerPublicKey: string;
  driver: string;
  driverOptions?: Record<string, string | number>;
}

/**
 * The dev stack's own hypervisor host: `stratus hostagent` as a child process. A registered host
 * has no "address changed" event (domain/host.ts), so the agent keeps the port it got on the first
 * start (recorded in `<state dir>/port`) and the host key in its state dir; a restart is then the
 * same host at the same address.
 */
export async function startLocalHostAgent(opts: LocalHostAgentOptions): Promise<LocalHostAgent> {
  mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  const authorizedKeys = join(opts.stateDir, 'authorized_keys');
  writeFileAtomic(authorizedKeys, opts.controllerPublicKey.trim() + '\n', 0o600);
  const portFile = join(opts.stateDir, 'port');
  const recorded = existsSync(portFile) ? Number(readFileSync(portFile, 'utf8').trim()) : 0;
  if (recorded && !(await portIsFree(recorded))) {
    throw new Error(
      `the local host agent's port ${recorded} (kept in ${portFile} because the registered host's address cannot change) is taken; ` +
        'free it, or stop the other stratus dev on this data dir',
    );
  }
  const args = ['cli/bin.mjs', 'hostagent', '--listen', `127.0.0.1:${recorded}`, '--state-dir', opts.stateDir];
  args.push('--driver', opts.driver, '--authorized-keys', authorizedKeys);
  for (const [k, v] of Object.entries(opts.driverOptions ?? {})) args.push('--driver-option', `${k}=${v}`);
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { ...process.env, STRATUS_LOG_LEVEL: process.env.STRATUS_LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: a terminal's Ctrl-C reaches the dev stack, which stops the agent last-but-one.
    detached: true,
  });
  killWithParent(child);
  let output = '';
  child.stderr.on('data', (d: Buffer) => {
    output = (output + d.toString()).slice(-8000);
    // The agent's own warnings belong in the dev stack's log.
    process.stderr.write(d);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const stop = async (graceMs = 5_000) => {
    if (gone()) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };

  try {
    const ready = await new Promise<{ listening: string; fingerprint: string }>((resolve, reject) => {
      let stdout = '';
      const timer = setTimeout(() => reject(new Error(`the local host agent did not start within 30 s:\n${output}`)), 30_000);
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        const lines = stdout.split('\n');
        stdout = lines.pop() ?? '';
        for (const line of lines) {
          const m = parseListening(line);
          if (m) {
            clearTimeout(timer);
            resolve(m);
          }
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the local host agent exited (${code ?? signal}) before listening:\n${output}`));
      });
    });
    const port = Number(ready.listening.slice(ready.listening.lastIndexOf(':') + 1));
    if (!recorded) writeFileAtomic(portFile, `${port}\n`);
    log.debug({ port, fingerprint: ready.fingerprint }, 'local host agent listening');
    return { host: '127.0.0.1', port, fingerprint: ready.fingerprint, driver: opts.driver, pid: child.pid!, stop };
  } catch (e) {
    await stop(1_000);
    throw e;
  }
}

/** The agent's one JSON line on stdout: `{"listening":"127.0.0.1:port","fingerprint":"SHA256:..."}`. */
function parseListening(line: string): { listening: string; fingerprint: string } | undefined {
  try {
    const m = JSON.parse(line) as { listening?: unknown; fingerprint?: unknown; msg?: unknown };
    if (typeof m.listening === 'string' && typeof m.fingerprint === 'string' && m.msg === undefined) {
      return { listening: m.listening, fingerprint: m.fingerprint };
    }
  } catch {
    // a log line, not the listening line
  }
  return undefined;
}
