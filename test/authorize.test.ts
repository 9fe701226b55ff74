import type { APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { authConfig, createAuth } from '../common/auth';
import { authorize } from '../lambda/core/authorize';
import { connect } from '../lambda/core/connection';
import { fromAuthorizerContext, toAuthorizerContext } from '../lambda/core/identity';
import type { Profiles } from '../lambda/core/profiles';
import { coreConfig } from './support/core';
import { CLIENT_ID, USER_POOL_ID, accessClaims, makeKey, serveJwks, signToken, type JwksServer } from './support/jwt';
import { memoryLogger } from './support/log';
import { startStore, type StoreFixture } from './support/store';

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

describe('display names, looked up alongside the revocation read', () => {
  let fx: StoreFixture;
  beforeAll(async () => {
    fx = await startStore();
  });
  afterAll(() => fx.close());

  /** The authorizer over the fixture's table, with a name lookup that takes `lookupMs` and says when it ran. */
  function withTable(names: Record<string, string>, lookupMs: number) {
    const intervals: Record<'revocation' | 'name', Array<[number, number]>> = { revocation: [], name: [] };
    const auth = createAuth(
      authConfig({ USER_POOL_ID, USER_POOL_CLIENT_ID: CLIENT_ID, JWKS_URI: jwks.url, TABLE_NAME: fx.tableName }, { allowQueryToken: false }),
      { db: fx.dynamo.doc },
    );
    const revoked = auth.credentials!.revoked.bind(auth.credentials);
    auth.credentials!.revoked = async (identities) => {
      const start = performance.now();
      try {
        return await revoked(identities);
      } finally {
        intervals.revocation.push([start, performance.now()]);
      }
    };
    const profiles: Profiles = {
      async displayName({ userId }) {
        const start = performance.now();
        await new Promise((r) => setTimeout(r, lookupMs));
        intervals.name.push([start, performance.now()]);
        return names[userId] ?? 'nobody';
      },
    };
    const logger = memoryLogger();
    const run = (token: string) =>
      authorize(
        { type: 'REQUEST', methodArn: METHOD_ARN, headers: { Authorization: `Bearer ${token}` }, queryStringParameters: {}, requestContext: { connectionId: 'conn-n' } } as unknown as APIGatewayRequestAuthorizerEvent,
        { auth, log: logger.log, profiles },
      );
    return { run, intervals, auth, logger };
  }

  it('runs the two reads at once, and hands the name to $connect in the context', async () => {
    const { run, intervals } = withTable({ 'user-n1': 'Nina Park' }, 100);
    const result = await run(signToken(key, accessClaims({ sub: 'user-n1', username: 'nina', origin_jti: 'sign-in-n1' })));
    expect(effect(result)).toBe('Allow');
    expect(fromAuthorizerContext(result.context)).toMatchObject({ userId: 'user-n1', name: 'Nina Park' });
    const [[revocationStart, revocationEnd]] = intervals.revocation;
    const [[nameStart, nameEnd]] = intervals.name;
    // Overlapping: each started before the other ended (one after the other, they could not).
    expect(nameStart).toBeLessThan(revocationEnd);
    expect(revocationStart).toBeLessThan(nameEnd);
  });

  it('denies a revoked sign-in however the lookup went, and gives no name to anyone', async () => {
    const { run, auth, logger, intervals } = withTable({ 'user-n2': 'Noor' }, 20);
    await auth.credentials!.revokeSignIn('sign-in-n2', Math.floor(Date.now() / 1000) + 3600);
    const result = await run(signToken(key, accessClaims({ sub: 'user-n2', username: 'noor', origin_jti: 'sign-in-n2' })));
    expect(effect(result)).toBe('Deny');
    expect(result.context).toBeUndefined();
    expect(logger.events()).toEqual([expect.objectContaining({ event: 'connect_denied', reason: 'revoked' })]);
    expect(intervals.revocation).toHaveLength(1);
  });

  it('allows a valid handshake whose lookup fails, with no name (the connect falls back to the username), and still denies a revoked one', async () => {
    const { auth, logger } = withTable({}, 1);
    const failing: Profiles = { displayName: () => Promise.reject(new Error('Cognito is down')) };
    const run = (token: string) =>
      authorize(
        { type: 'REQUEST', methodArn: METHOD_ARN, headers: { Authorization: `Bearer ${token}` }, queryStringParameters: {}, requestContext: { connectionId: 'conn-f' } } as unknown as APIGatewayRequestAuthorizerEvent,
        { auth, log: logger.log, profiles: failing },
      );
    const allowed = await run(signToken(key, accessClaims({ sub: 'user-f1', username: 'fay', origin_jti: 'sign-in-f1' })));
    expect(effect(allowed)).toBe('Allow');
    expect(fromAuthorizerContext(allowed.context)).not.toHaveProperty('name');
    await auth.credentials!.revokeSignIn('sign-in-f2', Math.floor(Date.now() / 1000) + 3600);
    expect(effect(await run(signToken(key, accessClaims({ sub: 'user-f2', username: 'finn', origin_jti: 'sign-in-f2' }))))).toBe('Deny');
  });

  it('looks nothing up for a token that fails verification', async () => {
    const { run, intervals } = withTable({}, 20);
    expect(effect(await run(signToken(key, accessClaims({ iat: 1000, exp: 2000 }))))).toBe('Deny');
    expect(intervals).toEqual({ revocation: [], name: [] });
  });

  it('$connect stores the name from the context, and reads nothing before its writes', async () => {
    const { run } = withTable({ 'user-n3': 'Ola' }, 1);
    const result = await run(signToken(key, accessClaims({ sub: 'user-n3', username: 'ola@example.com', origin_jti: 'sign-in-n3' })));
    const reads: string[] = [];
    const auth = createAuth(authConfig({ USER_POOL_ID, USER_POOL_CLIENT_ID: CLIENT_ID, TABLE_NAME: fx.tableName }, { allowQueryToken: false }), { db: fx.dynamo.doc });
    fx.dynamo.doc.middlewareStack.add(
      (next, context) => async (args) => {
        reads.push(context.commandName ?? '');
        return next(args);
      },
      { step: 'initialize', name: 'commandOrder' },
    );
    try {
      const config = coreConfig(fx.tableName, 'http://127.0.0.1:9/live');
      expect(await connect({ connectionId: 'conn-n3', authorizer: { ...result.context, principalId: 'user-n3' } }, { store: fx.store, auth, config, log: memoryLogger().log })).toEqual({ statusCode: 200 });
    } finally {
      fx.dynamo.doc.middlewareStack.remove('commandOrder');
    }
    // The record, the slot, then the revocation check (which must follow the slot: see connect).
    expect(reads[0]).toMatch(/^Put/);
    expect(reads.at(-1)).toMatch(/^BatchGet/);
    expect((await fx.store.getConnection('conn-n3'))?.name).toBe('Ola');
  });

  it('takes from the context only a name the authorizer could have given', () => {
    const context = toAuthorizerContext({ userId: 'u', username: 'u', tenantId: 'acme', groups: [], tokenExpiresAt: 1, signIn: 's', issuedAt: 1 }, 'header', 'Ana');
    expect(fromAuthorizerContext(context)?.name).toBe('Ana');
    for (const name of [7, '', 'x'.repeat(129), null]) expect(fromAuthorizerContext({ ...context, name })).not.toHaveProperty('name');
  });
});
