import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../server/temporalDevServer.js';
import { cleanEnv, repoRoot, runCli, startDevProcess, type DevProcess } from './support/devProcess.js';

/** The `stratus` command for people, each call its own process, against `npm start` as a child process. */
describe('stratus CLI against npm start', () => {
  let dev: DevProcess;
  let env: NodeJS.ProcessEnv;
  const cli = (...args: string[]) => runCli(args, env);

  beforeAll(async () => {
    // Failed runs wait for an operator, so `stratus operation reset` has a held run to resume.
    dev = await startDevProcess({ STRATUS_FAILURE_HOLD: '600' });
    env = { STRATUS_CONFIG: join(dev.dataDir, 'cli', 'config.json') };
  });
  afterAll(async () => {
    await dev?.stop();
  });

  it('refuses a bad token at login, says so, and keeps nothing', async () => {
    const run = await cli('login', dev.url, '--token', 'not-a-token-at-all');
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('refused the token (UNAUTHENTICATED)');
    expect(existsSync(env.STRATUS_CONFIG!)).toBe(false);
  });

  it('keeps a good login in a file only its owner can read', async () => {
    const run = await cli('login', dev.url, '--token', dev.adminToken);
    expect(run.code, run.stderr).toBe(0);
    expect(statSync(env.STRATUS_CONFIG!).mode & 0o777).toBe(0o600);
    const flavors = await cli('flavor', 'list', '--json');
    expect(flavors.code, flavors.stderr).toBe(0);
    expect((JSON.parse(flavors.stdout) as { name: string }[]).map((f) => f.name)).toContain('m1.tiny');
  });

  it('boots with a progress display of every step until the instance is RUNNING', async () => {
    const run = await cli('instance', 'boot', 'web-1', '--flavor', 'm1.tiny', '--image', 'cirros-0.6');
    expect(run.code, run.stderr).toBe(0);
    for (const step of ['schedule', 'allocateAddress', 'plugPort', 'createVm', 'startVm', 'recordRunning']) expect(run.stderr).toContain(`${step} SUCCEEDED`);
    expect(run.stderr).toMatch(/BOOT \S+ SUCCEEDED/);
    expect(run.stdout).toMatch(/state:\s+RUNNING/);

    const list = await cli('instance', 'list');
    expect(list.stdout).toMatch(/web-1\s+RUNNING/);
  });

  it('prints JSON that parses for scripts, with the operation and the instance it made', async () => {
    const run = await cli('instance', 'boot', 'web-json', '--flavor', 'm1.tiny', '--image', 'cirros-0.6', '--json');
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as { operation: { status: string; steps: { name: string }[] }; instance: { id: string; state: string } };
    expect(out.operation.status).toBe('SUCCEEDED');
    expect(out.operation.steps.map((s) => s.name)).toEqual(['schedule', 'allocateAddress', 'plugPort', 'createVm', 'startVm', 'recordRunning']);
    expect(out.instance.state).toBe('RUNNING');

    const shown = JSON.parse((await cli('instance', 'show', out.instance.id, '--json')).stdout) as { name: string };
    expect(shown.name).toBe('web-json');
    const stopped = await cli('instance', 'stop', 'web-json', '--json');
    expect(stopped.code, stopped.stderr).toBe(0);
    expect((JSON.parse(stopped.stdout) as { instance: { state: string } }).instance.state).toBe('STOPPED');
  });

  it('snapshots an instance into an image that is ACTIVE when the command returns', async () => {
    const run = await cli('instance', 'snapshot', 'web-1', '--image-name', 'web-1-snap', '--json');
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as { operation: { kind: string; status: string; steps: { name: string }[] }; image: { id: string; name: string; status: string; checksum: string } };
    expect(out.operation).toMatchObject({ kind: 'SNAPSHOT', status: 'SUCCEEDED' });
    expect(out.operation.steps.map((s) => s.name)).toEqual(['snapshotVm', 'uploadSnapshot', 'removeHostSnapshot', 'recordSnapshot']);
    expect(out.image).toMatchObject({ name: 'web-1-snap', status: 'ACTIVE', checksum: expect.stringMatching(/^[0-9a-f]{64}$/) });
    const missing = await cli('instance', 'snapshot', 'no-such-instance', '--image-name', 'x');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('NOT_FOUND');
  });

  it('exits non-zero on a failed boot, naming the failing step and its code', async () => {
    await dev.setFaults({ failMethods: ['startVm'], failNamePattern: '^doomed' });
    try {
      const run = await cli('instance', 'boot', 'doomed-1', '--flavor', 'm1.tiny', '--image', 'cirros-0.6');
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/failed step: startVm/);
      expect(run.stderr).toMatch(/error:\s+HYPERVISOR_ERROR/);
      expect(run.stderr).toMatch(/trace id:/);

      const failed = await cli('operation', 'list', '--failed', '--json');
      expect(failed.code, failed.stderr).toBe(0);
      const listed = (JSON.parse(failed.stdout) as { id: string; kind: string; steps: { name: string; status: string }[] }[]).find((o) => o.kind === 'BOOT');
      expect(listed?.steps.find((s) => s.status === 'FAILED')?.name).toBe('startVm');
      const table = await cli('operation', 'list', '--failed');
      expect(table.stdout).toMatch(new RegExp(`${listed!.id}\\s+BOOT\\s+FAILED\\s+\\S+\\s+\\S+\\s+startVm\\s+HYPERVISOR_ERROR`));

      // The fault fixed, the held boot is reset to before startVm and runs on to RUNNING.
      await dev.setFaults({});
      const reset = await cli('operation', 'reset', listed!.id);
      expect(reset.code, reset.stderr).toBe(0);
      expect(reset.stdout).toMatch(/reset\s+SUCCEEDED/);
      expect(reset.stdout).toMatch(/status:\s+SUCCEEDED/);
      expect((await cli('instance', 'show', 'doomed-1')).stdout).toMatch(/state:\s+RUNNING/);
    } finally {
      await dev.setFaults({});
    }
  });

  it('follows the event log live with events --follow, one JSON event per line, until Ctrl-C', async () => {
    const child = spawn(process.execPath, ['cli/bin.mjs', 'events', '--follow', '--prefix', 'instance-', '--json'], { cwd: repoRoot, env: { ...cleanEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      // Printed once the server has answered the subscription: from here on nothing appended is missed.
      const deadline = Date.now() + 60_000;
      while (!err.includes('following events') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(err).toContain('following events');
      const boot = await cli('instance', 'boot', 'followed-1', '--flavor', 'm1.tiny', '--image', 'cirros-0.6', '--json');
      const instanceId = (JSON.parse(boot.stdout) as { instance: { id: string } }).instance.id;
      const launched = () =>
        out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { streamId: string; type: string }).some((e) => e.streamId === `instance-${instanceId}` && e.type === 'InstanceLaunched');
      while (!launched() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(launched(), out).toBe(true);
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
  });

  it('says NOT_FOUND for an instance that does not exist, and does not find one by an unknown name', async () => {
    const byId = await cli('instance', 'show', randomUUID());
    expect(byId.code).toBe(1);
    expect(byId.stderr).toContain('not found (NOT_FOUND)');
    const byName = await cli('instance', 'stop', 'nobody-has-this-name');
    expect(byName.code).toBe(1);
    expect(byName.stderr).toContain('instance nobody-has-this-name not found (NOT_FOUND)');
  });

  it('says the API cannot be reached when nothing listens at the URL', async () => {
    const run = await runCli(['instance', 'list'], { ...env, STRATUS_API_URL: `http://127.0.0.1:${await freePort()}` });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/cannot reach the Stratus API at http:\/\/127\.0\.0\.1:\d+\/graphql \(ECONNREFUSED\)/);
  });

  it('redraws its progress display in place in a real terminal (tmux)', async () => {
    const socket = `stratus-cli-${process.pid}`;
    const tmux = (...args: string[]) => execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
    // Each mutating agent call of this instance takes a while, so the display is caught mid-boot.
    await dev.setFaults({ latencyMs: 1500, latencyNamePattern: '^slow' });
    const childEnv: NodeJS.ProcessEnv = { ...cleanEnv(), ...env };
    const exports = Object.entries({ STRATUS_CONFIG: childEnv.STRATUS_CONFIG!, PATH: childEnv.PATH! })
      .map(([k, v]) => `${k}='${v}'`)
      .join(' ');
    const command = `cd '${repoRoot}' && env ${exports} ${process.execPath} cli/bin.mjs instance boot slow-1 --flavor m1.tiny --image cirros-0.6; echo "EXIT=$?"; sleep 600`;
    tmux('new-session', '-d', '-s', 'cli', '-x', '160', '-y', '40', command);
    try {
      const screens: string[] = [];
      const deadline = Date.now() + 90_000;
      while (!screens.at(-1)?.includes('EXIT=') && Date.now() < deadline) {
        const screen = tmux('capture-pane', '-p', '-t', 'cli');
        if (screen !== screens.at(-1)) screens.push(screen);
        await new Promise((r) => setTimeout(r, 50));
      }
      const last = screens.at(-1) ?? '';
      expect(last, screens.join('\n----\n')).toContain('EXIT=0');
      // Caught while a step ran, with its spinner, and again when everything had finished.
      expect(screens.some((s) => /[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] createVm\s+RUNNING/.test(s)), screens.join('\n----\n')).toBe(true);
      expect(last).toMatch(/BOOT \S+\s+SUCCEEDED/);
      expect(last).toMatch(/✓ recordRunning\s+SUCCEEDED/);
      // In place: the header line is on the final screen once, not once per redraw.
      expect(last.match(/^BOOT /gm)?.length, last).toBe(1);
    } finally {
      await dev.setFaults({});
      tmux('kill-server');
    }
  });
});
