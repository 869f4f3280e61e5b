import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The pinned Temporal CLI. Later tags carry a `replace` directive that `go install` refuses. */
export const TEMPORAL_CLI_VERSION = '1.5.1';
const GO_MODULE = `github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}`;

export const cacheDir = () =>
  join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'stratus', `temporal-cli-v${TEMPORAL_CLI_VERSION}`);

const which = (name: string): string | undefined =>
  (process.env.PATH ?? '')
    .split(delimiter)
    .filter(Boolean)
    .map((dir) => join(dir, name))
    .find((p) => existsSync(p));

/** Reads `temporal --version` ("temporal version 1.5.1 (Server 1.29.1, UI 2.41.0)"). */
export async function cliVersion(path: string): Promise<string> {
  const { stdout } = await run(path, ['--version'], { timeout: 30_000 });
  const m = /temporal version (\S+)/.exec(stdout);
  if (!m?.[1]) throw new Error(`${path} --version printed "${stdout.trim()}", not a Temporal CLI version`);
  return m[1];
}

export interface TemporalCliFound {
  path: string;
  version: string;
  source: 'env' | 'path' | 'cache' | 'go-install' | 'download';
}

type Log = (msg: string) => void;

/**
 * Yields a path to the `temporal` CLI, in this order: STRATUS_TEMPORAL_CLI, `temporal` on PATH, the
 * cache under the user's cache directory, a `go install` of the pinned version into that cache, a
 * download by @temporalio/testing where the network allows it. Otherwise it fails saying what to install.
 * A CLI found elsewhere than the env variable must be the pinned version; the env variable is the
 * operator's explicit choice, so a different version there is only reported.
 */
export async function findTemporalCli(say: Log = () => {}): Promise<TemporalCliFound> {
  const fromEnv = process.env.STRATUS_TEMPORAL_CLI;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`STRATUS_TEMPORAL_CLI=${fromEnv} does not exist`);
    const version = await cliVersion(fromEnv);
    if (version !== TEMPORAL_CLI_VERSION) say(`using STRATUS_TEMPORAL_CLI ${fromEnv} at version ${version} (pinned: ${TEMPORAL_CLI_VERSION})`);
    return { path: fromEnv, version, source: 'env' };
  }
  const onPath = which('temporal');
  if (onPath) {
    const version = await cliVersion(onPath).catch(() => undefined);
    if (version === TEMPORAL_CLI_VERSION) return { path: onPath, version, source: 'path' };
    say(`ignoring ${onPath}: version ${version ?? 'unknown'}, Stratus pins ${TEMPORAL_CLI_VERSION}`);
  }
  const cached = join(cacheDir(), 'temporal');
  if (existsSync(cached)) {
    const version = await cliVersion(cached).catch(() => undefined);
    if (version === TEMPORAL_CLI_VERSION) return { path: cached, version, source: 'cache' };
  }
  const problems: string[] = [];
  const go = which('go') ?? (existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined);
  if (go) {
    say(`building the Temporal CLI ${TEMPORAL_CLI_VERSION} with go install (a few minutes, once) into ${cacheDir()}`);
    mkdirSync(cacheDir(), { recursive: true });
    try {
      // A source build reports 0.0.0-DEV unless the version is stamped in, as the release build does.
      await run(go, ['install', `-ldflags=-X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION}`, GO_MODULE], {
        env: { ...process.env, GOBIN: cacheDir(), CGO_ENABLED: process.env.CGO_ENABLED ?? '0' },
        timeout: 30 * 60_000,
        maxBuffer: 64 * 1024 * 1024,
      });
      const version = await cliVersion(cached);
      return { path: cached, version, source: 'go-install' };
    } catch (e) {
      problems.push(`go install ${GO_MODULE} failed: ${(e as Error).message.split('\n').slice(0, 5).join(' ')}`);
    }
  } else {
    problems.push('Go is not installed, so the CLI cannot be built from source');
  }
  try {
    return await downloadWithSdk(say);
  } catch (e) {
    problems.push(`download by @temporalio/testing failed: ${(e as Error).message.split('\n')[0]}`);
  }
  throw new Error(
    [
      `Stratus needs the Temporal CLI ${TEMPORAL_CLI_VERSION} and could not find or build it:`,
      ...problems.map((p) => `  - ${p}`),
      'Install one of:',
      `  - Go 1.22 or later (https://go.dev/dl/), then: GOBIN=${cacheDir()} go install ${GO_MODULE}`,
      `  - the temporal CLI ${TEMPORAL_CLI_VERSION} on PATH, or set STRATUS_TEMPORAL_CLI=/path/to/temporal`,
    ].join('\n'),
  );
}

/**
 * Last resort: the SDK downloads the CLI from Temporal's CDN the first time a local test server starts.
 * Starting one briefly leaves the binary in the download directory, where the cache finds it next time.
 */
async function downloadWithSdk(say: Log): Promise<TemporalCliFound> {
  const downloadDir = join(cacheDir(), 'download');
  say(`downloading the Temporal CLI ${TEMPORAL_CLI_VERSION} through @temporalio/testing into ${downloadDir}`);
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'cached-download', downloadDir, version: `v${TEMPORAL_CLI_VERSION}` } },
  });
  await env.teardown();
  const { readdirSync } = await import('node:fs');
  const found = readdirSync(downloadDir, { recursive: true, encoding: 'utf8' })
    .map((f) => join(downloadDir, f))
    .find((f) => /(^|\/)temporal[^/]*$/.test(f) && !f.endsWith('.tar.gz') && !f.endsWith('.zip'));
  if (!found) throw new Error(`no temporal binary appeared in ${downloadDir}`);
  return { path: found, version: await cliVersion(found), source: 'download' };
}
