import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Caller } from '../domain/identity.js';
import { workflowIdOf } from '../domain/operation.js';
import * as commands from '../schema/commands/index.js';
import { workflowTypeOf } from '../schema/commands/operations.js';
import type { Runtime } from '../server/runtime.js';
import { findTemporalCli } from '../server/temporalCli.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import { repoRoot, runCli } from './support/devProcess.js';
import type { AgentProcess } from './support/hostagent.js';
import { adminCaller, lifecycleRuntime, setFaults, settled, simHost } from './support/lifecycleStack.js';

const kinds = [...new Set(Object.values(workflowTypeOf))];

/**
 * `stratus workflow replay` as a real process against the test run's Temporal: histories of every
 * operation kind, made here by real runs, replay against the current code; a scratch copy of the
 * workflows with two boot steps swapped fails, naming the workflow and the divergence.
 */
describe('stratus workflow replay', () => {
  let rt: Runtime;
  let worker: RunningWorker;
  let agent: AgentProcess;
  let caller: Caller;
  const operations: Record<string, string> = {};
  const env = () => ({ TEMPORAL_ADDRESS: inject('temporalAddress'), STRATUS_LOG_LEVEL: 'warn' });

  beforeAll(async () => {
    const stack = await lifecycleRuntime(inject('postgresUrl'), inject('temporalAddress'), 'workflow_replay_cli');
    rt = stack.rt;
    worker = await startWorker(rt);
    caller = adminCaller();
    agent = (await simHost(rt, caller, stack.key.publicKey, 'sim-replay')).agent;
    const flavorId = (await commands.createFlavor(rt, caller, { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 })).flavor.id;
    const imageId = (await commands.registerImage(rt, caller, { name: 'cirros', format: 'qcow2', sizeBytes: 1 })).image.id;
    const run = async (type: string, started: Promise<{ operation: { id: string } }>) => {
      const { operation } = await started;
      const done = await settled(rt, operation.id);
      expect(done.status, `${type}: ${JSON.stringify(done.error)}`).toBe(type.endsWith('-failed') ? 'FAILED' : 'SUCCEEDED');
      operations[type] = operation.id;
    };
    const boot = await commands.bootInstance(rt, caller, { name: 'replay-1', flavorId, imageId });
    await run('bootInstance', Promise.resolve(boot));
    const id = boot.instance!.id;
    await run('stopInstance', commands.stopInstance(rt, caller, { id }));
    await run('startInstance', commands.startInstance(rt, caller, { id }));
    await run('rebootInstance', commands.rebootInstance(rt, caller, { id, hard: false }));
    await run('pauseInstance', commands.pauseInstance(rt, caller, { id }));
    await run('unpauseInstance', commands.unpauseInstance(rt, caller, { id }));
    await run('suspendInstance', commands.suspendInstance(rt, caller, { id }));
    await run('resumeInstance', commands.resumeInstance(rt, caller, { id }));
    await run('deleteInstance', commands.deleteInstance(rt, caller, { id }));
    await setFaults(agent, { failMethods: ['startVm'] });
    await run('bootInstance-failed', commands.bootInstance(rt, caller, { name: 'replay-2', flavorId, imageId }));
    await setFaults(agent, {});

    // Visibility (what `workflow list` reads) trails the executions a little: wait until it shows ours.
    for (const [type, operationId] of Object.entries(operations)) {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const found = [];
        for await (const e of rt.temporal.workflow.list({ query: `WorkflowId = '${workflowIdOf(operationId)}' AND ExecutionStatus != 'Running'` })) found.push(e);
        if (found.length > 0) break;
        if (Date.now() > deadline) throw new Error(`${type} ${operationId} never showed in Temporal's visibility`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  });
  afterAll(async () => {
    await worker?.shutdown();
    await agent?.stop();
    await rt?.close();
  });

  it('passes on histories of every operation kind fetched from Temporal', async () => {
    const run = await runCli(['workflow', 'replay', '--all-kinds'], env());
    expect(run.code, run.stdout + run.stderr).toBe(0);
    for (const type of kinds) expect(run.stdout, type).toMatch(new RegExp(`^ok +op-\\S+ \\(${type}\\)`, 'm'));
    expect(run.stdout).toMatch(/ 0 diverged$/m);
    expect(run.stderr).not.toContain('no finished execution');

    const one = await runCli(['workflow', 'replay', operations['bootInstance-failed']!], env());
    expect(one.code, one.stdout + one.stderr).toBe(0);
    expect(one.stdout).toContain(`ok   ${workflowIdOf(operations['bootInstance-failed']!)} (bootInstance)`);
  });

  it('fails with the workflow and its first divergence when a scratch copy swaps two boot steps', async () => {
    const scratch = join(repoRoot, '.tmp', `replay-scratch-${process.pid}`);
    rmSync(scratch, { recursive: true, force: true });
    mkdirSync(scratch, { recursive: true });
    try {
      cpSync(join(repoRoot, 'workflows'), join(scratch, 'workflows'), { recursive: true });
      const file = join(scratch, 'workflows', 'bootInstance.ts');
      const original = readFileSync(file, 'utf8');
      // The recorded boot had nothing to fetch, so its host steps ran as one activity (setUpOnHost):
      // swap the two steps before it, scheduling and the address, which it ran as local activities.
      const swapped = original
        .replace('await record.schedule(ctx);', '@@SCHEDULE@@')
        .replace('await record.allocateFixedAddress(ctx);', 'await record.schedule(ctx);')
        .replace('@@SCHEDULE@@', 'await record.allocateFixedAddress(ctx);');
      expect(swapped).not.toBe(original);
      writeFileSync(file, swapped);

      const bootId = workflowIdOf(operations.bootInstance!);
      const run = await runCli(['workflow', 'replay', operations.bootInstance!, '--workflows', join(scratch, 'workflows', 'index.ts')], env());
      expect(run.code, run.stdout + run.stderr).toBe(1);
      const line = run.stdout.split('\n').find((l) => l.startsWith('FAIL'));
      expect(line, run.stdout + run.stderr).toContain(`FAIL ${bootId} (bootInstance)`);
      expect(line).toMatch(/nondetermin/i);
      expect(line).toMatch(/schedule|allocateFixedAddress/);
      expect(run.stdout).toMatch(/1 replayed, 1 diverged/);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  it.runIf(process.env.RECORD_HISTORIES)('records the histories of kinds test/histories has none of, for CI to replay', async () => {
    const cli = (await findTemporalCli()).path;
    for (const [type, operationId] of Object.entries(operations)) {
      const path = join(repoRoot, 'test', 'histories', `${type}.json`);
      if (existsSync(path)) continue;
      const json = execFileSync(cli, ['workflow', 'show', '--address', inject('temporalAddress'), '--workflow-id', workflowIdOf(operationId), '--output', 'json'], { maxBuffer: 64 << 20 });
      writeFileSync(path, JSON.stringify(JSON.parse(json.toString()), null, 1) + '\n');
    }
  });
});
