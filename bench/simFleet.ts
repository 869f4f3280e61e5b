/**
 * Many simulated hypervisor hosts in one agent process, for bench:scale: N SSH servers, each on its own
 * loopback port with its own `sim` driver (its own state file), sharing one idempotency journal and one
 * host key, so the controller sees N distinct hosts (a host is its address and port) while the machine
 * runs one agent. One driver for the whole fleet would rewrite every host's VMs on every call: with
 * 2,000 VMs that serialised the fleet at under 2 boots/s.
 *
 *   tsx bench/simFleet.ts <state dir> <authorized_keys> <count>
 *
 * Prints one JSON line, {"fingerprint": "SHA256:...", "ports": [...]}, then serves until SIGTERM.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createDriver } from '../hostagent/drivers/index.js';
import { loadOrCreateHostKey } from '../hostagent/hostKey.js';
import { IdempotencyJournal } from '../hostagent/idempotency.js';
import { startSshServer } from '../hostagent/sshServer.js';

const [stateDir, authorizedKeysPath, countArg] = process.argv.slice(2);
if (!stateDir || !authorizedKeysPath || !countArg) throw new Error('usage: simFleet.ts <state dir> <authorized_keys> <count>');
await mkdir(stateDir, { recursive: true });
const hostKey = await loadOrCreateHostKey(stateDir);
const journal = await IdempotencyJournal.open(stateDir);
const drivers: Awaited<ReturnType<typeof createDriver>>[] = [];
const servers: Awaited<ReturnType<typeof startSshServer>>[] = [];
for (let i = 0; i < Number(countArg); i++) {
  const hostDir = join(stateDir, `host-${i}`);
  await mkdir(hostDir, { recursive: true });
  // Large: placement weighs hosts by what the controller has claimed on each, not by what the sim reports.
  const driver = await createDriver('sim', { stateDir: hostDir, options: { vcpus: '100000', memoryMb: '100000000', diskGb: '10000000' } });
  await driver.init();
  drivers.push(driver);
  servers.push(await startSshServer({ host: '127.0.0.1', port: 0, hostKey: hostKey.privateKey, authorizedKeysPath, core: { driver, journal } }));
}
process.stdout.write(JSON.stringify({ fingerprint: hostKey.fingerprint, ports: servers.map((s) => s.address.port) }) + '\n');
const stop = async () => {
  for (const s of servers) await s.close();
  for (const d of drivers) await d.close();
  await journal.close();
  process.exit(0);
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
