import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import ssh2, { type ClientChannel } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostAgentClient } from '../hostagent/client.js';
import { loadAgentConfig } from '../hostagent/config.js';
import { AgentError } from '../hostagent/driver.js';
import { MAX_MESSAGE_BYTES, SUBSYSTEM } from '../hostagent/protocol.js';
import { clientKeyPair, startAgentProcess, type AgentProcess } from './support/hostagent.js';

const spec = (name: string, over: Partial<{ vcpus: number; memoryMb: number; diskGb: number }> = {}) => ({
  name,
  vcpus: 1,
  memoryMb: 128,
  diskGb: 1,
  ...over,
});

/** The AgentError a promise rejects with (fails the test if it resolves). */
async function agentError(p: Promise<unknown>): Promise<AgentError> {
  const e = await p.then(
    (r) => new Error(`expected an error, got ${JSON.stringify(r)}`),
    (err: unknown) => err,
  );
  if (!(e instanceof AgentError)) throw e;
  return e;
}

/** Faults changed live: written atomically, so the agent never reads half a file. */
async function setFaults(agent: AgentProcess, faults: Record<string, unknown>) {
  const path = join(agent.stateDir, 'faults.json');
  await writeFile(`${path}.tmp`, JSON.stringify(faults));
  await rename(`${path}.tmp`, path);
}

/** The subsystem channel opened by hand, for writing raw lines. */
async function rawChannel(agent: AgentProcess) {
  const ssh = new ssh2.Client();
  const channel = await new Promise<ClientChannel>((resolve, reject) => {
    ssh.on('ready', () => ssh.subsys(SUBSYSTEM, (err, ch) => (err ? reject(err) : resolve(ch))));
    ssh.on('error', reject);
    ssh.connect({ host: agent.host, port: agent.port, username: 'stratus', privateKey: agent.keys.privateKey });
  });
  const messages: unknown[] = [];
  const waiters: Array<() => void> = [];
  let buffered = '';
  channel.on('data', (d: Buffer) => {
    buffered += d.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) !== -1) {
      messages.push(JSON.parse(buffered.slice(0, nl)));
      buffered = buffered.slice(nl + 1);
      waiters.splice(0).forEach((w) => w());
    }
  });
  return {
    write: (text: string) => channel.write(text),
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- raw wire messages, checked by the matchers
    async next(): Promise<any> {
      while (messages.length === 0) await new Promise<void>((r) => waiters.push(r));
      return messages.shift();
    },
    close: () => ssh.end(),
  };
}

