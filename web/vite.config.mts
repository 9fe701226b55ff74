import * as path from 'node:path';
import { defineConfig } from 'vite';

// The web app: React, built by Vite (JSX compiled by its built-in oxc transform). It imports the shared client
// and protocol from ../client and ../protocol, so browser and server speak one protocol.
export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  build: {
    outDir: path.join(import.meta.dirname, 'dist'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
  },
  oxc: { jsx: { runtime: 'automatic' } },
  logLevel: 'warn',
});
