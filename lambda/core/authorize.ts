/**
 * The $connect authorizer: finds the token where real clients can put it, verifies it, derives the tenant from
 * the token's groups and answers with an IAM policy plus the identity context every later route receives.
 *
 * No token at all -> "Unauthorized" (API Gateway answers 401). A token that fails any check -> Deny (403).
 * Every Deny is logged with a reason code, never with the token.
 */
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import type { Logger } from '../../common/log';
import { authenticateHandshake, type HandshakeDenyReason, type TokenSource } from '../../common/handshake';
import type { TokenVerifier } from '../../common/token';
import type { AuthorizerConfig } from './config';
import { toAuthorizerContext } from './identity';

export interface AuthorizeDeps {
  verifier: TokenVerifier;
  config: AuthorizerConfig;
  log: Logger;
}

function policy(effect: 'Allow' | 'Deny', resource: string) {
  return {
    Version: '2012-10-17',
    Statement: [{ Action: 'execute-api:Invoke', Effect: effect, Resource: resource }],
  };
}

export async function authorize(
  event: APIGatewayRequestAuthorizerEvent,
  deps: AuthorizeDeps,
): Promise<APIGatewayAuthorizerResult> {
  const audit = {
    connectionId: (event.requestContext as { connectionId?: string } | undefined)?.connectionId,
    sourceIp: event.requestContext?.identity?.sourceIp,
  };
  const deny = (reason: HandshakeDenyReason, source?: TokenSource): APIGatewayAuthorizerResult => {
    deps.log.info('connect_denied', { ...audit, reason, source });
    return { principalId: 'anonymous', policyDocument: policy('Deny', event.methodArn) };
  };

  const result = await authenticateHandshake(event.headers, event.queryStringParameters, {
    verifier: deps.verifier,
    allowQueryToken: deps.config.allowQueryToken,
    tenantGroupPrefix: deps.config.tenantGroupPrefix,
  });
  if (!result.ok && result.reason === 'missing_token') {
    deps.log.info('connect_denied', { ...audit, reason: 'missing_token' });
    // API Gateway maps this exact message to 401.
    throw new Error('Unauthorized');
  }
  if (!result.ok) return deny(result.reason, result.source);

  const { identity } = result;
  deps.log.info('connect_allowed', { ...audit, userId: identity.userId, tenantId: identity.tenantId, source: result.source });
  return {
    principalId: identity.userId,
    policyDocument: policy('Allow', event.methodArn),
    context: toAuthorizerContext(identity, result.source),
  };
}
