import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { startTemporalDevServer } from '../server/temporalDevServer.js';
import { isAlive } from './support/processes.js';


describe('the embedded Temporal dev server', () => {
  // A controller killed outright (SIGKILL) leaves its dev server running, in its own process group,
  // on the data dir's database: the next start must not fail on it.
  it('a dev server left running on the data dir is stopped before a new one starts on it, which then serves', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'stratus-temporal-leftover-'));
    const said: string[] = [];
    const first = await startTemporalDevServer({ dataDir, port: 0, say: (m) => said.push(m) });
    let second: Awaited<ReturnType<typeof startTemporalDevServer>> | undefined;
    try {
      expect(readFileSync(join(dataDir, 'temporal.pid'), 'utf8').trim()).toBe(String(first.pid));
      second = await startTemporalDevServer({ dataDir, port: 0, say: (m) => said.push(m) });
      expect(isAlive(first.pid)).toBe(false);
      expect(said.some((m) => m.includes(`pid ${first.pid}`))).toBe(true);
      const connection = await Connection.connect({ address: second.address });
      try {
        await connection.workflowService.getSystemInfo({});
      } finally {
        await connection.close();
      }
      expect(readFileSync(join(dataDir, 'temporal.pid'), 'utf8').trim()).toBe(String(second.pid));
    } finally {
      await second?.stop();
      await first.stop();
      expect(existsSync(join(dataDir, 'temporal.pid'))).toBe(false);
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});
