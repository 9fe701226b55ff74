import type { APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { authConfig, createAuth } from '../common/auth';
import { authorize } from '../lambda/core/authorize';
import { fromAuthorizerContext } from '../lambda/core/identity';
import { CLIENT_ID, USER_POOL_ID, accessClaims, makeKey, serveJwks, signToken, type JwksServer } from './support/jwt';
import { memoryLogger } from './support/log';

const key = makeKey('key-1');
const METHOD_ARN = 'arn:aws:execute-api:eu-west-1:123456789012:abc123/live/$connect';
let jwks: JwksServer;

beforeAll(async () => {
  jwks = await serveJwks([key]);
});
afterAll(() => jwks.close());

function setup(env: Record<string, string> = {}) {
  const auth = createAuth(
    authConfig({ USER_POOL_ID, USER_POOL_CLIENT_ID: CLIENT_ID, MAX_TOKEN_LIFETIME_SECONDS: '3600', JWKS_URI: jwks.url, ...env }, { allowQueryToken: true }),
  );
  const logger = memoryLogger();
  const run = (request: { headers?: Record<string, string>; query?: Record<string, string>; multiValueHeaders?: Record<string, string[]> }) =>
    authorize(
      {
        type: 'REQUEST',
        methodArn: METHOD_ARN,
        headers: request.headers ?? {},
        ...(request.multiValueHeaders ? { multiValueHeaders: request.multiValueHeaders } : {}),
        queryStringParameters: request.query ?? {},
        requestContext: { connectionId: 'conn-1', identity: { sourceIp: '203.0.113.9' } },
      } as unknown as APIGatewayRequestAuthorizerEvent,
      { auth, log: logger.log },
    );
  return { run, logger };
}

const effect = (result: Awaited<ReturnType<ReturnType<typeof setup>['run']>>) =>
  (result.policyDocument.Statement[0] as { Effect: string }).Effect;

describe('authorizer', () => {
  const token = signToken(key, accessClaims());

  it.each([
    ['the Authorization header', { headers: { Authorization: `Bearer ${token}` } }, 'header'],
    ['a lower-case header and scheme', { headers: { authorization: `bearer ${token}` } }, 'header'],
    ['the subprotocol list', { headers: { 'Sec-WebSocket-Protocol': `gatehouse.v1, bearer.${token}` } }, 'subprotocol'],
    ['the query string', { query: { token } }, 'query'],
  ])('allows a valid token from %s, with the identity in the context', async (_name, request, source) => {
    const { run, logger } = setup();
    const result = await run(request);
    expect(effect(result)).toBe('Allow');
    expect(result.principalId).toBe('user-1111');
    expect((result.policyDocument.Statement[0] as { Resource: string }).Resource).toBe(METHOD_ARN);
    expect(fromAuthorizerContext(result.context)).toEqual({
      userId: 'user-1111',
      username: 'alice',
      tenantId: 'acme',
      groups: ['tenant:acme'],
      tokenExpiresAt: expect.any(Number),
      signIn: 'origin-1', // the sign-in a sign-out revokes: Cognito's origin_jti
      issuedAt: expect.any(Number),
      source,
    });
    expect(logger.events()).toEqual([expect.objectContaining({ event: 'connect_allowed', source, tenantId: 'acme' })]);
  });

  it('refuses two Authorization headers (API Gateway keeps one in headers, both in multiValueHeaders), valid or not', async () => {
    const { run, logger } = setup();
    const other = signToken(key, accessClaims({ sub: 'user-2222' }));
    const result = await run({
      headers: { Authorization: `Bearer ${token}` },
      multiValueHeaders: { Authorization: [`Bearer ${token}`, `Bearer ${other}`] },
    });
    expect(effect(result)).toBe('Deny');
    expect(logger.events()).toEqual([expect.objectContaining({ event: 'connect_denied', reason: 'malformed_token' })]);
  });

  it('takes the header first, then the subprotocol, then the query', async () => {
    const { run, logger } = setup();
    const bad = signToken(key, accessClaims({ exp: 1 }));
    expect(effect(await run({ headers: { Authorization: `Bearer ${bad}`, 'Sec-WebSocket-Protocol': `bearer.${token}` } }))).toBe('Deny');
    expect(effect(await run({ headers: { 'Sec-WebSocket-Protocol': `bearer.${token}` }, query: { token: bad } }))).toBe('Allow');
    expect(logger.events().map((e) => e.source)).toEqual(['header', 'subprotocol']);
  });

  it('answers 401 (throws Unauthorized) when there is no token anywhere', async () => {
    const { run, logger } = setup();
    await expect(run({ headers: { 'Sec-WebSocket-Protocol': 'gatehouse.v1' } })).rejects.toThrow('Unauthorized');
    expect(logger.events()).toEqual([expect.objectContaining({ event: 'connect_denied', reason: 'missing_token' })]);
  });

  it.each([
    ['a non-Bearer Authorization header', { headers: { Authorization: `Basic ${token}` } }, 'malformed_token'],
    ['two bearer subprotocols', { headers: { 'Sec-WebSocket-Protocol': `bearer.${token}, bearer.${token}` } }, 'malformed_token'],
    ['an expired token', { headers: { Authorization: `Bearer ${signToken(key, accessClaims({ iat: 1000, exp: 2000 }))}` } }, 'expired'],
    ['a user without a tenant group', { headers: { Authorization: `Bearer ${signToken(key, accessClaims({ 'cognito:groups': ['admin'] }))}` } }, 'no_tenant'],
    ['a user with no groups at all', { headers: { Authorization: `Bearer ${signToken(key, accessClaims({ 'cognito:groups': undefined }))}` } }, 'no_tenant'],
    ['a tenant the user is not in', { headers: { Authorization: `Bearer ${token}` }, query: { tenant: 'globex' } }, 'tenant_not_allowed'],
  ])('denies %s with a reason code', async (_name, request, reason) => {
    const { run, logger } = setup();
    expect(effect(await run(request))).toBe('Deny');
    expect(logger.events()).toEqual([expect.objectContaining({ event: 'connect_denied', reason, connectionId: 'conn-1' })]);
  });

  it('refuses ?token= when query tokens are disabled', async () => {
    const { run, logger } = setup({ ALLOW_QUERY_TOKEN: 'false' });
    expect(effect(await run({ query: { token } }))).toBe('Deny');
    expect(logger.events()[0]).toMatchObject({ reason: 'query_token_disabled' });
  });

  it('lets a member of several tenants pick one, and only one of them', async () => {
    const { run } = setup();
    const multi = signToken(key, accessClaims({ 'cognito:groups': ['tenant:acme', 'tenant:globex'] }));
    const allowed = await run({ headers: { Authorization: `Bearer ${multi}` }, query: { tenant: 'globex' } });
    expect(fromAuthorizerContext(allowed.context)?.tenantId).toBe('globex');
    expect(effect(await run({ headers: { Authorization: `Bearer ${multi}` } }))).toBe('Deny');
  });

  it('never writes the token into a log line, allowed or denied', async () => {
    const { run, logger } = setup();
    const expired = signToken(key, accessClaims({ iat: 1000, exp: 2000 }));
    await run({ headers: { Authorization: `Bearer ${token}` } });
    await run({ query: { token: expired } });
    await run({ headers: { 'Sec-WebSocket-Protocol': `bearer.${token}` }, query: { tenant: 'nope' } });
    expect(logger.lines).toHaveLength(3);
    for (const secret of [token, expired, ...token.split('.'), ...expired.split('.')]) {
      for (const line of logger.lines) expect(line).not.toContain(secret);
    }
  });
});
