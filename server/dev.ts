import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { flavorIdFor, defaultFlavors } from '../domain/catalog.js';
import { StratusError } from '../domain/errors.js';
import * as commands from '../schema/commands/index.js';
import { keepHostsWatched } from '../schema/commands/hostHealth.js';
import { startProjections } from '../projections/index.js';
import { bootstrapAdminCaller, loadOrCreateAdminToken } from './adminToken.js';
import { startApi } from './api.js';
import { loadConfig, loadDevSettings, type RuntimeConfig } from './config.js';
import { loadOrCreateControllerKey } from './controllerKey.js';
import { startLocalHostAgent } from './localHostAgent.js';
import { componentLog } from './log.js';
import { claimDataDir } from './dataDirLock.js';
import { createRuntime, type Runtime } from './runtime.js';
import { startTemporalDevServer } from './temporalDevServer.js';
import { routeTemporalLogs } from './temporalLogs.js';
import { startWorker } from './worker.js';
import { ensureMeteringClock, keepMeterPollers } from './meteringClock.js';

const log = componentLog('dev');

/** The image every fresh dev stack has, so the first boot needs nothing registered by hand. */
const FIRST_IMAGE = { name: 'cirros-0.6', format: 'qcow2', sizeBytes: 21_430_272 } as const;

/** Things to stop, newest first. */
type Stopper = { name: string; stop: () => Promise<unknown> };

export interface DevStack {
  url: string;
  adminToken: string;
  stop(): Promise<void>;
}

/**
 * `npm start`: the whole controller on one machine. Temporal's dev server and the local host agent
 * are child processes in their own process groups (a terminal's Ctrl-C reaches only this process,
 * which then stops everything in reverse order: API, projections, worker, runtime, agent, Temporal).
 * TEMPORAL_ADDRESS or DATABASE_URL, when set, replace the embedded Temporal or PGlite.
 */
export async function startDev(env: NodeJS.ProcessEnv = process.env, say: (line: string) => void = console.log): Promise<DevStack> {
  const base = loadConfig(env);
  routeTemporalLogs();
  const dev = loadDevSettings(env);
  const stoppers: Stopper[] = [];
  const stopAll = async () => {
    for (const s of stoppers.splice(0).reverse()) {
      await s.stop().catch((e: unknown) => log.error({ err: e }, `stopping ${s.name} failed`));
    }
  };
  try {
    mkdirSync(base.dataDir, { recursive: true });
    const release = claimDataDir(base.dataDir);
    stoppers.push({ name: 'data dir claim', stop: async () => release() });
    const admin = loadOrCreateAdminToken(base.dataDir, base.adminToken);
    const key = loadOrCreateControllerKey(base.sshKeyPath);

    // Temporal and the agent start side by side (each takes a second or two); both are stopped if either fails.
    const [temporal, agent] = await Promise.allSettled([
      dev.embedTemporal ? startTemporalDevServer({ dataDir: base.dataDir, port: dev.temporalPort, say: (m) => log.warn(m) }) : undefined,
      startLocalHostAgent({
        stateDir: join(base.dataDir, 'hostagent'),
        controllerPublicKey: key.publicKey,
        driver: dev.hostDriver,
        driverOptions: { storagePool: dev.storagePool ?? join(base.dataDir, 'volumes') },
      }),
    ]);
    if (temporal.status === 'fulfilled' && temporal.value) stoppers.push({ name: 'Temporal dev server', stop: temporal.value.stop });
    if (agent.status === 'fulfilled') stoppers.push({ name: 'local host agent', stop: agent.value.stop });
    if (temporal.status === 'rejected') throw temporal.reason;
    if (agent.status === 'rejected') throw agent.reason;
    const temporalAddress = temporal.value?.address ?? base.temporalAddress;
    const temporalUi = temporal.value?.uiUrl;

    const config: RuntimeConfig = { ...base, temporalAddress, adminToken: admin.token };
    const rt = await createRuntime(config);
    stoppers.push({ name: 'runtime', stop: () => rt.close() });

    const worker = await startWorker(rt, { taskQueue: config.taskQueue });
    stoppers.push({ name: 'worker', stop: () => worker.stop() });
    const projections = await startProjections(rt);
    stoppers.push({ name: 'projections', stop: () => projections.stop() });
    const healthChecks = await keepHostsWatched(rt);
    stoppers.push({ name: 'host health checks', stop: healthChecks });
    await ensureMeteringClock(rt);
    const pollsters = await keepMeterPollers(rt);
    stoppers.push({ name: 'meter pollsters', stop: pollsters });

    const seeded = await seedFirstStart(rt, agent.value);
    const api = await startApi(rt, { port: config.port, host: config.host });
    stoppers.push({ name: 'API', stop: () => api.close() });

    say(banner({ url: api.url, dataDir: config.dataDir, temporalAddress, temporalUi, agent: agent.value, admin, ...seeded }));
    return { url: api.url, adminToken: admin.token, stop: stopAll };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

/**
 * First start (no host with the local agent's key yet): register the local host, the default flavors
 * and one image, as the bootstrap admin through the same commands the API uses. Each step checks the
 * event log first, so a start that died half-way finishes the job on the next start and a second start
 * changes nothing.
 */
async function seedFirstStart(rt: Runtime, agent: { host: string; port: number; fingerprint: string; driver: string }) {
  const caller = bootstrapAdminCaller;
  const hostEvents = await rt.store.readAll({ streamPrefix: 'host-', limit: 10_000 });
  const registered = hostEvents.find((e) => e.type === 'HostRegistered' && e.data.hostKeyFingerprint === agent.fingerprint);
  if (!registered) {
    await commands.registerHost(rt, caller, { name: 'local', address: agent.host, port: agent.port, hostKeyFingerprint: agent.fingerprint });
    log.info({ port: agent.port }, 'registered the local host');
  }
  for (const flavor of defaultFlavors) {
    if ((await rt.store.readStream(`flavor-${flavor.id}`, { limit: 1 })).length > 0) continue;
    await ignoreConflict(commands.createFlavor(rt, caller, { name: flavor.name, vcpus: flavor.vcpus, memoryMb: flavor.memoryMb, diskGb: flavor.diskGb }));
  }
  const imageEvents = await rt.store.readAll({ streamPrefix: 'image-', limit: 10_000 });
  const image = imageEvents.flatMap((e) => (e.type === 'ImageRegistered' && e.data.name === FIRST_IMAGE.name ? [e.data] : []))[0];
  const imageId = image?.id ?? (await commands.registerImage(rt, caller, { ...FIRST_IMAGE })).image.id;
  return { firstStart: !registered, flavorId: flavorIdFor('m1.tiny'), imageId };
}

async function ignoreConflict<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof StratusError && e.code === 'CONFLICT') return undefined;
    throw e;
  }
}

