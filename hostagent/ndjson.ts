import type { Writable } from 'node:stream';

/**
 * Newline-delimited JSON framing for the agent protocol, used by both ends.
 * Reading never buffers more than `maxBytes` of one line: the rest of an oversized line is skipped
 * up to its newline and reported once, so a bad peer cannot make us hold unbounded memory.
 */
export function lineReader(
  maxBytes: number,
  onLine: (line: string) => void,
  onOversized: (bytes: number) => void,
): (chunk: Buffer) => void {
  let parts: Buffer[] = [];
  let held = 0;
  let skipping = false;
  return (chunk) => {
    let start = 0;
    for (let nl = chunk.indexOf(0x0a, start); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      if (skipping) {
        skipping = false;
      } else {
        const piece = chunk.subarray(start, nl);
        if (held + piece.length > maxBytes) onOversized(held + piece.length);
        else {
          const line = held === 0 ? piece.toString('utf8') : Buffer.concat([...parts, piece]).toString('utf8');
          if (line.trim() !== '') onLine(line);
        }
      }
      parts = [];
      held = 0;
      start = nl + 1;
    }
    const tail = chunk.subarray(start);
    if (tail.length === 0) return;
    if (skipping) return;
    if (held + tail.length > maxBytes) {
      // Report as soon as we know, not when the newline finally comes; then drop the rest of the line.
      onOversized(held + tail.length);
      skipping = true;
      parts = [];
      held = 0;
      return;
    }
    // Copy: the stream may reuse the chunk's memory after we return.
    parts.push(Buffer.from(tail));
    held += tail.length;
  };
}

/**
 * Writes one JSON message per line, coalescing every message produced in the same turn of the event
 * loop into a single write: one SSH packet instead of one per response when many calls are in flight.
 */
export function lineWriter(stream: Writable): { send(message: unknown): void } {
  let queued: string[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const text = queued.join('');
    queued = [];
    if (!stream.writable) return;
    stream.write(text);
  };
  return {
    send(message) {
      queued.push(JSON.stringify(message) + '\n');
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
  };
}
