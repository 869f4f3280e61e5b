import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CreateFlavorInput, RegisterImageInput, catalogEvents, defaultFlavors, flavorDecider, flavorIdFor, imageDecider } from '../domain/catalog.js';
import { replay, type Decider } from '../domain/decider.js';
import { StratusError } from '../domain/errors.js';
import { decideImage, evolveImage, imageLifecycleDecider, isBootable, type StoredImage } from '../domain/image.js';
import { volumeDecider } from '../domain/volume.js';
import { eventRegistry, instanceStream, operationStream, parseStreamId, type DomainEvent } from '../domain/events.js';
import { hostDecider, type Host, type HostCommand, type HostDeciderState } from '../domain/host.js';
import { Caller, canMutate, canRead, hashToken, isAdmin, projectDecider, tokenDecider, type Role } from '../domain/identity.js';
import { BootInstanceInput, RebootInstanceInput, RegisterHostInput, SetHostStateInput } from '../domain/inputs.js';
import {
  InstanceAction,
  InstanceState,
  checkAction,
  instanceActionOf,
  instanceDecider,
  type Instance,
  type InstanceActionKind,
  type InstanceCommand,
  type InstanceDeciderState,
  type InstanceEvent,
  type TransitionResult,
} from '../domain/instance.js';
import { nameBasedUuid } from '../domain/nameBasedId.js';
import { exerciseNetworkDeciders } from './support/networkFixtures.js';
import { operationDecider, operationIdFor, operationIdOfWorkflow, workflowIdOf, type OperationCommand, type OperationDeciderState } from '../domain/operation.js';
import { candidateHosts } from '../domain/placement.js';
import { priceSheetDecider } from '../domain/priceSheet.js';
import { addResources, noResources, type Resources } from '../domain/resources.js';

const at = '2025-01-01T00:00:00.000Z';
const emitted: DomainEvent[] = [];

/** Runs commands through a decider, folding each decision in, and keeps every event for the registry test. */
function run<S, C, E extends DomainEvent>(decider: Decider<S, C, E>, commands: C[], state: S = decider.initialState()): S {
  for (const command of commands) {
    const events = decider.decide(command, state);
    emitted.push(...events);
    state = events.reduce(decider.evolve, state);
  }
  return state;
}

function rejection(fn: () => unknown): StratusError {
  try {
    fn();
  } catch (e) {
    if (e instanceof StratusError) return e;
    throw e;
  }
  throw new Error('expected a StratusError, nothing was thrown');
}

// ---------------------------------------------------------------- instances

const flavor = { id: flavorIdFor('m1.small'), vcpus: 1, memoryMb: 2048, diskGb: 20 };
const hostA = randomUUID();

/** A running instance, booted the way the boot workflow records it. */
function runningInstance(): Instance {
  const op = randomUUID();
  const instanceId = randomUUID();
  const state = run(instanceDecider, [
    { type: 'requestBoot', data: { instanceId, projectId: randomUUID(), name: 'web-1', flavor, imageId: randomUUID(), networkId: null, operationId: op, at } },
    { type: 'recordScheduled', data: { operationId: op, hostId: hostA, at } },
    { type: 'recordLaunched', data: { operationId: op, hostId: hostA, launchedAt: at } },
    { type: 'finishAction', data: { operationId: op, outcome: 'SUCCEEDED', at } },
  ]);
  return state!;
}

const resultOf = (kind: InstanceActionKind, hard: boolean): TransitionResult => {
  switch (kind) {
    case 'REBOOT': return { kind, hard };
    case 'RESIZE': return { kind, flavor: { ...flavor, vcpus: 2 } };
    case 'MIGRATE': return { kind, hostId: randomUUID() };
    case 'EVACUATE': return { kind, hostId: randomUUID() };
    case 'SNAPSHOT': return { kind, imageId: randomUUID() };
    default: return { kind };
  }
};

/** Begins, completes and finishes one action, as its workflow would. */
function act(state: InstanceDeciderState, kind: InstanceActionKind, options: { hard?: boolean } = {}): InstanceDeciderState {
  const operationId = randomUUID();
  return run(
    instanceDecider,
    [
      // An evacuation takes only an instance whose host the health check noted DOWN.
      ...(kind === 'EVACUATE' && state?.hostId ? [{ type: 'noteHost' as const, data: { hostId: state.hostId, down: true, reason: 'agent-unreachable', at } }] : []),
      { type: 'beginAction', data: { operationId, kind, hard: options.hard, at } },
      { type: 'recordTransition', data: { operationId, at, ...resultOf(kind, options.hard ?? false) } },
      { type: 'finishAction', data: { operationId, outcome: 'SUCCEEDED', at } },
    ],
    state,
  );
}

/** An instance resting in `state`, with a host and no task. */
const instanceIn = (state: InstanceState): Instance => ({ ...runningInstance(), state });

