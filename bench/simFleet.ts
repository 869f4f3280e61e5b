/**
 * Many simulated hypervisor hosts in one agent process, for bench:scale: one `sim` driver, one
 * idempotency journal and one host key behind N SSH servers, each on its own loopback port, so the
 * controller sees N distinct hosts (a host is its address and port) while the machine runs one agent.
 *
 *   tsx bench/simFleet.ts <state dir> <authorized_keys> <count>
 *
 * Prints one JSON line, {"fingerprint": "SHA256:...", "ports": [...]}, then serves until SIGTERM.
 */
import { mkdir } from 'node:fs/promises';
import { createDriver } from '../hostagent/drivers/index.js';
import { loadOrCreateHostKey } from '../hostagent/hostKey.js';
import { IdempotencyJournal } from '../hostagent/idempotency.js';
import { startSshServer } from '../hostagent/sshServer.js';

const [stateDir, authorizedKeysPath, countArg] = process.argv.slice(2);
if (!stateDir || !authorizedKeysPath || !countArg) throw new Error('usage: simFleet.ts <state dir> <authorized_keys> <count>');
await mkdir(stateDir, { recursive: true });
const hostKey = await loadOrCreateHostKey(stateDir);
// One driver holds every simulated host's VMs and checks capacity over all of them, so it is sized for
// the whole fleet; each host reports the same (large) capacity, and placement weighs them by what the
// controller has claimed on each.
const driver = await createDriver('sim', { stateDir, options: { vcpus: '1000000', memoryMb: '1000000000', diskGb: '100000000' } });
await driver.init();
const journal = await IdempotencyJournal.open(stateDir);
const servers: Awaited<ReturnType<typeof startSshServer>>[] = [];
for (let i = 0; i < Number(countArg); i++) {
  servers.push(await startSshServer({ host: '127.0.0.1', port: 0, hostKey: hostKey.privateKey, authorizedKeysPath, core: { driver, journal } }));
}
process.stdout.write(JSON.stringify({ fingerprint: hostKey.fingerprint, ports: servers.map((s) => s.address.port) }) + '\n');
const stop = async () => {
  for (const s of servers) await s.close();
  await driver.close();
  await journal.close();
  process.exit(0);
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