function banner(b: {
  url: string;
  dataDir: string;
  temporalAddress: string;
  temporalUi: string | undefined;
  agent: { host: string; port: number; fingerprint: string; driver: string };
  admin: { token: string; generated: boolean };
  firstStart: boolean;
  flavorId: string;
  imageId: string;
}): string {
  // startApi may answer with its base URL or the endpoint itself; the banner always names the endpoint.
  const endpoint = `${b.url.replace(/\/+$/, '').replace(/\/graphql$/, '')}/graphql`;
  const mutation = `mutation { bootInstance(input: {name: "first", flavorId: "${b.flavorId}", imageId: "${b.imageId}"}) { operation { id status } instance { id state } } }`;
  const body = JSON.stringify({ query: mutation });
  return [
    '',
    `Stratus is running (${b.firstStart ? 'first start: local host, flavors m1.tiny..m1.xlarge and image cirros-0.6 registered' : 'data kept from the last start'}).`,
    `  GraphQL API and GraphiQL  ${endpoint}`,
    `  web console               ${endpoint.replace(/graphql$/, '')}`,
    `  Temporal                  ${b.temporalAddress}${b.temporalUi ? ` (Web UI ${b.temporalUi})` : ''}`,
    `  local host agent          ${b.agent.driver} driver at ${b.agent.host}:${b.agent.port} (${b.agent.fingerprint})`,
    `  data                      ${b.dataDir}`,
    `  admin token               ${b.admin.token}${b.admin.generated ? ` (generated; kept in ${join(b.dataDir, 'admin.token')})` : ''}`,
    '',
    'Boot a first instance:',
    `  curl -s ${endpoint} -H 'Authorization: Bearer ${b.admin.token}' -H 'Content-Type: application/json' \\`,
    `    -d '${body}'`,
    '',
    'Ctrl-C stops everything; the next start keeps all data.',
    '',
  ].join('\n');
}
