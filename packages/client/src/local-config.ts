/**
 * Finds the local system's description (written by `npm start`): `--config`, else $GATEHOUSE_CONFIG, else
 * `.gatehouse/local.json` in the working directory or the nearest one above it (so the CLI works anywhere in the
 * Gatehouse checkout).
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { LOCAL_CONFIG_ENV, LOCAL_CONFIG_PATH, type LocalConfig } from '../../../protocol';

export function findLocalConfig(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string | undefined {
  if (explicit) return path.resolve(cwd, explicit);
  if (env[LOCAL_CONFIG_ENV]) return path.resolve(cwd, env[LOCAL_CONFIG_ENV]);
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    const file = path.join(dir, LOCAL_CONFIG_PATH);
    if (existsSync(file)) return file;
    if (path.dirname(dir) === dir) return undefined;
  }
}

export function readLocalConfig(explicit?: string, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): LocalConfig {
  const file = findLocalConfig(explicit, env, cwd);
  if (!file || !existsSync(file)) {
    const where = file ? `${path.relative(cwd, file) || file} is missing` : `no ${LOCAL_CONFIG_PATH} here or above, and ${LOCAL_CONFIG_ENV} is not set`;
    throw new Error(`No local system found (${where}): run \`npm start\` in the Gatehouse checkout first, or pass --config <file>.`);
  }
  return JSON.parse(readFileSync(file, 'utf8')) as LocalConfig;
}
