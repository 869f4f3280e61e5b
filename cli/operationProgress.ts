import { ApiError, type ApiClient } from './apiClient.js';

/** The operation's fields every command that shows or waits for one asks for. */
export const OPERATION_FIELDS = `id kind status resourceId projectId workflowId runId createdAt finishedAt attempts traceId
  error { code message } steps { name status startedAt finishedAt error { code message } }`;

export interface OperationView {
  id: string;
  kind: string;
  status: string;
  resourceId: string;
  projectId: string;
  workflowId: string;
  runId: string | null;
  createdAt: string;
  finishedAt: string | null;
  traceId?: string | null;
  attempts: number;
  error: { code: string; message: string } | null;
  steps: { name: string; status: string; startedAt: string | null; finishedAt: string | null; error: { code: string; message: string } | null }[];
}

export const isFinished = (op: OperationView) => op.status === 'SUCCEEDED' || op.status === 'FAILED' || op.status === 'CANCELED';

const seconds = (from: string | null, to: string | null) =>
  from ? `${((Date.parse(to ?? new Date().toISOString()) - Date.parse(from)) / 1000).toFixed(1)}s` : '';

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const MARK: Record<string, string> = { SUCCEEDED: '✓', FAILED: '✗', SKIPPED: '-' };

/**
 * The live view of an operation's steps. On a terminal it redraws in place (a spinner on the running
 * step, elapsed times ticking); into a pipe or a file it prints one line per step change, so a log of
 * a script's run reads in order without escape codes.
 */
export class ProgressDisplay {
  private op: OperationView | undefined;
  private drawn = 0;
  private frame = 0;
  private readonly printed = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {
    if (out.isTTY) this.timer = setInterval(() => this.redraw(), 100);
  }

  update(op: OperationView): void {
    this.op = op;
    if (this.out.isTTY) this.redraw();
    else this.printChanges(op);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.out.isTTY) this.redraw();
  }

  private redraw(): void {
    const op = this.op;
    if (!op) return;
    this.frame = (this.frame + 1) % SPINNER.length;
    const width = Math.max(8, ...op.steps.map((s) => s.name.length));
    const lines = [
      `${op.kind} ${op.id}  ${op.status}  ${seconds(op.createdAt, op.finishedAt)}`,
      ...op.steps.map((s) => {
        const mark = MARK[s.status] ?? SPINNER[this.frame];
        const error = s.error ? `  ${s.error.code}: ${s.error.message}` : '';
        return `  ${mark} ${s.name.padEnd(width)}  ${s.status.padEnd(9)}  ${seconds(s.startedAt, s.finishedAt)}${error}`;
      }),
    ];
    // Back to the first line of the previous drawing, then clear to the end of the screen.
    const up = this.drawn > 0 ? `\x1b[${this.drawn}F\x1b[J` : '';
    this.out.write(up + lines.join('\n') + '\n');
    this.drawn = lines.length;
  }

  private printChanges(op: OperationView): void {
    const say = (key: string, line: string) => {
      if (this.printed.get(key) === line) return;
      this.printed.set(key, line);
      this.out.write(line + '\n');
    };
    say('operation', `${op.kind} ${op.id} ${op.status}`);
    op.steps.forEach((s, i) => {
      const error = s.error ? ` ${s.error.code}: ${s.error.message}` : '';
      say(`step ${i}`, `  ${s.name} ${s.status}${s.finishedAt ? ` ${seconds(s.startedAt, s.finishedAt)}` : ''}${error}`);
    });
  }
}

async function fetchOperation(client: ApiClient, id: string): Promise<OperationView> {
  const { operation } = await client.request<{ operation: OperationView | null }>(`query($id: ID!) { operation(id: $id) { ${OPERATION_FIELDS} } }`, { id });
  if (!operation) throw new ApiError(`operation ${id} not found (NOT_FOUND)`, 'NOT_FOUND');
  return operation;
}

/**
 * Follows an operation until it ends. The `operationChanged` subscription only wakes the loop; the
 * operation is read by query each time, and also every second, so a change that landed before the
 * subscription was registered (or a dropped stream) can delay the display but never hang it.
 */
export async function waitForOperation(client: ApiClient, id: string, onUpdate: (op: OperationView) => void): Promise<OperationView> {
  const abort = new AbortController();
  let wake: (() => void) | undefined;
  const woken = () => new Promise<void>((resolve) => {
    wake = resolve;
    setTimeout(resolve, 1000).unref();
  });
  try {
    // A refused or broken subscription only costs promptness: the query below reports the real error.
    const sub = await client
      .subscribe(`subscription($id: ID!) { operationChanged(id: $id) { id } }`, { id }, () => wake?.(), abort.signal)
      .catch(() => undefined);
    void sub?.ended.catch(() => {});
    for (;;) {
      const op = await fetchOperation(client, id);
      onUpdate(op);
      if (isFinished(op)) return op;
      await woken();
    }
  } finally {
    abort.abort();
  }
}

/** The failing step, its code and message, and the trace id: what an operator needs to pick up a failure. */
export function failureReport(op: OperationView): string {
  const failed = op.steps.find((s) => s.status === 'FAILED');
  return [
    `operation ${op.id} (${op.kind}) ${op.status}`,
    `  failed step: ${failed?.name ?? '-'}`,
    `  error:       ${op.error ? `${op.error.code}: ${op.error.message}` : '-'}`,
    `  trace id:    ${op.traceId ?? '-'}`,
  ].join('\n');
}

/** Waits with the live display, and turns anything but SUCCEEDED into an error (a non-zero exit). */
export async function followToTheEnd(client: ApiClient, id: string, options: { quiet?: boolean } = {}): Promise<OperationView> {
  const display = options.quiet ? undefined : new ProgressDisplay();
  let op: OperationView;
  try {
    op = await waitForOperation(client, id, (o) => display?.update(o));
  } finally {
    display?.stop();
  }
  if (op.status !== 'SUCCEEDED') throw new ApiError(failureReport(op), op.error?.code ?? op.status);
  return op;
}