/** The rules as an operator would read them; the domain's table must say exactly this. */
const expectedRules: Record<InstanceAction, { from: InstanceState[]; to: InstanceState | 'same' }> = {
  START: { from: ['STOPPED'], to: 'RUNNING' },
  STOP: { from: ['RUNNING', 'PAUSED'], to: 'STOPPED' },
  REBOOT: { from: ['RUNNING'], to: 'RUNNING' },
  HARD_REBOOT: { from: ['RUNNING', 'PAUSED', 'STOPPED', 'ERROR'], to: 'RUNNING' },
  PAUSE: { from: ['RUNNING'], to: 'PAUSED' },
  UNPAUSE: { from: ['PAUSED'], to: 'RUNNING' },
  SUSPEND: { from: ['RUNNING', 'PAUSED'], to: 'SUSPENDED' },
  RESUME: { from: ['SUSPENDED'], to: 'RUNNING' },
  RESIZE: { from: ['RUNNING', 'STOPPED'], to: 'same' },
  MIGRATE: { from: ['RUNNING', 'STOPPED'], to: 'same' },
  SNAPSHOT: { from: ['RUNNING', 'STOPPED', 'PAUSED'], to: 'same' },
  DELETE: { from: ['BUILDING', 'RUNNING', 'STOPPED', 'PAUSED', 'SUSPENDED', 'ERROR'], to: 'DELETED' },
  ATTACH_VOLUME: { from: ['RUNNING', 'STOPPED', 'PAUSED'], to: 'same' },
  DETACH_VOLUME: { from: ['RUNNING', 'STOPPED', 'PAUSED'], to: 'same' },
  EVACUATE: { from: ['RUNNING', 'STOPPED'], to: 'same' },
};

const requestOf = (action: InstanceAction): { kind: InstanceActionKind; hard?: boolean } =>
  action === 'HARD_REBOOT' ? { kind: 'REBOOT', hard: true } : { kind: action as InstanceActionKind };

describe('instance transition table', () => {
  const living = InstanceState.options.filter((s) => s !== 'DELETED');
  for (const action of InstanceAction.options) {
    const rule = expectedRules[action];
    for (const from of living) {
      if (rule.from.includes(from)) {
        it(`${action} is allowed from ${from} and leaves it ${rule.to === 'same' ? from : rule.to}`, () => {
          const { kind, hard } = requestOf(action);
          const after = act(instanceIn(from), kind, { hard })!;
          expect(after.state).toBe(rule.to === 'same' ? from : rule.to);
          expect(after.task).toBeNull();
        });
      } else {
        it(`${action} from ${from} is refused with CONFLICT naming the state and the action`, () => {
          const { kind, hard } = requestOf(action);
          const error = rejection(() => act(instanceIn(from), kind, { hard }));
          expect(error.code).toBe('CONFLICT');
          expect(error.message).toContain(from);
          expect(error.message).toContain(action.toLowerCase().replace('_', ' '));
        });
      }
    }
  }

  it('any action on a deleted or missing instance is NOT_FOUND', () => {
    const deleted = act(runningInstance(), 'DELETE')!;
    expect(deleted.state).toBe('DELETED');
    for (const kind of ['START', 'DELETE', 'REBOOT'] as const) {
      expect(rejection(() => act(deleted, kind)).code).toBe('NOT_FOUND');
      expect(rejection(() => act(null, kind)).code).toBe('NOT_FOUND');
    }
    expect(checkAction(null, { kind: 'STOP' })?.code).toBe('NOT_FOUND');
  });

  it('a hard reboot brings an ERROR instance back to RUNNING and clears its error', () => {
    const broken = instanceIn('ERROR');
    broken.errorReason = 'INTERNAL: qemu died';
    const after = act(broken, 'REBOOT', { hard: true })!;
    expect(after).toMatchObject({ state: 'RUNNING', errorReason: null });
    expect(emitted.at(-2)).toMatchObject({ type: 'InstanceRebooted', data: { hard: true } });
  });

  it('an instance that never got a host can be deleted but not rebooted', () => {
    const noHost: Instance = { ...instanceIn('ERROR'), hostId: null };
    expect(rejection(() => act(noHost, 'REBOOT', { hard: true })).code).toBe('CONFLICT');
    expect(act(noHost, 'DELETE')!.state).toBe('DELETED');
  });

  it('resize records the new flavor, migrate the new host, and both keep the state', () => {
    const resized = act(instanceIn('STOPPED'), 'RESIZE')!;
    expect(resized).toMatchObject({ state: 'STOPPED', flavor: { vcpus: 2 } });
    const before = runningInstance();
    const migrated = act(before, 'MIGRATE')!;
    expect(migrated.state).toBe('RUNNING');
    expect(migrated.hostId).not.toBe(before.hostId);
    expect(emitted.at(-2)).toMatchObject({ type: 'InstanceMigrated', data: { fromHostId: before.hostId } });
  });

  it('maps REBOOT to a soft or hard reboot and refuses kinds that are not instance actions', () => {
    expect(instanceActionOf('REBOOT')).toBe('REBOOT');
    expect(instanceActionOf('REBOOT', { hard: true })).toBe('HARD_REBOOT');
    expect(instanceActionOf('BOOT')).toBeUndefined();
    expect(instanceActionOf('CREATE_VOLUME')).toBeUndefined();
  });
});

