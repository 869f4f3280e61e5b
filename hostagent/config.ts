import { join } from 'node:path';
import { z } from 'zod';

const HostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'listen is host:port (port 0 picks a free one)')
  .transform((s) => {
    const at = s.lastIndexOf(':');
    return { host: s.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(s.slice(at + 1)) };
  })
  .refine((a) => a.port <= 65535, 'port is at most 65535');

const DriverOption = z.string().regex(/^[A-Za-z][\w.-]*=/, 'a driver option is key=value');

/** The agent's configuration: CLI flags win over STRATUS_AGENT_* environment variables, then defaults. */
export const AgentConfig = z
  .object({
    listen: HostPort.default({ host: '127.0.0.1', port: 2222 }),
    stateDir: z.string().min(1).default('./data/hostagent'),
    driver: z.string().min(1).default('sim'),
    /** Defaults to `<stateDir>/authorized_keys`. */
    authorizedKeys: z.string().min(1).optional(),
    driverOptions: z.array(DriverOption).default([]),
  })
  .transform((c) => ({
    ...c,
    authorizedKeys: c.authorizedKeys ?? join(c.stateDir, 'authorized_keys'),
    driverOptions: Object.fromEntries(
      c.driverOptions.map((o) => [o.slice(0, o.indexOf('=')), o.slice(o.indexOf('=') + 1)] as const),
    ) as Record<string, string>,
  }));
export type AgentConfig = z.output<typeof AgentConfig>;

export interface AgentFlags {
  listen?: string;
  stateDir?: string;
  driver?: string;
  authorizedKeys?: string;
  driverOption?: string[];
}

/** Env: STRATUS_AGENT_LISTEN, _STATE_DIR, _DRIVER, _AUTHORIZED_KEYS, _DRIVER_OPTIONS (comma-separated k=v). */
export function loadAgentConfig(flags: AgentFlags, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const envOptions = env.STRATUS_AGENT_DRIVER_OPTIONS?.split(',').map((s) => s.trim()).filter(Boolean) ?? [];
  return AgentConfig.parse({
    listen: flags.listen ?? env.STRATUS_AGENT_LISTEN,
    stateDir: flags.stateDir ?? env.STRATUS_AGENT_STATE_DIR,
    driver: flags.driver ?? env.STRATUS_AGENT_DRIVER,
    authorizedKeys: flags.authorizedKeys ?? env.STRATUS_AGENT_AUTHORIZED_KEYS,
    // Flags are appended after env, so a flag's key=value overrides the same key from env.
    driverOptions: [...envOptions, ...(flags.driverOption ?? [])],
  });
}
