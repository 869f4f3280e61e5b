import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callAgent } from '../activities/agentCalls.js';
import { vmNameOf } from '../activities/instanceRecords.js';
import { startProjections, waitForProjections, type ProjectionRunner } from '../projections/index.js';
import * as commands from '../schema/commands/index.js';
import { startApi } from '../server/api.js';
import { buildConsole, consoleDir, consoleDist, consoleSite } from '../server/console.js';
import { keepMeterPollers, meterPollerId } from '../server/meteringClock.js';
import type { Runtime } from '../server/runtime.js';
import { startWorker, type RunningWorker } from '../server/worker.js';
import { gql } from './support/graphqlClient.js';
import { startAgentProcess, type AgentProcess } from './support/hostagent.js';
import { settled } from './support/lifecycleStack.js';
import { testRuntime } from './support/projectionFixtures.js';
import { usageTimeline } from './support/usageTimeline.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const screenshots = join(repoRoot, '.tmp', 'console-screenshots');
const ADMIN = `admin-${randomUUID()}`;
const CHROMIUM = process.env.STRATUS_CHROMIUM ?? '/usr/bin/chromium';

/** Waits for a value the page or the read model reaches by itself; the deadline only ends a hung run. */
const eventually = <T>(read: () => Promise<T> | T) => expect.poll(read, { timeout: 30_000 });

const newestMtime = (path: string): number =>
  statSync(path).isDirectory() ? Math.max(0, ...readdirSync(path).map((f) => newestMtime(join(path, f)))) : statSync(path).mtimeMs;

/**
 * `npm ci` builds console/dist; a developer who changed the console since gets a fresh build here, so
 * the test never runs against stale assets (and a clean CI run never swaps the build under other tests).
 */
async function ensureFreshConsole(): Promise<void> {
  const built = join(consoleDist, 'index.html');
  const sources = [join(consoleDir, 'src'), join(consoleDir, 'index.html'), join(consoleDir, 'vite.config.ts'), join(repoRoot, 'domain', 'instanceTransitions.ts')];
  if (!existsSync(built) || Math.max(...sources.map(newestMtime)) > statSync(built).mtimeMs) await buildConsole({ replace: true });
}

/**
 * The web console in a real browser (Debian's chromium through playwright-core) against a real stack:
 * PostgreSQL, Temporal, the worker, the projections, a sim host agent over SSH and the API serving
 * the console built by Vite, exactly as `npm start` serves it.
 */
