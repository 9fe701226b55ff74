/**
 * AWS clients for the handlers, created once per container. Region and credentials come from the Lambda
 * environment; the endpoints come from configuration so the same bundle runs against local stand-ins.
 */
import { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { authConfig, createAuth, type Auth } from '../../common/auth';
import { createLogger, type Logger } from '../../common/log';
import { METRICS_NAMESPACE_ENV } from '../../common/metrics';
import { logLevel, realtimeConfig, type RealtimeConfig } from './config';
import { createConnectionsApi, environmentCredentials, type ConnectionsApi } from './connections-api';
import { cognitoProfiles, type Profiles } from './profiles';
import { createRoomAccess, type RoomAccess } from './room-access';
import { ConnectionStore } from './store';

export interface RealtimeRuntime {
  config: RealtimeConfig;
  store: ConnectionStore;
  api: ConnectionsApi;
  auth: Auth;
  cognito: CognitoIdentityProviderClient;
  profiles: Profiles;
  /** Private rooms and the deployment's room hook (room-access.ts). */
  roomAccess: RoomAccess;
  log: Logger;
}

/** The function's region, which Lambda sets (AWS_REGION); the @connections requests are signed for it. */
function requiredRegion(env: Record<string, string | undefined>): string {
  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  if (!region) throw new Error('AWS_REGION is not set (Lambda sets it).');
  return region;
}

export function realtimeRuntime(component: string, env: Record<string, string | undefined> = process.env): RealtimeRuntime {
  const config = realtimeConfig(env);
  const db = DynamoDBDocumentClient.from(new DynamoDBClient({}), { marshallOptions: { removeUndefinedValues: true } });
  const cognito = new CognitoIdentityProviderClient({});
  const log = createLogger({ component }, { level: logLevel(env), metricsNamespace: env[METRICS_NAMESPACE_ENV] });
  const auth = createAuth(authConfig(env, { allowQueryToken: true }), { db, cognito });
  const store = new ConnectionStore(db, config.tableName);
  return {
    config,
    store,
    api: createConnectionsApi({ endpoint: config.connectionsUrl, region: requiredRegion(env), credentials: environmentCredentials(env), maxSockets: config.broadcastConcurrency }),
    auth,
    cognito,
    profiles: cognitoProfiles(cognito, auth.config.verifier.userPoolId, log, { shared: store.profiles }),
    roomAccess: createRoomAccess(db, config.tableName, env),
    log,
  };
}
