import { z } from 'zod';

/** Every resource id is a UUID (the GraphQL `ID`). */
export const Id = z.uuid();
export type Id = z.infer<typeof Id>;

/**
 * A point in time as an ISO-8601 string (the GraphQL `DateTime`). Events travel as JSON, so they keep
 * strings, not `Date`s; offsets are accepted because PostgreSQL renders `+00:00` where JS renders `Z`.
 */
export const Timestamp = z.iso.datetime({ offset: true });
export type Timestamp = z.infer<typeof Timestamp>;
