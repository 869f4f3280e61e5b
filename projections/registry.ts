import { StratusError } from '../domain/errors.js';
import { migrate, type Database } from '../eventstore/index.js';
import { auditProjection } from './audit.js';
import { catalogProjection } from './catalog.js';
import { checkpointMigrations } from './checkpoints.js';
import { hostsProjection } from './hosts.js';
import { identityProjection } from './identity.js';
import { instancesProjection } from './instances.js';
import { networksProjection } from './networks.js';
import { securityGroupsProjection } from './securityGroups.js';
import { operationsProjection } from './operations.js';
import type { Projection } from './projection.js';
import { usageProjection } from './usage.js';
import { meterMigrations } from './meterTables.js';
import { volumesProjection } from './volumes.js';


/** Every read-model projection, by name. */
export const projections: readonly Projection[] = [
  identityProjection,
  catalogProjection,
  hostsProjection,
  instancesProjection,
  operationsProjection,
  volumesProjection,
  auditProjection,
  usageProjection,
  networksProjection,
  securityGroupsProjection,
];

export const projectionNames = projections.map((p) => p.name);

export function projectionNamed(name: string): Projection {
  const p = projections.find((x) => x.name === name);
  if (!p) throw new StratusError('NOT_FOUND', `no projection named ${name}`, { name, known: projectionNames });
  return p;
}

/** Creates the checkpoint table and every projection's tables; the API runs it too, so reads never meet a missing table. */
export async function migrateProjections(db: Database): Promise<void> {
  await migrate(db, [...checkpointMigrations, ...projections.flatMap((p) => p.migrations), ...meterMigrations]);
}
