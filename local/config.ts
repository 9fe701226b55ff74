/**
 * How a running local system is found by the CLI: `npm start` writes this file, `npm run gatehouse` reads it.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { LocalSystem } from './system';
import { ROOT } from './paths';

export const LOCAL_CONFIG = path.join(ROOT, '.gatehouse', 'local.json');

export interface LocalConfig {
  region: string;
  websocketUrl: string;
  speechUrl: string;
  eventsEndpoint: string;
  cognitoEndpoint: string;
  userPoolId: string;
  clientId: string;
  eventBusName: string;
  users: Array<{ email: string; password: string; tenants: string[]; admin?: boolean }>;
}

export function writeLocalConfig(system: LocalSystem, file = LOCAL_CONFIG): LocalConfig {
  const config: LocalConfig = {
    region: system.region,
    websocketUrl: system.urls.websocket,
    speechUrl: system.urls.speech,
    eventsEndpoint: system.urls.events,
    cognitoEndpoint: system.urls.cognito,
    userPoolId: system.userPoolId,
    clientId: system.clientId,
    eventBusName: system.eventBusName,
    users: system.users,
  };
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(config, null, 2));
  return config;
}

export function readLocalConfig(file = LOCAL_CONFIG): LocalConfig {
  if (!existsSync(file)) throw new Error(`No local system found (${path.relative(process.cwd(), file)} is missing): run \`npm start\` first.`);
  return JSON.parse(readFileSync(file, 'utf8')) as LocalConfig;
}
