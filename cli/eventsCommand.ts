import type { Command } from 'commander';
import { ApiError, connect } from './apiClient.js';
import { renderTable } from './tables.js';

interface EventView { id: string; streamId: string; version: number; position: string; type: string; data: unknown; metadata: unknown; recordedAt: string }

const EVENT_FIELDS = 'id streamId version position type data metadata recordedAt';
const line = (e: EventView) => `${e.position}  ${e.recordedAt}  ${e.streamId}  ${e.type}`;

/** `stratus events --stream <id>` (a stream's log) and `stratus events --follow [--prefix p]` (live, over SSE). */
export function register(program: Command) {
  program
    .command('events')
    .description("the event log: one stream's events, or every new event as it is appended")
    .option('--stream <streamId>', 'the stream to read (e.g. instance-<id>)')
    .option('--follow', 'keep printing events as they are appended (Ctrl-C stops)')
    .option('--prefix <streamPrefix>', 'with --follow: only streams starting with this')
    .option('--json', 'one JSON object per line, for scripts')
    .action(async (options: { stream?: string; follow?: boolean; prefix?: string; json?: boolean }) => {
      const client = await connect();
      if (options.follow) {
        const abort = new AbortController();
        process.once('SIGINT', () => abort.abort());
        process.once('SIGTERM', () => abort.abort());
        const { ended } = await client.subscribe<{ events: EventView }>(
          `subscription($prefix: String) { events(streamPrefix: $prefix) { ${EVENT_FIELDS} } }`,
          { prefix: options.prefix ?? options.stream ?? null },
          ({ events: e }) => console.log(options.json ? JSON.stringify(e) : line(e)),
          abort.signal,
        );
        // On stderr even with --json: a script may wait for it to know nothing appended from now is missed.
        console.error('following events (Ctrl-C stops)');
        await ended;
        return;
      }
      if (!options.stream) throw new ApiError('name a stream with --stream <streamId>, or use --follow', 'BAD_USER_INPUT');
      const { events } = await client.request<{ events: EventView[] }>(
        `query($streamId: String!) { events(streamId: $streamId, first: 1000) { ${EVENT_FIELDS} } }`,
        { streamId: options.stream },
      );
      if (options.json) for (const e of events) console.log(JSON.stringify(e));
      else if (events.length === 0) console.log('(none)');
      else console.log(renderTable(events, [
        { header: 'POSITION', cell: (e) => e.position },
        { header: 'RECORDED', cell: (e) => e.recordedAt },
        { header: 'VERSION', cell: (e) => e.version },
        { header: 'TYPE', cell: (e) => e.type },
      ]));
    });
}
