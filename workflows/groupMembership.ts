import { condition, continueAsNew, defineQuery, defineSignal, proxyActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

export interface GroupMembershipInput {
  projectId: string;
  /** Carried across continue-as-new: groups changed and not pushed yet, hosts still catching up, pushes so far. */
  changed?: string[];
  behind?: string[];
  seq?: number;
  rounds?: number;
}

export const membersChanged = defineSignal<[{ groupIds: string[] }]>('membersChanged');
export const membershipState = defineQuery<{ rounds: number; changed: string[]; behind: string[]; pushing: boolean }>('membershipState');

/**
 * A round waits this long after the first news, so a burst of boots is one round, not one each; and at
 * least as long as the last round took, so pushing never takes more than about half of the hosts' and
 * the worker's time however busy the project is (a round to 1,000 hosts takes seconds).
 */
const GATHER_MS = 250;
/** Rounds per run before continue-as-new, so the history stays short however busy the project is. */
const ROUNDS_PER_RUN = 100;

/** A round fails only if the controller's own reads do; its hosts' failures come back as names. */
const { pushMembershipRound } = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '500 ms', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});
/** A host that missed a round: tried until it answers (or has no port naming a group any more). */
const { catchUpHostMembers } = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '10 seconds' },
});

/**
 * One per project (activities/membership.ts starts it with signalWithStart): membership news for every
 * host but the one a port was just plugged on. It gathers "these groups changed" signals, then runs a
 * round: the hosts whose ports name those groups, told the current members, in parallel. News that
 * arrives during a round waits for the next, so under load rounds grow rather than multiply. A host
 * that fails a round is caught up on its own (retried by Temporal) while rounds go on without it; a
 * round that named it meanwhile makes it catch up once more, so it ends with lists read after the
 * last change it missed.
 */
export async function groupMembership(input: GroupMembershipInput): Promise<void> {
  const { projectId } = input;
  const chain = workflowInfo().firstExecutionRunId;
  const changed = new Set(input.changed ?? []);
  const behind = new Set<string>();
  const stale = new Set<string>();
  let seq = input.seq ?? 0;
  let rounds = input.rounds ?? 0;
  let pushing = false;
  let lastRoundMs = 0;
  setHandler(membersChanged, ({ groupIds }) => groupIds.forEach((g) => changed.add(g)));
  setHandler(membershipState, () => ({ rounds, changed: [...changed].sort(), behind: [...behind].sort(), pushing }));

  const catchUp = async (hostId: string) => {
    behind.add(hostId);
    do {
      stale.delete(hostId);
      await catchUpHostMembers({ projectId, hostId, chain, seq: ++seq });
    } while (stale.has(hostId));
    behind.delete(hostId);
  };
  for (const hostId of input.behind ?? []) void catchUp(hostId);

  for (let run = 0; run < ROUNDS_PER_RUN && !workflowInfo().continueAsNewSuggested; run++) {
    await condition(() => changed.size > 0);
    await sleep(Math.min(30_000, Math.max(GATHER_MS, lastRoundMs)));
    const groupIds = [...changed].sort();
    changed.clear();
    pushing = true;
    const result = await pushMembershipRound({ projectId, groupIds, chain, seq: ++seq, skip: [...behind].sort() });
    pushing = false;
    lastRoundMs = result.ms;
    rounds++;
    for (const hostId of result.skipped) stale.add(hostId);
    for (const hostId of result.failed) if (!behind.has(hostId)) void catchUp(hostId);
  }
  await continueAsNew<typeof groupMembership>({ projectId, changed: [...changed].sort(), behind: [...behind].sort(), seq, rounds });
}
