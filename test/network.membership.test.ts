import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readFolded } from '../activities/events.js';
import { announceMembershipChange, membershipWorkflowId } from '../activities/membership.js';
import { networkStream } from '../domain/events.js';
import type { Caller } from '../domain/identity.js';
import { networkDecider, type Network } from '../domain/network.js';
import { defaultSecurityGroupId } from '../domain/securityGroup.js';
import * as commands from '../schema/commands/index.js';
import type { Runtime, RuntimeConfig } from '../server/runtime.js';
import { eventually } from './support/eventually.js';
import type { AgentProcess } from './support/hostagent.js';
import { adminCaller, instanceOf, lifecycleRuntime, setFaults, settled, simHost, workerProcess } from './support/lifecycleStack.js';

const member = (projectId = randomUUID()): Caller => ({ tokenId: `member-${projectId}`, projectId, role: 'MEMBER' });

describe('security-group membership reaches the hosts that name the group, through one fan-out workflow per project (real Temporal, PostgreSQL, SSH)', () => {
  let rt: Runtime;
  let config: RuntimeConfig;
  let privateKey: string;
  const admin = adminCaller();
  const hosts: { agent: AgentProcess; id: string }[] = [];
  const workers: ReturnType<typeof workerProcess>[] = [];
  const projects: string[] = [];
  let flavorId: string;
  let imageId: string;

  const groupsOn = async (h: { agent: AgentProcess }): Promise<Record<string, string[]>> => {
    const client = h.agent.client({ privateKey });
    try {
      return (await client.call('listPorts', {})).groups;
    } finally {
      client.close();
    }
  };
  const fanOut = (projectId: string) => rt.temporal.workflow.getHandle(membershipWorkflowId(projectId));
  const stateOf = (projectId: string) => fanOut(projectId).query<{ rounds: number; changed: string[]; behind: string[]; pushing: boolean }>('membershipState');
  const unsent = async (projectId: string) => (await rt.db.query('SELECT 1 FROM membership_outbox WHERE project_id = $1', [projectId])).length;
  /** No news left unsent, nothing gathered, no round running, no host catching up: what the fan-out will push, it has. */
  const quiet = (projectId: string) =>
    eventually(async () => {
      if ((await unsent(projectId)) > 0) return false;
      const s = await stateOf(projectId);
      return !s.pushing && s.changed.length === 0 && s.behind.length === 0;
    }).toBe(true);
  const networkOf = async (id: string): Promise<Network> => (await readFolded(rt, networkStream(id), networkDecider)).state!;
  const addressOf = async (instanceId: string) => {
    const instance = await instanceOf(rt, instanceId);
    return Object.values((await networkOf(instance.networkId!)).addresses).find((a) => a.instanceId === instanceId && a.kind === 'FIXED')!.address;
  };
  const boot = async (caller: Caller, name: string) => {
    const b = await commands.bootInstance(rt, caller, { name, flavorId, imageId });
    expect((await settled(rt, b.operation.id)).status).toBe('SUCCEEDED');
    return b.instance!.id;
  };
  const remove = async (caller: Caller, id: string) => expect((await settled(rt, (await commands.deleteInstance(rt, caller, { id })).operation.id)).status).toBe('SUCCEEDED');

  beforeAll(async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'network_membership');
    rt = stack.rt;
    config = stack.config;
    privateKey = stack.key.privateKey;
    // The worker is a process of its own, so one test can SIGKILL it mid-round.
    workers.push(workerProcess(config));
    // Two roomy hosts and a third that holds one instance: what is placed there is placed by a migration.
    for (const [name, memoryMb] of [['fan-1', 8192], ['fan-2', 8192], ['fan-3', 384]] as const) {
      const { agent, host } = await simHost(rt, admin, stack.key.publicKey, name, { vcpus: 64, memoryMb, diskGb: 500 });
      hosts.push({ agent, id: host.id });
    }
    flavorId = (await commands.createFlavor(rt, admin, { name: 'fan.tiny', vcpus: 1, memoryMb: 256, diskGb: 1 })).flavor.id;
    imageId = (await commands.registerImage(rt, admin, { name: 'cirros', format: 'qcow2', sizeBytes: 1 })).image.id;
  });
  afterAll(async () => {
    for (const p of projects) await fanOut(p).terminate('test over').catch(() => {});
    for (const w of workers) if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    await Promise.all(hosts.map((h) => h.agent.stop()));
    await rt?.close();
  });

  it('a boot reaches every host whose ports name its group, and no host whose ports do not', async () => {
    const caller = member();
    projects.push(caller.projectId);
    const dflt = defaultSecurityGroupId(caller.projectId);
    const [h1, h2, h3] = hosts as [(typeof hosts)[0], (typeof hosts)[0], (typeof hosts)[0]];
    const x1 = await boot(caller, 'fan-x1');
    const x2 = await boot(caller, 'fan-x2');
    const x3 = await boot(caller, 'fan-x3');
    expect((await settled(rt, (await commands.migrateInstance(rt, admin, { id: x3, targetHostId: h3.id })).operation.id)).status).toBe('SUCCEEDED');
    expect(new Set(await Promise.all([x1, x2].map(async (x) => (await instanceOf(rt, x)).hostId)))).toEqual(new Set([h1.id, h2.id]));
    // x3 leaves the default group for one whose rules name no group: fan-3 keeps a port of the project
    // whose rules name nothing, so news of the default group is not for it.
    const { securityGroup: web } = await commands.createSecurityGroup(rt, caller, { name: 'web' });
    await settled(rt, (await commands.addSecurityGroupRule(rt, caller, { securityGroupId: web.id, direction: 'INGRESS', protocol: 'TCP', portMin: 22, portMax: 22, remoteCidr: '0.0.0.0/0' })).operation!.id);
    expect((await settled(rt, (await commands.setInstanceSecurityGroups(rt, caller, { instanceId: x3, securityGroupIds: [web.id] })).operation.id)).status).toBe('SUCCEEDED');
    await quiet(caller.projectId);
    const onH3Before = (await groupsOn(h3))[dflt];

    const n = await boot(caller, 'fan-n');
    expect((await instanceOf(rt, n)).hostId).not.toBe(h3.id);
    const expected = (await Promise.all([x1, x2, n].map(addressOf))).sort();
    for (const h of [h1, h2]) await eventually(async () => (await groupsOn(h))[dflt]).toEqual(expected);
    await quiet(caller.projectId);
    expect((await groupsOn(h3))[dflt]).toEqual(onH3Before);
    expect(onH3Before).not.toContain(await addressOf(n));
  });

  it('many concurrent boots in one project are pushed in far fewer rounds than boots, and every host ends with every member', async () => {
    const caller = member();
    projects.push(caller.projectId);
    const dflt = defaultSecurityGroupId(caller.projectId);
    const BOOTS = 24;
    const ids = await Promise.all(Array.from({ length: BOOTS }, (_, i) => boot(caller, `fan-many-${i}`)));
    const expected = (await Promise.all(ids.map(addressOf))).sort();
    for (const h of hosts.slice(0, 2)) await eventually(async () => (await groupsOn(h))[dflt]).toEqual(expected);
    await quiet(caller.projectId);
    const { rounds } = await stateOf(caller.projectId);
    expect(rounds).toBeGreaterThan(0);
    expect(rounds).toBeLessThan(BOOTS / 2);
  });

  it("a boot sets its host's member lists only where the host has none; one it holds gets the new member from the fan-out", async () => {
    const caller = member();
    projects.push(caller.projectId);
    const dflt = defaultSecurityGroupId(caller.projectId);
    /** The keys of the setGroupMembers calls a boot's plugPort step made, from the host's own record of applied calls. */
    const ownPushes = (h: { agent: AgentProcess }, operationId: string): string[] => {
      const state = JSON.parse(readFileSync(join(h.agent.stateDir, 'sim', 'state.json'), 'utf8')) as { applied: { key: string }[] };
      return state.applied.map((a) => a.key).filter((k) => k.startsWith(`${operationId}:plugPort:members:`));
    };
    const seen = new Set<string>();
    const ids: string[] = [];
    let reused = 0;
    // Four boots on the two roomy hosts (the third is full): at least one lands where the project already has a port.
    for (let i = 0; i < 4; i++) {
      const b = await commands.bootInstance(rt, caller, { name: `fan-own-${i}`, flavorId, imageId });
      expect((await settled(rt, b.operation.id)).status).toBe('SUCCEEDED');
      ids.push(b.instance!.id);
      const hostId = (await instanceOf(rt, b.instance!.id)).hostId!;
      const host = hosts.find((h) => h.id === hostId)!;
      if (seen.has(hostId)) {
        reused++;
        expect(ownPushes(host, b.operation.id)).toEqual([]);
      } else {
        // The host had no list for the group: the step set it, before the VM was made.
        expect(ownPushes(host, b.operation.id)).toHaveLength(1);
      }
      seen.add(hostId);
    }
    expect(reused).toBeGreaterThan(0);
    const expected = (await Promise.all(ids.map(addressOf))).sort();
    for (const hostId of seen) await eventually(async () => (await groupsOn(hosts.find((h) => h.id === hostId)!))[dflt]).toEqual(expected);
    await quiet(caller.projectId);
  });

  it('news announced where no dispatcher runs (another process, a dead worker) reaches the fan-out from a worker that looks', async () => {
    const caller = member();
    projects.push(caller.projectId);
    const dflt = defaultSecurityGroupId(caller.projectId);
    await boot(caller, 'fan-outbox');
    await quiet(caller.projectId);
    const { rounds } = await stateOf(caller.projectId);
    // This process runs no worker, so nothing here wakes a dispatcher: the row waits for the worker process's look.
    await announceMembershipChange(rt, caller.projectId, [dflt]);
    await quiet(caller.projectId);
    expect((await stateOf(caller.projectId)).rounds).toBeGreaterThan(rounds);
  });

  it('a host that is unreachable during a round gets the members once it is back, and the other hosts are not held up by it', async () => {
    const caller = member();
    projects.push(caller.projectId);
    const dflt = defaultSecurityGroupId(caller.projectId);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await boot(caller, `fan-down-${i}`));
    // Two on the host that stays up (it loses one), two on the one that goes down: placed by migration
    // where the scheduler put them elsewhere.
    const [up, down] = [hosts[0]!, hosts[1]!];
    const where = [up, up, down, down];
    for (const [i, id] of ids.entries()) {
      if ((await instanceOf(rt, id)).hostId === where[i]!.id) continue;
      expect((await settled(rt, (await commands.migrateInstance(rt, admin, { id, targetHostId: where[i]!.id })).operation.id)).status).toBe('SUCCEEDED');
    }
    const onUp = ids.slice(0, 2);
    await quiet(caller.projectId);

    await down.agent.kill();
    let back = false;
    try {
      const gone = onUp[0]!;
      await remove(caller, gone);
      const expected = (await Promise.all(ids.filter((id) => id !== gone).map(addressOf))).sort();
      await eventually(async () => (await groupsOn(up))[dflt]).toEqual(expected);
      await eventually(async () => (await stateOf(caller.projectId)).behind).toEqual([down.id]);
      await down.agent.restart();
      back = true;
      await eventually(async () => (await groupsOn(down))[dflt]).toEqual(expected);
      await quiet(caller.projectId);
    } finally {
      if (!back) await down.agent.restart();
    }
  });

  it('a worker killed in the middle of a round loses nothing: another worker finishes it', async () => {
    const caller = member();
    projects.push(caller.projectId);
    const dflt = defaultSecurityGroupId(caller.projectId);
    const [h1, h2] = hosts as [(typeof hosts)[0], (typeof hosts)[0]];
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await boot(caller, `fan-kill-${i}`));
    // Two on each roomy host, placed by migration where the scheduler put them elsewhere, so both
    // hosts carry ports that name the group.
    const where = [h1, h1, h2, h2];
    for (const [i, id] of ids.entries()) {
      if ((await instanceOf(rt, id)).hostId === where[i]!.id) continue;
      expect((await settled(rt, (await commands.migrateInstance(rt, admin, { id, targetHostId: where[i]!.id })).operation.id)).status).toBe('SUCCEEDED');
    }
    await quiet(caller.projectId);

    // Every push of this project's groups takes 3 s, so a round is in flight long enough to kill its worker in.
    for (const h of [h1, h2]) await setFaults(h.agent, { latencyMs: 3000, latencyMethods: 'setGroupMembers', latencyNamePattern: dflt });
    try {
      const gone = ids[0]!;
      await remove(caller, gone);
      await eventually(async () => {
        const { raw } = await fanOut(caller.projectId).describe();
        return (raw.pendingActivities ?? []).some((a) => a.activityType?.name === 'pushMembershipRound' && Number(a.attempt ?? 0) >= 1 && a.lastStartedTime != null);
      }).toBe(true);
      const first = workers.at(-1)!;
      first.proc.kill('SIGKILL');
      await first.exited;
      workers.push(workerProcess(config));

      const expected = (await Promise.all(ids.filter((id) => id !== gone).map(addressOf))).sort();
      for (const h of [h1, h2]) await eventually(async () => (await groupsOn(h))[dflt], 90_000).toEqual(expected);
      await quiet(caller.projectId);
    } finally {
      for (const h of [h1, h2]) await setFaults(h.agent, {});
    }
  });
});
