import { mkdir } from 'node:fs/promises';
import type { AgentConfig } from './config.js';
import { createDriver } from './drivers/index.js';
import { loadOrCreateHostKey } from './hostKey.js';
import { IdempotencyJournal } from './idempotency.js';
import { startSshServer } from './sshServer.js';
import { lockStateDir } from './stateLock.js';
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
  const lock = lockStateDir(config.stateDir);
  const opened: { close(): Promise<void> }[] = [];
  try {
    const hostKey = await loadOrCreateHostKey(config.stateDir);
    const driver = await createDriver(config.driver, { stateDir: config.stateDir, options: config.driverOptions });
    opened.push(driver);
    await driver.init();
    const journal = await IdempotencyJournal.open(config.stateDir);
    opened.push(journal);
    const server = await startSshServer({
      host: config.listen.host,
      port: config.listen.port,
      hostKey: hostKey.privateKey,
      authorizedKeysPath: config.authorizedKeys,
      core: { driver, journal },
    });
    return listeningAgent(config, hostKey.fingerprint, server, async () => {
      await server.close();
      await driver.close();
      await journal.close();
      lock.release();
    });
  } catch (e) {
    for (const o of opened.reverse()) await o.close().catch(() => undefined);
    lock.release();
    throw e;
  }
}

function listeningAgent(
  config: AgentConfig,
  fingerprint: string,
  server: Awaited<ReturnType<typeof startSshServer>>,
  close: () => Promise<void>,
): RunningAgent {
  const host = server.address.family === 'IPv6' ? `[${server.address.address}]` : server.address.address;
  const listening = `${host}:${server.address.port}`;
  log.info({ address: listening, hostKeyFingerprint: fingerprint, driver: config.driver }, 'host agent listening');
  return { listening, fingerprint, close };
}
