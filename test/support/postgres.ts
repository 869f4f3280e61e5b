import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/**
 * A real PostgreSQL server for the tests. TEST_DATABASE_URL points at one that is already running (CI
 * starts the Debian cluster); otherwise a throwaway cluster is made with the installed server binaries
 * (initdb as the `postgres` user when running as root, which initdb refuses), listening on a unix socket
 * and loopback only, and removed afterwards.
 */
export interface PostgresServer {
  url: string;
  stop(): Promise<void>;
}

function findPgBin(): string | undefined {
  const candidates = [process.env.PG_BIN, '/usr/lib/postgresql'].filter(Boolean) as string[];
  for (const base of candidates) {
    if (existsSync(join(base, 'initdb'))) return base;
    if (!existsSync(base)) continue;
    const versions = readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) if (existsSync(join(base, v, 'bin', 'initdb'))) return join(base, v, 'bin');
  }
  return undefined;
}

function postgresUser(): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error('Running as root, the tests start PostgreSQL as the `postgres` user, which does not exist (apt-get install postgresql creates it).');
  }
}

/**
 * `durable`: fsync, full-page writes and synchronous commit on, as a production server runs, for
 * benchmarks whose figures must include the WAL flush. Tests run without them (nothing to keep).
 */
export async function startPostgres(options: { durable?: boolean } = {}): Promise<PostgresServer> {
  if (process.env.TEST_DATABASE_URL && !options.durable) return { url: process.env.TEST_DATABASE_URL, stop: async () => {} };
  const bin = findPgBin();
  if (!bin) {
    throw new Error(
      'The tests need a PostgreSQL server: set TEST_DATABASE_URL, or install the server binaries ' +
        '(Debian: apt-get install postgresql) so the tests can start a throwaway cluster.',
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'stratus-pg-'));
  chmodSync(dir, 0o777);
  // initdb refuses to run as root; as root, run the server binaries directly as the `postgres` user
  // (not through runuser, which does not pass SIGINT on, so the server would never stop).
  const owner = process.getuid?.() === 0 ? postgresUser() : undefined;
  if (owner) chownSync(dir, owner.uid, owner.gid);
  execFileSync(join(bin, 'initdb'), ['-D', join(dir, 'data'), '-U', 'postgres', '-A', 'trust', '--no-sync'], {
    stdio: 'pipe',
    ...owner,
  });
  const port = 20000 + Math.floor(Math.random() * 20000);
  const proc: ChildProcess = spawn(
    join(bin, 'postgres'),
    [
      '-D', join(dir, 'data'),
      '-k', dir,
      '-h', '127.0.0.1',
      '-p', String(port),
      ...(options.durable
        ? ['-c', 'fsync=on', '-c', 'synchronous_commit=on', '-c', 'full_page_writes=on']
        : ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']),
      '-c', 'max_connections=300',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], ...owner },
  );
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.end();
      break;
    } catch (e) {
      await client.end().catch(() => {});
      if (proc.exitCode !== null || Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`PostgreSQL did not start: ${(e as Error).message}\n${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    url,
    async stop() {
      // SIGINT is PostgreSQL's fast shutdown: it ends open sessions instead of waiting for them.
      const exited = new Promise((r) => (proc.exitCode !== null || proc.signalCode !== null ? r(null) : proc.once('exit', r)));
      proc.kill('SIGINT');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A fresh, empty database on the server, so test files never see each other's rows. */
export async function createDatabase(serverUrl: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return u.toString();
}
