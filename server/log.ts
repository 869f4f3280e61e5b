import { pino } from 'pino';

/** The one logger. Child loggers carry the component name and, where there is one, the trace id. */
export const log = pino({
  level: process.env.STRATUS_LOG_LEVEL ?? (process.env.VITEST ? 'warn' : 'info'),
  base: undefined,
});

export const componentLog = (component: string) => log.child({ component });
