import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { AgentError } from './driver.js';
import { WireError } from './protocol.js';
import { componentLog } from '../server/log.js';

const log = componentLog('hostagent.idempotency');

export const Outcome = z.union([z.object({ result: z.unknown() }), z.object({ error: WireError })]);
export type Outcome = z.infer<typeof Outcome>;

const Entry = z.object({ key: z.string(), request: z.string(), outcome: Outcome, at: z.number() });
type Entry = z.infer<typeof Entry>;

/** What a key is bound to: the method and a hash of its parsed params. Same key, other request: refused. */
export function requestFingerprint(method: string, params: unknown): string {
  return `${method}:${createHash('sha256').update(JSON.stringify(params ?? null)).digest('base64url')}`;
}

/**
 * Outcomes of mutating calls by idempotency key, kept across agent restarts in an append-only JSONL
 * journal that is fsynced before the response leaves. Only final outcomes are kept: a result or a
 * non-retryable error. A retryable error or a cancellation is not an outcome; trying again may work.
 * A repeat that arrives while the first call still runs waits for it instead of running twice.
 */
export class IdempotencyJournal {
  private readonly done = new Map<string, Entry>();
  private readonly running = new Map<string, { request: string; outcome: Promise<Outcome> }>();
  private file: FileHandle | undefined;
  private queue: Array<{ line: string; resolve: () => void; reject: (e: unknown) => void }> = [];
  private flushing = false;
  private appendedSinceCompaction = 0;

  private constructor(
    private readonly path: string,
    private readonly retentionMs: number,
    private readonly maxEntries: number,
  ) {}

  static async open(stateDir: string, opts: { retentionMs?: number; maxEntries?: number } = {}) {
    await mkdir(stateDir, { recursive: true });
    const journal = new IdempotencyJournal(
      join(stateDir, 'idempotency.jsonl'),
      opts.retentionMs ?? 24 * 3600_000,
      opts.maxEntries ?? 100_000,
    );
    await journal.load();
    return journal;
  }

  private async load() {
    let text = '';
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    let lines = 0;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      lines++;
      // A kill mid-append leaves a torn last line; its call never answered, so it is rightly forgotten.
      const parsed = Entry.safeParse(safeJson(line));
      if (parsed.success) this.remember(parsed.data);
    }
    this.expire();
    if (lines > this.done.size) await this.compact();
    this.file = await open(this.path, 'a');
  }

  /** Runs `call` once per key; returns the first outcome to every repeat, before and after restarts. */
  async run(key: string, request: string, call: () => Promise<Outcome>): Promise<Outcome> {
    const seen = this.done.get(key) ?? this.running.get(key);
    if (seen) {
      if (seen.request !== request) {
        throw new AgentError('BAD_REQUEST', `idempotency key ${key} was already used for a different request`);
      }
      return seen.outcome;
    }
    const outcome = call().then(async (o) => {
      if (isFinal(o)) {
        const entry: Entry = { key, request, outcome: o, at: Date.now() };
        await this.append(entry);
        this.remember(entry);
      }
      return o;
    });
    this.running.set(key, { request, outcome });
    try {
      return await outcome;
    } finally {
      this.running.delete(key);
    }
  }

  async close() {
    await this.file?.close();
    this.file = undefined;
  }

  private remember(entry: Entry) {
    this.done.delete(entry.key);
    this.done.set(entry.key, entry);
    // Map order is insertion order: the first entries are the oldest.
    while (this.done.size > this.maxEntries) this.done.delete(this.done.keys().next().value!);
  }

  private expire() {
    const cutoff = Date.now() - this.retentionMs;
    for (const [k, e] of this.done) if (e.at < cutoff) this.done.delete(k);
  }

  /** Group commit: every entry queued while an fsync runs goes out in the next single write + fsync. */
  private append(entry: Entry): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ line: JSON.stringify(entry) + '\n', resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush() {
    this.flushing = true;
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        if (!this.file) throw new AgentError('UNAVAILABLE', 'the idempotency journal is closed');
        await this.file.write(batch.map((b) => b.line).join(''));
        await this.file.datasync();
        batch.forEach((b) => b.resolve());
      } catch (e) {
        log.error({ err: e }, 'idempotency journal append failed');
        batch.forEach((b) => b.reject(e));
      }
      this.appendedSinceCompaction += batch.length;
    }
    if (this.appendedSinceCompaction > this.maxEntries) {
      this.expire();
      await this.compact().catch((e) => log.error({ err: e }, 'idempotency journal compaction failed'));
    }
    this.flushing = false;
  }

  /** Rewrites the journal with only the entries still kept (temp file + rename, so a kill loses nothing). */
  private async compact() {
    const tmp = `${this.path}.${process.pid}.tmp`;
    const text = [...this.done.values()].map((e) => JSON.stringify(e) + '\n').join('');
    const f = await open(tmp, 'w');
    try {
      await f.write(text);
      await f.datasync();
    } finally {
      await f.close();
    }
    await rename(tmp, this.path);
    const reopen = this.file !== undefined;
    if (reopen) {
      await this.file!.close();
      this.file = await open(this.path, 'a');
    }
    this.appendedSinceCompaction = 0;
  }
}

function isFinal(o: Outcome): boolean {
  if ('result' in o) return true;
  return !o.error.retryable && o.error.code !== 'CANCELLED';
}

function safeJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}
