import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { Runtime } from '../server/runtime.js';
import { componentLog } from '../server/log.js';
import { activityContext, callAgent } from './agentCalls.js';
import { groupsNamedOnHost, hostsNamingGroups } from './portIndex.js';
import { groupMembers, unlessUnsupported } from './ports.js';

const log = componentLog('membership');

/** Host pushes a round keeps in flight: enough to hide SSH round trips, few enough not to flood the worker. */
export const ROUND_CONCURRENCY = 24;

/** One fan-out workflow per project: every change of its groups' membership is a signal to it. */
export const membershipWorkflowId = (projectId: string): string => `group-membership-${projectId}`;
export const MEMBERS_CHANGED = 'membersChanged';

export interface MembershipRound {
  projectId: string;
  groupIds: string[];
  /** The fan-out's chain (its first run id) and this push's number in it: the agent keys' prefix. */
  chain: string;
  seq: number;
  /** Hosts a catch-up is bringing up to date: this round leaves them to it and names them back. */
  skip: string[];
}

/**
 * Tells the project's fan-out workflow that `groupIds` gained or lost a member. The news is a row of
 * `membership_outbox`, committed before the step that announces it ends; a worker's outbox dispatcher
 * signals it to the fan-out (starting the workflow if it does not run) and only then deletes the row.
 * So a crash anywhere loses nothing, and a step no longer waits for a Temporal round trip of its own:
 * the signal cost a boot about 50 ms at concurrency 1, and news that arrives while a dispatch is under
 * way goes out together in the next. A retried step announces again; a row sent twice (two processes
 * draining at once, or a crash between signal and delete) costs at most one more round.
 */
export async function announceMembershipChange(rt: Pick<Runtime, 'db'>, projectId: string, groupIds: string[]): Promise<void> {
  if (groupIds.length === 0) return;
  await rt.db.query('INSERT INTO membership_outbox (project_id, group_ids) VALUES ($1, $2)', [projectId, [...new Set(groupIds)].sort()]);
  outboxes.get(rt)?.wake();
}

/** Rows one dispatch reads at most. */
const OUTBOX_BATCH = 1000;
/** How often a dispatcher looks for rows nobody woke it for (another process's, or a dead worker's). */
const OUTBOX_POLL_MS = 1000;

interface Outbox {
  wake(): void;
  users: number;
  stop(): Promise<void>;
}
/** The dispatcher of each runtime that runs one (every worker process): announcements made there wake it at once. */
const outboxes = new WeakMap<object, Outbox>();

/** Sends each project's gathered news as one signal, then deletes what it sent. */
async function dispatchOutbox(rt: Pick<Runtime, 'db' | 'temporal' | 'config'>): Promise<number> {
  const rows = await rt.db.query<{ id: string; project_id: string; group_ids: string[] }>(
    'SELECT id::text AS id, project_id, group_ids FROM membership_outbox ORDER BY id LIMIT $1',
    [OUTBOX_BATCH],
  );
  if (rows.length === 0) return 0;
  const byProject = new Map<string, Set<string>>();
  for (const r of rows) for (const g of r.group_ids) (byProject.get(r.project_id) ?? byProject.set(r.project_id, new Set()).get(r.project_id)!).add(g);
  await Promise.all(
    [...byProject].map(([projectId, groups]) =>
      rt.temporal.workflow.signalWithStart('groupMembership', {
        workflowId: membershipWorkflowId(projectId),
        taskQueue: rt.config.taskQueue,
        args: [{ projectId }],
        signal: MEMBERS_CHANGED,
        signalArgs: [{ groupIds: [...groups].sort() }],
      }),
    ),
  );
  await rt.db.query('DELETE FROM membership_outbox WHERE id = ANY($1::bigint[])', [rows.map((r) => r.id)]);
  return rows.length;
}

/**
 * Runs the runtime's outbox dispatcher until the last of its users stops it: one dispatch at a time,
 * another at once if news arrived meanwhile, and a look every OUTBOX_POLL_MS for rows left by others.
 * A dispatch that fails (Temporal unreachable) leaves its rows for the next.
 */
