import type { Command } from 'commander';
import { findTemporalCli } from '../server/temporalCli.js';

export function register(program: Command) {
  program
    .command('temporal-cli')
    .description('find (or build, once) the pinned Temporal CLI and print its path')
    .action(async () => {
      const found = await findTemporalCli((m) => console.error(m));
      console.log(found.path);
    });
}
