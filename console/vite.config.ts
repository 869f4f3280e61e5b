import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The browser app is its own build: Preact through Vite's JSX transform, no framework plugin needed.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  logLevel: 'warn',
  // Never the development JSX transform (source locations on every element, a third more bytes), even
  // when the build runs under a test runner's NODE_ENV=test (test/console.test.ts rebuilds a stale dist).
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact', development: false } },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', reportCompressedSize: false },
});
