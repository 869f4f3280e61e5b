import { StratusError } from '../domain/errors.js';
import type { ExpectedVersion } from './events.js';

/** The stream is not at the version the caller decided on (invariant 4): re-read, decide again. */
export class WrongExpectedVersion extends StratusError {
  constructor(
    readonly streamId: string,
    readonly expected: ExpectedVersion,
    readonly actual: number,
  ) {
    super('CONFLICT', `stream ${streamId} is at version ${actual}, expected ${String(expected)}`, {
      streamId,
      expected,
      actual,
    });
    this.name = 'WrongExpectedVersion';
  }
}

/** An event of an unregistered type, with data its schema rejects, or a malformed envelope. Nothing was written. */
export class InvalidEvent extends StratusError {
  constructor(message: string, details: Record<string, unknown>) {
    super('BAD_USER_INPUT', message, details);
    this.name = 'InvalidEvent';
  }
}

/**
 * Some event ids of the batch are stored and others are not, or they are stored in another stream:
 * not a retry of the same append but a reuse of ids, which is a bug in the caller.
 */
export class EventIdConflict extends StratusError {
  constructor(streamId: string, ids: string[]) {
    super('CONFLICT', `event ids already used outside this append to ${streamId}`, { streamId, ids });
    this.name = 'EventIdConflict';
  }
}
