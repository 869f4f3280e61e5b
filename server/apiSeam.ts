import type { Runtime } from './runtime.js';

/** F's server/api.ts, as the plan fixes it: `startApi(rt, { port, host })` -> `{ url, close() }`. */
export type StartApi = (rt: Runtime, options: { port: number; host?: string }) => Promise<{ url: string; close(): Promise<void> }>;

// A variable specifier keeps the type checker from requiring the module (as hostagent/drivers does):
// the API lands in its own commit, and the dev stack and roles must build before it does.
const apiModule = './api.js';

/** Loads startApi, or says plainly that this checkout has no API yet. */
export async function loadStartApi(): Promise<StartApi> {
  try {
    return ((await import(apiModule)) as { startApi: StartApi }).startApi;
  } catch (e) {
    throw new Error(`the GraphQL API (server/api.ts) cannot be loaded: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}