export function startMembershipOutbox(rt: Pick<Runtime, 'db' | 'temporal' | 'config'>): { stop(): Promise<void> } {
  const running = outboxes.get(rt);
  if (running) {
    running.users++;
    return onceOnly(running);
  }
  let stopped = false;
  let again = false;
  let current: Promise<void> | undefined;
  const wake = () => {
    if (stopped) return;
    if (current) {
      again = true;
      return;
    }
    current = (async () => {
      do {
        again = false;
        try {
          while ((await dispatchOutbox(rt)) === OUTBOX_BATCH && !stopped);
        } catch (err) {
          log.warn({ err }, 'could not signal membership news to the fan-out; the next look retries it');
          // Not at once: a Temporal that is down would be asked again for every announcement.
          again = false;
          return;
        }
      } while (again && !stopped);
    })().finally(() => {
      current = undefined;
      // News that woke it after its last look but before it was done: look again now, not at the next poll.
      if (again && !stopped) wake();
    });
  };
  const timer = setInterval(wake, OUTBOX_POLL_MS);
  const outbox: Outbox = {
    wake,
    users: 1,
    async stop() {
      if (--outbox.users > 0) return;
      stopped = true;
      clearInterval(timer);
      outboxes.delete(rt);
      await current;
    },
  };
  outboxes.set(rt, outbox);
  wake();
  return onceOnly(outbox);
}

/** A user's handle: stopping it twice counts once. */
function onceOnly(outbox: Outbox): { stop(): Promise<void> } {
  let stopping: Promise<void> | undefined;
  return { stop: () => (stopping ??= outbox.stop()) };
}

/**
 * The key names the push (chain, number, host) and what it carries: a retried activity that read the
 * same lists replays the agent's answer, one that read newer lists is a new call, never a reused key.
 */
const keyOf = (chain: string, seq: number, hostId: string, groups: unknown) =>
  `members:${chain}:${seq}:${hostId}:${createHash('sha256').update(JSON.stringify(groups)).digest('hex').slice(0, 16)}`;

async function inTurns<T>(items: T[], concurrency: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await run(items[next++]!);
  }));
}

export function membershipSteps(rt: Runtime) {
  return {
    /**
     * One round of the fan-out: the hosts whose ports name a changed group (one query), the members of
     * those groups (read once), then each host its groups' lists, ROUND_CONCURRENCY at a time. A host
     * that fails is named back, not thrown: the others are not held up by it and the workflow retries
     * it on its own (catchUpHostMembers).
     */
    async pushMembershipRound(round: MembershipRound): Promise<{ hosts: number; members: number; failed: string[]; skipped: string[]; ms: number }> {
      const t0 = performance.now();
      // Every call in flight listens on the activity's cancellation signal: ROUND_CONCURRENCY of them is no leak.
      const signal = activityContext()?.cancellationSignal;
      if (signal) setMaxListeners(ROUND_CONCURRENCY + 10, signal);
      const byHost = await hostsNamingGroups(rt, round.projectId, round.groupIds);
      const named = [...new Set([...byHost.values()].flat())].sort();
      const members = new Map((await groupMembers(rt, round.projectId, named)).map((g) => [g.groupId, g]));
      const skip = new Set(round.skip);
      const skipped = [...byHost.keys()].filter((h) => skip.has(h));
      const failed: string[] = [];
      await inTurns([...byHost].filter(([h]) => !skip.has(h)), ROUND_CONCURRENCY, async ([hostId, groupIds]) => {
        const groups = groupIds.map((g) => members.get(g)!);
        try {
          await unlessUnsupported(callAgent(rt, hostId, 'setGroupMembers', { groups }, { idempotencyKey: keyOf(round.chain, round.seq, hostId, groups) }));
        } catch (err) {
          log.warn({ projectId: round.projectId, hostId, err: (err as Error).message }, 'group members not pushed; the host is retried on its own');
          failed.push(hostId);
        }
      });
      const ms = Math.round(performance.now() - t0);
      const total = [...members.values()].reduce((n, g) => n + g.addresses.length, 0);
      log.info({ projectId: round.projectId, round: round.seq, groups: named.length, hosts: byHost.size - skipped.length, members: total, failed: failed.length, ms }, 'membership round');
      return { hosts: byHost.size - skipped.length, members: total, failed: failed.sort(), skipped, ms };
    },

    /**
     * A host that missed a round is told again, on its own, every group its ports name (it may have
     * missed several changes): read when the attempt runs, so the attempt that gets through carries
     * the lists as they are then. Throws while the host does not answer; Temporal retries it.
     */
    async catchUpHostMembers(push: { projectId: string; hostId: string; chain: string; seq: number }): Promise<{ groups: number }> {
      const named = await groupsNamedOnHost(rt, push.projectId, push.hostId);
      if (named.length === 0) return { groups: 0 };
      const groups = await groupMembers(rt, push.projectId, named);
      await unlessUnsupported(callAgent(rt, push.hostId, 'setGroupMembers', { groups }, { idempotencyKey: keyOf(push.chain, push.seq, push.hostId, groups) }));
      log.info({ projectId: push.projectId, hostId: push.hostId, groups: groups.length }, 'host caught up on group members');
      return { groups: groups.length };
    },
  };
}
