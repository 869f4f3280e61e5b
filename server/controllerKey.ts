import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import ssh2 from 'ssh2';

export interface ControllerKey {
  /** OpenSSH private key, as HostAgentClient takes it. */
  privateKey: string;
  /** One authorized_keys line for the host agents. */
  publicKey: string;
}

/**
 * The controller's SSH identity: an ed25519 key kept at `path` (mode 0600) with its public half at
 * `path.pub`. Made once on first start; every later start, and every role sharing the path, uses it,
 * so agents that authorized it keep accepting the controller.
 */
export function loadOrCreateControllerKey(path: string): ControllerKey {
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const k = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'stratus-controller' });
    // 'wx': two roles starting at once on one data dir must not overwrite each other's fresh key.
    try {
      writeFileSync(path, k.private, { mode: 0o600, flag: 'wx' });
      writeFileSync(`${path}.pub`, k.public.trim() + '\n', { mode: 0o644 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  const privateKey = readFileSync(path, 'utf8');
  const parsed = ssh2.utils.parseKey(privateKey);
  if (parsed instanceof Error) throw new Error(`controller key ${path} is not a usable private key: ${parsed.message}`);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key) throw new Error(`controller key ${path} holds no key`);
  chmodSync(path, 0o600);
  const publicKey = `${key.type} ${key.getPublicSSH().toString('base64')} stratus-controller`;
  return { privateKey, publicKey };
}