describe('instance boot and failure', () => {
  it('a boot holds the instance BUILDING under task BOOT until launched and finished', () => {
    const instance = runningInstance();
    expect(instance).toMatchObject({ state: 'RUNNING', task: null, hostId: hostA, launchedAt: at, version: 4 });
  });

  it('a failed boot leaves ERROR and keeps the host, so cleanup knows what to release', () => {
    const op = randomUUID();
    const instance = run(instanceDecider, [
      { type: 'requestBoot', data: { instanceId: randomUUID(), projectId: randomUUID(), name: 'db', flavor, imageId: randomUUID(), networkId: null, operationId: op, at } },
      { type: 'recordScheduled', data: { operationId: op, hostId: hostA, at } },
      { type: 'recordFailure', data: { operationId: op, code: 'INTERNAL', message: 'disk create failed', at } },
      { type: 'finishAction', data: { operationId: op, outcome: 'FAILED', at } },
    ])!;
    expect(instance).toMatchObject({ state: 'ERROR', hostId: hostA, flavor, task: null, errorReason: 'INTERNAL: disk create failed' });
  });

  it('every command repeated with the same operation id decides no events (safe activity retries)', () => {
    const op = randomUUID();
    const boot: InstanceCommand = {
      type: 'requestBoot',
      data: { instanceId: randomUUID(), projectId: randomUUID(), name: 'x', flavor, imageId: randomUUID(), networkId: null, operationId: op, at },
    };
    const steps: InstanceCommand[] = [
      boot,
      { type: 'recordScheduled', data: { operationId: op, hostId: hostA, at } },
      { type: 'recordLaunched', data: { operationId: op, hostId: hostA, launchedAt: at } },
      { type: 'finishAction', data: { operationId: op, outcome: 'SUCCEEDED', at } },
    ];
    let state: InstanceDeciderState = null;
    for (const command of steps) {
      state = run(instanceDecider, [command], state);
      expect(instanceDecider.decide(command, state)).toEqual([]);
    }
    const stop = randomUUID();
    const stopSteps: InstanceCommand[] = [
      { type: 'beginAction', data: { operationId: stop, kind: 'STOP', at } },
      { type: 'recordTransition', data: { operationId: stop, kind: 'STOP', at } },
      { type: 'finishAction', data: { operationId: stop, outcome: 'SUCCEEDED', at } },
    ];
    for (const command of stopSteps) {
      state = run(instanceDecider, [command], state);
      expect(instanceDecider.decide(command, state)).toEqual([]);
    }
    expect(state!.state).toBe('STOPPED');
  });
});

describe('one action per instance at a time', () => {
  it('a second action while one runs is CONFLICT naming the running operation', () => {
    const stopOp = randomUUID();
    const busy = run(instanceDecider, [{ type: 'beginAction', data: { operationId: stopOp, kind: 'STOP', at } }], runningInstance());
    expect(busy!.task).toBe('STOP');
    const error = rejection(() => instanceDecider.decide({ type: 'beginAction', data: { operationId: randomUUID(), kind: 'PAUSE', at } }, busy));
    expect(error.code).toBe('CONFLICT');
    expect(error.details).toEqual({ runningOperation: { id: stopOp, kind: 'STOP' } });
    // The API's synchronous check says the same before any workflow starts.
    expect(checkAction(busy, { kind: 'DELETE' })?.details).toEqual({ runningOperation: { id: stopOp, kind: 'STOP' } });
  });

  it('even delete waits for a boot in progress', () => {
    const op = randomUUID();
    const building = run(instanceDecider, [
      { type: 'requestBoot', data: { instanceId: randomUUID(), projectId: randomUUID(), name: 'b', flavor, imageId: randomUUID(), networkId: null, operationId: op, at } },
    ]);
    expect(checkAction(building, { kind: 'DELETE' })?.details).toEqual({ runningOperation: { id: op, kind: 'BOOT' } });
  });

  it('once the running action finishes, the next may begin', () => {
    const stopped = act(runningInstance(), 'STOP');
    expect(checkAction(stopped, { kind: 'START' })).toBeNull();
  });

  it('only the operation holding the task may record its outcome', () => {
    const op = randomUUID();
    const busy = run(instanceDecider, [{ type: 'beginAction', data: { operationId: op, kind: 'PAUSE', at } }], runningInstance());
    const error = rejection(() => instanceDecider.decide({ type: 'recordTransition', data: { operationId: randomUUID(), kind: 'PAUSE', at } }, busy));
    expect(error.code).toBe('CONFLICT');
  });
});

// ---------------------------------------------------------------- hosts and placement

const capacity: Resources = { vcpus: 8, memoryMb: 16384, diskGb: 160 };

function registeredHost(overrides: Partial<{ capacity: Resources }> = {}): Host {
  return run(hostDecider, [
    {
      type: 'register',
      data: {
        hostId: randomUUID(), name: 'rack1-h1', address: '10.0.0.5', port: 2222,
        hostKeyFingerprint: `SHA256:${'A'.repeat(43)}`, capacity: overrides.capacity ?? capacity, hypervisor: 'sim', at,
      },
    },
  ])!;
}

const sumOfClaims = (host: Host) => Object.values(host.claims).reduce((sum, c) => addResources(sum, c.resources), noResources);

