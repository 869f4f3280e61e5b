import { execFileSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { membershipWorkflowId } from '../activities/membership.js';
import { defaultSecurityGroupId } from '../domain/securityGroup.js';
import { workflowIdOf } from '../domain/operation.js';
import * as commands from '../schema/commands/index.js';
import { findTemporalCli } from '../server/temporalCli.js';
import { startWorker } from '../server/worker.js';
import { eventually } from './support/eventually.js';
import { adminCaller, instanceOf, lifecycleRuntime, settled, simHost } from './support/lifecycleStack.js';

/**
 * Records real runs of the networking workflows (and of boot and delete with their address steps) into
 * test/histories, where workflowReplay.test.ts replays every file against the current code (DESIGN.md
 * invariant 7). Record them anew, after a deliberate, versioned change, with:
 *   RECORD_NETWORK_HISTORIES=1 npx vitest run test/network.histories
 */
const historiesDir = fileURLToPath(new URL('./histories', import.meta.url));

describe('networking workflow histories', () => {
  it('a recorded history of each networking runbook is there for workflowReplay to replay', () => {
    expect(readdirSync(historiesDir)).toEqual(
      expect.arrayContaining(['allocateIp.json', 'releaseIp.json', 'associateIp.json', 'disassociateIp.json', 'updateSecurityGroups.json', 'bootInstance-network.json', 'deleteInstance-network.json']),
    );
    // The membership fan-out (an open workflow: its history so far), with a round and a host's catch-up.
    expect(readdirSync(historiesDir)).toContain('groupMembership.json');
  });

  it.runIf(process.env.RECORD_MEMBERSHIP_HISTORY)('records a history of the membership fan-out: rounds, a host that misses one and catches up', async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'record_membership_history');
    const { rt } = stack;
    const worker = await startWorker(rt);
    const caller = adminCaller();
    const hosts = [await simHost(rt, caller, stack.key.publicKey, 'sim-fan-rec-1'), await simHost(rt, caller, stack.key.publicKey, 'sim-fan-rec-2')];
    const handle = rt.temporal.workflow.getHandle(membershipWorkflowId(caller.projectId));
    const quiet = () =>
      eventually(async () => {
        const s = await handle.query<{ changed: string[]; behind: string[]; pushing: boolean }>('membershipState');
        return !s.pushing && s.changed.length === 0 && s.behind.length === 0;
      }).toBe(true);
    try {
      const flavorId = (await commands.createFlavor(rt, caller, { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 })).flavor.id;
      const imageId = (await commands.registerImage(rt, caller, { name: 'cirros', format: 'qcow2', sizeBytes: 1 })).image.id;
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const boot = await commands.bootInstance(rt, caller, { name: `rec-fan-${i}`, flavorId, imageId });
        expect((await settled(rt, boot.operation.id)).status).toBe('SUCCEEDED');
        ids.push(boot.instance!.id);
      }
      await quiet();
      // Three boots alternate over the two hosts: one on the first goes while the second is down.
      const gone = (await Promise.all(ids.map(async (id) => ((await instanceOf(rt, id)).hostId === hosts[0]!.host.id ? [id] : [])))).flat()[0]!;
      await hosts[1]!.agent.kill();
      expect((await settled(rt, (await commands.deleteInstance(rt, caller, { id: gone })).operation.id)).status).toBe('SUCCEEDED');
      await eventually(async () => (await handle.query<{ behind: string[] }>('membershipState')).behind.length).toBe(1);
      await hosts[1]!.agent.restart();
      await quiet();
      const cli = (await findTemporalCli()).path;
      const json = execFileSync(cli, ['workflow', 'show', '--address', inject('temporalAddress'), '--workflow-id', membershipWorkflowId(caller.projectId), '--output', 'json'], { maxBuffer: 64 << 20 });
      writeFileSync(join(historiesDir, 'groupMembership.json'), JSON.stringify(JSON.parse(json.toString()), null, 1) + '\n');
      await handle.terminate('recorded');
    } finally {
      await worker.shutdown();
      await Promise.all(hosts.map((h) => h.agent.stop()));
      await rt.close();
    }
  });

  it.runIf(process.env.RECORD_NETWORK_HISTORIES)('records fresh histories of the networking runbooks from a real run', async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'record_network_histories');
    const { rt } = stack;
    const worker = await startWorker(rt);
    const caller = adminCaller();
    const { agent } = await simHost(rt, caller, stack.key.publicKey, 'sim-net-rec');
    try {
      const flavorId = (await commands.createFlavor(rt, caller, { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 })).flavor.id;
      const imageId = (await commands.registerImage(rt, caller, { name: 'cirros', format: 'qcow2', sizeBytes: 1 })).image.id;
      const cli = (await findTemporalCli()).path;
      const save = async (name: string, operationId: string) => {
        expect((await settled(rt, operationId)).status).toBe('SUCCEEDED');
        const json = execFileSync(cli, ['workflow', 'show', '--address', inject('temporalAddress'), '--workflow-id', workflowIdOf(operationId), '--output', 'json'], { maxBuffer: 64 << 20 });
        writeFileSync(join(historiesDir, `${name}.json`), JSON.stringify(JSON.parse(json.toString()), null, 1) + '\n');
      };
      const { network: external } = await commands.createNetwork(rt, caller, { name: 'public', cidr: '198.51.100.0/24', external: true });
      const boot = await commands.bootInstance(rt, caller, { name: 'rec-net', flavorId, imageId });
      await save('bootInstance-network', boot.operation.id);
      const instanceId = boot.instance!.id;
      const alloc = await commands.allocateIp(rt, caller, { networkId: external.id, kind: 'FLOATING', instanceId });
      await save('allocateIp', alloc.operation.id);
      const address = (await rt.store.readStream(`network-${external.id}`)).flatMap((e) => (e.type === 'AddressAllocated' ? [e.data.address] : []))[0]!;
      await save('disassociateIp', (await commands.disassociateIp(rt, caller, { address })).operation.id);
      await save('associateIp', (await commands.associateIp(rt, caller, { address, instanceId })).operation.id);
      await save('releaseIp', (await commands.releaseIp(rt, caller, { address })).operation.id);
      const rule = await commands.addSecurityGroupRule(rt, caller, { securityGroupId: defaultSecurityGroupId(caller.projectId), direction: 'INGRESS', protocol: 'ICMP', remoteCidr: '0.0.0.0/0' });
      await save('updateSecurityGroups', rule.operation!.id);
      await save('deleteInstance-network', (await commands.deleteInstance(rt, caller, { id: instanceId })).operation.id);
    } finally {
      await worker.shutdown();
      await agent.stop();
      await rt.close();
    }
  });
});
