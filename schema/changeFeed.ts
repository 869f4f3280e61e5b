import { CHANGES_CHANNEL, type Change } from '../projections/index.js';
import type { Database } from '../eventstore/index.js';
import { componentLog } from '../server/log.js';

const log = componentLog('api.changes');

/**
 * The projections' NOTIFYs on `stratus_changes`, from whichever process runs them, fanned out to this
 * API process's subscriptions over one LISTEN. A subscriber filters (tenancy first) and loads the row.
 */
export class ChangeFeed {
  private readonly listeners = new Set<(change: Change) => void>();
  private unlisten: (() => Promise<void>) | undefined;

  static async start(db: Database): Promise<ChangeFeed> {
    const feed = new ChangeFeed();
    feed.unlisten = await db.listen(CHANGES_CHANNEL, (payload) => {
      let change: Change;
      try {
        change = JSON.parse(payload) as Change;
      } catch {
        log.warn({ payload }, 'ignored a malformed change notification');
        return;
      }
      for (const l of feed.listeners) l(change);
    });
    return feed;
  }

  /**
   * The changes that pass `accept`, each turned into a value by `load` (null: skip it), as an async
   * iterator that stops listening as soon as the client unsubscribes (`return`), even mid-wait.
   */
  follow<T>(accept: (change: Change) => boolean, load: (change: Change) => Promise<T | null>): AsyncIterableIterator<T> {
    const queue: Change[] = [];
    let waiting: ((change: Change | undefined) => void) | undefined;
    let done = false;
    const listener = (change: Change) => {
      if (done || !accept(change)) return;
      if (waiting) {
        const w = waiting;
        waiting = undefined;
        w(change);
      } else queue.push(change);
    };
    this.listeners.add(listener);
    const finish = (): IteratorResult<T> => {
      done = true;
      this.listeners.delete(listener);
      waiting?.(undefined);
      waiting = undefined;
      return { done: true, value: undefined };
    };
    const iterator: AsyncIterableIterator<T> = {
      [Symbol.asyncIterator]: () => iterator,
      async next() {
        while (!done) {
          const change = queue.shift() ?? (await new Promise<Change | undefined>((resolve) => (waiting = resolve)));
          if (change === undefined) break;
          const value = await load(change);
          if (value !== null && !done) return { done: false, value };
        }
        return { done: true, value: undefined };
      },
      async return() {
        return finish();
      },
      async throw(e?: unknown) {
        finish();
        throw e;
      },
    };
    return iterator;
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.unlisten?.();
  }
}
