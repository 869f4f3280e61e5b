import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProjections, waitForProjections, type ProjectionRunner } from '../projections/index.js';
import { startApi } from '../server/api.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import { settled } from './support/lifecycleStack.js';
import { gql, subscribeSse, type Collected } from './support/graphqlClient.js';
import { startAgentProcess, type AgentProcess } from './support/hostagent.js';
import { testRuntime } from './support/projectionFixtures.js';

const ADMIN = `admin-${randomUUID()}`;
const codeOf = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;

describe('networks and addresses through the GraphQL API, tenant-scoped', () => {
  let rt: Runtime;
  let runner: ProjectionRunner;
  let worker: RunningWorker;
  let agent: AgentProcess;
  let api: { url: string; close(): Promise<void> };
  let url: string;
  const tokens = { a: '', aReader: '', b: '' };
  let flavorId: string;
  let imageId: string;
  const open: Collected<unknown>[] = [];
  /** Project A's instance on its network `app`, booted by the listing test. */
  let webId: string;

  const ok = async (token: string, query: string, variables: Record<string, unknown> = {}) => {
    const r = await gql(url, token, query, variables);
    expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
    return r.data!;
  };
  const eventCount = async () => Number((await rt.db.query<{ n: string }>('SELECT count(*)::text AS n FROM events'))[0]!.n);

  beforeAll(async () => {
    rt = await testRuntime('network_api', { adminToken: ADMIN });
    runner = await startProjections(rt);
    worker = await startWorker(rt, { taskQueue: rt.config.taskQueue });
    agent = await startAgentProcess({ authorizedKeys: [readFileSync(`${rt.config.sshKeyPath}.pub`, 'utf8')] });
    api = await startApi(rt, { port: 0 });
    url = api.url;
    await ok(ADMIN, `mutation($i: RegisterHostInput!) { registerHost(input: $i) { host { id } } }`, {
      i: { name: 'sim-net', address: '127.0.0.1', port: agent.port, hostKeyFingerprint: agent.fingerprint },
    });
    flavorId = (await ok(ADMIN, `mutation { createFlavor(input: {name: "t1.net", vcpus: 1, memoryMb: 256, diskGb: 1}) { flavor { id } } }`)).createFlavor.flavor.id;
    imageId = (await ok(ADMIN, `mutation { registerImage(input: {name: "cirros", format: "qcow2", sizeBytes: 1}) { image { id } } }`)).registerImage.image.id;
    const project = async (name: string) => (await ok(ADMIN, `mutation($n: String!) { createProject(input: {name: $n}) { project { id } } }`, { n: name })).createProject.project.id as string;
    const token = async (projectId: string, role: string) =>
      (await ok(ADMIN, `mutation($p: ID!, $r: Role!) { createToken(input: {projectId: $p, role: $r}) { token } }`, { p: projectId, r: role })).createToken.token as string;
    const a = await project('net-a');
    const b = await project('net-b');
    tokens.a = await token(a, 'MEMBER');
    tokens.aReader = await token(a, 'READER');
    tokens.b = await token(b, 'MEMBER');
  });
  afterAll(async () => {
    for (const c of open) c.stop();
    await api?.close();
    await worker?.shutdown();
    await agent?.stop();
    await runner?.stop();
    await rt?.close();
  });

  it('bad input is BAD_USER_INPUT with zod issues, an external network needs admin, and neither writes an event', async () => {
    const before = await eventCount();
    const create = (token: string, input: Record<string, unknown>) =>
      gql(url, token, `mutation($i: CreateNetworkInput!) { createNetwork(input: $i) { network { id } } }`, { i: input });
    for (const input of [
      { name: 'x', cidr: 'not-a-cidr' },
      { name: 'x', cidr: '10.0.0.0/8' },
      { name: 'x', cidr: '10.5.0.0/24', gateway: '10.6.0.1' },
      { name: 'bad name!', cidr: '10.5.0.0/24' },
    ]) {
      const r = await create(tokens.a, input);
      expect(codeOf(r), JSON.stringify(input)).toBe('BAD_USER_INPUT');
      expect(r.errors![0]!.extensions!.issues).toBeInstanceOf(Array);
    }
    expect(codeOf(await create(tokens.a, { name: 'pub', cidr: '192.0.2.0/24', external: true }))).toBe('FORBIDDEN');
    expect(codeOf(await create(tokens.aReader, { name: 'r', cidr: '10.7.0.0/24' }))).toBe('FORBIDDEN');
    expect(codeOf(await gql(url, tokens.a, `mutation { releaseIp(input: {address: "10.0.0.300"}) { operation { id } } }`))).toBe('BAD_USER_INPUT');
    expect(await eventCount()).toBe(before);
  });

  it('networks, network(id), addresses and Instance.addresses show a project only its own, plus the external networks', async () => {
    const external = (await ok(ADMIN, `mutation { createNetwork(input: {name: "public", cidr: "192.0.2.0/24", external: true}) { network { id external projectId } } }`)).createNetwork.network;
    expect(external).toMatchObject({ external: true, projectId: null });
    const mine = (await ok(tokens.a, `mutation { createNetwork(input: {name: "app", cidr: "10.60.0.0/24"}) { network { id cidr gateway } } }`)).createNetwork.network;
    expect(mine).toMatchObject({ cidr: '10.60.0.0/24', gateway: '10.60.0.1' });

    const boot = (await ok(tokens.a, `mutation($i: BootInstanceInput!) { bootInstance(input: $i) { operation { id } instance { id } } }`, {
      i: { name: 'web', flavorId, imageId, networkId: mine.id },
    })).bootInstance;
    expect((await settled(rt, boot.operation.id)).status).toBe('SUCCEEDED');
    webId = boot.instance.id;
    const alloc = (await ok(tokens.a, `mutation($i: AllocateIpInput!) { allocateIp(input: $i) { operation { id kind resourceId } } }`, {
      i: { networkId: external.id, kind: 'FLOATING', instanceId: boot.instance.id },
    })).allocateIp.operation;
    expect(alloc.kind).toBe('ALLOCATE_IP');
    expect((await settled(rt, alloc.id)).status).toBe('SUCCEEDED');
    await waitForProjections(rt);

    const seenByA = await ok(tokens.a, `{ networks { id name external } addresses { id address kind fixedAddress instance { id } } }`);
    expect(seenByA.networks.map((n: { name: string }) => n.name).sort()).toEqual(['app', 'public']);
    expect(seenByA.addresses).toHaveLength(2);
    const floating = seenByA.addresses.find((x: { kind: string }) => x.kind === 'FLOATING');
    expect(floating).toMatchObject({ id: alloc.resourceId, fixedAddress: '10.60.0.2', instance: { id: boot.instance.id } });
    const instance = await ok(tokens.a, `query($id: ID!) { instance(id: $id) { addresses { address kind networkId } } }`, { id: boot.instance.id });
    expect(instance.instance.addresses).toEqual(
      expect.arrayContaining([{ address: '10.60.0.2', kind: 'FIXED', networkId: mine.id }, { address: floating.address, kind: 'FLOATING', networkId: external.id }]),
    );
    const network = await ok(tokens.a, `query($id: ID!) { network(id: $id) { name addresses { address } } }`, { id: mine.id });
    expect(network.network).toEqual({ name: 'app', addresses: [{ address: '10.60.0.2' }] });

    // Project B: A's network does not exist, the external one does, and none of A's addresses show.
    const seenByB = await ok(tokens.b, `query($id: ID!) { network(id: $id) { id } networks { name } addresses { id } }`, { id: mine.id });
    expect(seenByB).toEqual({ network: null, networks: [{ name: 'public' }], addresses: [] });
    const externalSeenByB = await ok(tokens.b, `query($id: ID!) { network(id: $id) { addresses { address } } }`, { id: external.id });
    expect(externalSeenByB.network.addresses).toEqual([]);
    const r = await gql(url, tokens.b, `mutation($a: String!) { disassociateIp(input: {address: $a}) { operation { id } } }`, { a: floating.address });
    expect(codeOf(r)).toBe('NOT_FOUND');
    const d = await gql(url, tokens.b, `mutation($id: ID!) { deleteNetwork(input: {id: $id}) { network { id } } }`, { id: mine.id });
    expect(codeOf(d)).toBe('NOT_FOUND');
    // The admin sees everything.
    const all = await ok(ADMIN, `{ addresses { id } }`);
    expect(all.addresses.length).toBeGreaterThanOrEqual(2);

    // Metering: the floating address runs FLOATING_IP hours from its AddressAllocated's own time; the
    // tenant network (its FIXED address comes with the instance) is not followed at all.
    const [allocated] = await rt.db.query<{ at: string }>(`SELECT data->>'at' AS at FROM events WHERE type = 'AddressAllocated' AND data->>'addressId' = $1`, [alloc.resourceId]);
    const billed = await rt.db.query<{ resource_id: string; usage_type: string; resource_type: string; since: Date }>(
      'SELECT resource_id, usage_type, resource_type, since FROM usage_open WHERE subject_id = $1',
      [external.id],
    );
    expect(billed.map((o) => [o.resource_id, o.usage_type, o.resource_type, o.since.getTime()])).toEqual([[alloc.resourceId, 'FLOATING_IP', 'floatingIp', Date.parse(allocated!.at)]]);
    expect(await rt.db.query('SELECT 1 FROM usage_open WHERE subject_id = $1 UNION ALL SELECT 1 FROM usage_subjects WHERE id = $1', [mine.id])).toEqual([]);
  });

  it('releaseIp, associateIp and disassociateIp of an address outside the named network are BAD_USER_INPUT and write nothing', async () => {
    const app = (await ok(tokens.a, `{ networks { id name } }`)).networks.find((n: { name: string }) => n.name === 'app');
    const before = await eventCount();
    const calls = [
      ['releaseIp', 'ReleaseIpInput', {}],
      ['associateIp', 'AssociateIpInput', { instanceId: webId }],
      ['disassociateIp', 'DisassociateIpInput', {}],
    ] as const;
    for (const [mutation, type, extra] of calls) {
      // 10.61.0.2 parses, but app is 10.60.0.0/24: no address of it could ever be that one.
      const r = await gql(url, tokens.a, `mutation($i: ${type}!) { ${mutation}(input: $i) { operation { id } } }`, { i: { address: '10.61.0.2', networkId: app.id, ...extra } });
      expect(codeOf(r), mutation).toBe('BAD_USER_INPUT');
      expect(r.errors![0]!.extensions!.issues).toEqual([expect.objectContaining({ path: ['address'] })]);
    }
    expect(await eventCount()).toBe(before);
  });

  it('releaseIp, associateIp and disassociateIp return the address they act on in OperationPayload.address', async () => {
    const floating = (await ok(tokens.a, `{ addresses { id address kind networkId } }`)).addresses.find((x: { kind: string }) => x.kind === 'FLOATING');
    const payloadOf = async (mutation: string, type: string, input: Record<string, unknown>) => {
      const p = (await ok(tokens.a, `mutation($i: ${type}!) { ${mutation}(input: $i) { operation { id resourceId } address { id address kind networkId } } }`, { i: input }))[mutation];
      expect(p.address).toEqual(floating);
      expect(p.operation.resourceId).toBe(floating.id);
      expect((await settled(rt, p.operation.id)).status).toBe('SUCCEEDED');
    };
    await payloadOf('disassociateIp', 'DisassociateIpInput', { address: floating.address });
    await payloadOf('associateIp', 'AssociateIpInput', { address: floating.address, instanceId: webId });
    await payloadOf('disassociateIp', 'DisassociateIpInput', { address: floating.address, networkId: floating.networkId });
    await payloadOf('releaseIp', 'ReleaseIpInput', { address: floating.address });
    await waitForProjections(rt);
    expect((await ok(tokens.a, `{ addresses { id } }`)).addresses.map((x: { id: string }) => x.id)).not.toContain(floating.id);
  });

  it('deleteNetwork while an address is in use is CONFLICT; an empty network goes and leaves the list', async () => {
    const net = (await ok(tokens.b, `mutation { createNetwork(input: {name: "tmp", cidr: "10.61.0.0/24"}) { network { id } } }`)).createNetwork.network;
    const op = (await ok(tokens.b, `mutation($i: AllocateIpInput!) { allocateIp(input: $i) { operation { id } } }`, { i: { networkId: net.id, kind: 'FIXED' } })).allocateIp.operation;
    expect((await settled(rt, op.id)).status).toBe('SUCCEEDED');
    expect(codeOf(await gql(url, tokens.b, `mutation($id: ID!) { deleteNetwork(input: {id: $id}) { network { id } } }`, { id: net.id }))).toBe('CONFLICT');
    await waitForProjections(rt);
    const [held] = (await ok(tokens.b, `{ addresses { address networkId } }`)).addresses.filter((x: { networkId: string }) => x.networkId === net.id);
    const release = (await ok(tokens.b, `mutation($a: String!) { releaseIp(input: {address: $a}) { operation { id kind } address { address kind networkId } } }`, { a: held.address })).releaseIp;
    expect(release.address).toEqual({ address: held.address, kind: 'FIXED', networkId: net.id });
    expect((await settled(rt, release.operation.id)).status).toBe('SUCCEEDED');
    await ok(tokens.b, `mutation($id: ID!) { deleteNetwork(input: {id: $id}) { network { id } } }`, { id: net.id });
    expect((await ok(tokens.b, `{ networks { id } }`)).networks.map((n: { id: string }) => n.id)).not.toContain(net.id);
  });

  it('securityGroups lists the project\'s default group from the start, Instance.securityGroups follows setInstanceSecurityGroups, and rules are tenant-scoped', async () => {
    const groups = (await ok(tokens.b, `{ securityGroups { id name projectId rules { direction protocol remoteCidr remoteGroupId } } }`)).securityGroups;
    expect(groups.map((g: { name: string }) => g.name)).toEqual(['default']);
    const defaultGroup = groups[0];
    expect(defaultGroup.rules).toEqual(
      expect.arrayContaining([
        { direction: 'INGRESS', protocol: 'ANY', remoteCidr: '0.0.0.0/0', remoteGroupId: defaultGroup.id },
        { direction: 'EGRESS', protocol: 'ANY', remoteCidr: '0.0.0.0/0', remoteGroupId: null },
      ]),
    );
    const web = (await ok(tokens.b, `mutation { createSecurityGroup(input: {name: "web"}) { securityGroup { id name } } }`)).createSecurityGroup.securityGroup;
    const added = (await ok(tokens.b, `mutation($i: AddSecurityGroupRuleInput!) { addSecurityGroupRule(input: $i) { securityGroup { rules { id protocol portMin portMax } } operation { id kind } } }`, {
      i: { securityGroupId: web.id, direction: 'INGRESS', protocol: 'TCP', portMin: 443, remoteCidr: '0.0.0.0/0' },
    })).addSecurityGroupRule;
    expect(added.securityGroup.rules).toEqual([{ id: expect.any(String), protocol: 'TCP', portMin: 443, portMax: 443 }]);
    expect(added.operation.kind).toBe('UPDATE_SECURITY_GROUPS');
    expect((await settled(rt, added.operation.id)).status).toBe('SUCCEEDED');

    const bad = await gql(url, tokens.b, `mutation($i: AddSecurityGroupRuleInput!) { addSecurityGroupRule(input: $i) { securityGroup { id } } }`, {
      i: { securityGroupId: web.id, direction: 'INGRESS', protocol: 'ICMP', portMin: 1, remoteCidr: '0.0.0.0/0' },
    });
    expect(codeOf(bad)).toBe('BAD_USER_INPUT');
    const foreign = await gql(url, tokens.a, `mutation($i: AddSecurityGroupRuleInput!) { addSecurityGroupRule(input: $i) { securityGroup { id } } }`, {
      i: { securityGroupId: web.id, direction: 'INGRESS', protocol: 'ANY', remoteCidr: '0.0.0.0/0' },
    });
    expect(codeOf(foreign)).toBe('NOT_FOUND');
    expect((await ok(tokens.a, `{ securityGroups { name } }`)).securityGroups.map((g: { name: string }) => g.name)).not.toContain('web');

    const booted = (await ok(tokens.b, `mutation($i: BootInstanceInput!) { bootInstance(input: $i) { operation { id } instance { id } } }`, { i: { name: 'sg-vm', flavorId, imageId } })).bootInstance;
    expect((await settled(rt, booted.operation.id)).status).toBe('SUCCEEDED');
    const set = (await ok(tokens.b, `mutation($i: SetInstanceSecurityGroupsInput!) { setInstanceSecurityGroups(input: $i) { operation { id kind resourceId } } }`, {
      i: { instanceId: booted.instance.id, securityGroupIds: [web.id] },
    })).setInstanceSecurityGroups.operation;
    expect(set).toMatchObject({ kind: 'UPDATE_SECURITY_GROUPS', resourceId: booted.instance.id });
    expect((await settled(rt, set.id)).status).toBe('SUCCEEDED');
    await waitForProjections(rt);
    const seen = await ok(tokens.b, `query($id: ID!) { instance(id: $id) { securityGroups { name } } }`, { id: booted.instance.id });
    expect(seen.instance.securityGroups).toEqual([{ name: 'web' }]);
  });
  it("resourceChanged tells a project of its own networks' and security groups' changes, of the kinds asked, and nothing of another's", async () => {
    const mine = subscribeSse(url, tokens.aReader, 'subscription { resourceChanged { kind id } }');
    const theirs = subscribeSse(url, tokens.b, 'subscription { resourceChanged(kinds: [NETWORK]) { kind id } }');
    open.push(mine, theirs);
    const seen = (c: Collected<unknown>) => c.items.map((i) => (i.data as { resourceChanged: { kind: string; id: string } }).resourceChanged);
    const network = async (token: string, name: string, cidr: string) =>
      (await ok(token, `mutation($n: String!, $c: String!) { createNetwork(input: {name: $n, cidr: $c}) { network { id } } }`, { n: name, c: cidr })).createNetwork.network.id as string;
    // Networks made until both ends listen (a subscription registers a moment after its request).
    const warm: string[] = [];
    for (let i = 0; seen(mine).length === 0 || seen(theirs).length === 0; i++) {
      warm.push(await network(tokens.a, `warm-a-${i}`, `10.${100 + i}.0.0/24`));
      await network(tokens.b, `warm-b-${i}`, `10.${100 + i}.0.0/24`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const watched = await network(tokens.a, 'watched', '10.99.0.0/24');
    await ok(tokens.a, `mutation($id: ID!) { deleteNetwork(input: {id: $id}) { network { id } } }`, { id: watched });
    const group = (await ok(tokens.a, `mutation { createSecurityGroup(input: {name: "watched"}) { securityGroup { id } } }`)).createSecurityGroup.securityGroup.id as string;
    await waitForProjections(rt);
    await expect.poll(() => seen(mine).filter((n) => n.id === group).length, { timeout: 10_000 }).toBe(1);
    // Its creation and its deletion, each once its projection had it.
    expect(seen(mine).filter((n) => n.id === watched)).toEqual([{ kind: 'NETWORK', id: watched }, { kind: 'NETWORK', id: watched }]);
    expect(seen(mine).find((n) => n.id === group)).toEqual({ kind: 'SECURITY_GROUP', id: group });
    const aIds = new Set([watched, group, ...warm]);
    expect(seen(theirs).filter((n) => aIds.has(n.id))).toEqual([]);
    expect(seen(theirs).every((n) => n.kind === 'NETWORK')).toBe(true);
    const bad = await gql(url, tokens.a, 'subscription { resourceChanged(kinds: [VOLUMES]) { id } }');
    expect(codeOf(bad)).toBe('GRAPHQL_VALIDATION_FAILED');
  });
});
