import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import { NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import { startMembershipOutbox } from '../activities/membership.js';
import { loadConfig } from './config.js';
import { componentLog } from './log.js';
import { createRuntime, type Runtime } from './runtime.js';
import { tracedWorkerOptions } from './workerTracing.js';

const log = componentLog('worker');

/** Temporal's bundler resolves the `.js` specifiers inside to the `.ts` sources. */
export const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface WorkerOptions {
  /** Defaults to rt.config.taskQueue. */
  taskQueue?: string;
  maxConcurrentActivityTaskExecutions?: number;
  maxConcurrentWorkflowTaskExecutions?: number;
  /** A prebuilt bundle (bundleWorkflowCode), to skip bundling when many workers start in one process. */
  workflowBundle?: WorkflowBundleWithSourceMap;
}

export interface RunningWorker {
  worker: Worker;
  /** Settles when the worker stops: after shutdown(), or with its error if it fails. */
  run: Promise<void>;
  /** Stops polling, lets running tasks finish, closes the worker's Temporal connection. */
  shutdown(): Promise<void>;
  /** The same as shutdown(), under the name the other roles' handles use. */
  stop(): Promise<void>;
}

/** Eager workflow start for operations started beside an in-process worker; STRATUS_EAGER_START=0 turns it off. */
const EAGER_START = process.env.STRATUS_EAGER_START !== '0';

/** A worker on the runtime's task queue running every Stratus workflow and activity. */
export async function startWorker(rt: Runtime, options: WorkerOptions = {}): Promise<RunningWorker> {
  const connection = await NativeConnection.connect({ address: rt.config.temporalAddress });
  let worker: Worker;
  try {
    worker = await Worker.create({
      connection,
      namespace: rt.config.temporalNamespace,
      taskQueue: options.taskQueue ?? rt.config.taskQueue,
      ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath }),
      activities: createActivities(rt),
      ...(await tracedWorkerOptions()),
      ...(options.maxConcurrentActivityTaskExecutions ? { maxConcurrentActivityTaskExecutions: options.maxConcurrentActivityTaskExecutions } : {}),
      ...(options.maxConcurrentWorkflowTaskExecutions ? { maxConcurrentWorkflowTaskExecutions: options.maxConcurrentWorkflowTaskExecutions } : {}),
    });
  } catch (e) {
    await connection.close().catch(() => {});
    throw e;
  }
  // Operations started in this process on this worker's queue start eagerly on it (Runtime.eagerStarter).
  const ownsQueue = (options.taskQueue ?? rt.config.taskQueue) === rt.config.taskQueue && !rt.eagerStarter && EAGER_START;
  const starter = ownsQueue ? new Client({ connection, namespace: rt.config.temporalNamespace, interceptors: rt.temporal.options.interceptors }) : undefined;
  if (starter) rt.eagerStarter = starter;
  // Membership news the activities announce goes to the fan-out from here (activities/membership.ts).
  const outbox = startMembershipOutbox(rt);
  const run = worker.run().finally(async () => {
    if (starter && rt.eagerStarter === starter) delete rt.eagerStarter;
    await outbox.stop();
    return connection.close().catch(() => {});
  });
  // Observed by shutdown() or the caller; a failed run must not also be an unhandled rejection.
  run.catch((err: unknown) => log.error({ err }, 'worker stopped with an error'));
  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    (stopping ??= (async () => {
      if (starter && rt.eagerStarter === starter) delete rt.eagerStarter;
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await run.catch(() => {});
    })());
  return { worker, run, shutdown, stop: shutdown };
}

/** `stratus worker`: a worker role on its own, configured from the environment, until SIGINT/SIGTERM. */
export async function runWorkerProcess(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadConfig(env);
  const rt = await createRuntime(config);
  const running = await startWorker(rt);
  log.info({ taskQueue: config.taskQueue, temporal: config.temporalAddress }, 'worker running');
  const stop = () => void running.shutdown();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await running.run;
  } finally {
    await rt.close();
  }
}
