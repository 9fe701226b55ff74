/**
 * Session security in the core, against a real DynamoDB engine and the real management API client: the session
 * API (cookie sign-in, tickets, sign-out), refresh and expiry of connections, the sweeper, rate limits and the
 * per-user cap. Cognito's server-side calls are a stub here (the end-to-end tests use cognito-local).
 */
import { AdminInitiateAuthCommand, CognitoIdentityProviderClient, DescribeUserPoolClientCommand } from '@aws-sdk/client-cognito-identity-provider';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { authConfig, createAuth, type Auth } from '../common/auth';
import { CognitoSessions, CredentialStore, SESSION_COOKIE, SignInError, hashSecret } from '../common/credentials';
import type { ServerEvent } from '../protocol';
import { handleApi } from '../lambda/core/api';
import { connect } from '../lambda/core/connection';
import { toAuthorizerContext, type Identity } from '../lambda/core/identity';
import { handleMessage, type MessageDeps } from '../lambda/core/messages';
import { signOutDeps } from '../lambda/core/revoke';
import { sweepExpired } from '../lambda/core/sweeper';
import { startConnectionsEndpoint, type ConnectionsEndpoint } from './support/connections-endpoint';
import { CLIENT_ID, USER_POOL_ID, accessClaims, makeKey, serveJwks, signToken, type JwksServer } from './support/jwt';
import { coreConfig } from './support/core';
import { memoryLogger } from './support/log';
import { startStore, type StoreFixture } from './support/store';

const APP = 'https://app.example.com';
const key = makeKey('k1');
let jwks: JwksServer;
let fx: StoreFixture;
let endpoint: ConnectionsEndpoint;
let credentials: CredentialStore;
let logger: ReturnType<typeof memoryLogger>;
let signIns: string[];

const now = () => Math.floor(Date.now() / 1000);
const token = (claims: Record<string, unknown> = {}) => signToken(key, accessClaims(claims));

/** Cognito's server-side flow, stubbed: alice's password is "right", everything else is wrong. */
const fakeSessions = {
  signIn: async (email: string, password: string) => {
    signIns.push(email);
    if (password !== 'right') throw new SignInError('invalid_credentials', 'Wrong email or password.');
    return { accessToken: token({ origin_jti: `login-${signIns.length}` }), idToken: 'id', refreshToken: `refresh-${signIns.length}`, expiresIn: 900 };
  },
  refresh: async () => ({ accessToken: token({ origin_jti: 'refreshed' }), idToken: 'id', expiresIn: 900 }),
  revoke: async () => undefined,
  globalSignOut: async () => undefined,
} as unknown as CognitoSessions;

function makeAuth(): Auth {
  const auth = createAuth(
    authConfig({ USER_POOL_ID, USER_POOL_CLIENT_ID: CLIENT_ID, JWKS_URI: jwks.url, TABLE_NAME: fx.tableName, ALLOWED_ORIGINS: APP, SESSION_CLIENT_ID: 'session-client' }, { allowQueryToken: false }),
    { db: fx.dynamo.doc, sessions: fakeSessions },
  );
  return auth;
}

function deps(overrides: Record<string, string> = {}): MessageDeps {
  return {
    store: fx.store,
    api: endpoint.client,
    log: logger.log,
    auth: makeAuth(),
    config: coreConfig(fx.tableName, endpoint.url, overrides),
  };
}

beforeAll(async () => {
  jwks = await serveJwks([key]);
  fx = await startStore();
  endpoint = await startConnectionsEndpoint();
  credentials = new CredentialStore(fx.dynamo.doc, fx.tableName);
});
afterAll(async () => {
  await endpoint.close();
  await fx.close();
  await jwks.close();
});
beforeEach(() => {
  logger = memoryLogger();
  signIns = [];
  endpoint.received.clear();
  endpoint.deleted.length = 0;
});

let counter = 0;
async function open(identity: Partial<Identity> = {}, d = deps()) {
  const connectionId = `c${++counter}`;
  const full: Identity = {
    userId: 'user-1111',
    username: 'alice',
    tenantId: 'acme',
    groups: ['tenant:acme'],
    tokenExpiresAt: now() + 900,
    // A sign-in of its own unless a test shares one (a sign-out revokes it, and a revoked sign-in cannot connect).
    signIn: `sign-in-${connectionId}`,
    issuedAt: now(),
    ...identity,
  };
  const response = await connect({ connectionId, authorizer: toAuthorizerContext(full, 'header') }, { store: d.store, auth: d.auth, config: d.config, log: d.log });
  if (response.statusCode === 200) endpoint.live.add(connectionId);
  const send = (frame: unknown) => handleMessage({ connectionId, body: JSON.stringify(frame) }, d);
  return { connectionId, response, send, inbox: () => (endpoint.received.get(connectionId) ?? []) as ServerEvent[] };
}

