import type { z } from 'zod';

/**
 * A decider (Emmett's `Decider`, after Jérémie Chassaing): `decide` turns a command and the current
 * state into the events that record it, or throws a `StratusError`; `evolve` folds one event into the
 * state; `initialState` is the state of a stream with no events. The same `evolve` feeds workflow
 * checks, projections and tests.
 */
export interface Decider<State, Command, Event> {
  decide: (command: Command, state: State) => Event[];
  evolve: (state: State, event: Event) => State;
  initialState: () => State;
  /** Set for a stream that grows long: the write side folds it from a snapshot of this name (activities/events.ts). */
  snapshotName?: string;
}

/** The `{ type, data }` events described by a map of event type → data schema. */
export type EventOf<Schemas extends Record<string, z.ZodType>> = {
  [K in keyof Schemas & string]: { type: K; data: z.infer<Schemas[K]> };
}[keyof Schemas & string];

/** Folds events onto the initial state: what a stream's events say the resource is now. */
export function replay<State, Command, Event>(decider: Decider<State, Command, Event>, events: readonly Event[]): State {
  return events.reduce(decider.evolve, decider.initialState());
}
