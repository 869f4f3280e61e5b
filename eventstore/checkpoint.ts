import { z } from 'zod';

const uint64 = z.string().regex(/^\d{1,20}$/, 'an unsigned 64-bit integer as decimal text');

/**
 * A place in the global feed: the last event a reader has handled. The feed is ordered by
 * (transactionId, position), not by position alone (see eventLogMigrations.ts for why), so a checkpoint
 * needs both. Both are 64-bit, kept as decimal strings so they survive JSON and never lose precision.
 */
export const Checkpoint = z.object({
  transactionId: uint64,
  position: uint64,
});
export type Checkpoint = z.infer<typeof Checkpoint>;

/** Before the first event: reading after it returns the whole log. */
export const START: Checkpoint = Object.freeze({ transactionId: '0', position: '0' });

/** One string, for storing a checkpoint in a single text column: "<transactionId>:<position>". */
export const checkpointToString = (c: Checkpoint): string => `${c.transactionId}:${c.position}`;

export function checkpointFromString(s: string): Checkpoint {
  const [transactionId, position, ...rest] = s.split(':');
  return Checkpoint.parse(rest.length === 0 ? { transactionId, position } : {});
}

/** Feed order: negative when a comes before b. */
export function compareCheckpoints(a: Checkpoint, b: Checkpoint): number {
  const t = BigInt(a.transactionId) - BigInt(b.transactionId);
  const d = t !== 0n ? t : BigInt(a.position) - BigInt(b.position);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}
