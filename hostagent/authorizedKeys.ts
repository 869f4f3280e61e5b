import { readFile } from 'node:fs/promises';
import { timingSafeEqual } from 'node:crypto';
import ssh2, { type ParsedKey } from 'ssh2';
import { componentLog } from '../server/log.js';

const log = componentLog('hostagent.auth');

/**
 * Reads an OpenSSH authorized_keys file. Key options (`from=`, `command=`...) are not supported: a
 * line's options are ignored and only its key counts. The file is read at every login, so adding or
 * removing a controller key needs no agent restart.
 */
export async function readAuthorizedKeys(path: string): Promise<ParsedKey[]> {
  const text = await readFile(path, 'utf8');
  const keys: ParsedKey[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const words = line.split(/\s+/);
    const at = words.findIndex((w) => /^(ssh-|ecdsa-|sk-)/.test(w));
    const parsed = at >= 0 && words[at + 1] ? ssh2.utils.parseKey(`${words[at]} ${words[at + 1]}`) : new Error('no key');
    if (parsed instanceof Error) {
      log.warn({ path, line: i + 1 }, 'authorized_keys line ignored: not a key ssh2 can read');
      continue;
    }
    keys.push(...(Array.isArray(parsed) ? parsed : [parsed]));
  }
  return keys;
}

/** The authorized key whose public blob equals the offered one, if any. */
export function findAuthorizedKey(keys: ParsedKey[], offered: Buffer): ParsedKey | undefined {
  return keys.find((k) => {
    const blob = k.getPublicSSH();
    return blob.length === offered.length && timingSafeEqual(blob, offered);
  });
}
