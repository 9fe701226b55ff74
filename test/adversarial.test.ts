/**
 * Adversarial tests of the realtime API's guarantees, one class of attack at a time, against a real DynamoDB engine
 * (with index lag) and the real management API client. Where the defect is a race, the attack is run
 * concurrently, many times, in every order it can be arranged in; each test would pass on none of the code before
 * the fix it pins (the closing note of issue 11 lists them).
 *
 *   1. sign-out racing connect            5. refresh keeping what the new token no longer grants
 *   2. caps raced by concurrent connects   6. (speech: test/speech-abuse.test.ts; the shared policy: corpus.test.ts)
 *   3. floods, per socket and per user     8. sign-out through a ticket socket ends the cookie session
 *   4. work before the limiter             9. deliveries after expiry; replays charged by size
 */
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { authConfig, createAuth, type Auth } from '../common/auth';
import { SESSION_COOKIE, hashSecret, type CognitoSessions } from '../common/credentials';
import type { ServerEvent } from '../protocol';
import { TABLE, keys } from '../common/table-schema';
import { handleApi } from '../lambda/core/api';
import { connect } from '../lambda/core/connection';
import { toAuthorizerContext, type Identity } from '../lambda/core/identity';
import { handleMessage, type MessageDeps } from '../lambda/core/messages';
import { signOut, signOutDeps } from '../lambda/core/revoke';
import { startConnectionsEndpoint, type ConnectionsEndpoint } from './support/connections-endpoint';
import { CLIENT_ID, USER_POOL_ID, accessClaims, makeKey, serveJwks, signToken, type JwksServer } from './support/jwt';
import { coreConfig } from './support/core';
import { memoryLogger } from './support/log';
import { startStore, type StoreFixture } from './support/store';

const APP = 'https://app.example.com';
const key = makeKey('adversary');
let jwks: JwksServer;
let fx: StoreFixture;
let endpoint: ConnectionsEndpoint;
let logger: ReturnType<typeof memoryLogger>;

const now = () => Math.floor(Date.now() / 1000);
const token = (claims: Record<string, unknown> = {}) => signToken(key, accessClaims(claims));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Cognito's server-side flow for the session API: sign-in and refresh always succeed here. */
let loginCount = 0;
const sessions = {
  signIn: async () => {
    loginCount++;
    return { accessToken: token({ origin_jti: `login-${loginCount}` }), idToken: 'id', refreshToken: `refresh-${loginCount}`, expiresIn: 900 };
  },
  refresh: async () => ({ accessToken: token({ origin_jti: 'refreshed' }), idToken: 'id', expiresIn: 900 }),
  revoke: async () => undefined,
  globalSignOut: async () => undefined,
} as unknown as CognitoSessions;

const makeAuth = (): Auth =>
  createAuth(
    authConfig(
      { USER_POOL_ID, USER_POOL_CLIENT_ID: CLIENT_ID, JWKS_URI: jwks.url, TABLE_NAME: fx.tableName, ALLOWED_ORIGINS: APP, SESSION_CLIENT_ID: 'session-client' },
      { allowQueryToken: false },
    ),
    { db: fx.dynamo.doc, sessions },
  );

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
});
afterAll(async () => {
  await endpoint.close();
  await fx.close();
  await jwks.close();
});
beforeEach(() => {
  logger = memoryLogger();
  endpoint.received.clear();
  endpoint.deleted.length = 0;
});

let counter = 0;
const unique = (prefix: string) => `${prefix}-${++counter}-${Date.now()}`;

function identity(overrides: Partial<Identity> = {}): Identity {
  return {
    userId: 'user-1111',
    username: 'alice',
    tenantId: 'acme',
    groups: ['tenant:acme'],
    tokenExpiresAt: now() + 900,
    signIn: unique('sign-in'),
    issuedAt: now(),
    ...overrides,
  };
}

/**
 * A socket as API Gateway runs it: the authorizer's context (decided earlier), then $connect; the socket exists
 * (answers @connections) once $connect has answered 200.
 */
async function open(who: Identity, d = deps()) {
  const connectionId = unique('c');
  const response = await connect({ connectionId, authorizer: toAuthorizerContext(who, who.session ? 'cookie' : 'header') }, d);
  if (response.statusCode === 200) endpoint.live.add(connectionId);
  return {
    connectionId,
    response,
    send: (frame: unknown) => handleMessage({ connectionId, body: typeof frame === 'string' ? frame : JSON.stringify(frame) }, d),
    inbox: () => (endpoint.received.get(connectionId) ?? []) as ServerEvent[],
    /** Can this socket still send or receive anything? */
    alive: () => endpoint.live.has(connectionId),
  };
}

