import { timingSafeEqual } from 'node:crypto';
import { Caller, hashToken, Role } from '../domain/identity.js';
import { bootstrapAdminCaller } from '../server/adminToken.js';
import type { Runtime } from '../server/runtime.js';

/** The token in `Authorization: Bearer <token>` (or a graphql-ws connectionParams value of the same form). */
export function bearerToken(header: string | null | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}

/**
 * Who a bearer token belongs to, or null for none or an unknown one. Tokens are looked up by their
 * SHA-256 (the log never holds the secret); the bootstrap admin token from config is compared by hash in
 * constant time, so its timing says nothing about how much of a guess was right.
 */
export async function authenticate(rt: Runtime, token: string | undefined): Promise<Caller | null> {
  if (!token) return null;
  const hash = hashToken(token);
  const admin = rt.config.adminToken;
  if (admin && timingSafeEqual(Buffer.from(hash, 'hex'), Buffer.from(hashToken(admin), 'hex'))) return bootstrapAdminCaller;
  const [row] = await rt.db.query<{ token_id: string; project_id: string; role: string }>(
    'SELECT token_id, project_id, role FROM rm_tokens WHERE token_hash = $1',
    [hash],
  );
  if (!row) return null;
  return Caller.parse({ tokenId: row.token_id, projectId: row.project_id, role: Role.parse(row.role) });
}
