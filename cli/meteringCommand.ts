import type { Command } from 'commander';
import { startProjections } from '../projections/index.js';
import { USAGE_PROJECTION } from '../projections/usage.js';
import { ensureMeteringClock, keepMeterPollers } from '../server/meteringClock.js';
import { runRole } from '../server/role.js';

/**
 * `stratus metering`: the usage consumer on its own (one active in the deployment, by its advisory
 * lock), and the metering clock and each host's pollster started if they are not running (a worker runs them).
 */
export function register(program: Command) {
  program
    .command('metering')
    .description('run the metering consumer (usage records from the event log) and make sure the metering clock runs')
    .action(async () => {
      await runRole('metering', async (rt) => {
        const runner = await startProjections(rt, [USAGE_PROJECTION]);
        await ensureMeteringClock(rt);
        const pollsters = await keepMeterPollers(rt);
        return { stop: async () => (await pollsters(), await runner.stop()) };
      });
      process.exit(0);
    });
}
