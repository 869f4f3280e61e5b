import { randomUUID } from 'node:crypto';
import { StratusError } from '../../domain/errors.js';
import type { Host } from '../../domain/host.js';
import type { Caller } from '../../domain/identity.js';
import type { RegisterHostInput, SetHostStateInput } from '../../domain/inputs.js';
import { appendToHost, hostClashing } from '../../activities/hostInventory.js';
import { AgentError } from '../../hostagent/driver.js';
import type { Runtime } from '../../server/runtime.js';
import { requireAdmin } from './access.js';
import type { Operation } from '../../domain/operation.js';
import { watchHost } from './hostHealth.js';
import { startHostOperation } from './hostOperations.js';
import { commandMetadata, now } from './operations.js';

/**
 * Registers a hypervisor host. The controller connects to its agent over SSH, pinned to the given host
 * key fingerprint, and takes the capacity and hypervisor kind from the agent's hostInfo, so the record
 * is what the host really has. A wrong fingerprint, a key the agent does not accept or an agent that
 * does not answer is the input's fault (BAD_USER_INPUT with the agent's code) and records nothing.
 */
export async function registerHost(rt: Runtime, caller: Caller, input: RegisterHostInput): Promise<{ host: Host }> {
  requireAdmin(caller);
  const clash = await hostClashing(rt, input.name, input.address, input.port);
  if (clash) {
    throw new StratusError('CONFLICT', `host ${clash.name} (${clash.address}:${clash.port}) is already registered`, { id: clash.id });
  }
  const hostId = randomUUID();
  let info;
  try {
    info = await rt.agents.get(hostId, { host: input.address, port: input.port, fingerprint: input.hostKeyFingerprint }).call('hostInfo', {}, { timeoutMs: 15_000 });
  } catch (e) {
    if (!(e instanceof AgentError)) throw e;
    throw new StratusError('BAD_USER_INPUT', `cannot register ${input.address}:${input.port}: ${e.message}`, { agentCode: e.code });
  }
  const { state } = await appendToHost(
    rt,
    hostId,
    { type: 'register', data: { hostId, ...input, capacity: info.capacity, hypervisor: info.hypervisor, at: now() } },
    { key: `registerHost:${hostId}`, metadata: commandMetadata(caller), rounds: 1 },
  );
  await watchHost(rt, hostId);
  return { host: state! };
}

/**
 * UP, DOWN or MAINTENANCE: only UP hosts are scheduled on. Turning a host MAINTENANCE also drains it (a
 * DRAIN_HOST operation, returned as `operation`); UP ends maintenance, and instances already there stay.
 */
export async function setHostState(rt: Runtime, caller: Caller, input: SetHostStateInput): Promise<{ host: Host; operation?: Operation }> {
  requireAdmin(caller);
  const { state, appended } = await appendToHost(
    rt,
    input.id,
    { type: 'setState', data: { state: input.state, at: now() } },
    { key: `setHostState:${randomUUID()}`, metadata: commandMetadata(caller), rounds: 20 },
  );
  if (!state) throw new StratusError('NOT_FOUND', `host ${input.id} not found`, { id: input.id });
  if (appended.length > 0 && input.state === 'MAINTENANCE') return { host: state, operation: await startHostOperation(rt, caller, state.id, 'DRAIN_HOST') };
  return { host: state };
}
