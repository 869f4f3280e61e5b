import { printSchema } from 'graphql';
import { stratusSchema } from './index.js';

/**
 * The schema as SDL, the text checked in as schema.graphql. Printed from the code (never written by
 * hand) so the file a client generates types from is the API the server serves; a test fails when
 * the two differ, and `npm run schema` rewrites the file.
 */
export function schemaSdl(): string {
  return printSchema(stratusSchema()) + '\n';
}
