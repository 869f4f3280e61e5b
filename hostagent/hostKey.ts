import { createHash } from 'node:crypto';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { ensureFileContent, readOrCreateOnce } from './atomicFile.js';

const { utils } = ssh2;

/** The fingerprint as `ssh-keygen -lf` and OpenSSH's prompts show it: SHA256 of the key blob, base64 without padding. */
export function sshFingerprint(publicKeyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(publicKeyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The blob of an OpenSSH public or private key, for fingerprinting. */
export function publicKeyBlob(key: string | Buffer): Buffer {
  const parsed = utils.parseKey(key);
  if (parsed instanceof Error) throw parsed;
  const one = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!one) throw new Error('no key found');
  return one.getPublicSSH();
}

/**
 * A new ed25519 key pair in OpenSSH format. ssh2 1.17's generator strips every leading zero byte of
 * the public key (it means to strip only the BIT STRING's unused-bits byte), so one key in 256 comes
 * out with a 31-byte public key that no parser accepts ("Malformed OpenSSH private key"). Such a key
 * is thrown away and another made; the chance of needing more than a few tries is nil.
 */
export function generateEd25519KeyPair(comment: string): { private: string; public: string } {
  for (;;) {
    const pair = utils.generateKeyPairSync('ed25519', { comment });
    if (!(utils.parseKey(pair.private) instanceof Error)) return pair;
  }
}

/**
 * The agent's host key: made once (ed25519, OpenSSH format) on first start and kept in the state dir,
 * so its fingerprint stays what the controller registered for this host.
 */
export async function loadOrCreateHostKey(stateDir: string): Promise<{ privateKey: string; fingerprint: string }> {
  const path = join(stateDir, 'ssh_host_ed25519_key');
  // Two agents starting on a fresh dir must end up with one key, and a reader must never see half of it.
  const { content: privateKey } = readOrCreateOnce(
    path,
    () => generateEd25519KeyPair('stratus-hostagent').private,
  );
  const blob = publicKeyBlob(privateKey);
  ensureFileContent(`${path}.pub`, `ssh-ed25519 ${blob.toString('base64')} stratus-hostagent\n`);
  return { privateKey, fingerprint: sshFingerprint(blob) };
}
