import { readFileSync } from 'node:fs';
import { Command } from 'commander';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('stratus')
  .description('Stratus: an event-sourced IaaS cloud controller on Temporal')
  .version(pkg.version);

// Each role registers its own subcommand module here as it lands.
const roles: Array<() => Promise<{ register(program: Command): void }>> = [
  () => import('./temporalCommand.js'),
  () => import('./hostagentCommand.js'),
];
for (const load of roles) (await load()).register(program);

await program.parseAsync(process.argv);
