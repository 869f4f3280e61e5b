import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decideHost, evolveHost, type Host, type HostCommand } from '../domain/host.js';
import { decideInstance, evolveInstance, type Instance } from '../domain/instance.js';
import { decideOperation, evolveOperation, type Operation, type OperationCommand } from '../domain/operation.js';
import { noResources } from '../domain/resources.js';

const at = '2025-01-01T00:00:00.000Z';

function operation(commands: OperationCommand[]): Operation {
  const caller = { tokenId: 't', projectId: randomUUID(), role: 'ADMIN' as const };
  let op = null as Operation | null;
  const all: OperationCommand[] = [
    { type: 'request', data: { operationId: randomUUID(), kind: 'MIGRATE', resourceId: randomUUID(), projectId: caller.projectId, actor: caller, at } },
    ...commands,
  ];
  for (const c of all) for (const e of decideOperation(c, op)) op = evolveOperation(op, e);
  return op!;
}

const instance = (state: Instance['state']): Instance => ({
  id: randomUUID(), projectId: randomUUID(), name: 'vm', state, task: null, taskOperationId: null, taskOutcomeRecorded: false,
  flavor: { id: randomUUID(), vcpus: 1, memoryMb: 512, diskGb: 1 }, imageId: randomUUID(), networkId: null, hostId: randomUUID(),
  createdAt: at, launchedAt: at, errorReason: null, version: 3,
});

describe('mobility in the domain', () => {
  it("a step's progress is kept on the running step and survives its finish; progress after the finish is dropped", () => {
    const op = operation([
      { type: 'start', data: { runId: 'r', at } },
      { type: 'startStep', data: { name: 'migrateSend', at } },
      { type: 'progressStep', data: { name: 'migrateSend', percent: 40, message: 'ram', at } },
      { type: 'progressStep', data: { name: 'migrateSend', percent: 100, message: 'done', at } },
      { type: 'finishStep', data: { name: 'migrateSend', status: 'SUCCEEDED', at } },
    ]);
    expect(op.steps).toEqual([expect.objectContaining({ name: 'migrateSend', status: 'SUCCEEDED', progress: { percent: 100, message: 'done' } })]);
    expect(decideOperation({ type: 'progressStep', data: { name: 'migrateSend', percent: 50, message: 'late', at } }, op)).toEqual([]);
    expect(decideOperation({ type: 'progressStep', data: { name: 'never-started', message: 'x', at } }, op)).toEqual([]);
  });

  it('MIGRATE begins from RUNNING (live) and STOPPED (cold), records the target asked for, and refuses other states', () => {
    const targetHostId = randomUUID();
    for (const state of ['RUNNING', 'STOPPED'] as const) {
      const [began] = decideInstance({ type: 'beginAction', data: { operationId: randomUUID(), kind: 'MIGRATE', targetHostId, at } }, instance(state));
      expect(began).toMatchObject({ type: 'InstanceTaskStarted', data: { kind: 'MIGRATE', targetHostId } });
      expect(evolveInstance(instance(state), began!)).toMatchObject({ task: 'MIGRATE', state });
    }
    for (const state of ['PAUSED', 'SUSPENDED', 'ERROR'] as const) {
      expect(() => decideInstance({ type: 'beginAction', data: { operationId: randomUUID(), kind: 'MIGRATE', at } }, instance(state))).toThrow(/cannot migrate/);
    }
  });

  it('an evacuation takes the instance only while its host is noted DOWN: a host that answered first keeps it, one that answers after finds it gone', () => {
    const apply = (i: Instance, c: Parameters<typeof decideInstance>[0]) => decideInstance(c, i).reduce(evolveInstance, i as Instance | null)!;
    const before = instance('RUNNING');
    const hostId = before.hostId!;
    const target = randomUUID();
    const operationId = randomUUID();
    const evacuating = apply(apply(before, { type: 'noteHost', data: { hostId, down: true, reason: 'agent-unreachable', at } }), {
      type: 'beginAction',
      data: { operationId, kind: 'EVACUATE', at },
    });
    const move = { type: 'recordTransition' as const, data: { kind: 'EVACUATE' as const, hostId: target, operationId, at } };
    const answered = { type: 'noteHost' as const, data: { hostId, down: false, reason: 'agent-answers', at } };

    // The host answered first: the evacuation may no longer take the instance.
    const kept = apply(evacuating, answered);
    expect(kept).toMatchObject({ hostId, errorReason: null, task: 'EVACUATE' });
    expect(() => decideInstance(move, kept)).toThrow(/answers again: instance .* stays there/);

    // The evacuation took it first: the host's answer notes nothing, the instance lives on the target.
    const moved = apply(evacuating, move);
    expect(moved).toMatchObject({ hostId: target, errorReason: null });
    expect(decideInstance(answered, moved)).toEqual([]);
    // Its retry after it landed is a no-op, whatever the host did since.
    expect(decideInstance(move, moved)).toEqual([]);
  });
});

describe('a claim resized in place', () => {
  const host = (): Host => ({
    id: randomUUID(), name: 'h', address: '127.0.0.1', port: 22, hostKeyFingerprint: 'SHA256:x', hypervisor: 'sim', state: 'UP',
    capacity: { vcpus: 4, memoryMb: 4096, diskGb: 100 }, allocated: noResources, claims: {}, registeredAt: at, version: 1,
  });
  const apply = (h: Host, c: HostCommand) => decideHost(c, h).reduce(evolveHost, h as Host | null)!;

  it('changes the claim and the allocation in one event; growing needs the room, shrinking always fits', () => {
    const a = randomUUID();
    const b = randomUUID();
    let h = apply(host(), { type: 'claim', data: { instanceId: a, operationId: randomUUID(), resources: { vcpus: 1, memoryMb: 1024, diskGb: 10 } } });
    h = apply(h, { type: 'claim', data: { instanceId: b, operationId: randomUUID(), resources: { vcpus: 1, memoryMb: 2048, diskGb: 10 } } });
    const op = randomUUID();
    const grow = decideHost({ type: 'resizeClaim', data: { instanceId: a, operationId: op, resources: { vcpus: 2, memoryMb: 2048, diskGb: 20 } } }, h);
    expect(grow.map((e) => e.type)).toEqual(['HostClaimResized']);
    h = grow.reduce(evolveHost, h as Host | null)!;
    expect(h.allocated).toEqual({ vcpus: 3, memoryMb: 4096, diskGb: 30 });
    // Repeated: nothing more.
    expect(decideHost({ type: 'resizeClaim', data: { instanceId: a, operationId: op, resources: { vcpus: 2, memoryMb: 2048, diskGb: 20 } } }, h)).toEqual([]);
    expect(() => decideHost({ type: 'resizeClaim', data: { instanceId: b, operationId: randomUUID(), resources: { vcpus: 1, memoryMb: 2049, diskGb: 10 } } }, h)).toThrow(
      expect.objectContaining({ code: 'NO_VALID_HOST' }),
    );
    h = apply(h, { type: 'resizeClaim', data: { instanceId: a, operationId: randomUUID(), resources: { vcpus: 1, memoryMb: 512, diskGb: 20 } } });
    expect(h.allocated).toEqual({ vcpus: 2, memoryMb: 2560, diskGb: 30 });
    expect(() => decideHost({ type: 'resizeClaim', data: { instanceId: randomUUID(), operationId: randomUUID(), resources: noResources } }, h)).toThrow(
      expect.objectContaining({ code: 'CONFLICT' }),
    );
  });
});
