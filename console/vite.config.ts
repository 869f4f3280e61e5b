import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The browser app is its own build: Preact through Vite's JSX transform, no framework plugin needed.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', reportCompressedSize: false },
});
