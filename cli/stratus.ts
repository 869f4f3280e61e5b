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
  () => import('./devCommand.js'),
  () => import('./roleCommands.js'),
  () => import('./schemaCommand.js'),
  // The commands for people, against the API that `stratus login` names.
  () => import('./loginCommand.js'),
  () => import('./instanceCommands.js'),
  () => import('./catalogCommands.js'),
  () => import('./operationCommands.js'),
  () => import('./eventsCommand.js'),
  () => import('./workflowCommand.js'),
  () => import('./meteringCommand.js'),
  () => import('./usageCommand.js'),
];
for (const load of roles) (await load()).register(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  // A bad variable or a missing dependency is a message for the operator, not a stack trace.
  console.error(`stratus: ${e instanceof Error ? e.message : String(e)}`);
  if (process.env.STRATUS_LOG_LEVEL === 'debug' && e instanceof Error) console.error(e.stack);
  process.exit(1);
}