describe('1. sign-out racing connect', () => {
  it('refuses a connect whose authorizer passed just before the sign-out was written', async () => {
    const who = identity({ userId: unique('u') });
    // The authorizer allowed the handshake (context built); then the sign-out ran; then $connect.
    const d = deps();
    await signOut({ userId: who.userId, username: who.username, signIn: who.signIn, everywhere: false }, signOutDeps(d)!);
    const late = await open(who, d);
    expect(late.response.statusCode).toBe(403);
    expect(await fx.store.getConnection(late.connectionId)).toBeUndefined();
    expect(await fx.store.userConnectionIds(who.userId)).toEqual([]);
  });

  it('leaves no socket of the signed-out sign-in able to send or receive, whatever the interleaving (40 runs x 6 connects)', async () => {
    for (let run = 0; run < 40; run++) {
      const who = identity({ userId: unique('u') });
      const d = deps();
      // Six connects of the sign-in in flight; the sign-out starts at a different moment in each run.
      const connects = Array.from({ length: 6 }, (_, i) => sleep((i * 3 + run) % 7).then(() => open(who, d)));
      const out = sleep(run % 9).then(() => signOut({ userId: who.userId, username: who.username, signIn: who.signIn, everywhere: false }, signOutDeps(d)!));
      const sockets = await Promise.all(connects);
      await out;
      for (const s of sockets) {
        if (s.response.statusCode !== 200) continue;
        // Admitted: then the sign-out must have closed it, or it is a socket with no record, closed on its first frame.
        if (s.alive()) {
          expect(await s.send({ action: 'join', room: 'r' })).toMatchObject({ type: 'error', code: 'unauthorized' });
          expect(s.alive()).toBe(false);
        }
      }
      // And nothing of the sign-in is left in the store to deliver to.
      expect(await fx.store.userSignIns(who.userId)).toEqual([]);
    }
  });
});

describe('2. caps raced by concurrent connects', () => {
  it('holds the per-user cap of 10 against 25 concurrent connects, repeatedly', async () => {
    for (let run = 0; run < 5; run++) {
      const userId = unique('u-cap');
      const d = deps({ MAX_CONNECTIONS_PER_USER: '10' });
      const results = await Promise.all(Array.from({ length: 25 }, () => open(identity({ userId }), d)));
      expect(results.filter((r) => r.response.statusCode === 200)).toHaveLength(10);
      expect(results.filter((r) => r.response.statusCode === 429)).toHaveLength(15);
      expect(await fx.store.userConnectionIds(userId)).toHaveLength(10);
    }
  });

  it('holds the rooms-per-connection cap against concurrent joins', async () => {
    const d = deps({ MAX_ROOMS_PER_CONNECTION: '3' });
    const s = await open(identity({ userId: unique('u') }), d);
    const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => s.send({ action: 'join', room: `room-${i}` })));
    expect(replies.filter((r) => r.type === 'joined')).toHaveLength(3);
    expect((await fx.store.getConnection(s.connectionId))!.rooms).toHaveLength(3);
  });
});

