import type { Command } from 'commander';
import { startAgent } from '../hostagent/agent.js';
import { loadAgentConfig } from '../hostagent/config.js';
import { startTracing } from '../server/telemetry.js';

export function register(program: Command) {
  program
    .command('hostagent')
    .description('run the host agent: an SSH server speaking the stratus-agent-v1 protocol to a hypervisor driver')
    .option('--listen <host:port>', 'address to listen on; port 0 picks a free one (env STRATUS_AGENT_LISTEN)')
    .option('--state-dir <dir>', 'host key, idempotency journal, driver state (env STRATUS_AGENT_STATE_DIR)')
    .option('--driver <kind>', 'sim | qemu (env STRATUS_AGENT_DRIVER)')
    .option('--authorized-keys <file>', 'controller public keys, OpenSSH format (env STRATUS_AGENT_AUTHORIZED_KEYS)')
    .option('--driver-option <key=value>', 'driver setting, repeatable (env STRATUS_AGENT_DRIVER_OPTIONS=k=v,k=v)', collect, [])
    .action(async (flags: { listen?: string; stateDir?: string; driver?: string; authorizedKeys?: string; driverOption: string[] }) => {
      const tracing = await startTracing('stratus-hostagent');
      const agent = await startAgent(loadAgentConfig(flags));
      // One JSON line on stdout, the contract with whoever started us (tests, the dev stack).
      process.stdout.write(JSON.stringify({ listening: agent.listening, fingerprint: agent.fingerprint }) + '\n');
      // Spans still in the batch are sent before the process goes.
      const stop = () => void agent.close().then(() => tracing?.shutdown()).catch(() => {}).finally(() => process.exit(0));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
}

const collect = (value: string, previous: string[]) => [...previous, value];