function http(method: string, path: string, options: { body?: unknown; origin?: string; cookie?: string; authorization?: string } = {}): APIGatewayProxyEventV2 {
  return {
    version: '2.0',
    routeKey: `${method} ${path}`,
    rawPath: path,
    rawQueryString: '',
    headers: {
      ...(options.origin ? { origin: options.origin } : {}),
      ...(options.authorization ? { authorization: options.authorization } : {}),
      'content-type': 'application/json',
    },
    ...(options.cookie ? { cookies: [options.cookie] } : {}),
    requestContext: { http: { method, path, sourceIp: '203.0.113.7' } },
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    isBase64Encoded: false,
  } as unknown as APIGatewayProxyEventV2;
}

async function api(event: APIGatewayProxyEventV2) {
  const auth = makeAuth();
  const signOut = signOutDeps({ ...deps(), auth });
  const result = await handleApi(event, { auth, ...(signOut ? { signOut } : {}), log: logger.log });
  return { ...result, json: JSON.parse(String(result.body)) };
}

describe('session API', () => {
  it('signs in server-side and sets a __Host- HttpOnly, Secure, SameSite=Strict cookie; tokens stay on the server', async () => {
    const res = await api(http('POST', '/api/login', { origin: APP, body: { email: 'Alice@Example.com', password: 'right' } }));
    expect(res.statusCode).toBe(200);
    expect(res.json).toEqual({ signedIn: true, userId: 'user-1111', email: 'alice@example.com', groups: ['tenant:acme'], tenants: ['acme'], expiresAt: expect.any(Number) });
    expect(res.cookies).toHaveLength(1);
    const [cookie] = res.cookies!;
    expect(cookie).toMatch(new RegExp(`^${SESSION_COOKIE}=[A-Za-z0-9_-]{43}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=43200$`));
    expect(res.body).not.toMatch(/eyJ/); // no token in the response
    const id = cookie.split(';')[0].split('=')[1];
    const stored = await credentials.getSession(hashSecret(id));
    expect(stored).toMatchObject({ userId: 'user-1111', refreshToken: 'refresh-1' });
    // Only the hash of the cookie value is stored.
    expect(await credentials.getSession(id)).toBeUndefined();
  });

  it('answers a wrong password with 401 and a clear error, and refuses sign-in without or from a foreign origin', async () => {
    expect(await api(http('POST', '/api/login', { origin: APP, body: { email: 'a@example.com', password: 'wrong' } }))).toMatchObject({
      statusCode: 401,
      json: { error: 'invalid_credentials', message: 'Wrong email or password.' },
    });
    expect((await api(http('POST', '/api/login', { body: { email: 'a@example.com', password: 'right' } }))).json.error).toBe('origin_required');
    expect((await api(http('POST', '/api/login', { origin: 'https://attacker.test', body: { email: 'a', password: 'right' } }))).statusCode).toBe(403);
    expect((await api(http('POST', '/api/login', { origin: APP, body: { email: 'a@example.com' } }))).json.error).toBe('invalid_request');
    expect((await api(http('POST', '/api/login', { origin: APP, body: { email: 'a', password: 'right', admin: true } }))).json.error).toBe('invalid_request');
    expect(logger.events().filter((e) => e.event === 'login_failed')).toHaveLength(1);
  });

  it('says who is signed in, issues single-use tickets for the session, and signs out (clearing the cookie)', async () => {
    const login = await api(http('POST', '/api/login', { origin: APP, body: { email: 'alice@example.com', password: 'right' } }));
    const cookie = login.cookies![0].split(';')[0];
    expect((await api(http('GET', '/api/session', { cookie }))).json).toMatchObject({ signedIn: true, userId: 'user-1111' });

    const ticket = await api(http('POST', '/api/ws-ticket', { origin: APP, cookie, body: {} }));
    expect(ticket.statusCode).toBe(200);
    expect(ticket.json).toEqual({ ticket: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), expiresAt: expect.any(Number) });
    expect(ticket.json.expiresAt - now()).toBeLessThanOrEqual(30);
    const record = await credentials.consumeTicket(ticket.json.ticket);
    expect(record).toMatchObject({ userId: 'user-1111', tenantId: 'acme', origin: APP });
    expect(await credentials.consumeTicket(ticket.json.ticket)).toBeUndefined();

    // With a bearer token instead of the cookie (token-mode clients), from a non-browser: the ticket has no origin.
    const bearerTicket = await api(http('POST', '/api/ws-ticket', { authorization: `Bearer ${token()}`, body: { tenant: 'acme' } }));
    expect((await credentials.consumeTicket(bearerTicket.json.ticket))?.origin).toBeNull();
    expect((await api(http('POST', '/api/ws-ticket', { cookie, body: {} }))).json.error).toBe('origin_required');
    expect((await api(http('POST', '/api/ws-ticket', { body: {} }))).statusCode).toBe(401);

    const out = await api(http('POST', '/api/logout', { origin: APP, cookie, body: {} }));
    expect(out.statusCode).toBe(200);
    expect(out.cookies).toEqual([`${SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0`]);
    expect((await api(http('GET', '/api/session', { cookie }))).statusCode).toBe(401);
    expect((await api(http('POST', '/api/ws-ticket', { origin: APP, cookie, body: {} }))).json.error).toBe('session_invalid');
  });
});