describe('3. floods', () => {
  it('disconnects a socket flooding hundreds of frames concurrently: every refusal counts, the limiter closes it', async () => {
    const d = deps({ RATE_LIMIT_PER_SECOND: '10', RATE_LIMIT_BURST: '20', RATE_LIMIT_STRIKES: '20' });
    const s = await open(identity({ userId: unique('u') }), d);
    const started = Date.now();
    const replies = await Promise.all(Array.from({ length: 300 }, () => s.send({ action: 'ping' })));
    const elapsed = (Date.now() - started) / 1000;
    const pongs = replies.filter((r) => r.type === 'pong').length;
    // GCRA's bound: the burst, what refilled meanwhile, and at most a second's slack (see the store).
    expect(pongs).toBeLessThanOrEqual(20 + Math.ceil((elapsed + 1) * 10));
    expect(replies.filter((r) => r.type === 'error' && r.code === 'rate_limited')).toHaveLength(300 - pongs);
    expect(s.alive()).toBe(false);
    expect(endpoint.deleted).toContain(s.connectionId);
    expect(logger.events()).toContainEqual(expect.objectContaining({ event: 'rate_limit_disconnect', connectionId: s.connectionId }));
  });

  it('gives a user one budget across all of their sockets: ten sockets buy nothing, reopening one refills nothing', async () => {
    const userId = unique('u-budget');
    // A slow refill (one token per 5 s), so the emulator's own pace cannot blur the budget.
    const d = deps({ RATE_LIMIT_PER_SECOND: '10', RATE_LIMIT_BURST: '20', USER_RATE_LIMIT_PER_SECOND: '0.2', USER_RATE_LIMIT_BURST: '30', RATE_LIMIT_STRIKES: '1000' });
    const sockets = await Promise.all(Array.from({ length: 10 }, () => open(identity({ userId }), d)));
    const started = Date.now();
    // Each socket alone is within its own burst (20): together they are 200 frames against a user burst of 30.
    const replies = await Promise.all(sockets.flatMap((s) => Array.from({ length: 20 }, () => s.send({ action: 'ping' }))));
    const elapsed = (Date.now() - started) / 1000;
    const allowed = replies.filter((r) => r.type === 'pong').length;
    expect(allowed).toBeGreaterThanOrEqual(25);
    expect(allowed).toBeLessThanOrEqual(30 + Math.ceil((elapsed + 1) * 0.2));
    // Spend whatever refilled, then open a new socket: its own bucket is full, the user's is not.
    while ((await sockets[0].send({ action: 'ping' })).type === 'pong');
    const fresh = await open(identity({ userId }), d);
    expect(await fresh.send({ action: 'ping' })).toMatchObject({ type: 'error', code: 'rate_limited' });
  }, 60_000);
});

describe('4. work before the limiter', () => {
  const nested = (depth: number) => `{"action":"send","room":"r","data":${'['.repeat(depth)}${']'.repeat(depth)}}`;

  it('charges a frame nested 12,000 deep to the limiter, then refuses it as invalid_message, in a normal main thread', async () => {
    const d = deps({ RATE_LIMIT_PER_SECOND: '1', RATE_LIMIT_BURST: '3', RATE_LIMIT_STRIKES: '1000' });
    const s = await open(identity({ userId: unique('u') }), d);
    expect(nested(12_000).length).toBeLessThan(32 * 1024);
    // JSON.stringify of this value throws RangeError on Node's default stack: it must never be reached.
    expect(() => JSON.stringify(JSON.parse(nested(12_000)))).toThrow(RangeError);
    for (let i = 0; i < 3; i++) expect(await s.send(nested(12_000))).toMatchObject({ type: 'error', code: 'invalid_message', message: expect.stringContaining('deeper') });
    // Those three spent the burst: the next frame, however harmless, is refused.
    expect(await s.send({ action: 'ping' })).toMatchObject({ type: 'error', code: 'rate_limited' });
  });

  it('refuses nesting past 32 levels, deep strings and brackets inside strings notwithstanding', async () => {
    const s = await open(identity({ userId: unique('u') }));
    await s.send({ action: 'join', room: 'r' });
    expect(await s.send(nested(33))).toMatchObject({ code: 'invalid_message' });
    expect(await s.send({ action: 'send', room: 'r', data: { text: '[[[[{{{{"\\' + '['.repeat(200) } })).toMatchObject({ type: 'sent' });
    expect(await s.send(nested(30))).toMatchObject({ type: 'sent' });
  });
});

