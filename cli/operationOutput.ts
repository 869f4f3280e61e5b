import type { Command } from 'commander';
import type { ApiClient } from './apiClient.js';
import { followToTheEnd, OPERATION_FIELDS, type OperationView } from './operationProgress.js';
import { renderFields, renderTable } from './tables.js';

/** The options every command that starts an operation takes. */
export const waitOptions = (command: Command): Command =>
  command.option('--no-wait', 'return as soon as the operation is accepted').option('--json', 'print JSON for scripts');

export interface WaitOptions {
  wait: boolean;
  json?: boolean;
}

export function showOperation(op: OperationView): string {
  const head = renderFields([
    ['operation', op.id],
    ['kind', op.kind],
    ['status', op.status],
    ['resource', op.resourceId],
    ['workflow', `${op.workflowId}${op.runId ? ` (run ${op.runId})` : ''}`],
    ['attempts', op.attempts],
    ['trace id', op.traceId],
    ['created', op.createdAt],
    ['finished', op.finishedAt],
    ['error', op.error ? `${op.error.code}: ${op.error.message}` : null],
  ]);
  if (op.steps.length === 0) return head;
  const steps = renderTable(op.steps, [
    { header: 'STEP', cell: (s) => s.name },
    { header: 'STATUS', cell: (s) => s.status },
    { header: 'STARTED', cell: (s) => s.startedAt },
    { header: 'FINISHED', cell: (s) => s.finishedAt },
    { header: 'ERROR', cell: (s) => (s.error ? `${s.error.code}: ${s.error.message}` : null) },
  ]);
  return `${head}\n\n${steps}`;
}

/**
 * Runs a mutation that answers with an operation, then (unless --no-wait) follows it with the live
 * display until it ends; `after` reads what the caller should see once it succeeded. A failed operation
 * throws its failure report, so the command exits non-zero.
 */
export async function startAndFollow<T extends Record<string, unknown>>(
  client: ApiClient,
  mutation: { name: string; input: Record<string, unknown>; inputType: string; select?: string },
  options: WaitOptions,
  after: (op: OperationView, payload: Record<string, unknown>) => Promise<{ json: T; text: string }>,
): Promise<void> {
  const data = await client.request<Record<string, { operation: OperationView }>>(
    `mutation($input: ${mutation.inputType}!) { ${mutation.name}(input: $input) { operation { ${OPERATION_FIELDS} } ${mutation.select ?? ''} } }`,
    { input: mutation.input },
  );
  const payload = data[mutation.name]! as { operation: OperationView } & Record<string, unknown>;
  if (!options.wait) {
    console.log(options.json ? JSON.stringify(payload, null, 2) : `operation ${payload.operation.id} (${payload.operation.kind}) ${payload.operation.status}`);
    return;
  }
  // With --json the terminal still gets the display, a pipe does not: stdout stays one JSON document.
  const op = await followToTheEnd(client, payload.operation.id, { quiet: options.json && !process.stderr.isTTY });
  const result = await after(op, payload);
  console.log(options.json ? JSON.stringify({ operation: op, ...result.json }, null, 2) : result.text);
}
