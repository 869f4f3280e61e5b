import { Context } from '@temporalio/activity';
import type { Runtime } from '../server/runtime.js';
import { actionSteps } from './actionSteps.js';
import { addressSteps } from './addressSteps.js';
import { activityContext } from './agentCalls.js';
import { bootSteps } from './bootSteps.js';
import { operatorSteps } from './operatorSteps.js';
import { meteringSteps } from './meteringClock.js';
import { meterSteps } from './meterSamples.js';
import { volumeSteps } from './volumeSteps.js';
import { imageFetchSteps } from './imageFetch.js';
import { snapshotSteps } from './snapshotSteps.js';
import { securityGroupSteps } from './securityGroupSteps.js';
import { migrationSteps, type MigrationPlan } from './migrationSteps.js';
import { hostOperationSteps } from './drainSteps.js';
import { evacuationSteps } from './evacuationSteps.js';
import { hostHealthSteps } from './hostHealth.js';
import { resizeSteps } from './resizeSteps.js';
import type { OperationContext } from './operationSteps.js';
import { membershipSteps } from './membership.js';

export type { OperationContext } from './operationSteps.js';
export type { VmAction } from './actionSteps.js';
export type { VolumeContext } from './volumeRecords.js';
export type { AddressRequest } from './addressSteps.js';
export type { SecurityGroupsRequest } from './securityGroupSteps.js';

/** How often a running activity tells Temporal it is alive; the workflows' heartbeatTimeout is a few times this. */
export const HEARTBEAT_INTERVAL_MS = 2_000;

/**
 * Every activity the workflows call, bound to one runtime (its pool, store and agent connections). Each
 * beats its heart while it runs, so when a worker dies Temporal hands its activities to another within
 * the heartbeat timeout instead of the (long) start-to-close timeout.
 */
export function createActivities(rt: Runtime) {
  const activities = {
    ...bootSteps(rt),
    ...actionSteps(rt),
    ...operatorSteps(rt),
    ...meteringSteps(rt),
    ...meterSteps(rt),
    ...volumeSteps(rt),
    ...imageFetchSteps(rt),
    ...snapshotSteps(rt),
    ...addressSteps(rt),
    ...securityGroupSteps(rt),
    ...migrationSteps(rt),
    ...resizeSteps(rt),
    ...hostOperationSteps(rt),
    ...evacuationSteps(rt),
    ...hostHealthSteps(rt),
    ...membershipSteps(rt),
    /** The benchmark's baseline: a round trip through Temporal that does nothing. */
    async noop(): Promise<void> {},
  };
  const composed = {
    ...activities,
    /**
     * Boot, when nothing is fetched between them: the port, the VM's definition and its start on the
     * host, then RUNNING recorded, one after the other in one activity. Each still records itself as
     * its own step of the operation, and each agent call and append keeps its own idempotency key, so a
     * retry of the whole repeats nothing; what goes is three round trips through the engine (bench:boot:
     * 30 to 40 ms each at concurrency 1).
     */
    async setUpOnHost(ctx: OperationContext): Promise<void> {
      await activities.plugBootPort(ctx);
      await activities.createVm(ctx);
      await activities.startVm(ctx);
      await activities.recordRunning(ctx);
    },
    /**
     * A live migration with nothing to fetch, in the same way: the attachments plugged on the target,
     * the target waiting and the source sending, in one activity (each its own step, as above). A
     * failure of any of them is the workflow's to undo, exactly as when they are three.
     */
    async moveLive(ctx: OperationContext, plan: MigrationPlan): Promise<void> {
      await activities.plugAttachments(ctx, plan);
      await activities.migrateSend(ctx, plan, await activities.migrateReceive(ctx, plan));
    },
    /** Once the VM is on the target: the instance's host switched, the source's claim released, recorded. */
    async finishMigration(ctx: OperationContext, plan: MigrationPlan): Promise<void> {
      await activities.switchHost(ctx, plan);
      await activities.releaseSourceClaim(ctx, plan);
      await activities.recordMigrated(ctx);
    },
  };
  return Object.fromEntries(
    Object.entries(composed).map(([name, fn]) => [name, withHeartbeat(fn as (...args: unknown[]) => Promise<unknown>)]),
  ) as typeof composed;
}

export type Activities = ReturnType<typeof createActivities>;

function withHeartbeat<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args) => {
    const ctx: Context | undefined = activityContext();
    const timer = ctx ? setInterval(() => ctx.heartbeat(), HEARTBEAT_INTERVAL_MS) : undefined;
    try {
      return await fn(...args);
    } finally {
      clearInterval(timer);
    }
  };
}
