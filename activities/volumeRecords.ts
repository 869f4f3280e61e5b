import { StratusError } from '../domain/errors.js';
import { volumeStream } from '../domain/events.js';
import { decideVolume, volumeDecider, type Volume, type VolumeCommand, type VolumeEvent } from '../domain/volume.js';
import type { Runtime } from '../server/runtime.js';
import { decideAndAppend, readFolded, type Folded } from './events.js';
import { metadataOf, type OperationContext } from './operationSteps.js';
import { readHosts } from './placement.js';

/**
 * What a volume operation's activities are given. `instanceId` is the instance an attach or detach
 * acts on (it holds that instance's task too); empty for an action on the volume alone.
 */
export interface VolumeContext extends OperationContext {
  volumeId: string;
}

export async function readVolume(rt: Pick<Runtime, 'store'>, volumeId: string): Promise<Volume> {
  const { state } = await readFolded(rt, volumeStream(volumeId), volumeDecider);
  if (!state) throw new StratusError('NOT_FOUND', `volume ${volumeId} not found`, { id: volumeId });
  return state;
}

/**
 * Records the operation's results on its volume; like recordOnInstance, once the operation no longer
 * holds the volume's task (a retry after the finish landed) there is nothing left to record.
 */
export function recordOnVolume(
  rt: Pick<Runtime, 'store'>,
  ctx: VolumeContext,
  key: string,
  commands: (volume: Volume) => VolumeCommand[],
): Promise<Folded<Volume | null>> {
  return decideAndAppend<Volume | null, VolumeEvent>(
    rt,
    volumeStream(ctx.volumeId),
    volumeDecider,
    (state) => {
      if (!state || state.taskOperationId !== ctx.operationId) return [];
      const events: VolumeEvent[] = [];
      let s: Volume | null = state;
      for (const c of commands(state)) {
        for (const e of decideVolume(c, s)) {
          events.push(e);
          s = volumeDecider.evolve(s, e);
        }
      }
      return events;
    },
    { key, metadata: metadataOf(ctx), rounds: 10 },
  );
}

/**
 * The host that works on a volume no VM holds. The pool is shared, so any host that is UP will do; the
 * lowest id keeps the choice stable across retries.
 */
export async function poolHostId(rt: Pick<Runtime, 'db' | 'store'>): Promise<string> {
  const up = (await readHosts(rt)).filter((h) => h.state === 'UP').map((h) => h.id).sort();
  if (up.length === 0) throw new StratusError('NO_VALID_HOST', 'no host is UP to reach the storage pool');
  return up[0]!;
}

/**
 * The volumes whose streams ever recorded an attachment to `instanceId`, straight from the log (the
 * write side never waits for a projection). Each is then folded from its own stream to see whether it
 * is still attached there.
 */
export async function volumesEverAttachedTo(rt: Pick<Runtime, 'db'>, instanceId: string): Promise<string[]> {
  const rows = await rt.db.query<{ stream_id: string }>(
    `SELECT DISTINCT stream_id FROM events WHERE type = 'VolumeAttached' AND data->>'instanceId' = $1`,
    [instanceId],
  );
  return rows.map((r) => r.stream_id.slice('volume-'.length));
}
