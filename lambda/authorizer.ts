import type { APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { createLogger } from '../common/log';
import { createAccessTokenVerifier } from '../common/token';
import { authorize } from './core/authorize';
import { authorizerConfig, logLevel } from './core/config';

// Module scope: the verifier's JWKS cache outlives the invocation, so a warm container never refetches it.
const config = authorizerConfig(process.env);
const verifier = createAccessTokenVerifier(config.verifier);
const log = createLogger({ component: 'authorizer' }, { level: logLevel(process.env) });

export const handler = (event: APIGatewayRequestAuthorizerEvent) => authorize(event, { verifier, config, log });
