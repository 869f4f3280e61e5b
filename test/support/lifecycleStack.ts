import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hostDecider, type Host } from '../../domain/host.js';
import { hostStream, instanceStream, operationStream } from '../../domain/events.js';
import type { Caller } from '../../domain/identity.js';
import { instanceDecider, type Instance } from '../../domain/instance.js';
import { operationDecider, workflowIdOf, type Operation } from '../../domain/operation.js';
import { readFolded } from '../../activities/events.js';
import { loadOrCreateControllerKey } from '../../server/controllerKey.js';
import { createRuntime, type Runtime, type RuntimeConfig } from '../../server/runtime.js';
import { createDatabase } from './postgres.js';
import { startAgentProcess, type AgentProcess } from './hostagent.js';
import * as commands from '../../schema/commands/index.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export const adminCaller = (): Caller => ({ tokenId: 'test-admin', projectId: randomUUID(), role: 'ADMIN' });

/** A database of its own, a runtime on a task queue of its own, and the controller key agents will trust. */
export async function lifecycleRuntime(postgresUrl: string, temporalAddress: string, dbName: string) {
  const dir = await mkdtemp(join(tmpdir(), 'stratus-lifecycle-'));
  const sshKeyPath = join(dir, 'controller_ed25519');
  const key = loadOrCreateControllerKey(sshKeyPath);
  const config: RuntimeConfig = {
    databaseUrl: await createDatabase(postgresUrl, dbName),
    temporalAddress,
    temporalNamespace: 'default',
    taskQueue: `lifecycle-${randomUUID()}`,
    port: 0,
    host: '127.0.0.1',
    dataDir: dir,
    sshKeyPath,
  } as RuntimeConfig;
  const rt = await createRuntime(config);
  return { rt, config, key, dir };
}

/** A sim agent trusting the controller key, registered through the command (hostInfo over SSH). */
export async function simHost(
  rt: Runtime,
  caller: Caller,
  publicKey: string,
  name: string,
  driverOptions: Record<string, string | number> = {},
): Promise<{ agent: AgentProcess; host: Host }> {
  const agent = await startAgentProcess({ driver: 'sim', driverOptions, authorizedKeys: [publicKey] });
  const { host } = await commands.registerHost(rt, caller, { name, address: agent.host, port: agent.port, hostKeyFingerprint: agent.fingerprint });
  return { agent, host };
}

export const setFaults = (agent: AgentProcess, faults: Record<string, unknown>) =>
  writeFile(join(agent.stateDir, 'faults.json'), JSON.stringify(faults));

/** Waits for the operation's workflow to end, whatever its outcome, and returns the operation as recorded. */
export async function settled(rt: Runtime, operationId: string): Promise<Operation> {
  await rt.temporal.workflow.getHandle(workflowIdOf(operationId)).result().catch(() => {});
  return (await readFolded(rt, operationStream(operationId), operationDecider)).state!;
}

export const instanceOf = async (rt: Runtime, id: string): Promise<Instance> =>
  (await readFolded(rt, instanceStream(id), instanceDecider)).state!;

export const hostOf = async (rt: Runtime, id: string): Promise<Host> => (await readFolded(rt, hostStream(id), hostDecider)).state!;

/** A worker in its own process (test/support/workerProcess.ts), to be SIGKILLed. */
export function workerProcess(config: RuntimeConfig): { proc: ChildProcess; output: () => string; exited: Promise<void> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'test/support/workerProcess.ts'], {
    cwd: repoRoot,
    env: {
      ...process.env,
      DATABASE_URL: config.databaseUrl,
      TEMPORAL_ADDRESS: config.temporalAddress,
      STRATUS_TASK_QUEUE: config.taskQueue,
      STRATUS_SSH_KEY: config.sshKeyPath,
      STRATUS_DATA_DIR: config.dataDir,
      STRATUS_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return { proc, output: () => output, exited };
}
