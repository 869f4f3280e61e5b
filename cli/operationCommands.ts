import type { Command } from 'commander';
import { ApiError, connect } from './apiClient.js';
import { showOperation, startAndFollow, waitOptions, type WaitOptions } from './operationOutput.js';
import { followToTheEnd, OPERATION_FIELDS, type OperationView } from './operationProgress.js';
import { printRows } from './tables.js';

const failedStep = (op: OperationView) => op.steps.find((s) => s.status === 'FAILED')?.name;

/** `stratus operation list [--failed]|show|watch|retry|reset`: the asynchronous jobs behind every action. */
export function register(program: Command) {
  const operation = program.command('operation').description('operations: the workflow behind each lifecycle action');

  operation
    .command('list')
    .description('operations, newest first')
    .option('--failed', 'only FAILED operations, with the failing step (admin)')
    .option('--status <status>', 'only operations with this status')
    .option('--kind <kind>', 'only operations of this kind (BOOT, STOP, ...)')
    .option('--resource <id>', 'only operations on this resource')
    .option('--first <n>', 'at most this many', '50')
    .option('--json', 'print JSON for scripts')
    .action(async (options: { failed?: boolean; status?: string; kind?: string; resource?: string; first: string; json?: boolean }) => {
      const client = await connect();
      const first = Number(options.first);
      if (!Number.isInteger(first) || first < 1) throw new ApiError(`--first must be a positive whole number, not ${options.first}`, 'BAD_USER_INPUT');
      let rows: OperationView[];
      if (options.failed) {
        ({ failedOperations: rows } = await client.request<{ failedOperations: OperationView[] }>(
          `query($first: Int) { failedOperations(first: $first) { ${OPERATION_FIELDS} } }`,
          { first },
        ));
      } else {
        const filter = {
          ...(options.status ? { status: options.status.toUpperCase() } : {}),
          ...(options.kind ? { kind: options.kind.toUpperCase() } : {}),
          ...(options.resource ? { resourceId: options.resource } : {}),
        };
        const { operations } = await client.request<{ operations: { edges: { node: OperationView }[] } }>(
          `query($first: Int, $filter: OperationFilter) { operations(first: $first, filter: $filter) { edges { node { ${OPERATION_FIELDS} } } } }`,
          { first, filter },
        );
        rows = operations.edges.map((e) => e.node);
      }
      printRows(rows, [
        { header: 'ID', cell: (o) => o.id },
        { header: 'KIND', cell: (o) => o.kind },
        { header: 'STATUS', cell: (o) => o.status },
        { header: 'RESOURCE', cell: (o) => o.resourceId },
        { header: 'CREATED', cell: (o) => o.createdAt },
        ...(options.failed || options.status?.toUpperCase() === 'FAILED'
          ? [
              { header: 'FAILED_STEP', cell: (o: OperationView) => failedStep(o) },
              { header: 'ERROR', cell: (o: OperationView) => (o.error ? `${o.error.code}: ${o.error.message}` : null) },
              { header: 'ATTEMPTS', cell: (o: OperationView) => o.attempts },
            ]
          : []),
      ], options);
    });

  operation
    .command('show <id>')
    .description('one operation with its steps')
    .option('--json', 'print JSON for scripts')
    .action(async (id: string, options: { json?: boolean }) => {
      const { operation: op } = await (await connect()).request<{ operation: OperationView | null }>(
        `query($id: ID!) { operation(id: $id) { ${OPERATION_FIELDS} } }`,
        { id },
      );
      if (!op) throw new ApiError(`operation ${id} not found (NOT_FOUND)`, 'NOT_FOUND');
      console.log(options.json ? JSON.stringify(op, null, 2) : showOperation(op));
    });

  operation
    .command('watch <id>')
    .description('follow an operation live until it ends; exits non-zero unless it succeeds')
    .option('--json', 'print the finished operation as JSON')
    .action(async (id: string, options: { json?: boolean }) => {
      const op = await followToTheEnd(await connect(), id, { quiet: options.json && !process.stderr.isTTY });
      console.log(options.json ? JSON.stringify(op, null, 2) : showOperation(op));
    });

  waitOptions(operation.command('retry <id>').description('run a FAILED operation again from its start (admin)')).action(
    async (id: string, options: WaitOptions) => {
      const client = await connect();
      await startAndFollow(client, { name: 'retryOperation', inputType: 'RetryOperationInput', input: { id } }, options, async (op) => ({ json: {}, text: showOperation(op) }));
    },
  );

  waitOptions(
    operation.command('reset <id>').description('reset a FAILED operation still held by STRATUS_FAILURE_HOLD to just before its failed step (admin)'),
  ).action(async (id: string, options: WaitOptions) => {
    const client = await connect();
    await startAndFollow(client, { name: 'resetOperation', inputType: 'ResetOperationInput', input: { id } }, options, async (op) => ({ json: {}, text: showOperation(op) }));
  });
}
