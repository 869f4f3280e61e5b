import { evolveVolume, volumeEvents, type Volume, type VolumeEvent } from '../domain/volume.js';
import { loadDoc, upsertRow, type Change, type Projection } from './projection.js';

/**
 * rm_volumes and rm_volume_snapshots, folded with the domain's own `evolveVolume`. `doc` keeps the whole
 * volume (its snapshots included) for the next fold; the columns are what queries filter on, the
 * snapshot rows let a snapshot be found by its own id.
 */
export const volumesProjection: Projection = {
  name: 'volumes',
  streamPrefixes: ['volume-'],
  tables: ['rm_volume_snapshots', 'rm_volumes'],
  migrations: [
    {
      id: 'projections/volumes/001',
      sql: `CREATE TABLE rm_volumes (
        id uuid PRIMARY KEY,
        project_id uuid NOT NULL,
        name text NOT NULL,
        state text NOT NULL,
        task text,
        size_gb integer NOT NULL,
        attached_to uuid,
        created_at timestamptz NOT NULL,
        version integer NOT NULL,
        doc jsonb NOT NULL
      );
      CREATE INDEX rm_volumes_project ON rm_volumes (project_id, created_at, id);
      CREATE INDEX rm_volumes_attached_to ON rm_volumes (attached_to);
      CREATE TABLE rm_volume_snapshots (
        id uuid PRIMARY KEY,
        volume_id uuid NOT NULL,
        project_id uuid NOT NULL,
        state text NOT NULL
      );
      CREATE INDEX rm_volume_snapshots_volume ON rm_volume_snapshots (volume_id);`,
    },
  ],
  async apply(tx, event) {
    if (!Object.hasOwn(volumeEvents, event.type) || !event.streamId.startsWith('volume-')) return [];
    const id = event.streamId.slice('volume-'.length);
    const before = await loadDoc<Volume>(tx, 'rm_volumes', id);
    const after = evolveVolume(before, { type: event.type, data: event.data } as VolumeEvent);
    if (!after) return [];
    await upsertRow(tx, 'rm_volumes', {
      id,
      project_id: after.projectId,
      name: after.name,
      state: after.state,
      task: after.task,
      size_gb: after.sizeGb,
      attached_to: after.attachedTo,
      created_at: after.createdAt,
      version: after.version,
      doc: JSON.stringify(after),
    });
    for (const s of after.snapshots) {
      await upsertRow(tx, 'rm_volume_snapshots', { id: s.id, volume_id: id, project_id: after.projectId, state: s.state });
    }
    const changes: Change[] = [{ kind: 'volume', id, projectId: after.projectId }];
    // The instance it was or is attached to shows its volumes, so a subscriber to that instance hears of it too.
    const instanceId = event.type === 'VolumeAttached' || event.type === 'VolumeDetached' ? event.data.instanceId : null;
    if (instanceId) changes.push({ kind: 'instance', id: instanceId, projectId: after.projectId });
    return changes;
  },
};
