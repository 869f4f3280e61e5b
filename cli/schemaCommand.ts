import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';

export function register(program: Command) {
  program
    .command('schema')
    .description('print the GraphQL schema (SDL) the API serves, or write it to a file')
    .option('-o, --output <file>', 'write to this file instead of standard output')
    .action(async (opts: { output?: string }) => {
      const { schemaSdl } = await import('../schema/sdl.js');
      if (opts.output) writeFileSync(opts.output, schemaSdl());
      else process.stdout.write(schemaSdl());
    });
}