describe('the web console in Chromium, on the real API, Temporal, PostgreSQL and a sim agent', () => {
  let rt: Runtime;
  let runner: ProjectionRunner;
  let worker: RunningWorker;
  let agent: AgentProcess;
  let api: { url: string; close(): Promise<void> };
  let base: string;
  let browser: Browser;
  const tokens = { aMember: '', aReader: '', bMember: '' };
  let alphaId = '';
  let hostId = '';
  let stopPollers: (() => Promise<void>) | undefined;
  let instanceId = '';

  const admin = async (query: string, variables: Record<string, unknown> = {}) => {
    const r = await gql(api.url, ADMIN, query, variables);
    expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
    return r.data!;
  };

  const faults = (f: Record<string, unknown>) => writeFileSync(join(agent.stateDir, 'faults.json'), JSON.stringify(f));

  /** A fresh browser context (its own sessionStorage) signed in through the form. */
  async function signedIn(token: string, viewport = { width: 1360, height: 860 }): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    await page.goto(base);
    await page.getByLabel('Token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Instances', level: 1 }).waitFor();
    // Marks this document: a reload or navigation would lose it, so its survival proves updates came live.
    await page.evaluate(() => ((window as unknown as { consoleTestMark: string }).consoleTestMark = 'same document'));
    return { context, page };
  }
  const sameDocument = (page: Page) => page.evaluate(() => (window as unknown as { consoleTestMark?: string }).consoleTestMark);

  /** Records every text a selector's element shows from now on, so a test can assert the sequence seen. */
  const recordTexts = (page: Page, selector: string, key: string) =>
    page.evaluate(
      ({ selector, key }) => {
        const seen: string[] = [];
        (window as unknown as Record<string, string[]>)[key] = seen;
        // '' stands for "not on the page"; only changes are kept.
        const note = () => {
          const text = document.querySelector(selector)?.textContent ?? '';
          if (seen.length === 0 || seen.at(-1) !== text) seen.push(text);
        };
        note();
        new MutationObserver(note).observe(document.body, { subtree: true, childList: true, characterData: true });
      },
      { selector, key },
    );
  const recorded = (page: Page, key: string) => page.evaluate((key) => (window as unknown as Record<string, string[]>)[key] ?? [], key);

  /**
   * Records each drawing of an operation's step timeline from now on, as its steps' names and statuses
   * ('' while the operation is not on the page), so a test can tell that it was drawn step by step.
   */
  const recordSteps = (page: Page, selector: string, key: string) =>
    page.evaluate(
      ({ selector, key }) => {
        const seen: string[] = [];
        (window as unknown as Record<string, string[]>)[key] = seen;
        const note = () => {
          const steps = [...document.querySelectorAll(`${selector} li.step`)].map((li) => `${li.querySelector('.step-name')?.textContent}:${li.querySelector('.badge')?.textContent}`);
          const drawing = steps.join(' ');
          if (seen.length === 0 || seen.at(-1) !== drawing) seen.push(drawing);
        };
        note();
        new MutationObserver(note).observe(document.body, { subtree: true, childList: true, characterData: true });
      },
      { selector, key },
    );
  /** The row of a table whose row header is `name`. */
  const rowOf = (page: Page, name: string) => page.getByRole('row').filter({ has: page.getByRole('rowheader', { name, exact: true }) });
  /** The message the API gives for `input` on `mutation`'s first issue, to compare with what a field shows. */
  const issueOf = async (token: string, mutation: string, input: Record<string, unknown>) => {
    const r = await gql(api.url, token, mutation, { i: input });
    expect(r.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    return (r.errors![0]!.extensions!.issues as { path: string[]; message: string }[])[0]!;
  };
  const fieldError = async (page: Page, field: ReturnType<Page['getByLabel']>) => {
    await eventually(() => field.getAttribute('aria-invalid')).toBe('true');
    return page.locator(`#${await field.getAttribute('aria-describedby')}`).textContent();
  };

  beforeAll(async () => {
    await ensureFreshConsole();
    rt = await testRuntime('console_e', { adminToken: ADMIN });
    runner = await startProjections(rt);
    worker = await startWorker(rt, { taskQueue: rt.config.taskQueue });
    // A modest host, so the allocation bars on the hosts page show something.
    agent = await startAgentProcess({ driverOptions: { vcpus: 8, memoryMb: 16_384, diskGb: 200 }, authorizedKeys: [readFileSync(`${rt.config.sshKeyPath}.pub`, 'utf8')] });
    api = await startApi(rt, { port: 0 });
    base = api.url.replace(/\/graphql$/, '/');

    hostId = (await admin(`mutation($i: RegisterHostInput!) { registerHost(input: $i) { host { id } } }`, {
      i: { name: 'sim-1', address: '127.0.0.1', port: agent.port, hostKeyFingerprint: agent.fingerprint },
    })).registerHost.host.id;
    // Floating addresses come from an external network, which only an admin makes.
    await admin(`mutation { createNetwork(input: {name: "public", cidr: "192.0.2.0/24", external: true}) { network { id } } }`);
    await admin(`mutation { createFlavor(input: {name: "m1.tiny", vcpus: 1, memoryMb: 512, diskGb: 1}) { flavor { id } } }`);
    await admin(`mutation { createFlavor(input: {name: "m1.small", vcpus: 1, memoryMb: 2048, diskGb: 20}) { flavor { id } } }`);
    await admin(`mutation { registerImage(input: {name: "cirros-0.6", format: "qcow2", sizeBytes: 21430272}) { image { id } } }`);
    const project = async (name: string) => (await admin(`mutation($n: String!) { createProject(input: {name: $n}) { project { id } } }`, { n: name })).createProject.project.id as string;
    const token = async (projectId: string, role: string) =>
      (await admin(`mutation($p: ID!, $r: Role!) { createToken(input: {projectId: $p, role: $r}) { token } }`, { p: projectId, r: role })).createToken.token as string;
    const a = await project('alpha');
    alphaId = a;
    const b = await project('bravo');
    tokens.aMember = await token(a, 'MEMBER');
    tokens.aReader = await token(a, 'READER');
    tokens.bMember = await token(b, 'MEMBER');

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    mkdirSync(screenshots, { recursive: true });
  });
  afterAll(async () => {
    await stopPollers?.();
    if (hostId) await rt.temporal.workflow.getHandle(meterPollerId(hostId)).terminate().catch(() => {});
    await browser?.close();
    await api?.close();
    await worker?.shutdown();
    await agent?.stop();
    await runner?.stop();
    await rt?.close();
  });

  it('serves the built console at / (gzip), next to GraphiQL at /graphql', async () => {
    const res = await fetch(base, { headers: { 'accept-encoding': 'gzip' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/html');
    const html = await res.text();
    expect(html).toContain('<div id="app">');
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeTruthy();
    const js = await fetch(new URL(script!, base), { headers: { 'accept-encoding': 'gzip' } });
    expect(js.status).toBe(200);
    expect(js.headers.get('cache-control')).toContain('immutable');
    const graphiql = await fetch(api.url, { headers: { accept: 'text/html' } });
    expect(await graphiql.text()).toContain('GraphiQL');

    const assets = readdirSync(join(consoleDist, 'assets'));
    const gzipBytes = (ext: string) => assets.filter((f) => f.endsWith(ext)).reduce((n, f) => n + gzipSync(readFileSync(join(consoleDist, 'assets', f))).length, 0);
    console.log(JSON.stringify({ consoleBundle: { jsGzipBytes: gzipBytes('.js'), cssGzipBytes: gzipBytes('.css') } }));
  });

  it('the API tells a console who the token is, lists projects to admins only, and nothing else of other projects', async () => {
    expect((await gql(api.url, tokens.aReader, '{ viewer { role project { name } } }')).data).toEqual({ viewer: { role: 'READER', project: { name: 'alpha' } } });
    expect((await gql(api.url, ADMIN, '{ projects { name } }')).data!.projects.map((p: { name: string }) => p.name)).toEqual(['alpha', 'bravo']);
    const refused = await gql(api.url, tokens.aMember, '{ projects { name } }');
    expect(refused.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect((await gql(api.url, undefined, '{ viewer { role } }')).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('an API that finds no console build makes one on its first start and serves it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stratus-console-'));
    try {
      const site = await consoleSite(join(dir, 'dist'));
      const server = createServer((req, res) => site(req, res) || (res.writeHead(404), res.end()));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const at = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const index = await fetch(`${at}/`);
      expect(index.status).toBe(200);
      expect(await index.text()).toContain('<div id="app">');
      expect((await fetch(`${at}/graphql`)).status).toBe(404);
      expect(readdirSync(dir)).toEqual(['dist']);
      server.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a bad token is refused on the sign-in form, with the reason', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(base);
    await page.getByLabel('Token').fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await eventually(() => page.getByRole('alert').textContent()).toBe('That token is not valid.');
    expect(await page.evaluate(() => sessionStorage.getItem('stratus.token'))).toBeNull();
    await context.close();
  });

  it('a bad input in the boot dialog shows the API message next to its field, and boots nothing; only ACTIVE images are offered', async () => {
    // An image whose bytes never came: QUEUED, listed by the API, and no image to boot from.
    const queued = (await admin(`mutation { createImage(input: {name: "half-uploaded", format: "qcow2", visibility: "PUBLIC"}) { image { id status } } }`)).createImage.image;
    expect(queued.status).toBe('QUEUED');
    const { context, page } = await signedIn(tokens.aMember);
    await page.getByRole('button', { name: 'Boot instance' }).click();
    const dialog = page.getByRole('dialog', { name: 'Boot an instance' });
    const images = (await gql(api.url, tokens.aMember, '{ images { name status } }')).data!.images as { name: string; status: string }[];
    expect(images.map((i) => i.name)).toContain('half-uploaded');
    await eventually(() => dialog.getByLabel('Image').locator('option').allTextContents()).toEqual(images.filter((i) => i.status === 'ACTIVE').map((i) => i.name));
    await dialog.getByLabel('Name').fill('no spaces allowed!');
    await dialog.getByRole('button', { name: 'Boot' }).click();

    const flavors = (await gql(api.url, tokens.aMember, '{ flavors { id } images { id } }')).data!;
    const direct = await gql(api.url, tokens.aMember, 'mutation($i: BootInstanceInput!) { bootInstance(input: $i) { operation { id } } }', {
      i: { name: 'no spaces allowed!', flavorId: flavors.flavors[0].id, imageId: flavors.images[0].id },
    });
    const issue = (direct.errors?.[0]?.extensions?.issues as { path: string[]; message: string }[])[0]!;
    expect(issue.path).toEqual(['name']);

    const name = dialog.getByLabel('Name');
    await eventually(() => name.getAttribute('aria-invalid')).toBe('true');
    const describedBy = await name.getAttribute('aria-describedby');
    expect(await page.locator(`#${describedBy}`).textContent()).toBe(issue.message);
    await page.screenshot({ path: join(screenshots, 'boot-dialog-error.png') });
    const listed = await gql(api.url, tokens.aMember, '{ instances { edges { node { id } } } }');
    expect(listed.data!.instances.edges).toEqual([]);
    await context.close();
    await admin('mutation($id: ID!) { deleteImage(input: {id: $id}) { image { id } } }', { id: queued.id });
  });

  it('boots from the dialog and the row goes BUILDING -> RUNNING without a reload; another project never sees it', async () => {
    const other = await signedIn(tokens.bMember);
    const otherOps = await signedIn(tokens.bMember);
    await otherOps.page.getByRole('link', { name: 'Operations' }).click();
    await otherOps.page.getByText('No operations.').waitFor();
    // createVm takes a while on this agent, so the BUILDING state is on screen long enough to be seen.
    faults({ latencyMs: 1500, latencyMethods: ['createVm'] });
    const { page } = await signedIn(tokens.aMember);
    await recordTexts(page, 'tr[data-instance-name="web-1"] td:nth-child(2)', 'webStates');
    await page.getByRole('button', { name: 'Boot instance' }).click();
    const dialog = page.getByRole('dialog', { name: 'Boot an instance' });
    await dialog.getByLabel('Name').fill('web-1');
    await dialog.getByLabel('Flavor').selectOption({ label: 'm1.tiny — 1 vCPU, 512 MB, 1 GB' });
    await dialog.getByRole('button', { name: 'Boot' }).click();

    const row = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'web-1' }) });
    await row.waitFor();
    instanceId = (await row.getAttribute('data-instance-id'))!;
    await row.getByText('RUNNING', { exact: true }).waitFor({ timeout: 60_000 });
    // Absent, then BUILDING (the boot's own answer), then RUNNING: never another state, never a step back.
    expect(await recorded(page, 'webStates')).toEqual(['', 'BUILDING', 'RUNNING']);
    expect(await sameDocument(page)).toBe('same document');
    expect(await row.getByRole('cell').nth(3).textContent()).toBe('sim-1');
    faults({});

    // Project bravo's page was open all along, subscribed to its instances: it has none, before and after.
    const bravoRows = other.page.locator('tr[data-instance-id]');
    expect(await bravoRows.count()).toBe(0);
    await other.page.getByText('No instances yet.').waitFor();
    expect(await otherOps.page.locator('tr[data-operation-id]').count()).toBe(0);
    expect(await sameDocument(otherOps.page)).toBe('same document');
    await otherOps.context.close();
    await other.page.goto(`${base}#/instances/${instanceId}`);
    await other.page.getByRole('heading', { name: 'Instance not found' }).waitFor();
    await other.page.goto(`${base}#/instances`);
    await other.page.getByText('No instances yet.').waitFor();
    expect(await bravoRows.count()).toBe(0);
    await other.context.close();
  });

  it('stops from the row menu with a confirmation, and the open instance page draws the operation step by step', async () => {
    // stopVm is held on the agent until the test lets it go, so the page can be seen in the middle of the
    // operation however slow the machine: no latency to outlast, nothing to race.
    faults({ holdMethods: ['stopVm'] });
    const { page } = await signedIn(tokens.aMember);
    // The instance page, open in its own tab before the stop, must show the new operation as it runs.
    const { page: detail } = await signedIn(tokens.aMember);
    await detail.goto(`${base}#/instances/${instanceId}`);
    await detail.getByRole('heading', { name: /web-1/, level: 1 }).waitFor();
    await detail.evaluate(() => ((window as unknown as { consoleTestMark: string }).consoleTestMark = 'same document'));
    expect(await detail.getByRole('article', { name: /^STOP operation/ }).count()).toBe(0);
    await recordSteps(detail, 'article[aria-label^="STOP operation"]', 'stopSteps');

    // An admin is offered Migrate as well; a member never is, since the API keeps it for admins.
    const asAdmin = await signedIn(ADMIN);
    await asAdmin.page.getByRole('button', { name: 'Actions for web-1' }).click();
    expect(await asAdmin.page.getByRole('menu', { name: 'Actions for web-1' }).getByRole('menuitem').allTextContents()).toEqual([
      'Stop', 'Reboot', 'Hard reboot', 'Pause', 'Suspend', 'Resize…', 'Migrate', 'Snapshot…', 'Delete',
    ]);
    await asAdmin.context.close();

    // By keyboard alone: Enter opens the menu on its first item (Stop, for a running instance), Enter
    // picks it, and the confirmation's focused button is the action itself.
    await page.getByRole('button', { name: 'Actions for web-1' }).focus();
    await page.keyboard.press('Enter');
    await eventually(() => page.evaluate(() => document.activeElement?.textContent)).toBe('Stop');
    // Exactly what a running instance allows a member, by the domain's table and the API's roles, in the table's order.
    const items = await page.getByRole('menu', { name: 'Actions for web-1' }).getByRole('menuitem').allTextContents();
    expect(items).toEqual(['Stop', 'Reboot', 'Hard reboot', 'Pause', 'Suspend', 'Resize…', 'Snapshot…', 'Delete']);
    await page.keyboard.press('Enter');
    const confirm = page.getByRole('dialog', { name: 'Stop web-1?' });
    await confirm.waitFor();
    await eventually(() => page.evaluate(() => document.activeElement?.textContent)).toBe('Stop');
    await page.keyboard.press('Enter');
    await confirm.waitFor({ state: 'hidden' });

    // The page shows the operation while it is still in stopVm: the hold ends only once this is drawn.
    const running = detail.getByRole('article', { name: 'STOP operation RUNNING' });
    await running.locator('li.step-running').filter({ hasText: 'stopVm' }).waitFor({ timeout: 60_000 });
    faults({});
    const op = detail.getByRole('article', { name: 'STOP operation SUCCEEDED' });
    await op.waitFor({ timeout: 60_000 });
    const steps = await op.locator('li .step-name').allTextContents();
    expect(steps).toEqual(['stopVm', 'recordStopped']);
    expect(await op.locator('li.step-succeeded').count()).toBe(steps.length);
    const seen = await recorded(detail, 'stopSteps');
    // Not there when the stop began; then drawn with stopVm running and nothing after it; then finished,
    // every step SUCCEEDED: one timeline drawn over and over on the same document, not read once at the end.
    expect(seen[0]).toBe('');
    expect(seen).toContain('stopVm:RUNNING');
    expect(seen.indexOf('stopVm:RUNNING')).toBeLessThan(seen.length - 1);
    expect(seen.at(-1)).toBe('stopVm:SUCCEEDED recordStopped:SUCCEEDED');
    expect(seen.filter((drawing) => drawing !== '').length).toBeGreaterThan(1);
    console.log(JSON.stringify({ stopTimelineViews: seen }));
    expect(await sameDocument(detail)).toBe('same document');
    await detail.getByRole('heading', { name: /web-1\s*STOPPED/, level: 1 }).waitFor();
    await page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'web-1' }) }).getByText('STOPPED', { exact: true }).waitFor();
    // The audit log is a projection of its own: it shows the stop once it has folded it, on this same page.
    await detail.getByRole('table', { name: 'Audit events' }).getByText('InstanceStopped').waitFor();
    // The serial console's tail on the page is what the API reads from the host agent.
    const log = (await gql(api.url, tokens.aMember, 'query($id: ID!) { instance(id: $id) { consoleLog(lines: 50) } }', { id: instanceId })).data!.instance.consoleLog as string;
    expect(log).toContain('stopped');
    await eventually(() => detail.getByRole('region', { name: 'Serial console' }).locator('pre').textContent()).toBe(log);
  });

  it('resize and snapshot ask for their input in a dialog, show the API refusal next to the field, and run', async () => {
    const { context, page } = await signedIn(tokens.aMember);
    const row = rowOf(page, 'web-1');
    await row.getByText('STOPPED', { exact: true }).waitFor();
    const openMenu = async () => {
      await page.getByRole('button', { name: 'Actions for web-1' }).click();
      return page.getByRole('menu', { name: 'Actions for web-1' });
    };
    // What a stopped instance allows a member (no Stop, no Migrate).
    expect(await (await openMenu()).getByRole('menuitem').allTextContents()).toEqual(['Start', 'Hard reboot', 'Resize…', 'Snapshot…', 'Delete']);

    // Resizing to the flavor it has: the API refuses, and the dialog says why under the flavor.
    await page.getByRole('menuitem', { name: 'Resize…' }).click();
    const resize = page.getByRole('dialog', { name: 'Resize web-1' });
    const flavor = resize.getByLabel('New flavor');
    await flavor.selectOption({ label: 'm1.tiny — 1 vCPU, 512 MB, 1 GB (current)' });
    await resize.getByRole('button', { name: 'Resize' }).click();
    const flavors = (await gql(api.url, tokens.aMember, '{ flavors { id name } }')).data!.flavors as { id: string; name: string }[];
    const RESIZE = 'mutation($i: ResizeInstanceInput!) { resizeInstance(input: $i) { operation { id } } }';
    const refused = await gql(api.url, tokens.aMember, RESIZE, { i: { id: instanceId, flavorId: flavors.find((f) => f.name === 'm1.tiny')!.id } });
    expect(refused.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(await fieldError(page, flavor)).toBe(refused.errors![0]!.message);
    await page.screenshot({ path: join(screenshots, 'resize-dialog-error.png') });
    await flavor.selectOption({ label: 'm1.small — 1 vCPU, 2 GB, 20 GB' });
    await resize.getByRole('button', { name: 'Resize' }).click();
    await resize.waitFor({ state: 'hidden' });
    await eventually(() => row.getByRole('cell').nth(2).textContent()).toBe('m1.small');
    await eventually(async () => (await gql(api.url, tokens.aMember, 'query($id: ID!) { instance(id: $id) { state task flavor { name } } }', { id: instanceId })).data!.instance).toEqual({
      state: 'STOPPED', task: null, flavor: { name: 'm1.small' },
    });
    await row.getByRole('button', { name: 'Actions for web-1' }).waitFor();

    // A snapshot's image name the API refuses shows under the field; a good one names the image it becomes.
    await (await openMenu()).getByRole('menuitem', { name: 'Snapshot…' }).click();
    const snap = page.getByRole('dialog', { name: 'Snapshot web-1' });
    const name = snap.getByLabel('Image name');
    const tooLong = 'x'.repeat(65);
    await name.fill(tooLong);
    await snap.getByRole('button', { name: 'Take snapshot' }).click();
    const issue = await issueOf(tokens.aMember, 'mutation($i: SnapshotInstanceInput!) { snapshotInstance(input: $i) { operation { id } } }', { id: instanceId, imageName: tooLong });
    expect(issue.path).toEqual(['imageName']);
    expect(await fieldError(page, name)).toBe(issue.message);
    await name.fill('web-1-snap');
    await snap.getByRole('button', { name: 'Take snapshot' }).click();
    await snap.waitFor({ state: 'hidden' });
    await eventually(() => page.getByRole('status').filter({ hasText: 'Snapshot of web-1' }).textContent()).toContain('image web-1-snap is QUEUED');
    const image = async () =>
      ((await gql(api.url, tokens.aMember, '{ images { name status sourceInstance { name } } }')).data!.images as { name: string }[]).find((i) => i.name === 'web-1-snap');
    await eventually(image).toEqual({ name: 'web-1-snap', status: 'ACTIVE', sourceInstance: { name: 'web-1' } });
    await row.getByRole('button', { name: 'Actions for web-1' }).waitFor();
    await page.screenshot({ path: join(screenshots, 'instances-snapshot.png'), fullPage: true });
    expect(await sameDocument(page)).toBe('same document');
    await context.close();
  });

  it('a reader sees the instances but no boot button, no row actions, no changes on the resource pages and no admin pages', async () => {
    const { context, page } = await signedIn(tokens.aReader);
    await page.getByRole('rowheader', { name: 'web-1' }).waitFor();
    expect(await page.getByRole('button', { name: 'Boot instance' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Actions for web-1' }).count()).toBe(0);
    const nav = await page.getByRole('navigation', { name: 'Main' }).getByRole('link').allTextContents();
    expect(nav).toEqual(['Instances', 'Volumes', 'Networks', 'Addresses', 'Security groups', 'Images', 'Usage', 'Operations', 'Flavors']);
    await page.getByRole('link', { name: 'Volumes' }).click();
    await page.getByText('No volumes yet.').waitFor();
    expect(await page.getByRole('button', { name: 'Create volume' }).count()).toBe(0);
    await page.getByRole('link', { name: 'Images' }).click();
    await page.getByRole('rowheader', { name: 'cirros-0.6' }).waitFor();
    expect(await page.getByRole('button', { name: 'Upload' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /^Delete / }).count()).toBe(0);
    await page.getByRole('link', { name: 'Security groups' }).click();
    await page.getByRole('heading', { name: 'default', level: 2 }).waitFor();
    expect(await page.getByRole('button', { name: 'Add rule' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /^Remove / }).count()).toBe(0);
    await page.getByRole('link', { name: 'Addresses' }).click();
    await page.getByRole('rowheader', { name: '10.0.0.2' }).waitFor();
    expect(await page.getByRole('button', { name: 'Allocate' }).count()).toBe(0);
    await context.close();
  });

  it('an admin sees hosts with allocation bars, toggles maintenance, creates a flavor (the API errors by field) and issues a token that signs in', async () => {
    const { context, page } = await signedIn(ADMIN);
    await page.getByRole('link', { name: 'Hosts' }).click();
    const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'sim-1' }) });
    await card.getByText('UP', { exact: true }).waitFor();
    // web-1 is stopped but keeps its claim on the host: one m1.small (it was resized) allocated.
    await eventually(() => card.getByRole('meter', { name: 'Memory allocated' }).getAttribute('aria-valuetext')).toBe('2 GB of 16 GB');
    await page.screenshot({ path: join(screenshots, 'hosts.png'), fullPage: true });

    await card.getByRole('button', { name: 'Enter maintenance' }).click();
    const drain = page.getByRole('dialog', { name: 'Enter maintenance on sim-1?' });
    // It says what maintenance does: the host is drained, not merely closed to new instances.
    expect(await drain.locator('p').textContent()).toMatch(/^Every instance on it is migrated to another host .* DRAIN_HOST operation/);
    await drain.getByRole('button', { name: 'Enter maintenance on' }).click();
    await card.getByText('MAINTENANCE', { exact: true }).waitFor();
    expect((await admin('{ hosts { state } }')).hosts).toEqual([{ state: 'MAINTENANCE' }]);
    await card.getByRole('button', { name: 'Leave maintenance' }).click();
    await card.getByText('UP', { exact: true }).waitFor();

    await page.getByRole('link', { name: 'Flavors', exact: true }).click();
    const form = page.getByRole('form', { name: 'New flavor' });
    await form.getByLabel('Name').fill('c1.large');
    await form.getByLabel('vCPUs').fill('0');
    await form.getByLabel('Memory (MB)').fill('8192');
    await form.getByLabel('Disk (GB)').fill('40');
    await form.getByRole('button', { name: 'Create flavor' }).click();
    const vcpus = form.getByLabel('vCPUs');
    await eventually(() => vcpus.getAttribute('aria-invalid')).toBe('true');
    const refused = await gql(api.url, ADMIN, 'mutation { createFlavor(input: {name: "c1.large", vcpus: 0, memoryMb: 8192, diskGb: 40}) { flavor { id } } }');
    const issue = (refused.errors?.[0]?.extensions?.issues as { path: string[]; message: string }[])[0]!;
    expect(issue.path).toEqual(['vcpus']);
    expect(await page.locator(`#${await vcpus.getAttribute('aria-describedby')}`).textContent()).toBe(issue.message);
    await vcpus.fill('4');
    await form.getByRole('button', { name: 'Create flavor' }).click();
    await page.getByRole('table', { name: 'Flavors' }).getByRole('rowheader', { name: 'c1.large' }).waitFor();
    expect(await vcpus.getAttribute('aria-invalid')).toBeNull();

    await page.getByRole('link', { name: 'Projects & tokens' }).click();
    await page.getByLabel('New project').fill('charlie');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByRole('listitem').filter({ hasText: 'charlie' }).waitFor();
    await page.getByLabel('Project', { exact: true }).selectOption({ label: 'charlie' });
    await page.getByLabel('Role').selectOption('MEMBER');
    await page.getByRole('button', { name: 'Issue token' }).click();
    const issued = (await page.locator('code.token').textContent())!.trim();
    await context.close();
    const charlie = await signedIn(issued);
    expect(await charlie.page.locator('.who').textContent()).toContain('charlie · member');
    await charlie.context.close();
  });

  it('measures the time from navigation to the instances table showing data, and reads well on a phone', async () => {
    const { context, page } = await signedIn(tokens.aMember);
    const ids = (await gql(api.url, tokens.aMember, '{ flavors { id name } images { id name } }')).data!;
    const small = ids.flavors.find((f: { name: string }) => f.name === 'm1.small').id;
    const cirros = ids.images.find((i: { name: string }) => i.name === 'cirros-0.6').id;
    const booted = await gql(api.url, tokens.aMember, 'mutation($i: BootInstanceInput!) { bootInstance(input: $i) { instance { id } } }', {
      i: { name: 'db-1', flavorId: small, imageId: cirros },
    });
    expect(booted.errors).toBeUndefined();
    const db = page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'db-1' }) });
    await db.getByText('RUNNING', { exact: true }).waitFor({ timeout: 60_000 });
    await page.screenshot({ path: join(screenshots, 'instances.png'), fullPage: true });

    // The state filter shows that state's rows only; "All but deleted" brings every live one back.
    const names = () => page.locator('tr[data-instance-name]').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-instance-name')));
    const filter = page.getByLabel('State', { exact: true });
    await filter.selectOption('STOPPED');
    await eventually(names).toEqual(['web-1']);
    await filter.selectOption('RUNNING');
    await eventually(names).toEqual(['db-1']);
    await filter.selectOption('DELETED');
    await page.getByText('No instances in DELETED.').waitFor();
    expect(await names()).toEqual([]);
    await filter.selectOption({ label: 'All but deleted' });
    await eventually(names).toEqual(['db-1', 'web-1']);

    await page.goto('about:blank');
    const started = Date.now();
    await page.goto(`${base}#/instances`);
    await page.getByRole('rowheader', { name: 'web-1' }).waitFor();
    const tableMs = Date.now() - started;
    console.log(JSON.stringify({ consoleNavigationToTableMs: tableMs }));
    await context.close();

    const phone = await signedIn(tokens.aMember, { width: 390, height: 844 });
    await phone.page.getByRole('rowheader', { name: 'web-1' }).waitFor();
    await phone.page.getByRole('button', { name: 'Menu' }).click();
    await phone.page.getByRole('link', { name: 'Operations' }).click();
    await phone.page.getByRole('heading', { name: 'Operations', level: 1 }).waitFor();
    await phone.page.getByRole('rowheader', { name: 'STOP' }).waitFor();
    await phone.page.screenshot({ path: join(screenshots, 'operations-phone.png'), fullPage: true });
    await phone.context.close();
  });

  it('the serial console on the instance page follows the guest output as it comes, with no click and no change of the instance', async () => {
    const db = (await gql(api.url, tokens.aMember, '{ instances(filter: {name: "db-1"}) { edges { node { id name version } } } }')).data!.instances.edges[0].node as {
      id: string; name: string; version: number;
    };
    const { context, page } = await signedIn(tokens.aMember);
    await page.goto(`${base}#/instances/${db.id}`);
    const pre = page.getByRole('region', { name: 'Serial console' }).locator('pre');
    await eventually(() => pre.textContent()).toContain('now running');
    expect(await pre.textContent()).not.toContain('rebooted');
    // The guest reboots itself: its console says so, while the controller records nothing, so only a
    // page that follows the console can show it (there is no version change to read it again on).
    await callAgent(rt, hostId, 'rebootVm', { name: vmNameOf(db), hard: false }, { idempotencyKey: `console-test:${randomUUID()}` });
    await eventually(() => pre.textContent()).toContain('rebooted; now running');
    expect((await gql(api.url, tokens.aMember, 'query($id: ID!) { instance(id: $id) { version } }', { id: db.id })).data!.instance.version).toBe(db.version);
    expect(await sameDocument(page)).toBe('same document');
    await context.close();
  });

  it('an admin resets a held failed operation and retries another from the list, each seen failing at its step and then succeeding', async () => {
    const dbId = (await gql(api.url, tokens.aMember, '{ instances(filter: {name: "db-1"}) { edges { node { id } } } }')).data!.instances.edges[0].node.id as string;
    const instance = async () => (await gql(api.url, tokens.aMember, 'query($id: ID!) { instance(id: $id) { state task } }', { id: dbId })).data!.instance;
    const { context, page } = await signedIn(ADMIN);
    await page.getByRole('link', { name: 'Operations' }).click();

    // A reboot that fails at rebootVm and is held for an operator (STRATUS_FAILURE_HOLD, read when the
    // operation starts): Reset runs it on from its failed step once the fault is gone.
    faults({ failMethods: ['rebootVm'] });
    rt.config.failureHoldMs = 30 * 60_000;
    const rebooted = await gql(api.url, tokens.aMember, 'mutation($id: ID!) { rebootInstance(input: {id: $id, hard: false}) { operation { id } } }', { id: dbId });
    rt.config.failureHoldMs = undefined;
    const resetId = rebooted.data!.rebootInstance.operation.id as string;
    const held = page.locator(`tr[data-operation-id="${resetId}"]`);
    await held.getByText('FAILED', { exact: true }).waitFor({ timeout: 60_000 });
    expect(await held.getByRole('cell').nth(2).textContent()).toMatch(/^rebootVm.*injected rebootVm failure/);
    faults({});
    await held.getByRole('button', { name: 'Reset' }).click();
    await held.getByText('SUCCEEDED', { exact: true }).waitFor({ timeout: 60_000 });
    expect(await held.getByRole('button', { name: 'Reset' }).count()).toBe(0);
    const resetSteps = (await admin('query($id: ID!) { operation(id: $id) { steps { name status } } }', { id: resetId })).operation.steps;
    expect(resetSteps.map((x: { name: string; status: string }) => `${x.name}:${x.status}`)).toEqual([
      'rebootVm:FAILED', 'reset:SUCCEEDED', 'rebootVm:SUCCEEDED', 'recordRebooted:SUCCEEDED',
    ]);
    await eventually(instance).toEqual({ state: 'RUNNING', task: null });

    faults({ failMethods: ['pauseVm'] });
    const paused = await gql(api.url, tokens.aMember, 'mutation($id: ID!) { pauseInstance(input: {id: $id}) { operation { id } } }', { id: dbId });
    const opId = paused.data!.pauseInstance.operation.id as string;
    const row = page.locator(`tr[data-operation-id="${opId}"]`);
    await row.getByText('FAILED', { exact: true }).waitFor({ timeout: 60_000 });
    expect(await row.getByRole('cell').nth(2).textContent()).toMatch(/^pauseVm.*injected pauseVm failure/);
    await page.screenshot({ path: join(screenshots, 'operations.png'), fullPage: true });

    faults({});
    await row.getByRole('button', { name: 'Retry' }).click();
    await row.getByText('SUCCEEDED', { exact: true }).waitFor({ timeout: 60_000 });
    expect(await row.getByRole('button', { name: 'Retry' }).count()).toBe(0);
    expect(await sameDocument(page)).toBe('same document');
    // The operation and the instance are separate projections: the instance reaches PAUSED on its own feed.
    await eventually(async () => (await instance()).state).toBe('PAUSED');
    await context.close();
  });

  it('a page whose live connection dropped reads everything again once it is back, without a reload', async () => {
    const { context, page } = await signedIn(tokens.aMember);
    const db = page.locator('tr[data-instance-name="db-1"]');
    await db.getByText('PAUSED', { exact: true }).waitFor();
    const port = Number(new URL(api.url).port);
    await api.close();
    // While the API is down the instance changes and the read model folds it: the notification that
    // would have reached the page is gone for good, so only a fresh read can show it.
    const dbId = (await db.getAttribute('data-instance-id'))!;
    const { operation } = await commands.unpauseInstance(rt, { tokenId: 'console-test', projectId: alphaId, role: 'MEMBER' }, { id: dbId });
    expect((await settled(rt, operation.id)).status).toBe('SUCCEEDED');
    await waitForProjections(rt);
    api = await startApi(rt, { port });
    await db.getByText('RUNNING', { exact: true }).waitFor({ timeout: 60_000 });
    expect(await sameDocument(page)).toBe('same document');
    await context.close();
  });
  it('volumes: a bad size is refused by field; create, attach, detach, snapshot and delete from the page, each state live, destructive ones confirmed', async () => {
    const { context, page } = await signedIn(tokens.aMember);
    await page.getByRole('link', { name: 'Volumes' }).click();
    const form = page.getByRole('form', { name: 'New volume' });
    await form.getByLabel('Name').fill('data-1');
    await form.getByLabel('Size (GB)').fill('0');
    await form.getByRole('button', { name: 'Create volume' }).click();
    const issue = await issueOf(tokens.aMember, 'mutation($i: CreateVolumeInput!) { createVolume(input: $i) { operation { id } } }', { name: 'data-1', sizeGb: 0 });
    expect(issue.path).toEqual(['sizeGb']);
    expect(await fieldError(page, form.getByLabel('Size (GB)'))).toBe(issue.message);
    expect((await gql(api.url, tokens.aMember, '{ volumes { id } }')).data!.volumes).toEqual([]);

    await form.getByLabel('Size (GB)').fill('1');
    await form.getByRole('button', { name: 'Create volume' }).click();
    const row = rowOf(page, 'data-1');
    // AVAILABLE with nothing running on it: the create's task ends a moment after the state is reached.
    await expect.poll(() => row.locator('td.status').textContent(), { timeout: 60_000 }).toBe('AVAILABLE');
    await recordTexts(page, 'tr[data-volume-name="data-1"] td.status', 'volumeStates');

    // The sim's attach takes a while, so the attach under way is on screen long enough to be seen.
    faults({ latencyMs: 1500, latencyMethods: ['attachVolume'] });
    await page.getByRole('button', { name: 'Actions for data-1' }).click();
    await page.getByRole('menuitem', { name: 'Attach…' }).click();
    const attach = page.getByRole('dialog', { name: 'Attach data-1' });
    await attach.getByLabel('Instance').selectOption({ label: 'db-1 (running)' });
    await attach.getByRole('button', { name: 'Attach' }).click();
    await row.getByText('IN_USE', { exact: true }).waitFor({ timeout: 60_000 });
    expect(await row.getByRole('cell').nth(2).textContent()).toBe('db-1');
    const api1 = (await gql(api.url, tokens.aMember, '{ volumes { state device attachedTo { name } } }')).data!.volumes[0];
    expect(api1).toMatchObject({ state: 'IN_USE', attachedTo: { name: 'db-1' } });
    expect(await row.getByRole('cell').nth(3).textContent()).toBe(api1.device);
    // AVAILABLE, then the attach under way, then IN_USE, on the same document.
    const states = await recorded(page, 'volumeStates');
    expect(states[0]).toBe('AVAILABLE');
    expect(states.at(-1)).toBe('IN_USE');
    expect(states.some((t) => t.includes('ATTACH_VOLUME'))).toBe(true);
    faults({});

    await page.getByRole('button', { name: 'Actions for data-1' }).click();
    await page.getByRole('menuitem', { name: 'Detach' }).click();
    const detach = page.getByRole('dialog', { name: 'Detach data-1?' });
    await detach.getByRole('button', { name: 'Cancel' }).click();
    expect((await gql(api.url, tokens.aMember, '{ volumes { state } }')).data!.volumes[0].state).toBe('IN_USE');
    await page.getByRole('button', { name: 'Actions for data-1' }).click();
    await page.getByRole('menuitem', { name: 'Detach' }).click();
    await detach.getByRole('button', { name: 'Detach' }).click();
    await row.getByText('AVAILABLE', { exact: true }).waitFor({ timeout: 60_000 });

    await page.getByRole('button', { name: 'Actions for data-1' }).click();
    await page.getByRole('menuitem', { name: 'Snapshot…' }).click();
    const snap = page.getByRole('dialog', { name: 'Snapshot data-1' });
    await snap.getByLabel('Snapshot name').fill('snap-1');
    await snap.getByRole('button', { name: 'Take snapshot' }).click();
    await page.locator('tr[data-snapshot-name="snap-1"]').getByText('AVAILABLE', { exact: true }).waitFor({ timeout: 60_000 });
    await row.getByText('AVAILABLE', { exact: true }).waitFor({ timeout: 60_000 });
    // A volume made from the snapshot names it as its source.
    await form.getByLabel('Name').fill('data-2');
    await form.getByLabel('From snapshot').selectOption({ label: 'snap-1 (1 GB)' });
    await form.getByRole('button', { name: 'Create volume' }).click();
    await rowOf(page, 'data-2').getByText('AVAILABLE', { exact: true }).waitFor({ timeout: 60_000 });
    const vols = (await gql(api.url, tokens.aMember, '{ volumes { name sourceSnapshotId snapshots { id name } } }')).data!.volumes as { name: string; sourceSnapshotId: string | null; snapshots: { id: string; name: string }[] }[];
    expect(vols.find((v) => v.name === 'data-2')!.sourceSnapshotId).toBe(vols.find((v) => v.name === 'data-1')!.snapshots.find((x) => x.name === 'snap-1')!.id);
    await page.screenshot({ path: join(screenshots, 'volumes.png'), fullPage: true });
    await page.getByRole('button', { name: 'Actions for data-2' }).click();
    await page.getByRole('menuitem', { name: 'Delete' }).click();
    await page.getByRole('dialog', { name: 'Delete data-2?' }).getByRole('button', { name: 'Delete' }).click();
    await rowOf(page, 'data-2').waitFor({ state: 'detached', timeout: 60_000 });

    await page.getByRole('button', { name: 'Actions for data-1' }).click();
    await page.getByRole('menuitem', { name: 'Delete' }).click();
    await page.getByRole('dialog', { name: 'Delete data-1?' }).getByRole('button', { name: 'Delete' }).click();
    await row.waitFor({ state: 'detached', timeout: 60_000 });
    await eventually(async () => (await gql(api.url, tokens.aMember, '{ volumes { state } }')).data!.volumes.map((v: { state: string }) => v.state)).toEqual([]);
    expect(await sameDocument(page)).toBe('same document');
    await context.close();
  });

  it('networks: a bad CIDR is refused by field; create and delete (confirmed) from the page', async () => {
    const { context, page } = await signedIn(tokens.aMember);
    await page.getByRole('link', { name: 'Networks' }).click();
    const form = page.getByRole('form', { name: 'New network' });
    await form.getByLabel('Name').fill('backend');
    await form.getByLabel('CIDR').fill('10.20.0.0/33');
    await form.getByRole('button', { name: 'Create network' }).click();
    const issue = await issueOf(tokens.aMember, 'mutation($i: CreateNetworkInput!) { createNetwork(input: $i) { network { id } } }', { name: 'backend', cidr: '10.20.0.0/33' });
    expect(issue.path).toEqual(['cidr']);
    expect(await fieldError(page, form.getByLabel('CIDR'))).toBe(issue.message);

    await form.getByLabel('CIDR').fill('10.20.0.0/24');
    await form.getByRole('button', { name: 'Create network' }).click();
    const row = rowOf(page, 'backend');
    await row.waitFor();
    const made = (await gql(api.url, tokens.aMember, '{ networks { name cidr gateway } }')).data!.networks.find((n: { name: string }) => n.name === 'backend');
    expect(await row.getByRole('cell').nth(0).textContent()).toBe(made.cidr);
    expect(await row.getByRole('cell').nth(1).textContent()).toBe(made.gateway);
    await page.screenshot({ path: join(screenshots, 'networks.png'), fullPage: true });
    // The external network is the admins': a member is offered no delete for it.
    expect(await page.getByRole('button', { name: 'Delete public' }).count()).toBe(0);

    // By keyboard alone: the confirmation opens on its action button, and Enter runs it.
    await page.getByRole('button', { name: 'Delete backend' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('dialog', { name: 'Delete backend?' }).waitFor();
    await eventually(() => page.evaluate(() => document.activeElement?.textContent)).toBe('Delete');
    await page.keyboard.press('Enter');
    await row.waitFor({ state: 'detached' });
    expect((await gql(api.url, tokens.aMember, '{ networks { name } }')).data!.networks.map((n: { name: string }) => n.name)).not.toContain('backend');
    await context.close();
  });

  it('addresses: allocate a floating address, associate it with an instance, disassociate and release it (confirmed), live', async () => {
    const { context, page } = await signedIn(tokens.aMember);
    await page.getByRole('link', { name: 'Addresses' }).click();
    const form = page.getByRole('form', { name: 'Allocate an address' });
    await form.getByLabel('Network').selectOption({ label: 'public (192.0.2.0/24, external)' });
    await form.getByLabel('Kind').selectOption('FLOATING');
    await form.getByRole('button', { name: 'Allocate' }).click();
    const floating = page.locator('tr[data-address^="192.0.2."]');
    await floating.waitFor({ timeout: 60_000 });
    const address = (await floating.getAttribute('data-address'))!;
    const listed = async () =>
      (await gql(api.url, tokens.aMember, '{ addresses { address kind fixedAddress instance { name } } }')).data!.addresses.find((a: { address: string }) => a.address === address);
    expect(await listed()).toMatchObject({ kind: 'FLOATING', instance: null });

    await page.getByRole('button', { name: `Associate ${address}`, exact: true }).click();
    const dialog = page.getByRole('dialog', { name: `Associate ${address}` });
    await dialog.getByLabel('Instance').selectOption({ label: 'db-1 (running)' });
    await dialog.getByRole('button', { name: 'Associate' }).click();
    await floating.getByRole('link', { name: 'db-1' }).waitFor({ timeout: 60_000 });
    await eventually(async () => (await listed())?.instance?.name).toBe('db-1');
    const nat = (await listed()).fixedAddress as string;
    await eventually(() => floating.getByRole('cell').nth(3).textContent()).toBe(nat);
    await page.screenshot({ path: join(screenshots, 'addresses.png'), fullPage: true });

    await page.getByRole('button', { name: `Disassociate ${address}` }).click();
    await page.getByRole('dialog', { name: `Disassociate ${address}?` }).getByRole('button', { name: 'Disassociate' }).click();
    await floating.getByRole('button', { name: `Associate ${address}`, exact: true }).waitFor({ timeout: 60_000 });
    expect((await listed()).instance).toBeNull();

    await page.getByRole('button', { name: `Release ${address}` }).click();
    await page.getByRole('dialog', { name: `Release ${address}?` }).getByRole('button', { name: 'Release' }).click();
    await floating.waitFor({ state: 'detached', timeout: 60_000 });
    await eventually(listed).toBeUndefined();
    expect(await sameDocument(page)).toBe('same document');
    await context.close();
  });

  it('security groups: a bad rule is refused by field; a rule is added and removed (confirmed); the page works on a phone', async () => {
    const { context, page } = await signedIn(tokens.aMember, { width: 390, height: 844 });
    await page.getByRole('button', { name: 'Menu' }).click();
    await page.getByRole('link', { name: 'Security groups' }).click();
    const form = page.getByRole('form', { name: 'New rule for default' });
    await form.getByLabel('Protocol').selectOption('TCP');
    await form.getByLabel('From port').fill('22');
    await form.getByLabel('To port').fill('22');
    await form.getByLabel('Remote CIDR').fill('nowhere');
    await form.getByRole('button', { name: 'Add rule' }).click();
    const groupId = (await gql(api.url, tokens.aMember, '{ securityGroups { id name } }')).data!.securityGroups.find((g: { name: string }) => g.name === 'default').id;
    const issue = await issueOf(tokens.aMember, 'mutation($i: AddSecurityGroupRuleInput!) { addSecurityGroupRule(input: $i) { securityGroup { id } } }', {
      securityGroupId: groupId, direction: 'INGRESS', protocol: 'TCP', portMin: 22, portMax: 22, remoteCidr: 'nowhere',
    });
    expect(issue.path).toEqual(['remoteCidr']);
    expect(await fieldError(page, form.getByLabel('Remote CIDR'))).toBe(issue.message);
    const rules = async () => (await gql(api.url, tokens.aMember, '{ securityGroups { name rules { id protocol portMin portMax remoteCidr } } }')).data!.securityGroups.find((g: { name: string }) => g.name === 'default').rules as { id: string; protocol: string; portMin: number | null }[];
    const before = await rules();

    await form.getByLabel('Remote CIDR').fill('203.0.113.0/24');
    await form.getByRole('button', { name: 'Add rule' }).click();
    const table = page.getByRole('table', { name: 'Rules of default' });
    const added = table.getByRole('row').filter({ hasText: '203.0.113.0/24' });
    await added.waitFor();
    const after = await rules();
    expect(after).toHaveLength(before.length + 1);
    expect(after.find((r) => !before.some((b) => b.id === r.id))).toMatchObject({ protocol: 'TCP', portMin: 22, portMax: 22, remoteCidr: '203.0.113.0/24' });
    await page.screenshot({ path: join(screenshots, 'security-groups-phone.png'), fullPage: true });

    await added.getByRole('button', { name: /^Remove / }).click();
    await page.getByRole('dialog', { name: 'Remove rule from default?' }).getByRole('button', { name: 'Remove rule from' }).click();
    await added.waitFor({ state: 'detached' });
    expect((await rules()).map((r) => r.id).sort()).toEqual(before.map((r) => r.id).sort());

    const group = page.getByRole('form', { name: 'New security group' });
    await group.getByLabel('Name').fill('web');
    await group.getByRole('button', { name: 'Create group' }).click();
    await page.getByRole('heading', { name: 'web', level: 2 }).waitFor();
    expect((await gql(api.url, tokens.aMember, '{ securityGroups { name } }')).data!.securityGroups.map((g: { name: string }) => g.name)).toContain('web');
    await context.close();
  });

  it("the instance page draws its meters from meters(): every sample on a chart is one the API has", async () => {
    stopPollers = await keepMeterPollers(rt, 1000);
    const dbId = (await gql(api.url, tokens.aMember, '{ instances(filter: {name: "db-1"}) { edges { node { id } } } }')).data!.instances.edges[0].node.id as string;
    const METERS = 'query($id: ID!, $m: String!, $from: DateTime!, $to: DateTime!) { meters(resourceId: $id, meter: $m, from: $from, to: $to) { timestamp value } }';
    const samples = async (m: string) =>
      (await gql(api.url, tokens.aMember, METERS, { id: dbId, m, from: new Date(Date.now() - 7_200_000).toISOString(), to: new Date(Date.now() + 60_000).toISOString() })).data!.meters as { timestamp: string; value: number }[];
    await eventually(async () => (await samples('cpu_util')).length).toBeGreaterThanOrEqual(3);

    const { context, page } = await signedIn(tokens.aMember);
    await page.goto(`${base}#/instances/${dbId}`);
    const meters = page.getByRole('region', { name: 'Meters' });
    await meters.waitFor();
    await meters.getByRole('button', { name: 'Refresh' }).click();
    for (const [key, meter] of [['cpu', 'cpu_util'], ['mem', 'memory.usage']] as const) {
      const figure = page.locator(`figure[aria-labelledby="meter-${key}-title"]`);
      await eventually(() => figure.locator('tr[data-at]').count()).toBeGreaterThanOrEqual(2);
      // The pollers keep sampling and the chart may redraw between two reads, so its rows and its
      // label are read from one and the same drawing.
      const { shown, label } = await figure.evaluate((f) => ({
        shown: [...f.querySelectorAll('tr[data-at]')].map((tr) => ({ timestamp: tr.getAttribute('data-at')!, value: Number(tr.getAttribute('data-value')) })),
        label: f.querySelector('svg')?.getAttribute('aria-label') ?? '',
      }));
      const known = await samples(meter);
      for (const s of shown) expect(known).toContainEqual(s);
      // The chart says what its newest sample is, in words.
      expect(label).toContain(`${shown.length} samples`);
    }
    await page.screenshot({ path: join(screenshots, 'instance.png'), fullPage: true });
    await context.close();
    await stopPollers();
    stopPollers = undefined;
    await rt.temporal.workflow.getHandle(meterPollerId(hostId)).terminate().catch(() => {});
  });

  it('usage: an admin picks a project and a date range and sees a cost chart per usage type; its member sees its own, the same', async () => {
    const timeline = usageTimeline(rt);
    const projectId = await timeline.project();
    const t = (day: string, hhmm: string) => `2026-11-${day}T${hhmm}:00.000Z`;
    const a = await timeline.boot(projectId, t('10', '10:20'));
    await timeline.delete(a, t('10', '12:50'));
    const b = await timeline.boot(projectId, t('11', '08:00'));
    await timeline.delete(b, t('11', '09:30'));
    await timeline.price('RUNNING_VM', 0.06, t('01', '00:00'));
    await waitForProjections(rt);
    const name = `p-${projectId.slice(0, 8)}`;
    const member = (await admin(`mutation($p: ID!) { createToken(input: {projectId: $p, role: MEMBER}) { token } }`, { p: projectId })).createToken.token as string;
    const report = (await admin(`query($p: ID, $from: DateTime!, $to: DateTime!) { usage(projectId: $p, from: $from, to: $to) { cost totals { usageType quantity cost } } }`, {
      p: projectId, from: t('09', '00:00'), to: t('13', '00:00'),
    })).usage as { cost: number; totals: { usageType: string; quantity: number; cost: number }[] };
    expect(report.totals.map((x) => x.usageType)).toEqual(['ALLOCATED_VM', 'RUNNING_VM']);

    /** What a usage page's chart holds: its days and their values. */
    const chart = (page: Page, usageType: string) =>
      page.locator(`figure[aria-labelledby="usage-${usageType}-title"] tr[data-at]`).evaluateAll((trs) => trs.map((tr) => [tr.getAttribute('data-at'), Number(tr.getAttribute('data-value'))]));
    const showRange = async (page: Page) => {
      const range = page.getByRole('form', { name: 'Usage range' });
      await range.getByLabel('From').fill('2026-11-09');
      await range.getByLabel('To (inclusive)').fill('2026-11-12');
      await range.getByRole('button', { name: 'Show usage' }).click();
    };
    const expectReport = async (page: Page) => {
      await rowOf(page, 'RUNNING_VM').waitFor();
      // 2 h 30 min on the 10th and 1 h 30 min on the 11th, at 0.06 an hour; allocation has no price, so its hours are drawn.
      const running = await chart(page, 'RUNNING_VM');
      expect(running.map(([day]) => day)).toEqual(['2026-11-10', '2026-11-11']);
      expect(running[0]![1]).toBeCloseTo(0.15, 9);
      expect(running[1]![1]).toBeCloseTo(0.09, 9);
      expect(running.reduce((n, [, v]) => n + (v as number), 0)).toBeCloseTo(report.totals[1]!.cost, 9);
      const allocated = await chart(page, 'ALLOCATED_VM');
      expect(allocated.map(([day, v]) => [day, Number((v as number).toFixed(9))])).toEqual([['2026-11-10', 2.5], ['2026-11-11', 1.5]]);
      expect(await page.getByRole('figure', { name: /ALLOCATED_VM hours per day \(no price set\)/ }).count()).toBe(1);
      const quantity = (await rowOf(page, 'RUNNING_VM').getByRole('cell').nth(0).textContent())!;
      expect(quantity).toMatch(/ hours$/);
      expect(parseFloat(quantity)).toBeCloseTo(report.totals[1]!.quantity, 2);
    };

    const asAdmin = await signedIn(ADMIN);
    await asAdmin.page.getByRole('link', { name: 'Usage' }).click();
    await asAdmin.page.getByLabel('Project').selectOption({ label: name });
    await showRange(asAdmin.page);
    await expectReport(asAdmin.page);
    await asAdmin.page.screenshot({ path: join(screenshots, 'usage.png'), fullPage: true });
    await asAdmin.context.close();

    // The project's member, on a phone.
    const own = await signedIn(member, { width: 390, height: 844 });
    await own.page.getByRole('button', { name: 'Menu' }).click();
    await own.page.getByRole('link', { name: 'Usage' }).click();
    expect(await own.page.getByLabel('Project').count()).toBe(0);
    await showRange(own.page);
    await expectReport(own.page);
    // A record closing while the page is open shows on it, without a reload: an hour on the 12th.
    const c = await timeline.boot(projectId, t('12', '01:00'));
    await timeline.delete(c, t('12', '02:00'));
    await eventually(async () => (await chart(own.page, 'RUNNING_VM')).map(([day]) => day)).toEqual(['2026-11-10', '2026-11-11', '2026-11-12']);
    expect((await chart(own.page, 'RUNNING_VM'))[2]![1]).toBeCloseTo(0.06, 9);
    await own.page.screenshot({ path: join(screenshots, 'usage-phone.png'), fullPage: true });
    expect(await sameDocument(own.page)).toBe('same document');
    await own.context.close();

    // Project alpha has none of it: its member's page shows no usage in that range.
    const alpha = await signedIn(tokens.aMember);
    await alpha.page.getByRole('link', { name: 'Usage' }).click();
    await showRange(alpha.page);
    await alpha.page.getByText('No usage in this range.').waitFor();
    await alpha.context.close();
  });

  it('images: an upload shows its progress and goes QUEUED -> SAVING -> ACTIVE live with its sha256; delete asks first', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'stratus-console-image-')), 'disk.img');
    const bytes = randomBytes(4 * 1024 * 1024);
    writeFileSync(file, bytes);
    const { context, page } = await signedIn(ADMIN);
    await page.getByRole('link', { name: 'Images' }).click();
    await rowOf(page, 'cirros-0.6').waitFor();
    await recordTexts(page, 'tr[data-image-name="uploaded-disk"] td.status', 'imageStates');
    await recordTexts(page, '.upload span.muted', 'uploadProgress');
    // The browser sends at 1 MiB/s, so the upload lasts long enough to be watched as it goes.
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 1024 * 1024 });

    const form = page.getByRole('form', { name: 'Upload an image' });
    await form.getByLabel('Name').fill('uploaded-disk');
    await form.getByLabel('Format').selectOption('raw');
    await form.getByLabel('File').setInputFiles(file);
    await form.getByRole('button', { name: 'Upload' }).click();
    const row = rowOf(page, 'uploaded-disk');
    await row.getByText('SAVING', { exact: true }).waitFor();
    await page.screenshot({ path: join(screenshots, 'images-upload.png'), fullPage: true });
    await row.getByText('ACTIVE', { exact: true }).waitFor({ timeout: 60_000 });
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

    expect(await recorded(page, 'imageStates')).toEqual(['', 'QUEUED', 'SAVING', 'ACTIVE']);
    const progress = await recorded(page, 'uploadProgress');
    const percents = progress.filter(Boolean).map((text) => Number(/\((\d+)%\)/.exec(text)?.[1]));
    expect(percents.at(-1)).toBe(100);
    expect(percents.some((p) => p > 0 && p < 100)).toBe(true);
    expect(percents).toEqual([...percents].sort((x, y) => x - y));
    const sha = createHash('sha256').update(bytes).digest('hex');
    expect(await row.getByRole('cell').nth(4).getAttribute('title')).toBe(sha);
    const id = (await row.getAttribute('data-image-id'))!;
    expect((await admin('query($id: ID!) { image(id: $id) { status checksum sizeBytes } }', { id })).image).toEqual({ status: 'ACTIVE', checksum: sha, sizeBytes: bytes.length });
    expect(await sameDocument(page)).toBe('same document');

    await page.getByRole('button', { name: 'Delete uploaded-disk' }).click();
    await page.getByRole('dialog', { name: 'Delete uploaded-disk?' }).getByRole('button', { name: 'Cancel' }).click();
    expect((await admin('query($id: ID!) { image(id: $id) { status } }', { id })).image.status).toBe('ACTIVE');
    await page.getByRole('button', { name: 'Delete uploaded-disk' }).click();
    await page.getByRole('dialog', { name: 'Delete uploaded-disk?' }).getByRole('button', { name: 'Delete' }).click();
    await row.waitFor({ state: 'detached' });
    // The read model folds the deletion a moment after the mutation answered: the image then does not exist.
    await eventually(async () => (await admin('query($id: ID!) { image(id: $id) { status } }', { id })).image).toBeNull();

    // Bytes that are not the format claimed: the API's reason under the form, the image ERROR with it.
    await form.getByLabel('Name').fill('not-qcow2');
    await form.getByLabel('Format').selectOption('qcow2');
    await form.getByLabel('File').setInputFiles(file);
    await form.getByRole('button', { name: 'Upload' }).click();
    const refused = rowOf(page, 'not-qcow2');
    await refused.getByText('ERROR', { exact: true }).waitFor({ timeout: 60_000 });
    const badId = (await refused.getAttribute('data-image-id'))!;
    const reason = (await admin('query($id: ID!) { image(id: $id) { status errorReason } }', { id: badId })).image;
    expect(reason.status).toBe('ERROR');
    expect(await refused.locator('td.status .error-inline').textContent()).toBe(reason.errorReason);
    await eventually(() => form.getByRole('alert').textContent()).toBe(`BAD_USER_INPUT: image ${badId}: ${reason.errorReason}`);
    await context.close();
  });
});
