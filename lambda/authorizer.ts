import { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import type { APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { authConfig, createAuth } from '../common/auth';
import { documentClient } from '../common/dynamo-client';
import { createLogger } from '../common/log';
import { METRICS_NAMESPACE_ENV } from '../common/metrics';
import { authorize } from './core/authorize';
import { logLevel } from './core/config';
import { cognitoProfiles, tableNameCache } from './core/profiles';

// Module scope: the verifier's JWKS cache and the names looked up outlive the invocation.
const config = authConfig(process.env, { allowQueryToken: true });
const db = documentClient();
const cognito = new CognitoIdentityProviderClient({});
const auth = createAuth(config, { db, cognito });
const log = createLogger({ component: 'authorizer' }, { level: logLevel(process.env), metricsNamespace: process.env[METRICS_NAMESPACE_ENV] });
const shared = config.tableName ? tableNameCache(db, config.tableName) : undefined;
const profiles = cognitoProfiles(cognito, config.verifier.userPoolId, log, shared ? { shared } : {});

export const handler = (event: APIGatewayRequestAuthorizerEvent) => authorize(event, { auth, log, profiles });
