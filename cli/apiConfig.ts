import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';

/** What `stratus login` keeps: where the API is and the bearer token to present. */
export const ApiConfig = z.object({
  url: z.string().url(),
  token: z.string().min(1),
});
export type ApiConfig = z.infer<typeof ApiConfig>;

/** `$STRATUS_CONFIG`, else `$XDG_CONFIG_HOME/stratus/config.json`, else `~/.config/stratus/config.json`. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STRATUS_CONFIG) return env.STRATUS_CONFIG;
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'stratus', 'config.json');
}

/** `http://host:4000`, `host:4000/` and `http://host:4000/graphql` all name the same endpoint. */
export function graphqlEndpoint(url: string): string {
  const withScheme = /^[a-z]+:\/\//i.test(url) ? url : `http://${url}`;
  const u = new URL(withScheme);
  if (!u.pathname.endsWith('/graphql')) u.pathname = `${u.pathname.replace(/\/+$/, '')}/graphql`;
  return u.toString();
}

/**
 * The API to talk to: STRATUS_API_URL and STRATUS_TOKEN win (scripts, CI), then the login file. Either
 * half may come from either place, so a script can switch tokens against a remembered URL.
 */
export function loadApiConfig(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  const path = configPath(env);
  let saved: Partial<ApiConfig> = {};
  if (existsSync(path)) {
    const parsed = ApiConfig.partial().safeParse(JSON.parse(readFileSync(path, 'utf8')));
    if (!parsed.success) throw new Error(`${path} is not a stratus login file; run stratus login again`);
    saved = parsed.data;
  }
  const url = env.STRATUS_API_URL || saved.url;
  const token = env.STRATUS_TOKEN || saved.token;
  if (!url || !token) throw new Error('not logged in: run `stratus login <api url> --token <token>` (or set STRATUS_API_URL and STRATUS_TOKEN)');
  return { url: graphqlEndpoint(url), token };
}

/** Written 0600 from the first byte (the token is a secret), and tightened if an older file was looser. */
export function saveApiConfig(config: ApiConfig, env: NodeJS.ProcessEnv = process.env): string {
  const path = configPath(env);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, JSON.stringify(ApiConfig.parse(config), null, 2) + '\n', { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}
