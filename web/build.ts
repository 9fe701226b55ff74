/**
 * The production build of the web app (web/dist), made on demand: `cdk synth` uploads it to S3 and `npm start`
 * serves it, so both call `ensureWebBuild()`, which runs Vite only when a source changed since the last build.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
export const WEB_DIST = path.join(ROOT, 'web', 'dist');
// The app imports the shared client and protocol, so they are sources of the build too.
const INPUTS = ['web/src', 'web/public', 'web/index.html', 'web/vite.config.mts', 'packages/client/src', 'packages/client/package.json', 'common', 'protocol', 'package-lock.json'];
const STAMP = path.join(ROOT, 'node_modules', '.cache', 'gatehouse', 'web-build');

// Build output and installed packages are never sources.
const SKIP = new Set(['node_modules', 'dist', '.vite']);

function files(entry: string): string[] {
  if (!existsSync(entry)) return [];
  if (!statSync(entry).isDirectory()) return [entry];
  return readdirSync(entry).flatMap((name) => (SKIP.has(name) ? [] : files(path.join(entry, name))));
}

/** SHA-256 over the files under `entries` (paths relative to the repository root), names and contents. */
export function hashSources(entries: readonly string[]): string {
  const hash = createHash('sha256');
  for (const file of entries.flatMap((e) => files(path.join(ROOT, e))).sort()) {
    hash.update(path.relative(ROOT, file));
    hash.update(readFileSync(file));
  }
  return hash.digest('hex');
}

/** The inputs' hash when web/dist is missing or was built from other sources; undefined when it is current. */
function staleHash(): string | undefined {
  const hash = hashSources(INPUTS);
  return existsSync(path.join(WEB_DIST, 'index.html')) && existsSync(STAMP) && readFileSync(STAMP, 'utf8') === hash ? undefined : hash;
}

/** Whether web/dist was built from the sources as they are now. */
export const webBuildIsCurrent = (): boolean => staleHash() === undefined;

/** Builds web/dist if it is missing or stale; returns its path. */
export function ensureWebBuild(starting?: () => void): string {
  const hash = staleHash();
  if (hash === undefined) return WEB_DIST;
  starting?.();
  const vite = path.join(path.dirname(require.resolve('vite/package.json')), 'bin', 'vite.js');
  execFileSync(process.execPath, [vite, 'build', '--config', path.join(ROOT, 'web', 'vite.config.mts')], {
    cwd: ROOT,
    // A production build whatever the caller's NODE_ENV (jest sets "test", which would ship React's dev build).
    env: { ...process.env, NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  mkdirSync(path.dirname(STAMP), { recursive: true });
  writeFileSync(STAMP, hash);
  return WEB_DIST;
}

if (require.main === module) {
  ensureWebBuild();
  process.stdout.write(`web app built in ${path.relative(process.cwd(), WEB_DIST)}\n`);
}
