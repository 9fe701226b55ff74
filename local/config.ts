/**
 * How a running local system is found by the CLI: `npm start` writes this file (the contract is in
 * protocol/local-config.ts), the `gatehouse` CLI reads it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { LOCAL_CONFIG_PATH, type LocalConfig } from '../protocol';
import type { LocalSystem } from './system';
import { ROOT } from './paths';

export const LOCAL_CONFIG = path.join(ROOT, LOCAL_CONFIG_PATH);

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
