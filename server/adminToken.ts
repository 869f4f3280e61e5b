import { randomBytes } from 'node:crypto';
import { readOrCreateOnce } from '../hostagent/atomicFile.js';
import { join } from 'node:path';
import type { Caller } from '../domain/identity.js';

/**
 * The bootstrap admin token: STRATUS_ADMIN_TOKEN when set, else the one kept in `<data>/admin.token`
 * (mode 0600), generated on first start. `generated` tells the caller to print it.
 */
export function loadOrCreateAdminToken(dataDir: string, fromEnv?: string): { token: string; generated: boolean } {
  if (fromEnv) return { token: fromEnv, generated: false };
  // The api and dev roles may start together on one data dir: one token is made, and only its maker prints it.
  const { content, created } = readOrCreateOnce(join(dataDir, 'admin.token'), () => `stratus_admin_${randomBytes(24).toString('base64url')}\n`);
  return { token: content.trim(), generated: created };
}

/**
 * Who the bootstrap admin token acts as. Its project is the fixed "admin" project, so resources an
 * operator makes with this token (a first test instance, say) belong somewhere stable across restarts.
 */
export const ADMIN_PROJECT_ID = '00000000-0000-4000-8000-000000000001';
export const bootstrapAdminCaller: Caller = { tokenId: 'bootstrap-admin', projectId: ADMIN_PROJECT_ID, role: 'ADMIN' };
