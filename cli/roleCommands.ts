import type { Command } from 'commander';
import { startApi } from '../server/api.js';
import { keepHostsWatched } from '../schema/commands/hostHealth.js';
import { runRole } from '../server/role.js';
import { startWorker } from '../server/worker.js';
import { startProjections } from '../projections/index.js';

/** The production roles, each on its own against TEMPORAL_ADDRESS and DATABASE_URL. */
export function register(program: Command) {
  program
    .command('api')
    .description('serve the GraphQL API (STRATUS_PORT, default 4000) against DATABASE_URL and TEMPORAL_ADDRESS')
    .action(() =>
      exitWhenDone(
        runRole('api', async (rt) => {
          const api = await startApi(rt, { port: rt.config.port, host: rt.config.host });
          const healthChecks = await keepHostsWatched(rt);
          console.log(`stratus api listening at ${api.url}`);
          return {
            stop: async () => {
              await healthChecks();
              await api.close();
            },
          };
        }),
      ),
    );
  program
    .command('worker')
    .description('run a Temporal worker for the lifecycle workflows on STRATUS_TASK_QUEUE (default stratus)')
    .action(() => exitWhenDone(runRole('worker', async (rt) => {
      const worker = await startWorker(rt, { taskQueue: rt.config.taskQueue });
      const healthChecks = await keepHostsWatched(rt);
      return {
        stop: async () => {
          await healthChecks();
          await worker.stop();
        },
      };
    })));
  program
    .command('projections')
    .description('run the read-model projections (one active runner per projection, guarded by an advisory lock)')
    .action(() => exitWhenDone(runRole('projections', async (rt) => {
      const runner = await startProjections(rt);
      return { stop: () => runner.stop() };
    })));
}

async function exitWhenDone(role: Promise<void>) {
  await role;
  process.exit(0);
}
