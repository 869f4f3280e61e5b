import { z } from 'zod';

/** The error codes of the public contract (CONTRACT.md, "Errors"). */
export const ErrorCode = z.enum([
  'BAD_USER_INPUT',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'CONFLICT',
  'QUOTA_EXCEEDED',
  'NO_VALID_HOST',
  'NO_FREE_ADDRESS',
  'INTERNAL',
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

/**
 * A domain error: a typed value with a contract code. It is mapped to a GraphQL error in one place
 * at the edge (schema/), never in each resolver.
 */
export class StratusError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'StratusError';
  }
}

export const isStratusError = (e: unknown): e is StratusError => e instanceof StratusError;
