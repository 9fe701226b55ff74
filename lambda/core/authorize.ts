/**
 * The $connect authorizer: finds the token where real clients can put it, verifies it, derives the tenant from
 * the token's groups and answers with an IAM policy plus the identity context every later route receives.
 *
 * No token at all -> "Unauthorized" (API Gateway answers 401). A token that fails any check -> Deny (403).
 * Every Deny is logged with a reason code, never with the token.
 */
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import type { Logger } from '../../common/log';
import { extractToken, type HandshakeDenyReason, type TokenSource } from '../../common/handshake';
import { resolveTenant, type TokenVerifier } from '../../common/token';
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

  const extracted = extractToken(event.headers, event.queryStringParameters, deps.config.allowQueryToken);
  if (!extracted.found) {
    deps.log.info('connect_denied', { ...audit, reason: 'missing_token' });
    // API Gateway maps this exact message to 401.
    throw new Error('Unauthorized');
  }
  if ('error' in extracted) return deny(extracted.error, extracted.source);

  const verified = await deps.verifier.verify(extracted.token);
  if (!verified.ok) return deny(verified.reason, extracted.source);

  const { claims } = verified;
  const tenant = resolveTenant(claims.groups, event.queryStringParameters?.tenant, deps.config.tenantGroupPrefix);
  if (!tenant.ok) return deny(tenant.reason, extracted.source);

  deps.log.info('connect_allowed', { ...audit, userId: claims.sub, tenantId: tenant.tenantId, source: extracted.source });
  return {
    principalId: claims.sub,
    policyDocument: policy('Allow', event.methodArn),
    context: toAuthorizerContext(
      {
        userId: claims.sub,
        username: claims.username,
        tenantId: tenant.tenantId,
        groups: claims.groups,
        tokenExpiresAt: claims.exp,
      },
      extracted.source,
    ),
  };
}
