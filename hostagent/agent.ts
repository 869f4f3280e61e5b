import { mkdir } from 'node:fs/promises';
import type { AgentConfig } from './config.js';
import { createDriver } from './drivers/index.js';
import { loadOrCreateHostKey } from './hostKey.js';
import { IdempotencyJournal } from './idempotency.js';
import { startSshServer } from './sshServer.js';
import { componentLog } from '../server/log.js';

const log = componentLog('hostagent');

export interface RunningAgent {
  /** host:port actually bound (port 0 in the config becomes the chosen port). */
  listening: string;
  fingerprint: string;
  close(): Promise<void>;
}

/** Starts a host agent: host key, driver (state re-loaded), idempotency journal, then the SSH server. */
export async function startAgent(config: AgentConfig): Promise<RunningAgent> {
  await mkdir(config.stateDir, { recursive: true });
  const hostKey = await loadOrCreateHostKey(config.stateDir);
  const driver = await createDriver(config.driver, { stateDir: config.stateDir, options: config.driverOptions });
  await driver.init();
  const journal = await IdempotencyJournal.open(config.stateDir);
  const server = await startSshServer({
    host: config.listen.host,
    port: config.listen.port,
    hostKey: hostKey.privateKey,
    authorizedKeysPath: config.authorizedKeys,
    core: { driver, journal },
  });
  const host = server.address.family === 'IPv6' ? `[${server.address.address}]` : server.address.address;
  const listening = `${host}:${server.address.port}`;
  log.info({ address: listening, hostKeyFingerprint: hostKey.fingerprint, driver: config.driver }, 'host agent listening');
  return {
    listening,
    fingerprint: hostKey.fingerprint,
    async close() {
      await server.close();
      await driver.close();
      await journal.close();
    },
  };
}
