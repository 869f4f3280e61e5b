import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { findTemporalCli, TEMPORAL_CLI_VERSION } from '../server/temporalCli.js';

const savedEnv = { ...process.env };
afterEach(() => {
  process.env = { ...savedEnv };
});

function fakeCli(version: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'fake-temporal-'));
  const path = join(dir, 'temporal');
  writeFileSync(path, `#!/bin/sh\necho "temporal version ${version} (Server 0.0.0, UI 0.0.0)"\n`);
  chmodSync(path, 0o755);
  return dir;
}

describe('the Temporal toolchain', () => {
  it('finds the pinned CLI version', async () => {
    const found = await findTemporalCli();
    expect(found.version).toBe(TEMPORAL_CLI_VERSION);
  });

  it('ignores a temporal on PATH whose version is not the pinned one', async () => {
    const dir = fakeCli('0.9.0');
    process.env.PATH = `${dir}:${process.env.PATH}`;
    const messages: string[] = [];
    const found = await findTemporalCli((m) => messages.push(m));
    expect(found.path.startsWith(dir)).toBe(false);
    expect(found.version).toBe(TEMPORAL_CLI_VERSION);
    expect(messages.join('\n')).toMatch(/ignoring .*version 0\.9\.0/);
  });

  it('takes STRATUS_TEMPORAL_CLI first and refuses a path that does not exist', async () => {
    process.env.STRATUS_TEMPORAL_CLI = '/nonexistent/temporal';
    await expect(findTemporalCli()).rejects.toThrow(/STRATUS_TEMPORAL_CLI=\/nonexistent\/temporal does not exist/);
    const dir = fakeCli(TEMPORAL_CLI_VERSION);
    process.env.STRATUS_TEMPORAL_CLI = join(dir, 'temporal');
    expect(await findTemporalCli()).toMatchObject({ path: join(dir, 'temporal'), source: 'env' });
  });

  it('the test run has one real dev server that answers', async () => {
    const connection = await Connection.connect({ address: inject('temporalAddress') });
    const info = await connection.workflowService.getSystemInfo({});
    expect(info.serverVersion).toMatch(/^\d+\.\d+/);
    await connection.close();
  });
});