describe('host agent over SSH (sim driver)', () => {
  let agent: AgentProcess;
  let client: HostAgentClient;

  beforeAll(async () => {
    agent = await startAgentProcess();
    client = agent.client();
  });
  afterAll(async () => {
    client?.close();
    await agent?.stop();
  });

  it('serves every v1 method, including a live migration between two agents', async () => {
    const other = await startAgentProcess();
    const otherClient = other.client();
    try {
      let n = 0;
      const key = () => `all-methods-${n++}`;
      expect(await client.call('ping', {})).toEqual({ pong: true });
      const info = await client.call('hostInfo', {});
      expect(info).toMatchObject({ hypervisor: 'sim', protocolVersion: 1, capacity: { vcpus: 1000 } });
      expect(typeof info.agentVersion).toBe('string');

      const created = await client.call('createVm', { spec: { ...spec('web-1'), labels: { instance: 'i-1' } } }, { idempotencyKey: key() });
      expect(created).toMatchObject({ name: 'web-1', state: 'stopped', labels: { instance: 'i-1' } });
      expect((await client.call('hostInfo', {})).allocated).toEqual({ vcpus: 1, memoryMb: 128, diskGb: 1 });
      expect(await client.call('getVm', { name: 'web-1' })).toEqual(created);
      expect((await client.call('listVms', {})).vms.map((v) => v.name)).toContain('web-1');

      const step = async (method: Parameters<HostAgentClient['call']>[0], params: object, state: string) =>
        expect((await client.call(method, params as never, { idempotencyKey: key() })) as object).toMatchObject({ state });
      await step('startVm', { name: 'web-1' }, 'running');
      await step('pauseVm', { name: 'web-1' }, 'paused');
      await step('unpauseVm', { name: 'web-1' }, 'running');
      await step('rebootVm', { name: 'web-1', hard: true }, 'running');
      await step('suspendVm', { name: 'web-1' }, 'suspended');
      await step('resumeVm', { name: 'web-1' }, 'running');

      const attached = await client.call('attachVolume', { name: 'web-1', volumeId: 'vol-1', sizeGb: 10 }, { idempotencyKey: key() });
      expect(attached.volumes).toEqual([{ volumeId: 'vol-1', device: 'vdb' }]);
      const detached = await client.call('detachVolume', { name: 'web-1', volumeId: 'vol-1' }, { idempotencyKey: key() });
      expect(detached.volumes).toEqual([]);
      const snap = await client.call('snapshotVm', { name: 'web-1', imageName: 'web-1-snap' }, { idempotencyKey: key() });
      expect(snap.imagePath).toMatch(/web-1-snap/);
      // The sim writes a real qcow2; the controller reads it back in chunks, then has it removed.
      const first = await client.call('readSnapshotChunk', { imageName: 'web-1-snap', offset: 0, length: 4096 });
      expect(first.sizeBytes).toBe(snap.sizeBytes);
      expect(Buffer.from(first.data, 'base64').subarray(0, 4).toString('latin1')).toBe('QFI\xfb');
      const tail = await client.call('readSnapshotChunk', { imageName: 'web-1-snap', offset: snap.sizeBytes - 10, length: 4096 });
      expect(Buffer.from(tail.data, 'base64')).toHaveLength(10);
      await expect(client.call('readSnapshotChunk', { imageName: '../../authorized_keys', offset: 0 })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
      expect(await client.call('deleteSnapshot', { imageName: 'web-1-snap' }, { idempotencyKey: key() })).toEqual({ deleted: true });
      await expect(client.call('readSnapshotChunk', { imageName: 'web-1-snap', offset: 0 })).rejects.toMatchObject({ code: 'NOT_FOUND' });
      expect(await client.call('deleteSnapshot', { imageName: 'web-1-snap' }, { idempotencyKey: key() })).toEqual({ deleted: false });
      const log = await client.call('consoleLog', { name: 'web-1', lines: 3 });
      expect(log.text.split('\n')).toHaveLength(3);
      expect(log.text).toMatch(/snapshot web-1-snap taken/);

      const target = await otherClient.call('migrateReceive', { spec: spec('web-1') }, { idempotencyKey: key() });
      expect(await otherClient.call('getVm', { name: 'web-1' })).toMatchObject({ state: 'paused' });
      const progress: string[] = [];
      const moved = await client.call('migrateSend', { name: 'web-1', target }, { idempotencyKey: key(), onProgress: (p) => progress.push(p.message) });
      expect(moved.transferredBytes).toBeGreaterThan(0);
      expect(progress.length).toBeGreaterThan(0);
      expect((await client.call('listVms', {})).vms.map((v) => v.name)).not.toContain('web-1');
      expect(await otherClient.call('getVm', { name: 'web-1' })).toMatchObject({ state: 'running', labels: { instance: 'i-1' } });

      await expect(otherClient.call('stopVm', { name: 'web-1', force: true }, { idempotencyKey: key() })).resolves.toMatchObject({ state: 'stopped' });
      expect(await otherClient.call('destroyVm', { name: 'web-1' }, { idempotencyKey: key() })).toEqual({ destroyed: true });
      expect(await otherClient.call('destroyVm', { name: 'web-1' }, { idempotencyKey: key() })).toEqual({ destroyed: false });
      expect((await agentError(otherClient.call('getVm', { name: 'web-1' }))).code).toBe('NOT_FOUND');
    } finally {
      otherClient.close();
      await other.stop();
    }
  });

  it('refuses a client key that is not in authorized_keys', async () => {
    const stranger = agent.client({ privateKey: clientKeyPair().privateKey });
    const e = await agentError(stranger.call('ping', {}));
    expect(e).toMatchObject({ code: 'UNAUTHORIZED', retryable: false });
    stranger.close();
  });

  it('refuses a host whose key does not match the pinned fingerprint, naming both', async () => {
    const pinned = 'SHA256:' + 'A'.repeat(43);
    const wrong = agent.client({ fingerprint: pinned });
    const e = await agentError(wrong.call('ping', {}));
    expect(e).toMatchObject({ code: 'HOST_KEY_MISMATCH', retryable: false });
    expect(e.message).toContain(pinned);
    expect(e.message).toContain(agent.fingerprint);
    wrong.close();
  });

  it('answers malformed JSON, unknown methods, bad params, missing keys and oversized lines with BAD_REQUEST and keeps serving', async () => {
    const raw = await rawChannel(agent);
    try {
      raw.write('{"id": 1, "method": \n');
      expect(await raw.next()).toMatchObject({ id: null, error: { code: 'BAD_REQUEST', retryable: false } });
      raw.write('{"id":2,"method":"formatDisk","params":{}}\n');
      expect(await raw.next()).toMatchObject({ id: 2, error: { code: 'BAD_REQUEST', message: expect.stringMatching(/unknown method/) } });
      raw.write('{"id":3,"method":"getVm","params":{"name":"../etc"}}\n');
      expect(await raw.next()).toMatchObject({ id: 3, error: { code: 'BAD_REQUEST', message: expect.stringMatching(/bad params/) } });
      raw.write('{"id":4,"method":"startVm","params":{"name":"x"}}\n');
      expect(await raw.next()).toMatchObject({ id: 4, error: { code: 'BAD_REQUEST', message: expect.stringMatching(/idempotencyKey/) } });
      // Sent in pieces, as a peer streaming a huge message would; the agent must not wait for the end to refuse it.
      const chunk = 'x'.repeat(256 * 1024);
      raw.write(`{"id":5,"method":"ping","params":{"pad":"`);
      for (let sent = 0; sent <= MAX_MESSAGE_BYTES; sent += chunk.length) raw.write(chunk);
      raw.write('"}}\n');
      expect(await raw.next()).toMatchObject({ id: null, error: { code: 'BAD_REQUEST', message: expect.stringMatching(/exceeds/) } });
      raw.write('{"id":6,"method":"ping","params":{}}\n');
      expect(await raw.next()).toEqual({ id: 6, result: { pong: true } });
    } finally {
      raw.close();
    }
  });

  it('answers INVALID_STATE for a transition the state table does not allow', async () => {
    await client.call('createVm', { spec: spec('idle-1') }, { idempotencyKey: 'invalid-state-create' });
    const e = await agentError(client.call('pauseVm', { name: 'idle-1' }, { idempotencyKey: 'invalid-state-pause' }));
    expect(e).toMatchObject({ code: 'INVALID_STATE', retryable: false });
    expect(e.message).toMatch(/stopped/);
    expect(await client.call('getVm', { name: 'idle-1' })).toMatchObject({ state: 'stopped' });
  });

  it('completes 100 concurrent calls over one connection, each with its own answer', async () => {
    const calls = Array.from({ length: 100 }, (_, i) =>
      i % 2 === 0
        ? client.call('createVm', { spec: spec(`many-${i}`) }, { idempotencyKey: `many-${i}` }).then((vm) => vm.name)
        : client.call('hostInfo', {}).then((h) => `host-${h.hypervisor}-${i}`),
    );
    const results = await Promise.all(calls);
    results.forEach((r, i) => expect(r).toBe(i % 2 === 0 ? `many-${i}` : `host-sim-${i}`));
    const names = (await client.call('listVms', {})).vms.map((v) => v.name);
    for (let i = 0; i < 100; i += 2) expect(names).toContain(`many-${i}`);
  });

  it('refuses an idempotency key reused for a different request', async () => {
    await client.call('createVm', { spec: spec('key-1') }, { idempotencyKey: 'reused-key' });
    const e = await agentError(client.call('createVm', { spec: spec('key-2') }, { idempotencyKey: 'reused-key' }));
    expect(e).toMatchObject({ code: 'BAD_REQUEST' });
    expect((await agentError(client.call('getVm', { name: 'key-2' }))).code).toBe('NOT_FOUND');
  });

  it('injects failures by VM name pattern, by method and by rate, changing nothing', async () => {
    try {
      await setFaults(agent, { failNamePattern: '^fail-' });
      const byName = await agentError(client.call('createVm', { spec: spec('fail-1') }, { idempotencyKey: 'inject-1' }));
      expect(byName).toMatchObject({ code: 'HYPERVISOR_ERROR', retryable: false });
      await client.call('createVm', { spec: spec('ok-1') }, { idempotencyKey: 'inject-2' });

      await setFaults(agent, { failMethods: 'startVm' });
      expect((await agentError(client.call('startVm', { name: 'ok-1' }, { idempotencyKey: 'inject-3' }))).code).toBe('HYPERVISOR_ERROR');
      expect(await client.call('getVm', { name: 'ok-1' })).toMatchObject({ state: 'stopped' });

      await setFaults(agent, { failRate: 0.5, failCode: 'UNAVAILABLE' });
      const outcomes = await Promise.allSettled(
        Array.from({ length: 40 }, (_, i) => client.call('createVm', { spec: spec(`rate-${i}`) }, { idempotencyKey: `rate-${i}` })),
      );
      const failed = outcomes.filter((o) => o.status === 'rejected');
      expect(failed.length).toBeGreaterThan(0);
      expect(failed.length).toBeLessThan(40);
      for (const f of failed) expect((f as PromiseRejectedResult).reason).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
      const names = (await client.call('listVms', {})).vms.map((v) => v.name);
      expect(names.filter((n) => n.startsWith('rate-'))).toHaveLength(40 - failed.length);
    } finally {
      await setFaults(agent, {});
    }
  });

  it('holds a matching call until the faults let it go, then it runs or fails as they say by then', async () => {
    try {
      await setFaults(agent, { holdMethods: 'createVm', holdNamePattern: '^held-' });
      const held = client.call('createVm', { spec: spec('held-1') }, { idempotencyKey: 'held-1' });
      // Its refusal is taken at once: it may come before the test looks at it.
      const failing = agentError(client.call('createVm', { spec: spec('held-2') }, { idempotencyKey: 'held-2' }));
      // Sent after both on the same channel, not held, and done while they still wait.
      await client.call('createVm', { spec: spec('free-1') }, { idempotencyKey: 'free-1' });
      expect((await agentError(client.call('getVm', { name: 'held-1' }))).code).toBe('NOT_FOUND');
      await setFaults(agent, { failNamePattern: '^held-2$' });
      expect((await held).name).toBe('held-1');
      expect((await failing).code).toBe('HYPERVISOR_ERROR');
      expect((await agentError(client.call('getVm', { name: 'held-2' }))).code).toBe('NOT_FOUND');
    } finally {
      await setFaults(agent, {});
    }
  });

  it('runs a call once when its repeat arrives while it is still running', async () => {
    try {
      await setFaults(agent, { latencyMs: 500 });
      const [a, b] = await Promise.all([
        client.call('createVm', { spec: spec('twice-1') }, { idempotencyKey: 'twice-key' }),
        client.call('createVm', { spec: spec('twice-1') }, { idempotencyKey: 'twice-key' }),
      ]);
      expect(a).toEqual(b);
    } finally {
      await setFaults(agent, {});
    }
  });

  it('a held call says so once as progress, so a caller can tell a hold from a hang', async () => {
    try {
      await setFaults(agent, { holdMethods: ['createVm'] });
      let held!: () => void;
      const saidHeld = new Promise<void>((resolve) => (held = resolve));
      const call = client.call('createVm', { spec: spec('held-3') }, { idempotencyKey: 'held-key', onProgress: (p) => p.message.includes('held') && held() });
      await saidHeld;
      expect((await agentError(client.call('getVm', { name: 'held-3' }))).code).toBe('NOT_FOUND');
      await setFaults(agent, {});
      expect((await call).name).toBe('held-3');
    } finally {
      await setFaults(agent, {});
    }
  });

  it('stops a slow call when the caller aborts it, leaving nothing done', async () => {
    try {
      await setFaults(agent, { latencyMs: 5000 });
      const abort = new AbortController();
      setTimeout(() => abort.abort(), 300);
      const e = await agentError(client.call('createVm', { spec: spec('aborted-1') }, { idempotencyKey: 'abort-key', signal: abort.signal }));
      expect(e.code).toBe('CANCELLED');
      await new Promise((r) => setTimeout(r, 200));
      expect((await agentError(client.call('getVm', { name: 'aborted-1' }))).code).toBe('NOT_FOUND');
    } finally {
      await setFaults(agent, {});
    }
  });

  it('times out a call with a retryable error, and the retry with the same key gets its outcome', async () => {
    try {
      await setFaults(agent, { latencyMs: 800 });
      const e = await agentError(client.call('createVm', { spec: spec('slow-1') }, { idempotencyKey: 'timeout-key', timeoutMs: 100 }));
      expect(e).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
      const vm = await client.call('createVm', { spec: spec('slow-1') }, { idempotencyKey: 'timeout-key' });
      expect(vm.name).toBe('slow-1');
    } finally {
      await setFaults(agent, {});
    }
  });
});

describe('host agent across restarts', () => {
  it('keeps VM state and returns the first outcome of a repeated key after SIGKILL and restart', async () => {
    const agent = await startAgentProcess();
    const client = agent.client();
    try {
      const first = await client.call('createVm', { spec: spec('keep-1') }, { idempotencyKey: 'keep-create' });
      await client.call('startVm', { name: 'keep-1' }, { idempotencyKey: 'keep-start' });
      const refused = await agentError(client.call('pauseVm', { name: 'nope' }, { idempotencyKey: 'keep-refused' }));
      expect(refused.code).toBe('NOT_FOUND');
      expect(await client.call('createVm', { spec: spec('keep-1') }, { idempotencyKey: 'keep-create' })).toEqual(first);

      await agent.kill();
      const lost = await agentError(client.call('ping', {}));
      expect(lost).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
      await agent.restart();

      // The same client reconnects on demand.
      expect(await client.call('getVm', { name: 'keep-1' })).toMatchObject({ state: 'running', createdAt: first.createdAt });
      expect(await client.call('createVm', { spec: spec('keep-1') }, { idempotencyKey: 'keep-create' })).toEqual(first);
      const again = await agentError(client.call('pauseVm', { name: 'nope' }, { idempotencyKey: 'keep-refused' }));
      expect(again).toMatchObject({ code: 'NOT_FOUND', message: refused.message });
      expect((await client.call('startVm', { name: 'keep-1' }, { idempotencyKey: 'keep-start' })).state).toBe('running');
    } finally {
      client.close();
      await agent.stop();
    }
  });

  it('gives a retryable error when the agent dies during a slow call, and the call is then done exactly once', async () => {
    const agent = await startAgentProcess({ driverOptions: { latencyMs: 3000, latencyMethods: 'createVm' } });
    const client = agent.client();
    try {
      const progress: number[] = [];
      const call = client.call('createVm', { spec: spec('crash-1') }, { idempotencyKey: 'crash-key', onProgress: (p) => progress.push(p.percent ?? -1) });
      const outcome = agentError(call);
      while (progress.length < 2) await new Promise((r) => setTimeout(r, 50));
      await agent.kill();
      expect(await outcome).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
      await agent.restart();

      // Killed before its commit point: not done at all...
      expect((await client.call('listVms', {})).vms).toEqual([]);
      expect((await client.call('hostInfo', {})).allocated.vcpus).toBe(0);
      // ...so the retry with the same key does it, once; a further retry returns that same outcome.
      const done = await client.call('createVm', { spec: spec('crash-1') }, { idempotencyKey: 'crash-key' });
      expect(await client.call('createVm', { spec: spec('crash-1') }, { idempotencyKey: 'crash-key' })).toEqual(done);
      expect((await client.call('listVms', {})).vms.map((v) => v.name)).toEqual(['crash-1']);
    } finally {
      client.close();
      await agent.stop();
    }
  });

  it('refuses createVm beyond the configured capacity with INSUFFICIENT_CAPACITY', async () => {
    const agent = await startAgentProcess({ driverOptions: { vcpus: 4, memoryMb: 1024, diskGb: 10 } });
    const client = agent.client();
    try {
      await client.call('createVm', { spec: spec('cap-1', { vcpus: 3 }) }, { idempotencyKey: 'cap-1' });
      const e = await agentError(client.call('createVm', { spec: spec('cap-2', { vcpus: 2 }) }, { idempotencyKey: 'cap-2' }));
      expect(e).toMatchObject({ code: 'INSUFFICIENT_CAPACITY', retryable: false });
      expect(e.message).toMatch(/vcpus/);
      await client.call('createVm', { spec: spec('cap-3', { vcpus: 1 }) }, { idempotencyKey: 'cap-3' });
      expect((await client.call('hostInfo', {})).allocated).toEqual({ vcpus: 4, memoryMb: 256, diskGb: 2 });
    } finally {
      client.close();
      await agent.stop();
    }
  });
});

describe('host agent configuration', () => {
  it('reads STRATUS_AGENT_* environment variables, with flags winning', () => {
    const env = {
      STRATUS_AGENT_LISTEN: '0.0.0.0:2200',
      STRATUS_AGENT_STATE_DIR: '/var/lib/stratus',
      STRATUS_AGENT_DRIVER: 'qemu',
      STRATUS_AGENT_DRIVER_OPTIONS: 'latencyMs=5,vcpus=8',
    };
    expect(loadAgentConfig({}, env)).toEqual({
      listen: { host: '0.0.0.0', port: 2200 },
      stateDir: '/var/lib/stratus',
      driver: 'qemu',
      authorizedKeys: '/var/lib/stratus/authorized_keys',
      driverOptions: { latencyMs: '5', vcpus: '8' },
    });
    const flagged = loadAgentConfig({ listen: '127.0.0.1:0', driver: 'sim', driverOption: ['vcpus=2'] }, env);
    expect(flagged).toMatchObject({ listen: { host: '127.0.0.1', port: 0 }, driver: 'sim', driverOptions: { latencyMs: '5', vcpus: '2' } });
    expect(() => loadAgentConfig({ listen: 'nowhere' }, {})).toThrow(/host:port/);
  });
});
