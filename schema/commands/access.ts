import { StratusError } from '../../domain/errors.js';
import { canMutate, canRead, isAdmin, type Caller } from '../../domain/identity.js';

/** Admin scope is explicit (DESIGN.md invariant 9): hosts, flavors, images, projects, tokens, retries. */
export function requireAdmin(caller: Caller): void {
  if (!isAdmin(caller)) throw new StratusError('FORBIDDEN', 'this needs an admin token');
}

/** A READER token never changes anything. */
export function requireWriter(caller: Caller): void {
  if (caller.role === 'READER') throw new StratusError('FORBIDDEN', 'a reader token cannot change anything');
}

/**
 * Another project's resource does not exist for the caller (NOT_FOUND, indistinguishable from a missing
 * id); its own project's resource with a READER token is FORBIDDEN.
 */
export function requireMutableIn(caller: Caller, projectId: string, notFound: () => StratusError): void {
  if (!canRead(caller, projectId)) throw notFound();
  if (!canMutate(caller, projectId)) throw new StratusError('FORBIDDEN', 'a reader token cannot change anything');
}
