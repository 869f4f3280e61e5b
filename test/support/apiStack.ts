import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { startProjections } from '../../projections/index.js';
import { startApi } from '../../server/api.js';
import type { Runtime } from '../../server/runtime.js';
import { startWorker } from '../../server/worker.js';
import { gql } from './graphqlClient.js';
import { startAgentProcess, type AgentProcess } from './hostagent.js';
import { testRuntime } from './projectionFixtures.js';

export interface ApiStack {
  rt: Runtime;
  url: string;
  adminToken: string;
  agent: AgentProcess;
  flavorId: string;
  imageId: string;
  /** A GraphQL request as the admin that fails the test on any error. */
  admin<T = Record<string, any>>(query: string, variables?: Record<string, unknown>): Promise<T>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** A MEMBER token of a fresh project. */
  memberToken(): Promise<string>;
  stop(): Promise<void>;
}

/** The whole controller in this process (API, projections, worker) with one sim agent process over SSH. */
export async function startApiStack(database: string, options: { failureHoldMs?: number } = {}): Promise<ApiStack> {
  const adminToken = `admin-${randomUUID()}`;
  const rt = await testRuntime(database, { adminToken });
  if (options.failureHoldMs) rt.config.failureHoldMs = options.failureHoldMs;
  const runner = await startProjections(rt);
  const worker = await startWorker(rt, { taskQueue: rt.config.taskQueue });
  const agent = await startAgentProcess({ authorizedKeys: [readFileSync(`${rt.config.sshKeyPath}.pub`, 'utf8')] });
  const api = await startApi(rt, { port: 0 });
  const admin = async (query: string, variables: Record<string, unknown> = {}) => {
    const r = await gql(api.url, adminToken, query, variables);
    if (r.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(r.errors)}`);
    return r.data!;
  };
  await admin(`mutation($i: RegisterHostInput!) { registerHost(input: $i) { host { id } } }`, {
    i: { name: 'sim-1', address: '127.0.0.1', port: agent.port, hostKeyFingerprint: agent.fingerprint },
  });
  const flavorId = (await admin(`mutation { createFlavor(input: {name: "t1.tiny", vcpus: 1, memoryMb: 256, diskGb: 1}) { flavor { id } } }`)).createFlavor.flavor.id;
  const imageId = (await admin(`mutation { registerImage(input: {name: "cirros-0.6", format: "qcow2", sizeBytes: 21430272}) { image { id } } }`)).registerImage.image.id;
  return {
    rt,
    url: api.url,
    adminToken,
    agent,
    flavorId,
    imageId,
    admin: admin as ApiStack['admin'],
    async memberToken() {
      const projectId = (await admin(`mutation { createProject(input: {name: "p-${randomUUID().slice(0, 8)}"}) { project { id } } }`)).createProject.project.id;
      return (await admin(`mutation($p: ID!) { createToken(input: {projectId: $p, role: MEMBER}) { token } }`, { p: projectId })).createToken.token;
    },
    async stop() {
      await api.close();
      await worker.shutdown();
      await agent.stop();
      await runner.stop();
      await rt.close();
    },
  };
}
