import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const pages = ['README.md', ...readdirSync(join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

describe('the README and docs/ stand alone', () => {
  it.each(pages)('%s links only to files inside the repository, and they exist', (page) => {
    const text = readFileSync(join(repoRoot, page), 'utf8');
    const targets = [...text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => m[1]!).filter((t) => !/^[a-z]+:/.test(t));
    for (const target of targets) {
      const path = resolve(repoRoot, dirname(page), target);
      expect(path.startsWith(repoRoot), `${page} links outside the repository: ${target}`).toBe(true);
      expect(existsSync(path), `${page} links to a missing file: ${target}`).toBe(true);
    }
    expect(text).not.toMatch(/\.\.\/shared\//);
  });
});
