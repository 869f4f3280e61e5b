/**
 * Host-agent call overhead: the no-op `ping` over one reused SSH connection (16 calls in flight),
 * against the same NDJSON messages over plain loopback TCP to the same request handler, so the
 * ratio isolates what SSH costs. The agent side runs in a child process, as on a real host.
 *
 *   npm run bench:hostagent            human-readable
 *   npm run bench:hostagent -- --json  exactly one JSON line
 */
import { fork } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { serveAgentStream } from '../hostagent/agentSession.js';
import { HostAgentClient } from '../hostagent/client.js';
import { createDriver } from '../hostagent/drivers/index.js';
import { generateEd25519KeyPair, loadOrCreateHostKey } from '../hostagent/hostKey.js';
import { IdempotencyJournal } from '../hostagent/idempotency.js';
import { lineReader, lineWriter } from '../hostagent/ndjson.js';
import { MAX_MESSAGE_BYTES, methods, Response } from '../hostagent/protocol.js';
import { startSshServer } from '../hostagent/sshServer.js';

const CALLS = 5000;
const WARMUP = 500;
const IN_FLIGHT = 16;

interface Ports {
  ssh: number;
  raw: number;
  fingerprint: string;
}

/** Child: one agent core served both over SSH and over a raw TCP socket. */
async function serve(stateDir: string, authorizedKeys: string) {
  const hostKey = await loadOrCreateHostKey(stateDir);
  const driver = await createDriver('sim', { stateDir, options: {} });
  await driver.init();
  const core = { driver, journal: await IdempotencyJournal.open(stateDir) };
  const ssh = await startSshServer({ host: '127.0.0.1', port: 0, hostKey: hostKey.privateKey, authorizedKeysPath: authorizedKeys, core });
  const raw = createServer((sock) => {
    sock.setNoDelay(true);
    serveAgentStream(sock, core);
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
  const ports: Ports = { ssh: ssh.address.port, raw: (raw.address() as { port: number }).port, fingerprint: hostKey.fingerprint };
  process.send!(ports);
}

/** Parent: a minimal raw-TCP caller doing what HostAgentClient does per call, minus SSH. */
async function rawCaller(port: number) {
  const sock: Socket = await new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
  sock.setNoDelay(true);
  const out = lineWriter(sock);
  const pending = new Map<number, (m: Response) => void>();
  sock.on('data', lineReader(MAX_MESSAGE_BYTES, (line) => {
    const m = Response.parse(JSON.parse(line));
    pending.get(m.id as number)?.(m);
  }, () => undefined));
  let next = 1;
  return {
    ping: () =>
      new Promise<void>((resolve, reject) => {
        const id = next++;
        pending.set(id, (m) => {
          pending.delete(id);
          if ('result' in m) {
            methods.ping.result.parse(m.result);
            resolve();
          } else reject(new Error(JSON.stringify(m)));
        });
        out.send({ id, method: 'ping', params: {} });
      }),
    close: () => sock.end(),
  };
}

/** Runs `calls` pings with `IN_FLIGHT` outstanding; returns each call's latency and the wall time. */
async function drive(ping: () => Promise<unknown>, calls: number) {
  const latencies: number[] = [];
  let issued = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (issued < calls) {
        issued++;
        const t = performance.now();
        await ping();
        latencies.push(performance.now() - t);
      }
    }),
  );
  return { latencies, seconds: (performance.now() - started) / 1000 };
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;

async function main() {
  const json = process.argv.includes('--json');
  const stateDir = await mkdtemp(join(tmpdir(), 'stratus-bench-hostagent-'));
  const key = generateEd25519KeyPair('stratus-bench');
  const authorizedKeys = join(stateDir, 'authorized_keys');
  await writeFile(authorizedKeys, key.public + '\n');

  const child = fork(fileURLToPath(import.meta.url), ['--serve', stateDir, authorizedKeys], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, STRATUS_LOG_LEVEL: 'warn' },
  });
  const ports = await new Promise<Ports>((resolve, reject) => {
    child.once('message', (m) => resolve(m as Ports));
    child.once('exit', (code) => reject(new Error(`bench agent exited with ${code}`)));
  });
  try {
    const client = new HostAgentClient({ host: '127.0.0.1', port: ports.ssh, fingerprint: ports.fingerprint, privateKey: key.private });
    const sshPing = () => client.call('ping', {});
    await drive(sshPing, WARMUP);
    const ssh = await drive(sshPing, CALLS);
    client.close();

    const raw = await rawCaller(ports.raw);
    await drive(raw.ping, WARMUP);
    const plain = await drive(raw.ping, CALLS);
    raw.close();

    const sorted = [...ssh.latencies].sort((a, b) => a - b);
    const sshCallsPerSec = CALLS / ssh.seconds;
    const rawCallsPerSec = CALLS / plain.seconds;
    const sortedRaw = [...plain.latencies].sort((a, b) => a - b);
    const figures = {
      sshCallP50Ms: round(percentile(sorted, 50), 3),
      sshCallP99Ms: round(percentile(sorted, 99), 3),
      sshCallsPerSec: Math.round(sshCallsPerSec),
      rawCallsPerSec: Math.round(rawCallsPerSec),
      sshOverheadRatio: round(sshCallsPerSec / rawCallsPerSec, 3),
      rawCallP50Ms: round(percentile(sortedRaw, 50), 3),
      calls: CALLS,
      inFlight: IN_FLIGHT,
    };
    if (json) console.log(JSON.stringify(figures));
    else {
      console.log(`host agent ping, ${CALLS} calls, ${IN_FLIGHT} in flight, one connection`);
      for (const [k, v] of Object.entries(figures)) console.log(`  ${k.padEnd(18)} ${v}`);
      console.log(`  targets: sshOverheadRatio >= 0.5 (${figures.sshOverheadRatio >= 0.5 ? 'met' : 'MISSED'}), sshCallP50Ms <= 2 (${figures.sshCallP50Ms <= 2 ? 'met' : 'MISSED'})`);
    }
  } finally {
    child.kill('SIGKILL');
  }
}

const serveAt = process.argv.indexOf('--serve');
if (serveAt !== -1) await serve(process.argv[serveAt + 1]!, process.argv[serveAt + 2]!);
else await main();
