import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

describe('schema.graphql', () => {
  it('is the schema the code serves (run `npm run schema` after changing the API)', () => {
    // Printed by the real CLI, in its own process: the schema a deployment's `stratus api` builds.
    const printed = execFileSync(process.execPath, ['cli/bin.mjs', 'schema'], { cwd: repoRoot, encoding: 'utf8' });
    expect(printed).toContain('type Query');
    expect(readFileSync(`${repoRoot}/schema.graphql`, 'utf8')).toBe(printed);
  });
});
