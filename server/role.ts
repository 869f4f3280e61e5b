import { loadOrCreateAdminToken } from './adminToken.js';
import { ConfigError, loadConfig } from './config.js';
import { componentLog } from './log.js';
import { createRuntime, type Runtime } from './runtime.js';
import { routeTemporalLogs } from './temporalLogs.js';

const log = componentLog('role');

export interface Running {
  stop(): Promise<unknown>;
}

/**
 * One production role (`stratus api|worker|projections`) on its own: config from the environment,
 * a runtime against DATABASE_URL and TEMPORAL_ADDRESS, the role's `start`, and a clean stop on
 * SIGINT/SIGTERM. PGlite lives inside one process, so a role on its own needs PostgreSQL.
 */
export async function runRole(name: string, start: (rt: Runtime) => Promise<Running>): Promise<void> {
  const config = loadConfig();
  routeTemporalLogs();
  if (!config.databaseUrl) {
    throw new ConfigError(`stratus ${name} runs on its own and needs DATABASE_URL (PostgreSQL); PGlite is only for \`stratus dev\``);
  }
  if (name === 'api') config.adminToken = loadOrCreateAdminToken(config.dataDir, config.adminToken).token;
  const rt = await createRuntime(config);
  let running: Running;
  try {
    running = await start(rt);
  } catch (e) {
    await rt.close();
    throw e;
  }
  log.info({ role: name, temporal: config.temporalAddress, taskQueue: config.taskQueue }, `stratus ${name} running`);
  await untilSignalled();
  log.info({ role: name }, `stratus ${name} stopping`);
  await running.stop();
  await rt.close();
}

/** Resolves on the first SIGINT or SIGTERM; a second one while stopping exits at once. */
export function untilSignalled(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      const force = () => {
        log.warn('second signal: exiting without a clean stop');
        process.exit(130);
      };
      process.once('SIGINT', force);
      process.once('SIGTERM', force);
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
