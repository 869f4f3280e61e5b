import { pino } from 'pino';
import { currentTraceId } from './telemetry.js';

/** The one logger. Child loggers carry the component name and, where there is one, the trace id. */
// On stderr: stdout is for what a command prints as its result (the agent's listening line, the dev
// stack's banner, a bench's one JSON line), so logs must never be mixed into it.
export const log = pino(
  {
    level: process.env.STRATUS_LOG_LEVEL ?? (process.env.VITEST ? 'warn' : 'info'),
    base: undefined,
    // Every line written inside a span names its trace, so a log search finds the whole action.
    mixin: () => {
      const traceId = currentTraceId();
      return traceId ? { traceId } : {};
    },
  },
  pino.destination(2),
);

export const componentLog = (component: string) => log.child({ component });