describe('host capacity', () => {
  it('claims never exceed capacity, and allocated always equals the sum of claims', () => {
    let host: HostDeciderState = registeredHost();
    let seed = 42;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const instances = Array.from({ length: 12 }, () => randomUUID());
    let refusals = 0;
    for (let i = 0; i < 400; i++) {
      const instanceId = instances[rand(instances.length)]!;
      const command: HostCommand = rand(3) === 0
        ? { type: 'release', data: { instanceId } }
        : { type: 'claim', data: { instanceId, operationId: randomUUID(), resources: defaultFlavors[rand(defaultFlavors.length)]! } };
      try {
        host = run(hostDecider, [command], host);
      } catch (e) {
        expect((e as StratusError).details.reason).toBe('insufficient-capacity');
        refusals++;
      }
      const h = host!;
      expect(h.allocated).toEqual(sumOfClaims(h));
      expect(h.allocated.vcpus).toBeLessThanOrEqual(capacity.vcpus);
      expect(h.allocated.memoryMb).toBeLessThanOrEqual(capacity.memoryMb);
      expect(h.allocated.diskGb).toBeLessThanOrEqual(capacity.diskGb);
    }
    expect(refusals).toBeGreaterThan(0);
  });

  it('a claim that does not fit is NO_VALID_HOST with reason insufficient-capacity; a host not UP refuses all', () => {
    const host = registeredHost({ capacity: { vcpus: 1, memoryMb: 1024, diskGb: 10 } });
    const claim = (resources: Resources): HostCommand => ({ type: 'claim', data: { instanceId: randomUUID(), operationId: randomUUID(), resources } });
    const tooBig = rejection(() => hostDecider.decide(claim({ vcpus: 1, memoryMb: 2048, diskGb: 1 }), host));
    expect(tooBig).toMatchObject({ code: 'NO_VALID_HOST', details: { reason: 'insufficient-capacity' } });
    const exact = run(hostDecider, [claim({ vcpus: 1, memoryMb: 1024, diskGb: 10 })], host)!;
    expect(exact.allocated).toEqual(exact.capacity);
    const down = run(hostDecider, [{ type: 'setState', data: { state: 'MAINTENANCE', at } }], host);
    expect(rejection(() => hostDecider.decide(claim({ vcpus: 1, memoryMb: 1, diskGb: 1 }), down))).toMatchObject({
      code: 'NO_VALID_HOST',
      details: { reason: 'host-not-up' },
    });
    expect(hostDecider.decide({ type: 'setState', data: { state: 'MAINTENANCE', at } }, down)).toEqual([]);
  });

  it('claiming twice for one instance and releasing an unknown claim are no-ops', () => {
    const instanceId = randomUUID();
    const claim: HostCommand = { type: 'claim', data: { instanceId, operationId: randomUUID(), resources: flavor } };
    const claimed = run(hostDecider, [claim], registeredHost())!;
    expect(hostDecider.decide(claim, claimed)).toEqual([]);
    // Even a duplicated event (replayed twice) counts once.
    const [event] = hostDecider.decide(claim, registeredHost());
    expect(hostDecider.evolve(hostDecider.evolve(registeredHost(), event!), event!)!.allocated).toEqual({ vcpus: 1, memoryMb: 2048, diskGb: 20 });
    expect(hostDecider.decide({ type: 'release', data: { instanceId: randomUUID() } }, claimed)).toEqual([]);
    const released = run(hostDecider, [{ type: 'release', data: { instanceId } }], claimed)!;
    expect(released.allocated).toEqual(noResources);
    expect(hostDecider.decide({ type: 'release', data: { instanceId } }, released)).toEqual([]);
  });

  it('registering a host twice is CONFLICT; acting on an unknown host is NOT_FOUND', () => {
    const host = registeredHost();
    expect(rejection(() => hostDecider.decide({ type: 'register', data: { ...host, hostId: host.id, at } }, host)).code).toBe('CONFLICT');
    expect(rejection(() => hostDecider.decide({ type: 'setState', data: { state: 'UP', at } }, null)).code).toBe('NOT_FOUND');
  });
});

describe('placement', () => {
  const host = (id: string, state: Host['state'], freeMemoryMb: number, free: Partial<Resources> = {}) => ({
    id,
    state,
    capacity: { vcpus: 16, memoryMb: 32768, diskGb: 500 },
    allocated: { vcpus: 16 - (free.vcpus ?? 16), memoryMb: 32768 - freeMemoryMb, diskGb: 500 - (free.diskGb ?? 500) },
  });
  const small = { vcpus: 1, memoryMb: 2048, diskGb: 20 };

  it('keeps only UP hosts with room, most free memory first, ties by id', () => {
    const hosts = [
      host('b', 'UP', 8192),
      host('down', 'DOWN', 30000),
      host('maint', 'MAINTENANCE', 30000),
      host('a', 'UP', 8192),
      host('big', 'UP', 20000),
      host('nomem', 'UP', 1024),
      host('nocpu', 'UP', 20000, { vcpus: 0 }),
      host('nodisk', 'UP', 20000, { diskGb: 10 }),
    ];
    expect(candidateHosts(hosts, small)).toEqual(['big', 'a', 'b']);
  });

  it('leaves out excluded hosts (a reschedule, a migration source)', () => {
    expect(candidateHosts([host('a', 'UP', 8192), host('b', 'UP', 4096)], small, { excludeHostIds: ['a'] })).toEqual(['b']);
  });

  it('a host filled by claims drops out of the candidates', () => {
    const h = registeredHost({ capacity: { vcpus: 1, memoryMb: 2048, diskGb: 20 } });
    expect(candidateHosts([h], small)).toEqual([h.id]);
    const full = run(hostDecider, [{ type: 'claim', data: { instanceId: randomUUID(), operationId: randomUUID(), resources: small } }], h)!;
    expect(candidateHosts([full], small)).toEqual([]);
  });
});

// ---------------------------------------------------------------- operations

const caller: z.infer<typeof Caller> = { tokenId: randomUUID(), projectId: randomUUID(), role: 'MEMBER' };

function requestedOperation(): OperationDeciderState {
  const operationId = randomUUID();
  return run(operationDecider, [
    { type: 'request', data: { operationId, kind: 'BOOT', resourceId: randomUUID(), projectId: caller.projectId, actor: caller, at } },
  ]);
}

