import { TestWorkflowEnvironment } from '@temporalio/testing';
import { findTemporalCli } from '../../server/temporalCli.js';

/**
 * One real Temporal dev server for the whole test run (started from the global setup), built from the
 * pinned CLI. Tests connect to its address; each test uses its own task queue so they never share work.
 */
export async function startTemporal(): Promise<{ address: string; stop(): Promise<void> }> {
  const cli = await findTemporalCli((m) => console.error(`[temporal] ${m}`));
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: cli.path },
      ip: '127.0.0.1',
      log: { format: 'pretty', level: 'warn' },
      // Workflow ids are reused across tests only by accident; keep the default namespace small and fast.
      extraArgs: ['--dynamic-config-value', 'frontend.enableUpdateWorkflowExecution=true'],
    },
  });
  return { address: env.address, stop: () => env.teardown() };
}
