import { chmodSync } from 'node:fs';
import ssh2 from 'ssh2';
import { ensureFileContent, readOrCreateOnce } from '../hostagent/atomicFile.js';
import { generateEd25519KeyPair } from '../hostagent/hostKey.js';

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
  // Every role on one data dir may start at once: one of them makes the key, all of them use it.
  const { content: privateKey } = readOrCreateOnce(
    path,
    () => generateEd25519KeyPair('stratus-controller').private,
  );
  const parsed = ssh2.utils.parseKey(privateKey);
  if (parsed instanceof Error) throw new Error(`controller key ${path} is not a usable private key: ${parsed.message}`);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key) throw new Error(`controller key ${path} holds no key`);
  chmodSync(path, 0o600);
  const publicKey = `${key.type} ${key.getPublicSSH().toString('base64')} stratus-controller`;
  ensureFileContent(`${path}.pub`, publicKey + '\n');
  return { privateKey, publicKey };
}
