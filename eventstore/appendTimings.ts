/**
 * How long each append to the event store took, for whoever measures it in this process (the
 * `/metrics` endpoint's histogram). The store reports every append, whichever store of the process made
 * it; with no one listening a report costs a clock reading.
 */
export type AppendOutcome = 'appended' | 'duplicate' | 'wrong_version' | 'id_conflict' | 'error';
export type AppendTimingListener = (seconds: number, outcome: AppendOutcome) => void;

const listeners = new Set<AppendTimingListener>();

/** Calls `listener` after every append in this process; returns the call that stops it. */
export function onAppendTiming(listener: AppendTimingListener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function reportAppendTiming(startedMs: number, outcome: AppendOutcome): void {
  if (listeners.size === 0) return;
  const seconds = (performance.now() - startedMs) / 1000;
  for (const listener of listeners) listener(seconds, outcome);
}