describe('5. refresh keeping what the new token no longer grants', () => {
  it('refuses a token without the admin group the socket holds; the socket keeps its old expiry and loses admin rooms at it', async () => {
    const userId = unique('u-admin');
    const d = deps();
    const expiresAt = now() + 3;
    const admin = await open(identity({ userId, groups: ['tenant:acme', 'admin'], tokenExpiresAt: expiresAt }), d);
    expect(await admin.send({ action: 'join', room: 'admin:ops' })).toMatchObject({ type: 'joined' });
    const demoted = token({ sub: userId, 'cognito:groups': ['tenant:acme'], exp: now() + 900 });
    expect(await admin.send({ action: 'refresh', token: demoted })).toMatchObject({ code: 'refresh_refused', message: expect.stringContaining('identity_changed') });
    expect((await fx.store.getConnection(admin.connectionId))!.tokenExpiresAt).toBe(expiresAt);
    // Once the old credential ends, admin:ops traffic no longer reaches it, sweep or no sweep.
    await sleep((expiresAt - now() + 1) * 1000);
    const other = await open(identity({ groups: ['tenant:acme', 'admin'], userId: unique('u') }), d);
    await other.send({ action: 'join', room: 'admin:ops' });
    await other.send({ action: 'send', room: 'admin:ops', data: 'secret plans' });
    expect(admin.inbox().filter((e) => e.type === 'message')).toEqual([]);
    expect(await admin.send({ action: 'join', room: 'admin:other' })).toMatchObject({ code: 'token_expired' });
  });

  it('refuses a token whose tenant list no longer holds the socket\'s tenant, and one of another user', async () => {
    const userId = unique('u');
    const s = await open(identity({ userId }));
    expect(await s.send({ action: 'refresh', token: token({ sub: userId, 'cognito:groups': ['tenant:globex'] }) })).toMatchObject({ message: expect.stringContaining('tenant_not_allowed') });
    expect(await s.send({ action: 'refresh', token: token({ sub: 'someone-else' }) })).toMatchObject({ message: expect.stringContaining('different_user') });
    const same = token({ sub: userId, exp: now() + 900 });
    expect(await s.send({ action: 'refresh', token: same })).toMatchObject({ type: 'refreshed' });
  });

  it('refreshes while joining, concurrently: every membership carries the latest expiry (none drops out early)', async () => {
    for (let run = 0; run < 10; run++) {
      const userId = unique('u');
      const s = await open(identity({ userId, tokenExpiresAt: now() + 3 }));
      const later = now() + 900;
      await Promise.all([
        ...Array.from({ length: 5 }, (_, i) => sleep(i % 3).then(() => s.send({ action: 'join', room: `r${run}-${i}` }))),
        sleep(run % 4).then(() => s.send({ action: 'refresh', token: token({ sub: userId, exp: later }) })),
      ]);
      for (let i = 0; i < 5; i++) {
        const { Item } = await fx.dynamo.doc.send(new GetCommand({ TableName: fx.tableName, Key: keys.member('acme', `r${run}-${i}`, s.connectionId), ConsistentRead: true }));
        expect(Item?.credExp).toBe(later);
      }
    }
  });
});

describe('8. sign-out through a ticket socket', () => {
  const http = (method: string, path: string, options: { body?: unknown; cookie?: string; origin?: string } = {}) =>
    ({
      version: '2.0',
      routeKey: `${method} ${path}`,
      rawPath: path,
      rawQueryString: '',
      headers: { 'content-type': 'application/json', ...(options.origin === undefined ? { origin: APP } : options.origin ? { origin: options.origin } : {}) },
      ...(options.cookie ? { cookies: [options.cookie] } : {}),
      requestContext: { http: { method, path, sourceIp: '203.0.113.9' } },
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      isBase64Encoded: false,
    }) as unknown as APIGatewayProxyEventV2;
  const api = async (event: APIGatewayProxyEventV2) => {
    const d = deps();
    const signOutParts = signOutDeps(d)!;
    const result = await handleApi(event, { auth: d.auth as Auth, signOut: signOutParts, log: logger.log });
    return { ...result, json: JSON.parse(String(result.body)) as Record<string, unknown> };
  };

  it('ends the cookie session the ticket came from, for the session\'s whole lifetime', async () => {
    const login = await api(http('POST', '/api/login', { body: { email: 'alice@example.com', password: 'x' } }));
    const cookie = login.cookies![0].split(';')[0];
    const ticket = (await api(http('POST', '/api/ws-ticket', { cookie, body: {} }))).json.ticket as string;
    const d = deps();
    const checked = await (d.auth as Auth).handshake({ origin: APP }, { ticket });
    expect(checked).toMatchObject({ ok: true, source: 'ticket', identity: { session: hashSecret(cookie.split('=')[1]) } });
    if (!checked.ok) return;
    const s = await open(checked.identity, d);
    expect(await s.send({ action: 'logout', id: 'bye' })).toMatchObject({ type: 'signed_out' });
    // The session is gone: the cookie no longer signs anyone in, nor buys a socket.
    expect((await api(http('GET', '/api/session', { cookie }))).statusCode).toBe(401);
    expect(await (d.auth as Auth).handshake({ origin: APP, cookie }, {})).toMatchObject({ ok: false, reason: 'session_invalid' });
    // And the sign-in stays revoked for as long as the session could have lived, not just a token's lifetime.
    const { Item } = await fx.dynamo.doc.send(new GetCommand({ TableName: fx.tableName, Key: keys.revocation(checked.identity.signIn), ConsistentRead: true }));
    expect(Number(Item?.[TABLE.ttlAttribute])).toBeGreaterThanOrEqual(now() + 12 * 3600);
  });

  it('refuses /api/logout without an Origin, and login bodies with any unknown key', async () => {
    const login = await api(http('POST', '/api/login', { body: { email: 'alice@example.com', password: 'x' } }));
    const cookie = login.cookies![0].split(';')[0];
    expect(await api(http('POST', '/api/logout', { cookie, body: {}, origin: '' }))).toMatchObject({ statusCode: 403, json: { error: 'origin_required' } });
    expect((await api(http('GET', '/api/session', { cookie }))).statusCode).toBe(200); // not signed out
    for (const body of [
      { email: 'a@example.com', password: 'x', 'email?': 'b' },
      { email: 'a@example.com', password: 'x', admin: true },
      { email: 'a@example.com', 'password?': 'x' },
      JSON.parse('{"email":"a@example.com","password":"x","__proto__":{"admin":true}}') as Record<string, unknown>,
    ]) {
      const refused = await api(http('POST', '/api/login', { body }));
      expect(refused).toMatchObject({ statusCode: 400, json: { error: 'invalid_request' } });
    }
    expect(SESSION_COOKIE).toMatch(/^__Host-/);
  });
});

