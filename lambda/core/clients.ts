/**
 * AWS clients for the handlers, created once per container. Region and credentials come from the Lambda
 * environment; the endpoints come from configuration so the same bundle runs against local stand-ins.
 */
import { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { authConfig, createAuth, type Auth } from '../../common/auth';
import { documentClient } from '../../common/dynamo-client';
import { createLogger, type Logger } from '../../common/log';
import { METRICS_NAMESPACE_ENV } from '../../common/metrics';
import { logLevel, realtimeConfig, type RealtimeConfig } from './config';
import { createConnectionsApi, environmentCredentials, type ConnectionsApi } from './connections-api';
import type { FanoutDispatcher } from './fanout';
import { createRoomAccess, type RoomAccess } from './room-access';
import { ConnectionStore } from './store';

export interface RealtimeRuntime {
  config: RealtimeConfig;
  store: ConnectionStore;
  api: ConnectionsApi;
  auth: Auth;
  cognito: CognitoIdentityProviderClient;
  /** Private rooms and the deployment's room hook (room-access.ts). */
  roomAccess: RoomAccess;
  log: Logger;
  /** Hands big rooms to the fan-out workers; absent when the function has none configured (FANOUT_FUNCTION). */
  fanout?: FanoutDispatcher;
}

/**
 * Hands a task to the fan-out workers: an asynchronous (Event) invocation of their function, which Lambda queues,
 * retries and, should it keep failing, records in the failed-invocations queue.
 */
export function lambdaDispatcher(functionArn: string): FanoutDispatcher {
  // Required here, not imported at the top: only the functions that deliver to rooms load it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { LambdaClient, InvokeCommand } = require('@aws-sdk/client-lambda') as typeof import('@aws-sdk/client-lambda');
  const lambda = new LambdaClient({});
  const encoder = new TextEncoder();
  return async (task) => {
    await lambda.send(new InvokeCommand({ FunctionName: functionArn, InvocationType: 'Event', Payload: encoder.encode(JSON.stringify(task)) }));
  };
}

/** The function's region, which Lambda sets (AWS_REGION); the @connections requests are signed for it. */
function requiredRegion(env: Record<string, string | undefined>): string {
  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  if (!region) throw new Error('AWS_REGION is not set (Lambda sets it).');
  return region;
}

export function realtimeRuntime(component: string, env: Record<string, string | undefined> = process.env): RealtimeRuntime {
  const config = realtimeConfig(env);
  const db = documentClient();
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
    roomAccess: createRoomAccess(db, config.tableName, env),
    log,
    ...(config.fanoutFunction ? { fanout: lambdaDispatcher(config.fanoutFunction) } : {}),
  };
}
