import { hourFloor, meteringClockStream } from '../domain/usage.js';
import { WrongExpectedVersion } from '../eventstore/index.js';
import type { Runtime } from '../server/runtime.js';
import { eventIdFor } from './events.js';

/** The metering clock's one step (workflows/meteringClock.ts). */
export function meteringSteps(rt: Runtime) {
  return {
    /**
     * Appends the tick to its hour's own stream, expecting none yet: a retried or doubled tick in the same
     * hour stores nothing, and a later tick of that hour would close nothing new anyway.
     */
    async recordClockTick(at: string): Promise<{ appended: boolean }> {
      const hour = new Date(hourFloor(Date.parse(at))).toISOString();
      try {
        const result = await rt.store.append(
          meteringClockStream(hour),
          [{ id: eventIdFor(`meteringClock/${hour}`, 0), type: 'UsageClockTicked', data: { at }, metadata: { actor: 'system' } }],
          { expectedVersion: 'noStream' },
        );
        return { appended: !result.duplicate };
      } catch (e) {
        if (e instanceof WrongExpectedVersion) return { appended: false };
        throw e;
      }
    },
  };
}
