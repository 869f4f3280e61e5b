import { DefaultLogger, Runtime, type LogEntry } from '@temporalio/worker';
import { componentLog } from './log.js';

const log = componentLog('temporal-sdk');

/**
 * Sends the Temporal SDK's worker logs through the one logger (pino) instead of its own console
 * format, at WARN unless STRATUS_LOG_LEVEL asks for more: its INFO lines (worker state changes,
 * "no Nexus services") drown the dev stack's banner. Call once, before any worker is created.
 */
export function routeTemporalLogs(): void {
  const level = ['debug', 'trace'].includes(process.env.STRATUS_LOG_LEVEL ?? '') ? 'DEBUG' : 'WARN';
  const write = (entry: LogEntry) => {
    const meta = entry.meta ?? {};
    if (entry.level === 'ERROR') log.error(meta, entry.message);
    else if (entry.level === 'WARN') log.warn(meta, entry.message);
    else if (entry.level === 'INFO') log.info(meta, entry.message);
    else log.debug(meta, entry.message);
  };
  try {
    Runtime.install({ logger: new DefaultLogger(level, write) });
  } catch {
    // Already installed (a test or another role in this process did it first): keep that one.
  }
}
