import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { componentLog } from '../server/log.js';

const log = componentLog('database');

/** Something SQL can be sent to: the database itself (autocommit) or one open transaction. */
export interface Queryable {
  /** One statement with `$n` parameters; returns its rows. */
  query<Row = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<Row[]>;
  /** A script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

/**
 * The controller's one connection pool. PostgreSQL in production and CI, PGlite (in-process) as the
 * embedded default; both speak the same dialect, so everything above this file is written once.
 */
export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /**
   * Runs `fn` in one transaction on one connection: commits when it resolves, rolls back when it
   * throws. A projection writes its rows and its checkpoint through the same `tx`, so both or neither
   * are stored (DESIGN.md invariant 6).
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Calls `onNotify` for each NOTIFY on `channel`; resolves to an unsubscribe function. */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  notify(channel: string, payload: string): Promise<void>;
  close(): Promise<void>;
}

export type DatabaseTarget = { url: string; maxConnections?: number } | { pgliteDir?: string };

/** `{ url }` connects to a PostgreSQL server; `{ pgliteDir }` opens PGlite there (in memory without one). */
export async function openDatabase(target: DatabaseTarget): Promise<Database> {
  return 'url' in target ? openPostgres(target.url, target.maxConnections ?? 10) : openPglite(target.pgliteDir);
}

async function openPostgres(url: string, max: number): Promise<Database> {
  const pool = new pg.Pool({ connectionString: url, max });
  // An idle client that errors (server restart) must not crash the process; the pool replaces it.
  pool.on('error', (e) => log.warn({ error: e.message }, 'idle PostgreSQL connection failed'));
  const onClient = (client: pg.ClientBase): Queryable => ({
    query: async <Row>(sql: string, params?: unknown[]) => (await client.query(sql, params)).rows as Row[],
    exec: async (sql) => {
      await client.query(sql);
    },
  });
  const listener = postgresListener(url);
  return {
    kind: 'postgres',
    query: async <Row>(sql: string, params?: unknown[]) => (await pool.query(sql, params)).rows as Row[],
    exec: async (sql) => {
      await pool.query(sql);
    },
    async transaction(fn) {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        const result = await fn(onClient(client));
        await client.query('COMMIT');
        return result;
      } catch (e) {
        await client.query('ROLLBACK').catch((rollbackError: Error) => (broken = rollbackError));
        throw e;
      } finally {
        // A connection whose ROLLBACK failed is in an unknown state: destroy it rather than reuse it.
        client.release(broken);
      }
    },
    listen: listener.listen,
    notify: async (channel, payload) => {
      // A NOTIFY gives its transaction an xid, so its commit waits for a WAL flush like any write. A
      // wake-up lost in a crash is harmless (subscribers poll), so this one commit does not wait.
      await pool.query("SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)", [channel, payload]);
    },
    async close() {
      await listener.close();
      await pool.end();
    },
  };
}

/**
 * LISTEN needs a connection of its own that stays open (a pooled one would be handed to someone else),
 * so all listeners of one Database share one dedicated client. If it drops, it reconnects and listens
 * again; notifications sent meanwhile are lost, which is why subscribers also poll slowly.
 */
function postgresListener(url: string) {
  const handlers = new Map<string, Set<(payload: string) => void>>();
  let client: Promise<pg.Client> | undefined;
  let closed = false;

  const connect = (): Promise<pg.Client> => {
    const c = new pg.Client({ connectionString: url });
    c.on('notification', (n) => {
      for (const h of handlers.get(n.channel) ?? []) h(n.payload ?? '');
    });
    c.on('error', (e) => {
      log.warn({ error: e.message }, 'LISTEN connection failed; reconnecting');
      client = undefined;
      c.end().catch(() => {});
      if (!closed && handlers.size > 0) setTimeout(() => void ensure().catch(() => {}), 1000);
    });
    return c.connect().then(async () => {
      for (const channel of handlers.keys()) await c.query(`LISTEN ${quoteIdent(channel)}`);
      return c;
    });
  };
  const ensure = () => {
    client ??= connect().catch((e: unknown) => {
      client = undefined;
      throw e;
    });
    return client;
  };

  return {
    async listen(channel: string, onNotify: (payload: string) => void) {
      let set = handlers.get(channel);
      const first = !set;
      if (!set) handlers.set(channel, (set = new Set()));
      set.add(onNotify);
      const c = await ensure();
      // A fresh connection already listened to every channel in `handlers`, this one included.
      if (first) await c.query(`LISTEN ${quoteIdent(channel)}`);
      return async () => {
        set.delete(onNotify);
        if (set.size > 0 || handlers.get(channel) !== set) return;
        handlers.delete(channel);
        const current = await client?.catch(() => undefined);
        await current?.query(`UNLISTEN ${quoteIdent(channel)}`).catch(() => {});
      };
    },
    async close() {
      closed = true;
      handlers.clear();
      const current = await client?.catch(() => undefined);
      client = undefined;
      await current?.end().catch(() => {});
    },
  };
}

async function openPglite(dataDir: string | undefined): Promise<Database> {
  const db = await PGlite.create(dataDir);
  // PGlite is one connection: its own mutex already queues a query behind a running transaction, so
  // "the pool" is that single connection and transactions are serialised by PGlite itself.
  const on = (q: Pick<PGlite, 'query' | 'exec'>): Queryable => ({
    query: async <Row>(sql: string, params?: unknown[]) => (await q.query<Row>(sql, params)).rows,
    exec: async (sql) => {
      await q.exec(sql);
    },
  });
  return {
    kind: 'pglite',
    ...on(db),
    transaction: (fn) => db.transaction((tx) => fn(on(tx))),
    async listen(channel, onNotify) {
      const unlisten = await db.listen(channel, onNotify);
      return async () => {
        if (!db.closed) await unlisten();
      };
    },
    notify: async (channel, payload) => {
      await db.query('SELECT pg_notify($1, $2)', [channel, payload]);
    },
    close: () => db.close(),
  };
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
