import type { AddressInfo } from 'node:net';
import ssh2, { type Connection } from 'ssh2';
import { findAuthorizedKey, readAuthorizedKeys } from './authorizedKeys.js';
import { serveAgentStream, type AgentCore } from './agentSession.js';
import { SUBSYSTEM } from './protocol.js';
import { sshAlgorithms } from './sshAlgorithms.js';
import { componentLog } from '../server/log.js';

const log = componentLog('hostagent.ssh');

export interface SshServerOptions {
  host: string;
  port: number;
  hostKey: string;
  authorizedKeysPath: string;
  core: AgentCore;
}

/**
 * The agent's SSH server: public-key authentication only, against the authorized_keys file, and one
 * thing to do once in: open the `stratus-agent-v1` subsystem. No shell, no exec, no forwarding.
 */
export async function startSshServer(opts: SshServerOptions): Promise<{ address: AddressInfo; close(): Promise<void> }> {
  const connections = new Set<Connection>();
  const server = new ssh2.Server({ hostKeys: [opts.hostKey], algorithms: sshAlgorithms, keepaliveInterval: 15_000 }, (client, info) => {
    connections.add(client);
    // Each response is a small write; Nagle would hold it back waiting for the peer's ACK.
    // (ssh2 has Connection#setNoDelay; its typings miss it.)
    (client as Connection & { setNoDelay(on: boolean): void }).setNoDelay(true);
    client.on('close', () => connections.delete(client));
    client.on('error', (err) => log.debug({ err, ip: info.ip }, 'ssh connection error'));
    client.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
      readAuthorizedKeys(opts.authorizedKeysPath).then(
        (keys) => {
          const key = findAuthorizedKey(keys, ctx.key.data);
          if (!key || key.type !== keyType(ctx.key.algo)) {
            log.warn({ ip: info.ip, user: ctx.username, algo: ctx.key.algo }, 'refused key not in authorized_keys');
            return ctx.reject(['publickey']);
          }
          // Without a signature the client only asks whether this key would do; with one it proves it holds it.
          if (!ctx.signature) return ctx.accept();
          if (ctx.blob && key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true) return ctx.accept();
          log.warn({ ip: info.ip }, 'refused bad public-key signature');
          ctx.reject(['publickey']);
        },
        (err: unknown) => {
          log.error({ err, path: opts.authorizedKeysPath }, 'cannot read authorized_keys; refusing logins');
          ctx.reject(['publickey']);
        },
      );
    });
    client.on('ready', () => {
      client.on('session', (accept) => {
        const session = accept();
        session.on('subsystem', (acceptSub, rejectSub, sub) => {
          if (sub.name !== SUBSYSTEM) return rejectSub();
          serveAgentStream(acceptSub(), opts.core);
        });
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err: Error) => log.error({ err }, 'ssh server error'));
  return {
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of connections) c.end();
        server.close(() => resolve());
      }),
  };
}

/** rsa-sha2-* signatures are made with an ssh-rsa key. */
const keyType = (algo: string) => (algo.startsWith('rsa-sha2-') ? 'ssh-rsa' : algo);