describe('operations', () => {
  it('evolve turns steps and outcome into the status, steps and error the API shows', () => {
    const t = (s: number) => `2025-01-01T00:00:0${s}.000Z`;
    const op = run(operationDecider, [
      { type: 'start', data: { runId: 'run-1', at: t(1) } },
      { type: 'startStep', data: { name: 'claimHost', at: t(1) } },
      { type: 'finishStep', data: { name: 'claimHost', status: 'SUCCEEDED', at: t(2) } },
      { type: 'startStep', data: { name: 'createDisk', at: t(3) } },
      { type: 'finishStep', data: { name: 'createDisk', status: 'FAILED', error: { code: 'INTERNAL', message: 'no space' }, at: t(4) } },
      { type: 'finishStep', data: { name: 'releaseAddress', status: 'SKIPPED', at: t(5) } },
      { type: 'fail', data: { code: 'INTERNAL', message: 'no space', at: t(6) } },
    ], requestedOperation())!;
    expect(op).toMatchObject({ status: 'FAILED', runId: 'run-1', error: { code: 'INTERNAL', message: 'no space' }, finishedAt: t(6), version: 8 });
    expect(op.workflowId).toBe(`op-${op.id}`);
    expect(op.steps).toEqual([
      { name: 'claimHost', status: 'SUCCEEDED', startedAt: t(1), finishedAt: t(2), error: null },
      { name: 'createDisk', status: 'FAILED', startedAt: t(3), finishedAt: t(4), error: { code: 'INTERNAL', message: 'no space' } },
      { name: 'releaseAddress', status: 'SKIPPED', startedAt: null, finishedAt: t(5), error: null },
    ]);
  });

  it('starts PENDING, succeeds once, and a finished operation cannot change its outcome', () => {
    const pending = requestedOperation()!;
    expect(pending.status).toBe('PENDING');
    const done = run(operationDecider, [{ type: 'start', data: { runId: 'r', at } }, { type: 'succeed', data: { at } }], pending)!;
    expect(done.status).toBe('SUCCEEDED');
    expect(operationDecider.decide({ type: 'succeed', data: { at } }, done)).toEqual([]);
    expect(rejection(() => operationDecider.decide({ type: 'fail', data: { code: 'X', message: 'm', at } }, done)).code).toBe('CONFLICT');
    expect(rejection(() => operationDecider.decide({ type: 'cancel', data: { at } }, done)).code).toBe('CONFLICT');
    expect(rejection(() => operationDecider.decide({ type: 'start', data: { runId: 'r2', at } }, done)).code).toBe('CONFLICT');
  });

  it('a failed operation may be retried with a new run, which clears its error', () => {
    const failed = run(operationDecider, [{ type: 'start', data: { runId: 'r1', at } }, { type: 'fail', data: { code: 'INTERNAL', message: 'm', at } }], requestedOperation());
    const retried = run(operationDecider, [{ type: 'start', data: { runId: 'r2', at } }], failed)!;
    expect(retried).toMatchObject({ status: 'RUNNING', runId: 'r2', error: null, finishedAt: null });
  });

  it('a pending operation may be canceled', () => {
    expect(run(operationDecider, [{ type: 'cancel', data: { at } }], requestedOperation())!.status).toBe('CANCELED');
  });

  it('repeated step records decide nothing', () => {
    const running = run(operationDecider, [{ type: 'start', data: { runId: 'r', at } }, { type: 'startStep', data: { name: 's', at } }], requestedOperation());
    const start: OperationCommand = { type: 'startStep', data: { name: 's', at } };
    const finish: OperationCommand = { type: 'finishStep', data: { name: 's', status: 'SUCCEEDED', at } };
    expect(operationDecider.decide(start, running)).toEqual([]);
    const finished = run(operationDecider, [finish], running);
    expect(operationDecider.decide(finish, finished)).toEqual([]);
    expect(operationDecider.decide({ type: 'start', data: { runId: 'r', at } }, finished)).toEqual([]);
  });

  it('a repeated request returns no events; the same id for a different request is CONFLICT', () => {
    const op = requestedOperation()!;
    const same: OperationCommand = { type: 'request', data: { operationId: op.id, kind: op.kind, resourceId: op.resourceId, projectId: op.projectId, actor: caller, at } };
    expect(operationDecider.decide(same, op)).toEqual([]);
    const other: OperationCommand = { type: 'request', data: { ...same.data, kind: 'DELETE' } };
    expect(rejection(() => operationDecider.decide(other, op)).code).toBe('CONFLICT');
  });

  it('the same (project, clientRequestId) always gives the same operation id; another project or request id another', () => {
    const p1 = randomUUID();
    const p2 = randomUUID();
    const id = operationIdFor({ projectId: p1, clientRequestId: 'req-1', randomId: randomUUID() });
    expect(operationIdFor({ projectId: p1, clientRequestId: 'req-1', randomId: randomUUID() })).toBe(id);
    expect(operationIdFor({ projectId: p2, clientRequestId: 'req-1', randomId: randomUUID() })).not.toBe(id);
    expect(operationIdFor({ projectId: p1, clientRequestId: 'req-2', randomId: randomUUID() })).not.toBe(id);
    expect(z.uuid().parse(id)[14]).toBe('5');
    const fresh = randomUUID();
    expect(operationIdFor({ projectId: p1, randomId: fresh })).toBe(fresh);
  });

  it('name-based ids are RFC 9562 version 5 UUIDs', () => {
    // The RFC's DNS namespace example.
    expect(nameBasedUuid('6ba7b810-9dad-11d1-80b4-00c04fd430c8', 'www.example.com')).toBe('2ed6657d-e927-568b-95e1-2665a8aea6a2');
  });

  it('a workflow id is op-<operation id> and gives the operation id back', () => {
    const id = randomUUID();
    expect(workflowIdOf(id)).toBe(`op-${id}`);
    expect(operationIdOfWorkflow(workflowIdOf(id))).toBe(id);
    expect(operationIdOfWorkflow('something-else')).toBeUndefined();
  });
});

