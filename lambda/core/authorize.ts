/**
 * The $connect authorizer: runs the shared handshake check (token, ticket or session cookie; origin; revocation;
 * tenant from the token's groups) and answers with an IAM policy plus the identity context the connect handler
 * stores. The user's display name is looked up alongside the revocation read (two independent reads, in
 * parallel), so $connect has nothing to read before it writes.
 *
 * No credential at all -> "Unauthorized" (API Gateway answers 401). Any failed check -> Deny (403). Every decision
 * is an audit event with a reason code, never with the credential.
 */
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import type { Auth } from '../../common/auth';
import type { Logger } from '../../common/log';
import { METRICS } from '../../common/metrics';
import { toAuthorizerContext } from './identity';
import type { Profiles } from './profiles';

export interface AuthorizeDeps {
  auth: Pick<Auth, 'handshake'>;
  log: Logger;
  /** Display names (profiles.ts). @default the username's (fallbackName, in $connect) */
  profiles?: Profiles;
}

function policy(effect: 'Allow' | 'Deny', resource: string) {
  return {
    Version: '2012-10-17',
    Statement: [{ Action: 'execute-api:Invoke', Effect: effect, Resource: resource }],
  };
}

/**
 * The handshake's headers, a repeated one as all of its values (API Gateway puts one value per name in `headers`
 * and every value in `multiValueHeaders`): a credential given twice is refused, not picked from.
 */
function withRepeats(event: APIGatewayRequestAuthorizerEvent): Record<string, string | string[] | undefined> {
  const headers: Record<string, string | string[] | undefined> = { ...event.headers };
  for (const [name, values] of Object.entries(event.multiValueHeaders ?? {})) {
    if (values && values.length > 1) headers[name] = values;
  }
  return headers;
}

export async function authorize(event: APIGatewayRequestAuthorizerEvent, deps: AuthorizeDeps): Promise<APIGatewayAuthorizerResult> {
  const audit = {
    category: 'audit',
    connectionId: (event.requestContext as { connectionId?: string } | undefined)?.connectionId,
    sourceIp: event.requestContext?.identity?.sourceIp,
  };
  let name: string | undefined;
  const profiles = deps.profiles;
  const result = await deps.auth.handshake(
    withRepeats(event),
    event.queryStringParameters,
    profiles &&
      (async (identity) => {
        name = await profiles.displayName(identity);
      }),
  );
  if (!result.ok) {
    deps.log.info('connect_denied', { ...audit, reason: result.reason, source: result.source });
    deps.log.metrics({ [METRICS.authorizerDenied]: 1 });
    // API Gateway maps this exact message to 401.
    if (result.reason === 'missing_token') throw new Error('Unauthorized');
    return { principalId: 'anonymous', policyDocument: policy('Deny', event.methodArn) };
  }
  const { identity } = result;
  deps.log.info('connect_allowed', { ...audit, userId: identity.userId, tenantId: identity.tenantId, source: result.source });
  return {
    principalId: identity.userId,
    policyDocument: policy('Allow', event.methodArn),
    context: toAuthorizerContext(identity, result.source, name),
  };
}
