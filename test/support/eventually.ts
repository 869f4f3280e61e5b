import { expect } from 'vitest';

/**
 * A bounded wait for what the system promises only eventually (group members reaching hosts through
 * the fan-out): polls `read` until the matcher holds, and fails with the last value if it never does.
 */
export const eventually = <T>(read: () => Promise<T> | T, timeoutMs = 30_000) => expect.poll(read, { timeout: timeoutMs, interval: 100 });
