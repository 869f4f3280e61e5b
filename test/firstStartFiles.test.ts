import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import ssh2 from 'ssh2';
import { generateEd25519KeyPair, publicKeyBlob } from '../hostagent/hostKey.js';
import { startAgentProcess } from './support/hostagent.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const RACERS = 6;

/** Starts RACERS processes on one fresh dir, releases them at once, and returns what each got. */
async function race(kind: string): Promise<{ dir: string; results: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'stratus-first-start-'));
  const go = join(dir, '..', `${dir.split('/').pop()}.go`);
  let ready = 0;
  let allReady!: () => void;
  const everyoneReady = new Promise<void>((r) => (allReady = r));
  const children = Array.from({ length: RACERS }, () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/firstStart.ts', kind, dir, go], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      const was = out.startsWith('ready\n');
      out += d.toString();
      if (!was && out.startsWith('ready\n') && ++ready === RACERS) allReady();
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    return new Promise<string>((resolve, reject) =>
      child.once('exit', (code) => (code === 0 ? resolve(out.slice('ready\n'.length)) : reject(new Error(`${kind} racer exited ${code}: ${err}`)))),
    );
  });
  // Released together once every child has loaded and sits in its spin loop.
  await everyoneReady;
  writeFileSync(go, '');
  return { dir, results: await Promise.all(children) };
}

describe('files made on first start are made once and never seen half written', () => {
  it('every generated key parses: one in 256 used to lose the leading zero byte of its public key', () => {
    // 3,000 keys: with the defect, the chance that none of them hits it is (255/256)^3000, about 1 in 120,000.
    for (let i = 0; i < 3_000; i++) {
      const pair = generateEd25519KeyPair('t');
      // ssh-ed25519 blob: string "ssh-ed25519" (4 + 11 bytes) + string key (4 + 32 bytes).
      expect(publicKeyBlob(pair.private).length).toBe(51);
    }
  });

  it('agents racing on a fresh state dir all get the one host key that is on disk', async () => {
    const { dir, results } = await race('host-key');
    const onDisk = readFileSync(join(dir, 'ssh_host_ed25519_key'), 'utf8');
    expect(new Set(results.map((r) => JSON.parse(r) as string))).toEqual(new Set([onDisk]));
    expect(ssh2.utils.parseKey(onDisk)).not.toBeInstanceOf(Error);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('controller roles racing on a fresh data dir all get the one controller key, with its public half', async () => {
    const { dir, results } = await race('controller-key');
    const onDisk = readFileSync(join(dir, 'controller_ed25519'), 'utf8');
    expect(new Set(results.map((r) => JSON.parse(r) as string))).toEqual(new Set([onDisk]));
    const parsed = ssh2.utils.parseKey(onDisk);
    if (parsed instanceof Error) throw parsed;
    const key = Array.isArray(parsed) ? parsed[0]! : parsed;
    expect(readFileSync(join(dir, 'controller_ed25519.pub'), 'utf8')).toContain(key.getPublicSSH().toString('base64'));
  });

  it('API roles racing on a fresh data dir agree on one admin token, and exactly one of them reports making it', async () => {
    const { dir, results } = await race('admin-token');
    const got = results.map((r) => JSON.parse(r) as { token: string; generated: boolean });
    expect(new Set(got.map((g) => g.token))).toEqual(new Set([readFileSync(join(dir, 'admin.token'), 'utf8').trim()]));
    expect(got.filter((g) => g.generated)).toHaveLength(1);
  });

  it('a second agent on a state dir in use is refused with a clear error; after a kill -9 the next one takes over', async () => {
    const first = await startAgentProcess();
    try {
      await expect(startAgentProcess({ stateDir: first.stateDir })).rejects.toThrow(/in use by another host agent/);
      const fingerprint = first.fingerprint;
      await first.kill();
      const next = await startAgentProcess({ stateDir: first.stateDir });
      expect(next.fingerprint).toBe(fingerprint);
      await next.stop();
    } finally {
      await first.stop();
    }
  });
});
