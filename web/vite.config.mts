import * as path from 'node:path';
import { defaultClientConditions, defineConfig } from 'vite';

// The web app: React, built by Vite (JSX compiled by its built-in oxc transform). It imports @gatehouse/client
// through the workspace, from its sources (the gatehouse-source condition), and the protocol from ../protocol, so
// browser and server speak one protocol.
export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  resolve: { conditions: ['gatehouse-source', ...defaultClientConditions] },
  build: {
    outDir: path.join(import.meta.dirname, 'dist'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
  },
  oxc: { jsx: { runtime: 'automatic' } },
  logLevel: 'warn',
});
