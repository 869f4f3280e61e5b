import type { Command } from 'commander';
import { startDev } from '../server/dev.js';
import { untilSignalled } from '../server/role.js';

export function register(program: Command) {
  program
    .command('dev')
    .description(
      'run the whole controller on this machine (npm start): Temporal dev server, PGlite, worker, projections, API with GraphiQL ' +
        'and a local sim host agent, all kept under STRATUS_DATA_DIR (./data)',
    )
    .action(async () => {
      const stack = await startDev();
      await untilSignalled();
      await stack.stop();
      // Native handles (Temporal's core, PGlite's WASM) can keep the loop alive after a clean stop.
      process.exit(0);
    });
}
