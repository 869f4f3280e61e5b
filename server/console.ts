import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { componentLog } from './log.js';

const log = componentLog('console');

/** The browser app's sources (its own Vite build) and where `npm install` (the `prepare` script) puts the build. */
export const consoleDir = fileURLToPath(new URL('../console/', import.meta.url));
export const consoleDist = join(consoleDir, 'dist');

const types: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
};

/**
 * Builds the console with Vite into a fresh directory and then renames it into place, so a server
 * never serves a half-written build and two processes building at once (two first starts) both end
 * with one whole build, whichever rename wins.
 */
export async function buildConsole(options: { into?: string; replace?: boolean } = {}): Promise<void> {
  const { build } = await import('vite');
  const into = options.into ?? consoleDist;
  const outDir = await mkdtemp(join(dirname(into), '.dist-'));
  try {
    await build({ configFile: join(consoleDir, 'vite.config.ts'), build: { outDir, emptyOutDir: true }, logLevel: 'warn' });
    if (options.replace && existsSync(into)) {
      const old = `${outDir}-old`;
      await rename(into, old).catch(() => {});
      await rm(old, { recursive: true, force: true });
    }
    await rename(outDir, into).catch((e: NodeJS.ErrnoException) => {
      // Another process put its build there first (ENOTEMPTY/EEXIST): that one is whole too.
      if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e;
    });
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
}

interface Asset {
  body: Buffer;
  gzip: Buffer;
  type: string;
  immutable: boolean;
}

function loadAssets(dist: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  const add = (urlPath: string, file: string, immutable: boolean) => {
    const body = readFileSync(file);
    assets.set(urlPath, { body, gzip: gzipSync(body), type: types[extname(file)] ?? 'application/octet-stream', immutable });
  };
  add('/', join(dist, 'index.html'), false);
  for (const entry of readdirSync(dist, { withFileTypes: true })) {
    if (entry.isFile() && entry.name !== 'index.html') add(`/${entry.name}`, join(dist, entry.name), false);
  }
  const assetDir = join(dist, 'assets');
  if (existsSync(assetDir)) for (const name of readdirSync(assetDir)) add(`/assets/${name}`, join(assetDir, name), true);
  return assets;
}

/** Answers a request for the console, or returns false so the request goes on to GraphQL. */
export type ConsoleHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

/**
 * The web console at `/`, from console/dist held in memory (it is small). A missing build (a checkout
 * without `npm install`) is built here once, with a message saying so; if that fails the API still
 * starts and `/` says how to build the console.
 */
export async function consoleSite(dist = consoleDist): Promise<ConsoleHandler> {
  if (!existsSync(join(dist, 'index.html'))) {
    log.warn({ dir: dist }, 'the web console is not built yet (npm install builds it): building it now with Vite, once');
    try {
      await buildConsole({ into: dist });
    } catch (err) {
      log.error({ err }, 'could not build the web console; run `npm run build:console`');
      return (req, res) => {
        if (req.method !== 'GET' || (req.url ?? '/').split('?')[0] !== '/') return false;
        res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('The web console is not built: run `npm run build:console` and restart. GraphiQL is at /graphql.\n');
        return true;
      };
    }
  }
  const assets = loadAssets(dist);
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const path = (req.url ?? '/').split('?')[0]!;
    const asset = assets.get(path === '/index.html' ? '/' : path);
    if (!asset) return false;
    const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    const body = gzip ? asset.gzip : asset.body;
    res.writeHead(200, {
      'content-type': asset.type,
      'content-length': body.length,
      // Hashed asset names change with their content; index.html is asked for afresh so it names the new ones.
      'cache-control': asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      'x-content-type-options': 'nosniff',
      vary: 'accept-encoding',
      ...(gzip ? { 'content-encoding': 'gzip' } : {}),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  };
}
