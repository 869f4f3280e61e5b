import 'vitest';
import type { TestProject } from 'vitest/node';
import { startPostgres } from './support/postgres.js';
import { startTemporal } from './support/temporal.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A PostgreSQL server URL; tests make their own database on it with createDatabase. */
    postgresUrl: string;
    /** The Temporal dev server's address (host:port). */
    temporalAddress: string;
  }
}

/** Real servers, once per test run: PostgreSQL and the Temporal dev server. */
export default async function setup(project: TestProject) {
  const [postgres, temporal] = await Promise.all([startPostgres(), startTemporal()]);
  project.provide('postgresUrl', postgres.url);
  project.provide('temporalAddress', temporal.address);
  return async () => {
    await Promise.allSettled([temporal.stop(), postgres.stop()]);
  };
}
