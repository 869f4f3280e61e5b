import type { Command } from 'commander';
import { startProjections } from '../projections/index.js';
import { USAGE_PROJECTION } from '../projections/usage.js';
import { ensureMeteringClock } from '../server/meteringClock.js';
import { runRole } from '../server/role.js';

/**
 * `stratus metering`: the usage consumer on its own (one active in the deployment, by its advisory
 * lock), and the metering clock started if it is not running (a worker runs it).
 */
export function register(program: Command) {
  program
    .command('metering')
    .description('run the metering consumer (usage records from the event log) and make sure the metering clock runs')
    .action(async () => {
      await runRole('metering', async (rt) => {
        const runner = await startProjections(rt, [USAGE_PROJECTION]);
        await ensureMeteringClock(rt);
        return { stop: () => runner.stop() };
      });
      process.exit(0);
    });
}
