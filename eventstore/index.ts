// The event store's public surface; other modules import from here, not from its files.
export { openDatabase, type Database, type DatabaseTarget, type Queryable } from './database.js';
export { migrate, Migration } from './migrations.js';
export { openEventStore, type EventStore, type AppendOptions, type AppendResult, type ReadAllOptions } from './store.js';
export { checkpointOf, type Subscription, type SubscribeOptions } from './subscription.js';
export { Checkpoint, START, checkpointToString, checkpointFromString, compareCheckpoints } from './checkpoint.js';
export {
  EventMetadata,
  NewEvent,
  RecordedEvent,
  ExpectedVersion,
  StreamId,
  type EventRegistry,
  type TypedEvent,
  type TypedNewEvent,
} from './events.js';
export { WrongExpectedVersion, InvalidEvent, EventIdConflict } from './errors.js';
export { EVENTS_CHANNEL } from './eventLogMigrations.js';
export { onAppendTiming, type AppendOutcome } from './appendTimings.js';