// ---------------------------------------------------------------- identity, catalog, inputs

describe('authorization', () => {
  const own = randomUUID();
  const other = randomUUID();
  const as = (role: Role) => ({ tokenId: randomUUID(), projectId: own, role });
  const matrix: [Role, string, boolean, boolean][] = [
    // role, project, canRead, canMutate
    ['ADMIN', own, true, true],
    ['ADMIN', other, true, true],
    ['MEMBER', own, true, true],
    ['MEMBER', other, false, false],
    ['READER', own, true, false],
    ['READER', other, false, false],
  ];
  for (const [role, project, read, mutate] of matrix) {
    it(`${role} on ${project === own ? 'its own' : 'another'} project: read ${read}, mutate ${mutate}`, () => {
      expect(canRead(as(role), project)).toBe(read);
      expect(canMutate(as(role), project)).toBe(mutate);
    });
  }
  it('only ADMIN is admin', () => {
    expect(['ADMIN', 'MEMBER', 'READER'].map((r) => isAdmin(as(r as Role)))).toEqual([true, false, false]);
  });
  it('tokens are stored as their SHA-256 hex', () => {
    expect(hashToken('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});

describe('catalog', () => {
  it('has the five default flavors with stable, distinct ids', () => {
    expect(defaultFlavors.map(({ name, vcpus, memoryMb, diskGb }) => [name, vcpus, memoryMb, diskGb])).toEqual([
      ['m1.tiny', 1, 512, 1],
      ['m1.small', 1, 2048, 20],
      ['m1.medium', 2, 4096, 40],
      ['m1.large', 4, 8192, 80],
      ['m1.xlarge', 8, 16384, 160],
    ]);
    expect(new Set(defaultFlavors.map((f) => f.id)).size).toBe(5);
    expect(flavorIdFor('m1.tiny')).toBe(defaultFlavors[0]!.id);
  });

  it('flavor and image inputs reject what makes no sense', () => {
    expect(CreateFlavorInput.safeParse({ name: 'c1', vcpus: 1, memoryMb: 1, diskGb: 1 }).success).toBe(true);
    expect(CreateFlavorInput.safeParse({ name: 'c1', vcpus: 0, memoryMb: 1, diskGb: 1 }).success).toBe(false);
    expect(CreateFlavorInput.safeParse({ name: 'x'.repeat(65), vcpus: 1, memoryMb: 1, diskGb: 1 }).success).toBe(false);
    expect(CreateFlavorInput.safeParse({ name: 'c1', vcpus: 1.5, memoryMb: 1, diskGb: 1 }).success).toBe(false);
    expect(RegisterImageInput.safeParse({ name: 'debian', format: 'qcow2', sizeBytes: 0 }).success).toBe(true);
    expect(RegisterImageInput.safeParse({ name: 'debian', format: 'exe', sizeBytes: 0 }).success).toBe(false);
    expect(RegisterImageInput.safeParse({ name: 'debian', format: 'raw', sizeBytes: -1 }).success).toBe(false);
  });
});

describe('images', () => {
  const created = (sourceInstanceId: string | null): StoredImage =>
    evolveImage(null, { type: 'ImageCreated', data: { id: randomUUID(), name: 'snap', format: 'qcow2', visibility: 'PRIVATE', projectId: randomUUID(), sourceInstanceId, createdAt: at } })!;
  const apply = (image: StoredImage, command: Parameters<typeof decideImage>[0]) => decideImage(command, image).reduce(evolveImage, image as StoredImage | null)!;

  it("a registered image reads with the contract's uppercase status, not Glance's lowercase word", () => {
    const registered = evolveImage(null, { type: 'ImageRegistered', data: { id: randomUUID(), name: 'cirros', format: 'qcow2', sizeBytes: 1, status: 'active', registeredAt: at } })!;
    expect(registered.status).toBe('ACTIVE');
    expect(isBootable(registered)).toBe(true);
    const killed = evolveImage(null, { type: 'ImageRegistered', data: { id: randomUUID(), name: 'broken', format: 'qcow2', sizeBytes: 1, status: 'killed', registeredAt: at } })!;
    expect(killed.status).toBe('ERROR');
    expect(isBootable(killed)).toBe(false);
  });

  it('a failed snapshot image is ERROR with the reason; its retry may upload into it again, a failed user upload may not', () => {
    const snapshot = apply(apply(created(randomUUID()), { type: 'startUpload', data: { uploadId: randomUUID(), at } }), {
      type: 'fail', data: { operationId: randomUUID(), reason: 'the host went away', at },
    });
    expect(snapshot).toMatchObject({ status: 'ERROR', errorReason: 'the host went away', uploadId: null });
    // Failing it again decides nothing: the undo is safe to repeat.
    expect(decideImage({ type: 'fail', data: { operationId: randomUUID(), reason: 'again', at } }, snapshot)).toEqual([]);
    expect(apply(snapshot, { type: 'startUpload', data: { uploadId: randomUUID(), at } }).status).toBe('SAVING');

    const upload = randomUUID();
    const rejected = apply(apply(created(null), { type: 'startUpload', data: { uploadId: upload, at } }), { type: 'rejectUpload', data: { uploadId: upload, reason: 'not qcow2', at } });
    expect(() => decideImage({ type: 'startUpload', data: { uploadId: randomUUID(), at } }, rejected)).toThrow(expect.objectContaining({ code: 'CONFLICT' }));
    const active = apply(apply(created(null), { type: 'startUpload', data: { uploadId: upload, at } }), { type: 'finishUpload', data: { uploadId: upload, checksum: 'b'.repeat(64), sizeBytes: 9, at } });
    expect(() => decideImage({ type: 'fail', data: { operationId: randomUUID(), reason: 'x', at } }, active)).toThrow(expect.objectContaining({ code: 'CONFLICT' }));
  });
});

describe('mutation inputs', () => {
  const boot = { name: 'web-1', flavorId: randomUUID(), imageId: randomUUID() };
  it('bootInstance takes a 1-63 character name starting with a letter or digit', () => {
    expect(BootInstanceInput.safeParse(boot).success).toBe(true);
    expect(BootInstanceInput.safeParse({ ...boot, name: '-web' }).success).toBe(false);
    expect(BootInstanceInput.safeParse({ ...boot, name: 'a'.repeat(64) }).success).toBe(false);
    expect(BootInstanceInput.safeParse({ ...boot, name: 'has space' }).success).toBe(false);
    expect(BootInstanceInput.safeParse({ ...boot, flavorId: 'm1.small' }).success).toBe(false);
    expect(BootInstanceInput.safeParse({ ...boot, clientRequestId: 'x'.repeat(129) }).success).toBe(false);
    expect(BootInstanceInput.safeParse({ ...boot, clientRequestId: '' }).success).toBe(false);
  });
  it('rebootInstance is soft unless asked', () => {
    expect(RebootInstanceInput.parse({ id: randomUUID() }).hard).toBe(false);
  });
  it('registerHost wants an address, a port and an OpenSSH SHA256 fingerprint', () => {
    const host = { name: 'h1', address: '192.168.1.10', port: 22, hostKeyFingerprint: 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s' };
    expect(RegisterHostInput.safeParse(host).success).toBe(true);
    expect(RegisterHostInput.safeParse({ ...host, address: 'host-1.example.org' }).success).toBe(true);
    expect(RegisterHostInput.safeParse({ ...host, port: 70000 }).success).toBe(false);
    expect(RegisterHostInput.safeParse({ ...host, hostKeyFingerprint: 'MD5:aa:bb' }).success).toBe(false);
    expect(RegisterHostInput.safeParse({ ...host, address: 'not an address' }).success).toBe(false);
    expect(SetHostStateInput.safeParse({ id: randomUUID(), state: 'SLEEPING' }).success).toBe(false);
  });
});

// ---------------------------------------------------------------- the registry

describe('event registry', () => {
  it('holds every event type the deciders emit, and their data validates against it', () => {
    // Make sure every decider has run at least once in this file, whatever the test order.
    run(projectDecider, [{ type: 'createProject', data: { id: randomUUID(), name: 'acme', createdAt: at } }]);
    run(tokenDecider, [{ type: 'createToken', data: { tokenId: randomUUID(), tokenHash: hashToken('t'), projectId: randomUUID(), role: 'READER', createdAt: at } }]);
    run(flavorDecider, [{ type: 'createFlavor', data: { ...defaultFlavors[0]!, createdAt: at } }]);
    run(imageDecider, [{ type: 'registerImage', data: { id: randomUUID(), name: 'cirros', format: 'qcow2', sizeBytes: 1, status: 'active', registeredAt: at } }]);
    const host = registeredHost();
    const claimed = run(hostDecider, [{ type: 'claim', data: { instanceId: randomUUID(), operationId: randomUUID(), resources: flavor } }], host)!;
    const claimedId = Object.keys(claimed.claims)[0]!;
    run(hostDecider, [
      { type: 'resizeClaim', data: { instanceId: claimedId, operationId: randomUUID(), resources: { ...flavor, memoryMb: flavor.memoryMb * 2 } } },
      { type: 'release', data: { instanceId: claimedId } },
      { type: 'setState', data: { state: 'DOWN', at } },
    ], claimed);
    let instance: InstanceDeciderState = runningInstance();
    for (const kind of ['STOP', 'START', 'REBOOT', 'PAUSE', 'UNPAUSE', 'SUSPEND', 'RESUME', 'RESIZE', 'MIGRATE', 'SNAPSHOT', 'EVACUATE'] as const) instance = act(instance, kind);
    const hostOfIt = instance!.hostId!;
    instance = run(instanceDecider, [{ type: 'noteHost', data: { hostId: hostOfIt, down: true, reason: 'agent-unreachable', at } }, { type: 'noteHost', data: { hostId: hostOfIt, down: false, reason: 'answers', at } }], instance);
    const fail = randomUUID();
    instance = run(instanceDecider, [
      { type: 'beginAction', data: { operationId: fail, kind: 'PAUSE', at } },
      { type: 'recordFailure', data: { operationId: fail, code: 'INTERNAL', message: 'x', at } },
      { type: 'finishAction', data: { operationId: fail, outcome: 'FAILED', at } },
    ], instance);
    act(instance, 'DELETE');
    run(operationDecider, [{ type: 'start', data: { runId: 'r', at } }, { type: 'startStep', data: { name: 's', at } }, { type: 'progressStep', data: { name: 's', percent: 40, message: 'half', at } }, { type: 'addChild', data: { operationId: randomUUID(), resourceId: randomUUID(), at } }, { type: 'finishStep', data: { name: 's', status: 'SUCCEEDED', at } }, { type: 'succeed', data: { at } }], requestedOperation());
    run(operationDecider, [{ type: 'fail', data: { code: 'X', message: 'm', at } }], requestedOperation());
    run(operationDecider, [{ type: 'cancel', data: { at } }], requestedOperation());
    run(operationDecider, [{ type: 'fail', data: { code: 'X', message: 'm', at } }, { type: 'reset', data: { fromStep: 's', resetEventId: 7, at } }], requestedOperation());

    const vol = randomUUID();
    const [v1, v2, v3, v4, v5, v6] = [randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    const holder = randomUUID();
    const snapped = run(volumeDecider, [
      { type: 'requestCreate', data: { volumeId: vol, projectId: randomUUID(), name: 'data', sizeGb: 1, sourceSnapshotId: null, operationId: v1, at } },
      { type: 'recordCreated', data: { operationId: v1, at } },
      { type: 'finishAction', data: { operationId: v1, outcome: 'SUCCEEDED', at } },
      { type: 'beginAction', data: { operationId: v2, kind: 'ATTACH_VOLUME', instanceId: holder, at } },
      { type: 'recordAttached', data: { operationId: v2, instanceId: holder, device: 'vdb', at } },
      { type: 'finishAction', data: { operationId: v2, outcome: 'SUCCEEDED', at } },
      { type: 'beginAction', data: { operationId: v3, kind: 'DETACH_VOLUME', instanceId: holder, at } },
      { type: 'recordDetached', data: { operationId: v3, instanceId: holder, at } },
      { type: 'finishAction', data: { operationId: v3, outcome: 'SUCCEEDED', at } },
      { type: 'beginAction', data: { operationId: v4, kind: 'SNAPSHOT_VOLUME', snapshot: { id: randomUUID(), name: 's' }, at } },
    ]);
    const snapshotId = snapped!.snapshots[0]!.id;
    const rested = run(volumeDecider, [
      { type: 'recordSnapshotted', data: { operationId: v4, snapshotId, at } },
      { type: 'finishAction', data: { operationId: v4, outcome: 'SUCCEEDED', at } },
      { type: 'beginAction', data: { operationId: v5, kind: 'DELETE_VOLUME', at } },
      { type: 'recordFailure', data: { operationId: v5, code: 'HYPERVISOR_ERROR', message: 'x', at } },
      { type: 'finishAction', data: { operationId: v5, outcome: 'FAILED', at } },
      { type: 'beginAction', data: { operationId: v6, kind: 'DELETE_VOLUME', at } },
      { type: 'recordDeleted', data: { operationId: v6, at } },
    ], snapped);
    expect(rested?.state).toBe('DELETED');
    const img = (id: string) => ({ id, name: 'disk', format: 'qcow2' as const, visibility: 'PRIVATE' as const, projectId: randomUUID(), sourceInstanceId: null, createdAt: at });
    const [u1, u2] = [randomUUID(), randomUUID()];
    run(imageLifecycleDecider, [
      { type: 'create', data: img(randomUUID()) },
      { type: 'startUpload', data: { uploadId: u1, at } },
      { type: 'abandonUpload', data: { uploadId: u1, reason: 'gone', at } },
      { type: 'startUpload', data: { uploadId: u2, at } },
      { type: 'finishUpload', data: { uploadId: u2, checksum: 'a'.repeat(64), sizeBytes: 1, at } },
      { type: 'delete', data: { at } },
    ]);
    run(imageLifecycleDecider, [
      { type: 'create', data: img(randomUUID()) },
      { type: 'startUpload', data: { uploadId: u1, at } },
      { type: 'rejectUpload', data: { uploadId: u1, reason: 'not qcow2', at } },
    ]);
    // An instance snapshot's image that its operation could not fill: ERROR with the reason.
    run(imageLifecycleDecider, [
      { type: 'create', data: { ...img(randomUUID()), sourceInstanceId: randomUUID() } },
      { type: 'startUpload', data: { uploadId: u1, at } },
      { type: 'fail', data: { operationId: randomUUID(), reason: 'host went away', at } },
    ]);
    exerciseNetworkDeciders(run);
    run(priceSheetDecider, [{ type: 'setPrice', data: { usageType: 'RUNNING_VM', unitPrice: 0.05, at } }]);
    // The metering clock's tick has no decider: its activity appends it for each hour (activities/meteringClock.ts).
    emitted.push({ type: 'UsageClockTicked', data: { at } });

    const registry: Record<string, z.ZodType> = eventRegistry;
    for (const event of emitted) {
      expect(registry[event.type], event.type).toBeDefined();
      expect(registry[event.type]!.safeParse(event.data).error, event.type).toBeUndefined();
    }
    // And nothing in the registry that no decider emits: every listed type was exercised above.
    expect(new Set(emitted.map((e) => e.type))).toEqual(new Set(Object.keys(eventRegistry)));
  });

  it('replaying a stream folds the same state as deciding it', () => {
    const instance = runningInstance();
    const events = emitted.filter((e): e is InstanceEvent => e.type.startsWith('Instance') && 'operationId' in e.data).slice(-4);
    expect(replay(instanceDecider, events)).toEqual(instance);
  });

  it('stream ids are <kind>-<id>', () => {
    const id = randomUUID();
    expect(instanceStream(id)).toBe(`instance-${id}`);
    expect(parseStreamId(operationStream(id))).toEqual({ kind: 'operation', id });
    expect(Object.keys(catalogEvents)).toEqual(['FlavorCreated', 'ImageRegistered']);
  });
});