describe('9. deliveries after expiry, and replays', () => {
  it('delivers nothing to a socket whose credential expired, though no sweep has run; a renewed one still gets everything', async () => {
    const d = deps();
    const endsAt = now() + 3;
    const expiring = await open(identity({ userId: unique('u'), tokenExpiresAt: endsAt }), d);
    const renewedUser = unique('u');
    const renewed = await open(identity({ userId: renewedUser, tokenExpiresAt: endsAt }), d);
    const sender = await open(identity({ userId: unique('u') }), d);
    for (const s of [expiring, renewed, sender]) expect(await s.send({ action: 'join', room: 'expiry' })).toMatchObject({ type: 'joined' });
    expect(await renewed.send({ action: 'refresh', token: token({ sub: renewedUser, exp: now() + 900 }) })).toMatchObject({ type: 'refreshed' });
    await sleep((endsAt - Date.now() / 1000) * 1000 + 100);
    await sender.send({ action: 'send', room: 'expiry', data: 'after expiry' });
    expect(expiring.inbox().filter((e) => e.type === 'message')).toEqual([]);
    expect(renewed.inbox().filter((e) => e.type === 'message')).toHaveLength(1);
    expect(expiring.alive()).toBe(true); // not yet swept: it is the delivery that refused it
  });

  it('charges a replay by its size, and caps it: the client is told to ask for more', async () => {
    const d = deps({ MAX_REPLAY_BYTES: String(64 * 1024), RATE_LIMIT_PER_SECOND: '1', RATE_LIMIT_BURST: '20', RATE_LIMIT_STRIKES: '1000' });
    const writer = await open(identity({ userId: unique('u') }), deps());
    await writer.send({ action: 'join', room: 'big' });
    const blob = 'x'.repeat(8000);
    for (let i = 0; i < 40; i++) await writer.send({ action: 'send', room: 'big', data: blob });
    const reader = await open(identity({ userId: unique('u') }), d);
    const started = Date.now();
    const joined = await reader.send({ action: 'join', room: 'big', after: 0 });
    expect(joined).toMatchObject({ type: 'joined', more: true });
    const replayed = reader.inbox().filter((e) => e.type === 'message');
    expect(replayed.length).toBeGreaterThan(0);
    expect(replayed.reduce((n, e) => n + JSON.stringify(e).length, 0)).toBeLessThanOrEqual(64 * 1024 + 9000);
    expect((joined as { seq: number }).seq).toBe((replayed[replayed.length - 1] as { seq: number }).seq);
    // 64 KB cost 4 tokens beyond the join's own: 20 - 5 = 15 left in the burst (plus 1/s refilled), then refusals.
    const pings = [];
    for (let i = 0; i < 20; i++) pings.push(await reader.send({ action: 'ping' }));
    expect(pings.filter((p) => p.type === 'pong').length).toBeLessThanOrEqual(15 + Math.floor((Date.now() - started) / 1000));
    expect(pings.filter((p) => p.type === 'error')).not.toEqual([]);
  });
});
