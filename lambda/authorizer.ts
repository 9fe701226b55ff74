import type { APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { authConfig, createAuth } from '../common/auth';
import { createLogger } from '../common/log';
import { METRICS_NAMESPACE_ENV } from '../common/metrics';
import { authorize } from './core/authorize';
import { logLevel } from './core/config';

// Module scope: the verifier's JWKS cache outlives the invocation, so a warm container never refetches it.
const auth = createAuth(authConfig(process.env, { allowQueryToken: true }));
const log = createLogger({ component: 'authorizer' }, { level: logLevel(process.env), metricsNamespace: process.env[METRICS_NAMESPACE_ENV] });

export const handler = (event: APIGatewayRequestAuthorizerEvent) => authorize(event, { auth, log });
