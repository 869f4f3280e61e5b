import { resolve, join } from 'node:path';
import { z } from 'zod';
import { DEFAULT_NETWORK_CIDR } from '../domain/networkIndex.js';
import { subnetIssues } from '../domain/networkInputs.js';

/** host:port, as Temporal's clients take it. */
const hostPort = z.string().regex(/^[^\s:]+:\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:7233');
const port = z.coerce.number().int().min(0).max(65535);
const nonEmpty = z.string().trim().min(1);

/** The environment a role reads; names as in plan/CONTRACT ("The embedded default's knobs"). */
const Env = z.object({
  DATABASE_URL: z.string().url().optional(),
  TEMPORAL_ADDRESS: hostPort.default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: nonEmpty.default('default'),
  STRATUS_TASK_QUEUE: nonEmpty.default('stratus'),
  STRATUS_PORT: port.default(4000),
  STRATUS_HOST: nonEmpty.default('127.0.0.1'),
  STRATUS_DATA_DIR: nonEmpty.default('./data'),
  STRATUS_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  STRATUS_SSH_KEY: nonEmpty.optional(),
  /** Seconds a failed run waits for resetOperation before it undoes its steps; 0: undo at once. */
  STRATUS_FAILURE_HOLD: z.coerce.number().int().min(0).max(7 * 24 * 3600).default(0),
  STRATUS_METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Host health: how often each host's agent is asked, how many misses make it DOWN, and Nova's evacuate. */
  STRATUS_HOST_HEALTH: z.enum(['on', 'off']).default('on'),
  STRATUS_HOST_HEALTH_INTERVAL_MS: z.coerce.number().int().min(50).default(10_000),
  STRATUS_HOST_HEALTH_MISSES: z.coerce.number().int().min(1).default(3),
  STRATUS_EVACUATE: z.enum(['true', 'false']).default('false'),
  /** The subnet of each project's `default` network, for default networks made from now on (a made one keeps its own). */
  STRATUS_DEFAULT_NETWORK_CIDR: z
    .string()
    .superRefine((cidr, ctx) => {
      for (const message of subnetIssues(cidr)) ctx.addIssue({ code: 'custom', message });
    })
    .default(DEFAULT_NETWORK_CIDR),
});

export const HostHealthConfig = z.object({
  intervalMs: z.number().int().min(50),
  missesToDown: z.number().int().min(1),
  /** Rebuild the instances of a host that turned DOWN on other hosts (off by default, as in Nova: it is the operator's call). */
  evacuate: z.boolean(),
});
export type HostHealthConfig = z.infer<typeof HostHealthConfig>;

export const RuntimeConfig = z.object({
  /** PostgreSQL URL; when absent the embedded PGlite at `pgliteDir` is used. */
  databaseUrl: z.string().optional(),
  pgliteDir: z.string().optional(),
  temporalAddress: z.string(),
  temporalNamespace: z.string(),
  taskQueue: z.string(),
  port: z.number().int(),
  host: z.string(),
  dataDir: z.string(),
  /** The bootstrap admin token; undefined until dev/roles resolve it (see adminToken.ts). */
  adminToken: z.string().optional(),
  /** The controller's SSH private key (OpenSSH); host agents authorize its public half. */
  sshKeyPath: z.string(),
  /** STRATUS_FAILURE_HOLD in milliseconds: passed to every workflow started (workflows/runbook.ts holdForOperator). */
  failureHoldMs: z.number().int().min(0).optional(),
  /** A token that may read GET /metrics and nothing else (a Prometheus scraper's); admin tokens may too. */
  metricsToken: z.string().optional(),
  /** Absent: hosts are not watched (tests that do not need it). */
  hostHealth: HostHealthConfig.optional(),
  /** STRATUS_DEFAULT_NETWORK_CIDR; absent: DEFAULT_NETWORK_CIDR (domain/networkIndex.ts). */
  defaultNetworkCidr: z.string().optional(),
});
export type RuntimeConfig = z.infer<typeof RuntimeConfig>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Reads the role's configuration from the environment. A bad variable fails here, at start, with
 * its name and what was wrong, instead of surfacing later as a confusing connection error.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): RuntimeConfig {
  const e = parseEnv(Env, env);
  const dataDir = resolve(e.STRATUS_DATA_DIR);
  return {
    ...(e.DATABASE_URL ? { databaseUrl: e.DATABASE_URL } : { pgliteDir: join(dataDir, 'pglite') }),
    temporalAddress: e.TEMPORAL_ADDRESS,
    temporalNamespace: e.TEMPORAL_NAMESPACE,
    taskQueue: e.STRATUS_TASK_QUEUE,
    port: e.STRATUS_PORT,
    host: e.STRATUS_HOST,
    dataDir,
    ...(e.STRATUS_ADMIN_TOKEN ? { adminToken: e.STRATUS_ADMIN_TOKEN } : {}),
    sshKeyPath: resolve(e.STRATUS_SSH_KEY ?? join(dataDir, 'controller_ed25519')),
    ...(e.STRATUS_FAILURE_HOLD ? { failureHoldMs: e.STRATUS_FAILURE_HOLD * 1000 } : {}),
    ...(e.STRATUS_METRICS_TOKEN ? { metricsToken: e.STRATUS_METRICS_TOKEN } : {}),
    ...(e.STRATUS_HOST_HEALTH === 'on'
      ? { hostHealth: { intervalMs: e.STRATUS_HOST_HEALTH_INTERVAL_MS, missesToDown: e.STRATUS_HOST_HEALTH_MISSES, evacuate: e.STRATUS_EVACUATE === 'true' } }
      : {}),
    defaultNetworkCidr: e.STRATUS_DEFAULT_NETWORK_CIDR,
  };
}

/** What only `stratus dev` reads, on top of loadConfig. */
const DevEnv = z.object({
  /** The embedded Temporal's gRPC port; taken -> another free one, said at start. */
  STRATUS_TEMPORAL_PORT: port.default(7233),
  /** The local host agent's driver: `qemu` where QEMU is installed, else the `sim` default. */
  STRATUS_HOST_DRIVER: z.enum(['sim', 'qemu']).default('sim'),
  /** The shared storage pool the local host agent keeps volumes in; `<data dir>/volumes` when unset. */
  STRATUS_STORAGE_POOL: nonEmpty.optional(),
});
export type DevSettings = { temporalPort: number; hostDriver: 'sim' | 'qemu'; embedTemporal: boolean; storagePool?: string };

export function loadDevSettings(env: NodeJS.ProcessEnv = process.env): DevSettings {
  const e = parseEnv(DevEnv, env);
  // An operator who names a Temporal server gets that one instead of the embedded dev server.
  return {
    temporalPort: e.STRATUS_TEMPORAL_PORT,
    hostDriver: e.STRATUS_HOST_DRIVER,
    embedTemporal: !env.TEMPORAL_ADDRESS,
    ...(e.STRATUS_STORAGE_POOL ? { storagePool: resolve(e.STRATUS_STORAGE_POOL) } : {}),
  };
}

function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((i) => {
    const name = String(i.path[0] ?? '?');
    const value = env[name];
    return `  ${name}${value === undefined ? '' : `=${JSON.stringify(name === 'STRATUS_ADMIN_TOKEN' ? '***' : value)}`}: ${i.message}`;
  });
  throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
}
