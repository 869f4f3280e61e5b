import { z } from 'zod';

/** Who and what caused an event; the trace context links it to the API call and the workflow. */
export const EventMetadata = z.strictObject({
  // Required: the log is also the audit trail, and every change has someone (or 'system') behind it.
  actor: z.string().min(1),
  operationId: z.string().min(1).optional(),
  workflowId: z.string().min(1).optional(),
  runId: z.string().min(1).optional(),
  // The event (or command) id that caused this one, for following a chain of reactions.
  causationId: z.string().min(1).optional(),
  traceparent: z.string().min(1).optional(),
  tracestate: z.string().optional(),
});
export type EventMetadata = z.infer<typeof EventMetadata>;

/** `instance-<uuid>`, `host-<uuid>`: a resource kind, a dash, an id. The prefix lets readers filter. */
export const StreamId = z.string().regex(/^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*-[A-Za-z0-9._:-]+$/, 'kind-id, e.g. instance-<uuid>');

/**
 * An event to append. The id is required and chosen by the caller (a Temporal activity derives it
 * from its workflow and activity ids): a retried append then carries the same id and is a no-op, which
 * a generated id would defeat.
 */
export const NewEvent = z.object({
  id: z.uuid(),
  type: z.string().min(1),
  data: z.unknown(),
  metadata: EventMetadata,
});
export type NewEvent = z.infer<typeof NewEvent>;

/**
 * What the caller believes the stream's last version is. Versions start at 1; 'noStream' (or 0) means
 * the stream has no events yet; 'any' skips the check (only for streams nobody decides on).
 */
export const ExpectedVersion = z.union([z.literal('any'), z.literal('noStream'), z.number().int().nonnegative()]);
export type ExpectedVersion = z.infer<typeof ExpectedVersion>;

/** An event as stored. position and transactionId are 64-bit and kept as decimal strings. */
export const RecordedEvent = z.object({
  id: z.uuid(),
  streamId: z.string(),
  version: z.number().int().positive(),
  position: z.string(),
  transactionId: z.string(),
  type: z.string(),
  data: z.unknown(),
  metadata: EventMetadata,
  recordedAt: z.date(),
});
export type RecordedEvent = z.infer<typeof RecordedEvent>;

/** The domain's event types: type name -> schema of its data. */
export type EventRegistry = Record<string, z.ZodType>;

/** A recorded event whose data is typed by the registry, narrowed by `type`. */
export type TypedEvent<R extends EventRegistry> = {
  [K in keyof R & string]: Omit<RecordedEvent, 'type' | 'data'> & { type: K; data: z.infer<R[K]> };
}[keyof R & string];

/** A new event whose data is typed by the registry. */
export type TypedNewEvent<R extends EventRegistry> = {
  [K in keyof R & string]: Omit<NewEvent, 'type' | 'data'> & { type: K; data: z.input<R[K]> };
}[keyof R & string];
