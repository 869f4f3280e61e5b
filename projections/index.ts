// The read side's public surface: other modules import from here.
export { CHANGES_CHANNEL, RESET_CHANNEL, type Change, type Projection, type StratusEvent } from './projection.js';
export { migrateProjections, projectionNamed, projectionNames, projections } from './registry.js';
export { startProjections, type ProjectionRunner } from './runner.js';
export { rebuildProjection, waitForProjections } from './rebuild.js';
