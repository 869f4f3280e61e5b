import { z } from 'zod';
import type { EventStore } from '../eventstore/index.js';

export const selfTestEvents = {
  ControllerSelfTested: z.object({ at: z.string() }),
};

export interface SelfTestInput {
  streamId: string;
  eventId: string;
  workflowId: string;
  runId: string;
}

/**
 * The self-test's one activity. `afterAppend` lets a test fail the activity after its append committed,
 * the way a worker crash between commit and completion would, to show the retry does not duplicate.
 */
export function createSelfTestActivities(
  store: EventStore<typeof selfTestEvents>,
  afterAppend: (attempt: number) => void = () => {},
) {
  let attempts = 0;
  return {
    async recordSelfTest(input: SelfTestInput): Promise<{ position: string }> {
      const { events } = await store.append(
        input.streamId,
        [
          {
            id: input.eventId,
            type: 'ControllerSelfTested',
            data: { at: new Date().toISOString() },
            metadata: { actor: 'system', workflowId: input.workflowId, runId: input.runId },
          },
        ],
        { expectedVersion: 'any' },
      );
      afterAppend(++attempts);
      return { position: events[0]!.position };
    },
  };
}

export type SelfTestActivities = ReturnType<typeof createSelfTestActivities>;
