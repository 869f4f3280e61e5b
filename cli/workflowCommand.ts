import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { Client, Connection, type HistoryAndWorkflowId } from '@temporalio/client';
import { workflowIdOf } from '../domain/operation.js';
import { workflowTypeOf } from '../schema/commands/operations.js';
import { loadConfig } from '../server/config.js';
import { routeTemporalLogs } from '../server/temporalLogs.js';
import { workflowsPath } from '../server/worker.js';

interface ReplayOptions {
  failed?: boolean;
  allKinds?: boolean;
  file?: string[];
  workflows?: string;
  address?: string;
  namespace?: string;
  limit: string;
}

/** One history to replay, with what a person needs to find it again. */
interface Replayable extends HistoryAndWorkflowId {
  type: string;
}

async function collect<T>(items: AsyncIterable<T>, limit: number): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) {
    out.push(item);
    if (out.length >= limit) break;
  }
  return out;
}

/**
 * The histories the options name, fetched from Temporal: one operation's, the failed executions', or
 * the newest finished and the newest failed execution of every workflow kind that operations run.
 */
async function historiesToReplay(client: Client, operationId: string | undefined, options: ReplayOptions): Promise<{ histories: Replayable[]; missing: string[] }> {
  const limit = Number(options.limit);
  const histories: Replayable[] = [];
  const missing: string[] = [];
  const seen = new Set<string>();
  const add = async (query: string, max: number) => {
    const executions = await collect(client.workflow.list({ query }), max);
    for (const e of executions) {
      if (seen.has(`${e.workflowId}/${e.runId}`)) continue;
      seen.add(`${e.workflowId}/${e.runId}`);
      histories.push({ workflowId: e.workflowId, history: await client.workflow.getHandle(e.workflowId, e.runId).fetchHistory(), type: e.type });
    }
    return executions.length;
  };
  if (operationId) {
    const handle = client.workflow.getHandle(workflowIdOf(operationId));
    const description = await handle.describe();
    histories.push({ workflowId: description.workflowId, history: await handle.fetchHistory(), type: description.type });
  }
  if (options.failed) await add(`ExecutionStatus = 'Failed'`, limit);
  if (options.allKinds) {
    for (const type of new Set(Object.values(workflowTypeOf))) {
      const found = (await add(`WorkflowType = '${type}' AND ExecutionStatus != 'Running'`, 1)) + (await add(`WorkflowType = '${type}' AND ExecutionStatus = 'Failed'`, 1));
      if (found === 0) missing.push(type);
    }
  }
  for (const file of options.file ?? []) {
    const history = JSON.parse(readFileSync(file, 'utf8')) as HistoryAndWorkflowId['history'];
    histories.push({ workflowId: file, history, type: 'from file' });
  }
  return { histories, missing };
}

/**
 * `stratus workflow replay <operation id | --failed | --all-kinds | --file f>`: replays histories from
 * Temporal against the workflow code on this machine (Worker.runReplayHistories), the check to run
 * before deploying new workflow code. Exits 1 naming each workflow that diverged and how.
 */
export function register(program: Command) {
  const workflow = program.command('workflow').description('Temporal workflows behind operations (against TEMPORAL_ADDRESS)');
  workflow
    .command('replay [operationId]')
    .description("replay workflow histories against the current code and report nondeterminism")
    .option('--failed', 'every failed execution (up to --limit)')
    .option('--all-kinds', 'the newest finished and the newest failed execution of every workflow kind')
    .option('--file <history.json...>', 'histories saved as JSON (temporal workflow show --output json)')
    .option('--workflows <path>', 'the workflow code to replay against', workflowsPath)
    .option('--address <host:port>', 'Temporal frontend (default TEMPORAL_ADDRESS)')
    .option('--namespace <namespace>', 'Temporal namespace (default TEMPORAL_NAMESPACE)')
    .option('--limit <n>', 'at most this many executions per query', '100')
    .action(async (operationId: string | undefined, options: ReplayOptions) => {
      if (!operationId && !options.failed && !options.allKinds && !options.file?.length) {
        throw new Error('name what to replay: an operation id, --failed, --all-kinds or --file <history.json>');
      }
      routeTemporalLogs();
      const config = loadConfig();
      const address = options.address ?? config.temporalAddress;
      const needsTemporal = Boolean(operationId || options.failed || options.allKinds);
      let connection: Connection | undefined;
      try {
        if (needsTemporal) {
          connection = await Connection.connect({ address, connectTimeout: '5 seconds' }).catch((e: unknown) => {
            throw new Error(`cannot reach Temporal at ${address} (${(e as Error).message}): set TEMPORAL_ADDRESS or --address`);
          });
        }
        const client = new Client({ ...(connection ? { connection } : {}), namespace: options.namespace ?? config.temporalNamespace });
        const { histories, missing } = needsTemporal || options.file?.length ? await historiesToReplay(client, operationId, options) : { histories: [], missing: [] };
        for (const type of missing) console.error(`warning: no finished execution of ${type} to replay`);
        if (histories.length === 0) throw new Error('no workflow histories to replay');

        const byId = new Map(histories.map((h) => [`${h.workflowId}`, h.type]));
        let diverged = 0;
        const results = (await import('@temporalio/worker')).Worker.runReplayHistories({ workflowsPath: resolve(options.workflows ?? workflowsPath) }, histories);
        for await (const result of results) {
          const type = byId.get(result.workflowId) ?? '?';
          if (result.error) {
            diverged++;
            // The SDK's message names the first divergence (the command it expected against the event it found).
            console.log(`FAIL ${result.workflowId} (${type}) run ${result.runId}: ${result.error.message}`);
          } else console.log(`ok   ${result.workflowId} (${type}) run ${result.runId}`);
        }
        console.log(`${histories.length} replayed, ${diverged} diverged`);
        if (diverged > 0) process.exitCode = 1;
      } finally {
        await connection?.close();
      }
    });
}
