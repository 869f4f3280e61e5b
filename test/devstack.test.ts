import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../server/temporalDevServer.js';
import { isAlive as alive } from './support/processes.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

interface Dev {
  child: ChildProcess;
  output: () => string;
  url: string;
}

/** `npm start` as a user runs it: a real child process with its own data dir and ports. */
/** `stratus dev` as a child process, with this test run's own Temporal and PostgreSQL kept out: the dev stack embeds both. */
function spawnDev(env: NodeJS.ProcessEnv): ChildProcess {
  const clean = { ...process.env };
  for (const k of ['TEMPORAL_ADDRESS', 'DATABASE_URL', 'STRATUS_ADMIN_TOKEN', 'VITEST', 'VITEST_POOL_ID', 'VITEST_WORKER_ID']) delete clean[k];
  return spawn(process.execPath, ['cli/bin.mjs', 'dev'], {
    cwd: repoRoot,
    env: { ...clean, STRATUS_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

async function startDev(env: NodeJS.ProcessEnv): Promise<Dev> {
  const child = spawnDev(env);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${env.STRATUS_PORT}`;
  const deadline = Date.now() + 150_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`stratus dev exited (${child.exitCode}) before it was healthy:\n${output}`);
    if (Date.now() > deadline) throw new Error(`stratus dev not healthy within 150 s:\n${output}`);
    const healthy = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
    // The banner comes after the API is up; wait for it so the printed curl can be read.
    if (healthy && output.includes('Ctrl-C stops everything')) return { child, output: () => output, url };
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function graphql<T>(dev: Dev, token: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const res = await fetch(`${dev.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as { data?: T; errors?: unknown[] };
  if (body.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
  return body.data as T;
}

/** Every process below `pid`, from /proc (Linux). */
function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Field 4 (ppid) follows the parenthesised command name, which may itself hold spaces.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parentOf.set(Number(entry), ppid);
    } catch {
      // gone meanwhile
    }
  }
  const found: number[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of parentOf) {
      if (parent !== p) continue;
      found.push(child);
      walk(child);
    }
  };
  walk(pid);
  return found;
}


const commandOf = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
};

/** The processes of `pids` still alive after a short grace (helpers such as esbuild's service exit on their own). */
async function leftBehind(pids: number[]): Promise<string[]> {
  const deadline = Date.now() + 5_000;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  return pids.filter(alive).map((pid) => `${pid} ${commandOf(pid)}`);
}

async function interrupt(dev: Dev): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => dev.child.once('exit', (code) => resolve(code)));
  dev.child.kill('SIGINT');
  return exited;
}

describe('stratus dev (npm start)', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => {});
  });

  it('boots an instance from the printed curl, stops cleanly on Ctrl-C and keeps everything across a restart', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'stratus-dev-'));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    const env = {
      STRATUS_DATA_DIR: dataDir,
      STRATUS_PORT: String(await freePort()),
      STRATUS_TEMPORAL_PORT: String(await freePort()),
    };

    const first = await startDev(env);
    cleanup.push(async () => first.child.kill('SIGKILL'));
    const token = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
    expect(first.output()).toContain(token);
    // The printed first curl carries the real ids of m1.tiny and the seeded image.
    const printed = /-d '(\{.*\})'/.exec(first.output());
    expect(printed, first.output()).not.toBeNull();
    const { query } = JSON.parse(printed![1]!) as { query: string };
    const booted = await graphql<{ bootInstance: { operation: { id: string }; instance: { id: string } } }>(first, token, query);
    const instanceId = booted.bootInstance.instance.id;

    let state = '';
    const deadline = Date.now() + 60_000;
    while (state !== 'RUNNING' && Date.now() < deadline) {
      const r = await graphql<{ instance: { state: string } | null }>(first, token, 'query($id: ID!) { instance(id: $id) { state } }', { id: instanceId });
      state = r.instance?.state ?? '';
      if (state === 'ERROR') throw new Error(`boot failed:\n${first.output()}`);
      if (state !== 'RUNNING') await new Promise((r) => setTimeout(r, 200));
    }
    expect(state).toBe('RUNNING');

    const children = descendants(first.child.pid!);
    const commands = children.map(commandOf);
    expect(commands.some((c) => c.includes('server start-dev')), commands.join('\n')).toBe(true);
    expect(commands.some((c) => c.includes('hostagent')), commands.join('\n')).toBe(true);
    expect(await interrupt(first), first.output()).toBe(0);
    expect(await leftBehind(children), first.output()).toEqual([]);

    const second = await startDev(env);
    cleanup.push(async () => second.child.kill('SIGKILL'));
    expect(second.output()).toContain('data kept from the last start');
    const after = await graphql<{
      instance: { state: string } | null;
      flavors: Array<{ name: string }>;
      hosts: Array<{ name: string; state: string }>;
      images: Array<{ name: string }>;
    }>(second, token, 'query($id: ID!) { instance(id: $id) { state } flavors { name } hosts { name state } images { name } }', { id: instanceId });
    expect(after.instance?.state).toBe('RUNNING');
    expect(after.flavors.map((f) => f.name).sort()).toEqual(['m1.large', 'm1.medium', 'm1.small', 'm1.tiny', 'm1.xlarge']);
    expect(after.hosts).toEqual([{ name: 'local', state: 'UP' }]);
    expect(after.images.map((i) => i.name)).toContain('cirros-0.6');
    const secondChildren = descendants(second.child.pid!);

    // A third start on the same data dir while the second runs is refused, and takes nothing from it.
    const third = spawnDev({ ...env, STRATUS_PORT: String(await freePort()), STRATUS_TEMPORAL_PORT: String(await freePort()) });
    let thirdOutput = '';
    third.stdout!.on('data', (d: Buffer) => (thirdOutput += d.toString()));
    third.stderr!.on('data', (d: Buffer) => (thirdOutput += d.toString()));
    const thirdCode = await new Promise<number | null>((resolve) => third.once('exit', (code) => resolve(code)));
    expect(thirdCode, thirdOutput).not.toBe(0);
    expect(thirdOutput).toContain(`another stratus (pid ${second.child.pid}) is running on the data dir ${dataDir}`);
    expect(descendants(second.child.pid!).map(commandOf)).toEqual(secondChildren.map(commandOf));
    // Its Temporal still runs workflows: the instance stops.
    const { stopInstance } = await graphql<{ stopInstance: { operation: { id: string } } }>(second, token, 'mutation($id: ID!) { stopInstance(input: {id: $id}) { operation { id } } }', { id: instanceId });
    expect(stopInstance.operation.id).toBeDefined();
    for (let stopped = ''; stopped !== 'STOPPED'; await new Promise((r) => setTimeout(r, 200))) {
      stopped = (await graphql<{ instance: { state: string } }>(second, token, 'query($id: ID!) { instance(id: $id) { state } }', { id: instanceId })).instance.state;
    }

    expect(await interrupt(second), second.output()).toBe(0);
    expect(await leftBehind(secondChildren), second.output()).toEqual([]);
  });
});
