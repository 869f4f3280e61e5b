import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { cleanEnv, repoRoot, startDevProcess, type DevProcess } from './support/devProcess.js';
import { waitFor } from './support/guest.js';
import { gql } from './support/graphqlClient.js';
import { startAgentProcess, type AgentProcess } from './support/hostagent.js';
import { hostHealthWorkflowId } from '../schema/commands/hostHealth.js';
import { adminCaller, hostOf, lifecycleRuntime, simHost } from './support/lifecycleStack.js';

/**
 * Host health through `npm start` (stratus dev as a real child process, its embedded Temporal and PGlite):
 * no one calls anything, yet a host whose agent dies turns DOWN. The host is registered while health
 * checks are off, so only the health check the controller ensures at start can notice it.
 */
describe.sequential('host health checks are ensured when the controller starts', () => {
  let dev: DevProcess | undefined;
  let agent: AgentProcess | undefined;
  let dataDir: string | undefined;
  afterAll(async () => {
    await dev?.stop({ keepData: true });
    await agent?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const hosts = async (d: DevProcess) => {
    const r = await gql<{ hosts: { id: string; name: string; state: string }[] }>(`${d.url}/graphql`, d.adminToken, '{ hosts { id name state } }');
    expect(r.errors).toBeUndefined();
    return r.data!.hosts;
  };

  it('a host registered while checks were off is watched after a restart with them on: its agent killed, it turns DOWN on its own', async () => {
    dev = await startDevProcess({ STRATUS_HOST_HEALTH: 'off' });
    dataDir = dev.dataDir;
    const controllerKey = (await readFile(join(dataDir, 'controller_ed25519.pub'), 'utf8')).trim();
    agent = await startAgentProcess({ driver: 'sim', authorizedKeys: [controllerKey] });
    const registered = await gql<{ registerHost: { host: { id: string; state: string } } }>(
      `${dev.url}/graphql`,
      dev.adminToken,
      'mutation($i: RegisterHostInput!) { registerHost(input: $i) { host { id state } } }',
      { i: { name: 'remote-1', address: agent.host, port: agent.port, hostKeyFingerprint: agent.fingerprint } },
    );
    expect(registered.errors).toBeUndefined();
    const hostId = registered.data!.registerHost.host.id;
    await dev.stop({ keepData: true });

    dev = await startDevProcess({ STRATUS_HOST_HEALTH_INTERVAL_MS: '300', STRATUS_HOST_HEALTH_MISSES: '3' }, { dataDir });
    const d = dev;
    expect((await hosts(d)).find((h) => h.id === hostId)).toMatchObject({ state: 'UP' });
    await agent.kill();
    await waitFor('the killed agent’s host DOWN', 60_000, async () => ((await hosts(d)).find((h) => h.id === hostId)?.state === 'DOWN' ? true : undefined));
    // The local host, whose agent still answers, stays UP.
    expect((await hosts(d)).find((h) => h.name === 'local')).toMatchObject({ state: 'UP' });
  }, 240_000);
});

describe.sequential('the worker role ensures the health checks too', () => {
  it('`stratus worker` started on hosts registered without checks watches them: a killed agent turns its host DOWN', async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'host_health_role_e');
    const { rt, config } = stack;
    expect(rt.config.hostHealth).toBeUndefined();
    const { agent, host } = await simHost(rt, adminCaller(), stack.key.publicKey, 'role-watched');
    // Registered while checks were off: no health check runs for the host until the role starts one.
    const health = rt.temporal.workflow.getHandle(hostHealthWorkflowId(host.id));
    await expect(health.describe()).rejects.toThrow();
    const role = spawn(process.execPath, ['cli/bin.mjs', 'worker'], {
      cwd: repoRoot,
      env: {
        ...cleanEnv(),
        DATABASE_URL: config.databaseUrl,
        TEMPORAL_ADDRESS: config.temporalAddress,
        STRATUS_TASK_QUEUE: config.taskQueue,
        STRATUS_SSH_KEY: config.sshKeyPath,
        STRATUS_DATA_DIR: config.dataDir,
        STRATUS_LOG_LEVEL: 'warn',
        STRATUS_HOST_HEALTH_INTERVAL_MS: '300',
        STRATUS_HOST_HEALTH_MISSES: '3',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    role.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    role.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<void>((resolve) => role.once('exit', () => resolve()));
    try {
      await waitFor('the host health check started by the role', 60_000, async () => {
        if (role.exitCode !== null) throw new Error(`stratus worker exited (${role.exitCode}):\n${output}`);
        const d = await health.describe().catch(() => undefined);
        return d?.status.name === 'RUNNING' ? true : undefined;
      });
      expect((await hostOf(rt, host.id)).state).toBe('UP');
      await agent.kill();
      await waitFor('the host DOWN', 60_000, async () => {
        if (role.exitCode !== null) throw new Error(`stratus worker exited (${role.exitCode}):\n${output}`);
        return (await hostOf(rt, host.id)).state === 'DOWN' ? true : undefined;
      });
    } finally {
      role.kill('SIGINT');
      await exited;
      await health.terminate('test over').catch(() => undefined);
      await agent.stop();
      await rt.close();
    }
  }, 240_000);
});
