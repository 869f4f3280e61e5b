import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HostAgentClient, type HostAgentClientOptions } from '../../hostagent/client.js';
import { generateEd25519KeyPair } from '../../hostagent/hostKey.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export interface KeyPair {
  privateKey: string;
  publicKey: string;
}

/** A controller key pair (ed25519, OpenSSH format). */
export function clientKeyPair(): KeyPair {
  const k = generateEd25519KeyPair('stratus-test-controller');
  return { privateKey: k.private, publicKey: k.public };
}

export async function writeAuthorizedKeys(path: string, publicKeys: string[]): Promise<void> {
  await writeFile(path, publicKeys.map((k) => k.trim() + '\n').join(''));
}

export interface AgentProcessOptions {
  driver?: string;
  driverOptions?: Record<string, string | number>;
  /** Defaults to a fresh temporary directory. */
  stateDir?: string;
  /** Public keys to authorize; defaults to the key pair made for this agent (see `keys`). */
  authorizedKeys?: string[];
  /** 0 (default) picks a free port; restart() reuses whatever was picked. */
  port?: number;
  env?: NodeJS.ProcessEnv;
}

export interface AgentProcess {
  host: string;
  port: number;
  fingerprint: string;
  stateDir: string;
  /** The key pair authorized on this agent unless authorizedKeys said otherwise. */
  keys: KeyPair;
  /** A client pinned to this agent's host key, using `keys` unless told otherwise. */
  client(overrides?: Partial<HostAgentClientOptions>): HostAgentClient;
  /** SIGKILL: no clean-up, as a crash or power loss would leave it. */
  kill(): Promise<void>;
  /** Starts the agent again on the same state dir and port. */
  restart(): Promise<void>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
  /** What the agent wrote on stderr and stdout, for failure messages. */
  output(): string;
}

/** Spawns a real agent process (`node cli/bin.mjs hostagent`) and waits for its listening line. */
export async function startAgentProcess(opts: AgentProcessOptions = {}): Promise<AgentProcess> {
  const stateDir = opts.stateDir ?? (await mkdtemp(join(tmpdir(), 'stratus-hostagent-')));
  const keys = clientKeyPair();
  const authorizedKeysPath = join(stateDir, 'authorized_keys');
  await writeAuthorizedKeys(authorizedKeysPath, opts.authorizedKeys ?? [keys.publicKey]);
  let port = opts.port ?? 0;
  let child: ChildProcess | undefined;
  let output = '';
  let fingerprint = '';

  const launch = async () => {
    const args = ['cli/bin.mjs', 'hostagent', '--listen', `127.0.0.1:${port}`, '--state-dir', stateDir];
    args.push('--driver', opts.driver ?? 'sim', '--authorized-keys', authorizedKeysPath);
    for (const [k, v] of Object.entries(opts.driverOptions ?? {})) args.push('--driver-option', `${k}=${v}`);
    const proc = spawn(process.execPath, args, {
      cwd: repoRoot,
      env: { ...process.env, STRATUS_LOG_LEVEL: process.env.STRATUS_LOG_LEVEL ?? 'warn', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    const ready = await new Promise<{ listening: string; fingerprint: string }>((resolve, reject) => {
      let stdout = '';
      const timer = setTimeout(() => reject(new Error(`agent did not start within 30 s:\n${output}`)), 30_000);
      proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      proc.stdout!.on('data', (d: Buffer) => {
        output += d.toString();
        stdout += d.toString();
        for (const line of stdout.split('\n')) {
          try {
            const m = JSON.parse(line) as { listening?: string; fingerprint?: string; msg?: string };
            if (m.listening && m.fingerprint && m.msg === undefined) {
              clearTimeout(timer);
              resolve({ listening: m.listening, fingerprint: m.fingerprint });
            }
          } catch {
            // not (yet) a whole JSON line
          }
        }
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`agent exited (${code ?? signal}) before listening:\n${output}`));
      });
    });
    port = Number(ready.listening.slice(ready.listening.lastIndexOf(':') + 1));
    fingerprint = ready.fingerprint;
  };

  const exited = (signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      const proc = child;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.kill(signal);
    });

  await launch();
  const agent: AgentProcess = {
    host: '127.0.0.1',
    get port() {
      return port;
    },
    get fingerprint() {
      return fingerprint;
    },
    stateDir,
    keys,
    client: (overrides = {}) =>
      new HostAgentClient({ host: '127.0.0.1', port, fingerprint, privateKey: keys.privateKey, ...overrides }),
    kill: () => exited('SIGKILL'),
    restart: async () => {
      await exited('SIGKILL');
      await launch();
    },
    stop: () => exited('SIGTERM'),
    output: () => output,
  };
  return agent;
}