describe('sign-out that disconnects', () => {
  it('closes the sockets of the signed-out sign-in only, and refuses that sign-in from then on', async () => {
    const a1 = await open({ signIn: 'sign-in-A' });
    const a2 = await open({ signIn: 'sign-in-A' });
    const b = await open({ signIn: 'sign-in-B' });
    expect(await a1.send({ action: 'logout', id: 'l' })).toEqual({ type: 'signed_out', everywhere: false, id: 'l' });
    expect(endpoint.deleted.sort()).toEqual([a1.connectionId, a2.connectionId].sort());
    expect(a2.inbox()).toEqual([{ type: 'signed_out', everywhere: false }]);
    expect(b.inbox()).toEqual([]);
    expect(await credentials.revoked([{ userId: 'user-1111', signIn: 'sign-in-A', issuedAt: now() }])).toEqual([true]);
    expect(await credentials.revoked([{ userId: 'user-1111', signIn: 'sign-in-B', issuedAt: now() }])).toEqual([false]);
    expect(logger.events()).toContainEqual(expect.objectContaining({ event: 'revoked', category: 'audit', socketsClosed: 2 }));
  });

  it('"everywhere" closes every socket of the user and voids every credential issued before', async () => {
    const mine = await Promise.all([open({ userId: 'u-all', signIn: 's1' }), open({ userId: 'u-all', signIn: 's2' })]);
    const other = await open({ userId: 'u-other' });
    await mine[0].send({ action: 'logout', everywhere: true });
    expect(endpoint.deleted.sort()).toEqual(mine.map((m) => m.connectionId).sort());
    expect(other.inbox()).toEqual([]);
    const [before, after] = await credentials.revoked([
      { userId: 'u-all', signIn: 'another', issuedAt: now() - 5 },
      { userId: 'u-all', signIn: 'another', issuedAt: now() + 5 },
    ]);
    expect([before, after]).toEqual([true, false]);
  });
});

