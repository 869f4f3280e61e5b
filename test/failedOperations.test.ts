import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../cli/apiClient.js';
import { startApiStack, type ApiStack } from './support/apiStack.js';
import { gql } from './support/graphqlClient.js';

const FIELDS = 'id kind status attempts error { code message } failedStep { name status error { code } }';

interface Failed {
  id: string;
  kind: string;
  status: string;
  attempts: number;
  error: { code: string; message: string };
  failedStep: { name: string; status: string; error: { code: string } };
}

describe('failedOperations: the operator view of what failed, paged and live', () => {
  let stack: ApiStack;
  const boot = async (name: string) =>
    (await stack.admin(`mutation($i: BootInstanceInput!) { bootInstance(input: $i) { operation { id } } }`, { i: { name, flavorId: stack.flavorId, imageId: stack.imageId } }))
      .bootInstance.operation.id as string;
  const until = async (id: string, status: string) => {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const { operation } = await stack.admin(`query($id: ID!) { operation(id: $id) { status } }`, { id });
      if (operation?.status === status) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`operation ${id} never reached ${status}`);
  };

  beforeAll(async () => {
    stack = await startApiStack('failed_operations');
    await writeFile(join(stack.agent.stateDir, 'faults.json'), JSON.stringify({ failMethods: ['startVm'], failNamePattern: '^bad' }));
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('pages FAILED operations newest first with their failing step, error and attempts, and only those', async () => {
    const failed: string[] = [];
    for (const name of ['bad-1', 'good-1', 'bad-2', 'bad-3']) {
      const id = await boot(name);
      await until(id, name.startsWith('bad') ? 'FAILED' : 'SUCCEEDED');
      if (name.startsWith('bad')) failed.unshift(id);
    }
    const page = async (after?: string) =>
      (await stack.admin(`query($after: ID) { failedOperations(first: 2, after: $after) { ${FIELDS} } }`, { after: after ?? null })).failedOperations as Failed[];
    const first = await page();
    const second = await page(first.at(-1)!.id);
    expect(first.map((o) => o.id)).toEqual(failed.slice(0, 2));
    expect(second.map((o) => o.id)).toEqual(failed.slice(2));
    expect(await page(second.at(-1)!.id)).toEqual([]);
    for (const op of [...first, ...second]) {
      expect(op).toMatchObject({ kind: 'BOOT', status: 'FAILED', attempts: 1, error: { code: 'HYPERVISOR_ERROR' }, failedStep: { name: 'startVm', status: 'FAILED', error: { code: 'HYPERVISOR_ERROR' } } });
    }
  });

  it('is for admins only, and a bad cursor is BAD_USER_INPUT', async () => {
    const member = await stack.memberToken();
    const refused = await gql(stack.url, member, `{ failedOperations { id } }`);
    expect(refused.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const bad = await gql(stack.url, stack.adminToken, `{ failedOperations(after: "not-an-id") { id } }`);
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('the failedOperations subscription yields each operation once as it fails, with its failing step', async () => {
    const seen: Failed[] = [];
    const abort = new AbortController();
    const client = new ApiClient({ url: stack.url, token: stack.adminToken });
    // Resolves once the server has answered: the subscription is registered before the boot below.
    await client.subscribe<{ failedOperations: Failed }>(`subscription { failedOperations { ${FIELDS} } }`, {}, (d) => seen.push(d.failedOperations), abort.signal);
    try {
      const good = await boot('good-2');
      const bad = await boot('bad-live');
      await until(good, 'SUCCEEDED');
      await until(bad, 'FAILED');
      const deadline = Date.now() + 30_000;
      while (!seen.some((o) => o.id === bad) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(seen.filter((o) => o.id === bad)).toHaveLength(1);
      expect(seen.find((o) => o.id === bad)).toMatchObject({ failedStep: { name: 'startVm' }, error: { code: 'HYPERVISOR_ERROR' }, attempts: 1 });
      expect(seen.map((o) => o.id)).not.toContain(good);
    } finally {
      abort.abort();
    }

    const member = await stack.memberToken();
    const memberSub = await new ApiClient({ url: stack.url, token: member })
      .subscribe(`subscription { failedOperations { id } }`, {}, () => {}, new AbortController().signal)
      .then(({ ended }) => ended, (e: unknown) => e)
      .catch((e: unknown) => e);
    expect(String(memberSub)).toContain('FORBIDDEN');
  });
});