describe('expiring connections', () => {
  it('refuses actions once the credential expired, but still answers ping, refresh and logout', async () => {
    const c = await open({ tokenExpiresAt: now() - 1 });
    expect(await c.send({ action: 'join', room: 'r' })).toMatchObject({ type: 'error', code: 'token_expired' });
    expect(await c.send({ action: 'ping' })).toMatchObject({ type: 'pong' });
  });

  it('extends a connection with a fresh token for the same user and tenant, and refuses any other', async () => {
    const c = await open({ tokenExpiresAt: now() - 1 });
    expect(await c.send({ action: 'refresh', token: token({ sub: 'someone-else' }) })).toMatchObject({ code: 'refresh_refused', message: expect.stringContaining('different_user') });
    expect(await c.send({ action: 'refresh', token: token({ 'cognito:groups': ['tenant:globex'] }) })).toMatchObject({ code: 'refresh_refused' });
    expect(await c.send({ action: 'refresh', token: token({ exp: now() - 5, iat: now() - 100 }) })).toMatchObject({ code: 'refresh_refused', message: expect.stringContaining('expired') });
    await credentials.revokeSignIn('revoked-refresh', now() + 600);
    expect(await c.send({ action: 'refresh', token: token({ origin_jti: 'revoked-refresh' }) })).toMatchObject({ code: 'refresh_refused', message: expect.stringContaining('revoked') });
    const exp = now() + 600;
    expect(await c.send({ action: 'refresh', token: token({ exp }) })).toEqual({ type: 'refreshed', tokenExpiresAt: exp });
    expect(await c.send({ action: 'join', room: 'r' })).toMatchObject({ type: 'joined' });
    expect(logger.events()).toContainEqual(expect.objectContaining({ event: 'refreshed', category: 'audit' }));
  });

  it('extends a cookie connection from its session, without a token', async () => {
    const hash = hashSecret('session-for-refresh');
    const accessExpiresAt = now() + 900;
    await credentials.putSession(hash, {
      userId: 'user-1111',
      username: 'alice',
      email: 'a@example.com',
      groups: ['tenant:acme'],
      accessToken: token({ exp: accessExpiresAt }),
      accessExpiresAt,
      refreshToken: 'r',
      signIn: 'cookie-sign-in',
      issuedAt: now(),
      expiresAt: now() + 7200,
      version: 0,
    });
    const c = await open({ tokenExpiresAt: now() - 1, session: hash, signIn: 'cookie-sign-in' });
    // A session-backed credential lasts as long as its access token (renewing it is a refresh at Cognito).
    expect(await c.send({ action: 'refresh' })).toEqual({ type: 'refreshed', tokenExpiresAt: accessExpiresAt });
    const bearer = await open({ tokenExpiresAt: now() - 1 });
    expect(await bearer.send({ action: 'refresh' })).toMatchObject({ code: 'refresh_refused' });
  });

  it('sweeps expired connections from the expiry index: tells them why, closes them, leaves the rest', async () => {
    const expired = await open({ tokenExpiresAt: now() - 5 });
    const gone = await open({ tokenExpiresAt: now() - 5 });
    endpoint.live.delete(gone.connectionId); // vanished without $disconnect
    const fine = await open({ tokenExpiresAt: now() + 600 });
    // The sweeper finds candidates through an index, which sees a write a moment later (as DynamoDB's do).
    await fx.indexesCaughtUp();
    const result = await sweepExpired({ store: fx.store, api: endpoint.client, log: logger.log });
    expect(result.closed).toBeGreaterThanOrEqual(1);
    expect(endpoint.deleted).toContain(expired.connectionId);
    expect(endpoint.deleted).not.toContain(fine.connectionId);
    expect(expired.inbox()).toEqual([{ type: 'expired', message: expect.stringContaining('expired') }]);
    expect(await fx.store.getConnection(gone.connectionId)).toBeUndefined();
    expect(logger.events()).toContainEqual(expect.objectContaining({ event: 'swept', category: 'audit' }));
  });
});

describe('the sweeper under index lag', () => {
  it('leaves a socket that refreshed a moment ago, though the expiry index still lists it as due', async () => {
    const c = await open({ tokenExpiresAt: now() - 5 });
    await fx.indexesCaughtUp();
    const current = (await fx.store.getConnection(c.connectionId))!;
    expect(await fx.store.renewConnection(c.connectionId, { ...current, tokenExpiresAt: now() + 900 })).toBe(true);
    // The index has not seen the refresh yet: it still files the connection under its old, passed expiry.
    await sweepExpired({ store: fx.store, api: endpoint.client, log: logger.log });
    expect(fx.dynamo.pendingIndexWrites).toBeGreaterThan(0); // the sweep really ran against the stale index
    expect(endpoint.deleted).not.toContain(c.connectionId);
    expect(c.inbox()).toEqual([]);
    expect(await fx.store.getConnection(c.connectionId)).toBeDefined();
  });
});

describe('limits', () => {
  it('rate-limits each connection with a token bucket and disconnects a persistent abuser', async () => {
    const d = deps({ RATE_LIMIT_PER_SECOND: '2', RATE_LIMIT_BURST: '5', RATE_LIMIT_STRIKES: '4' });
    const c = await open({}, d);
    const replies = [];
    for (let i = 0; i < 8; i++) replies.push(await c.send({ action: 'ping' }));
    expect(replies.slice(0, 5).every((r) => r.type === 'pong')).toBe(true);
    expect(replies.slice(5)).toEqual(Array(3).fill(expect.objectContaining({ type: 'error', code: 'rate_limited' })));
    expect(endpoint.deleted).toEqual([]);
    expect(await c.send({ action: 'ping' })).toMatchObject({ code: 'rate_limited', message: expect.stringContaining('disconnected') });
    expect(endpoint.deleted).toEqual([c.connectionId]);
    expect(logger.events().filter((e) => e.event === 'rate_limited')).toHaveLength(4);

    const patient = await open({}, d);
    for (let i = 0; i < 5; i++) await patient.send({ action: 'ping' });
    await new Promise((r) => setTimeout(r, 600)); // refills at 2 per second
    expect(await patient.send({ action: 'ping' })).toMatchObject({ type: 'pong' });
  });

  it('holds under a concurrent flood: a burst passes, every other frame is refused and counted, none lost to contention', async () => {
    const d = deps({ RATE_LIMIT_PER_SECOND: '1', RATE_LIMIT_BURST: '5', RATE_LIMIT_STRIKES: '1000' });
    const c = await open({}, d);
    const started = Date.now();
    const replies = await Promise.all(Array.from({ length: 60 }, () => c.send({ action: 'ping' })));
    const refills = Math.ceil((Date.now() - started) / 1000);
    const allowed = replies.filter((r) => r.type === 'pong').length;
    expect(allowed).toBeGreaterThanOrEqual(5);
    expect(allowed).toBeLessThanOrEqual(5 + refills);
    expect(replies.filter((r) => r.type === 'error' && r.code === 'rate_limited')).toHaveLength(60 - allowed);
    expect(logger.events().filter((e) => e.event === 'rate_limited')).toHaveLength(60 - allowed);
  });

  it('counts malformed frames against the limit too', async () => {
    const d = deps({ RATE_LIMIT_PER_SECOND: '1', RATE_LIMIT_BURST: '2' });
    const c = await open({}, d);
    await c.send('garbage');
    await c.send('garbage');
    expect(await c.send({ action: 'ping' })).toMatchObject({ code: 'rate_limited' });
  });

  it('caps live connections per user at connect', async () => {
    const d = deps({ MAX_CONNECTIONS_PER_USER: '2' });
    await open({ userId: 'u-cap' }, d);
    await open({ userId: 'u-cap' }, d);
    expect((await open({ userId: 'u-cap' }, d)).response).toEqual({ statusCode: 429, body: 'At most 2 connections per user.' });
    expect((await open({ userId: 'u-uncapped' }, d)).response.statusCode).toBe(200);
  });
});

describe('CognitoSessions.signIn', () => {
  // Every challenge and error Cognito can answer, one by one (the emulated Cognito has the new-password challenge,
  // not MFA or a password reset); the web app shows each code as a sentence.
  const cognito = mockClient(CognitoIdentityProviderClient);
  const sessions = new CognitoSessions(new CognitoIdentityProviderClient({ region: 'eu-west-1' }), 'eu-west-1_pool', 'session-client');
  beforeEach(() => {
    cognito.reset();
    cognito.on(DescribeUserPoolClientCommand).resolves({ UserPoolClient: { ClientSecret: 'secret' } });
  });
  afterAll(() => cognito.restore());

  const codeFor = async () => sessions.signIn('a@example.com', 'pw').then(() => 'signed in', (err: SignInError) => err.code);
  const named = (name: string) => Object.assign(new Error(name), { name });

  it.each([
    ['a challenge to set a new password', { ChallengeName: 'NEW_PASSWORD_REQUIRED' }, 'new_password_required'],
    ['an MFA challenge', { ChallengeName: 'SOFTWARE_TOKEN_MFA' }, 'mfa_required'],
  ])('maps %s to its code', async (_what, answer, code) => {
    cognito.on(AdminInitiateAuthCommand).resolves(answer as never);
    await expect(codeFor()).resolves.toBe(code);
  });

  it.each([
    ['NotAuthorizedException', 'invalid_credentials'],
    // An unknown user reads as a wrong password: no account enumeration.
    ['UserNotFoundException', 'invalid_credentials'],
    ['PasswordResetRequiredException', 'password_reset_required'],
    ['UserNotConfirmedException', 'not_confirmed'],
  ])('maps %s to %s', async (name, code) => {
    cognito.on(AdminInitiateAuthCommand).rejects(named(name));
    await expect(codeFor()).resolves.toBe(code);
  });

  it('sends the secret hash of the confidential client with the password flow', async () => {
    cognito.on(AdminInitiateAuthCommand).resolves({ AuthenticationResult: { AccessToken: 'a', IdToken: 'i', RefreshToken: 'r', ExpiresIn: 900 } });
    await expect(sessions.signIn('a@example.com', 'pw')).resolves.toMatchObject({ accessToken: 'a', refreshToken: 'r', expiresIn: 900 });
    const input = cognito.commandCalls(AdminInitiateAuthCommand)[0].args[0].input;
    expect(input).toMatchObject({ AuthFlow: 'ADMIN_USER_PASSWORD_AUTH', ClientId: 'session-client', AuthParameters: { USERNAME: 'a@example.com', PASSWORD: 'pw' } });
    expect(input.AuthParameters!.SECRET_HASH).toMatch(/^[A-Za-z0-9+/]+=*$/);
  });
});
