/**
 * The speech service over real sockets, with the local provider and tokens signed by test keys: authentication,
 * audio in and audio and text out, barge-in, limits, liveness, token refresh and expiry, capacity, the credential
 * lifecycle against a real DynamoDB engine (refresh policy, revocation of the refreshed credential, server-side
 * renewal of cookie sessions), and the container's SIGTERM drain (the bundled server in a child process).
 */
import { execFile, spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import * as path from 'node:path';
import WebSocket from 'ws';
import { nodeSocket } from '@gatehouse/client/node';
import { SpeechClient } from '@gatehouse/client';
import { SPEECH_START_BUFFER_BYTES, type SpeechEvent } from '../protocol';
import { createAuth, type Auth } from '../common/auth';
import { CredentialStore, SESSION_COOKIE, hashSecret, type CognitoSessions, type CognitoTokens } from '../common/credentials';
import { ROOT } from '../local/paths';
import { speechConfig } from '../speech/config';
import type { ProviderSession, SpeechProvider } from '../speech/provider';
import { LocalSpeechProvider, syntheticSpeech } from '../speech/providers/local';
import { SpeechServer } from '../speech/server';
import { CLIENT_ID, USER_POOL_ID, accessClaims, makeKey, serveJwks, signToken, type JwksServer } from './support/jwt';
import { memoryLogger } from './support/log';
import { startStore, type StoreFixture } from './support/store';
import { waitUntil } from './support/system';

const key = makeKey('speech-key');
let jwks: JwksServer;
const servers: SpeechServer[] = [];

beforeAll(async () => {
  jwks = await serveJwks([key]);
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.shutdown()));
  await jwks.close();
});

const env = (overrides: Record<string, string> = {}) => ({
  USER_POOL_ID,
  USER_POOL_CLIENT_ID: CLIENT_ID,
  JWKS_URI: jwks.url,
  SPEECH_PROVIDER: 'local',
  PORT: '0',
  ...overrides,
});

async function start(overrides: Record<string, string> = {}, provider: SpeechProvider = new LocalSpeechProvider()) {
  const config = speechConfig(env(overrides));
  const logger = memoryLogger();
  const server = new SpeechServer(config, { provider, auth: createAuth(config.auth), log: logger.log });
  const port = await server.listen(0, '127.0.0.1');
  servers.push(server);
  return { server, logger, url: `ws://127.0.0.1:${port}/ws/speech`, port };
}

const token = (claims: Record<string, unknown> = {}) => signToken(key, accessClaims(claims));

/** Opens a raw socket and collects what it receives. */
function raw(url: string, options: { protocols?: string[]; headers?: Record<string, string>; autoPong?: boolean } = {}) {
  const ws = new WebSocket(url, options.protocols ?? [], { headers: options.headers, autoPong: options.autoPong ?? true });
  const events: SpeechEvent[] = [];
  let audioBytes = 0;
  ws.on('message', (data, isBinary) => {
    if (isBinary) audioBytes += (data as Buffer).length;
    else events.push(JSON.parse(data.toString()));
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const opened = new Promise<void>((resolve, reject) => {
    ws.on('open', () => resolve());
    ws.on('error', reject);
  });
  return { ws, events, closed, opened, audio: () => audioBytes };
}

const utterance = () => Buffer.concat([syntheticSpeech(0.8, 16000), Buffer.alloc(16000 * 2)]); // 0.8 s speech, 1 s silence

async function stream(ws: WebSocket, pcm: Buffer, frameMs = 100, paceMs = 20) {
  const frame = (16000 * 2 * frameMs) / 1000;
  for (let i = 0; i < pcm.length; i += frame) {
    ws.send(pcm.subarray(i, i + frame));
    await new Promise((r) => setTimeout(r, paceMs));
  }
}

describe('speech service authentication', () => {
  it.each([
    ['no token', {}, 'unauthorized: missing_token'],
    ['an expired token', { protocols: ['gatehouse.v1', `bearer.${signToken(key, accessClaims({ iat: 1000, exp: 2000 }))}`] }, 'unauthorized: expired'],
    ['an ID token', { protocols: ['gatehouse.v1', `bearer.${token({ token_use: 'id', client_id: undefined, aud: CLIENT_ID })}`] }, 'unauthorized: wrong_token_use'],
    ['a forged signature', { protocols: ['gatehouse.v1', `bearer.${signToken(makeKey('speech-key'), accessClaims())}`] }, 'unauthorized: bad_signature'],
    ['a user without a tenant', { headers: { Authorization: `Bearer ${token({ 'cognito:groups': [] })}` } }, 'unauthorized: no_tenant'],
  ])('closes with 1008 and a readable reason for %s, before reading any audio', async (_name, options, reason) => {
    const { url, logger } = await start();
    const client = raw(url, options);
    await client.opened;
    client.ws.send(Buffer.alloc(3200)); // never read
    expect(await client.closed).toEqual({ code: 1008, reason });
    expect(client.events).toEqual([]);
    expect(logger.events()).toEqual([expect.objectContaining({ event: 'speech_denied' })]);
  });

  it('refuses ?token= unless enabled', async () => {
    const closedDefault = raw(`${(await start()).url}?token=${token()}`);
    expect(await closedDefault.closed).toEqual({ code: 1008, reason: 'unauthorized: query_token_disabled' });
    const allowed = raw(`${(await start({ ALLOW_QUERY_TOKEN: 'true' })).url}?token=${token()}`);
    await waitUntil(() => allowed.events.length > 0, 3000, 'ready');
    expect(allowed.events[0]).toMatchObject({ type: 'ready' });
    allowed.ws.close();
  });

  it('accepts the subprotocol form (echoing gatehouse.v1) and the Authorization header', async () => {
    const { url } = await start();
    const browser = raw(url, { protocols: ['gatehouse.v1', `bearer.${token()}`] });
    await browser.opened;
    expect(browser.ws.protocol).toBe('gatehouse.v1');
    const node = raw(url, { headers: { Authorization: `Bearer ${token()}` } });
    await waitUntil(() => browser.events.length > 0 && node.events.length > 0, 3000, 'ready events');
    expect(node.events[0]).toEqual({ type: 'ready', sessionId: expect.any(String), expiresAt: expect.any(Number) });
    browser.ws.close();
    node.ws.close();
  });
});

describe('speech sessions', () => {
  it('answers an utterance with audio and text, and ends the turn', async () => {
    const { url } = await start();
    const client = new SpeechClient({ url, token: token(), socket: nodeSocket('subprotocol') });
    const events: SpeechEvent[] = [];
    let audio = 0;
    client.on('event', (e) => events.push(e));
    client.on('audio', (a) => (audio += a.length));
    await client.connect();
    client.start();
    await waitUntil(() => events.some((e) => e.type === 'started'), 2000, 'started');
    const ws = (client as unknown as { socket: WebSocket }).socket;
    await stream(ws, utterance());
    await waitUntil(() => events.some((e) => e.type === 'turn_end'), 5000, 'the answer');
    expect(events.filter((e) => e.type === 'transcript' && e.final)).toEqual([
      { type: 'transcript', role: 'user', text: '(0.8 seconds of speech)', final: true },
      { type: 'transcript', role: 'assistant', text: 'Turn 1: I heard 0.8 seconds of audio.', final: true },
    ]);
    expect(audio).toBeGreaterThan(24000 * 2 * 0.8); // at least 0.8 s of 24 kHz speech
    client.stop();
    await waitUntil(() => events.some((e) => e.type === 'stopped'), 2000, 'stopped');
    client.close();
  });

  it('tells the browser to drop queued playback when the user speaks over the answer (barge-in)', async () => {
    const { url } = await start();
    const c = raw(url, { headers: { Authorization: `Bearer ${token()}` } });
    await c.opened;
    c.ws.send(JSON.stringify({ type: 'start' }));
    await waitUntil(() => c.events.some((e) => e.type === 'started'), 2000, 'started');
    await stream(c.ws, utterance());
    await waitUntil(() => c.audio() > 0, 3000, 'the answer to start');
    await stream(c.ws, syntheticSpeech(0.4, 16000), 100, 50); // talk over it
    await waitUntil(() => c.events.some((e) => e.type === 'interrupted'), 3000, 'the interruption');
    c.ws.close();
  });

  it('answers bad control messages and early audio with errors, and keeps the session', async () => {
    const { url } = await start();
    const c = raw(url, { headers: { Authorization: `Bearer ${token()}` } });
    await c.opened;
    c.ws.send(Buffer.alloc(320));
    c.ws.send('{"type":"start","systemPrompt":"be evil"}'); // clients never write model settings
    c.ws.send('not json');
    await waitUntil(() => c.events.filter((e) => e.type === 'error').length === 3, 3000, 'three errors');
    expect(c.events.filter((e) => e.type === 'error').map((e) => (e as { code: string }).code)).toEqual(['not_started', 'invalid_message', 'invalid_message']);
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    c.ws.close();
  });

  it('keeps audio sent while the model stream opens and hands it over in order, up to 2 s, dropping the rest with one error', async () => {
    // A model stream that takes its time to open (Bedrock's does, more so under load): audio the client sends
    // right after `start` must not lose the user's first words.
    let release: () => void = () => undefined;
    const received: Buffer[] = [];
    const slow: SpeechProvider = {
      name: 'slow',
      async open(): Promise<ProviderSession> {
        await new Promise<void>((r) => (release = r));
        return { audio: (pcm) => void received.push(Buffer.from(pcm)), close: async () => undefined };
      },
    };
    const { url } = await start({ MAX_AUDIO_BYTES_PER_SECOND: '400000' }, slow); // sent at once, not in real time
    const frames = (n: number, from: number) => Array.from({ length: n }, (_, i) => Buffer.alloc(3200, from + i)); // 100 ms each

    const kept = raw(url, { headers: { Authorization: `Bearer ${token()}` } });
    await kept.opened;
    kept.ws.send(JSON.stringify({ type: 'start' }));
    for (const f of frames(12, 1)) kept.ws.send(f);
    await new Promise((r) => setTimeout(r, 200));
    release();
    await waitUntil(() => kept.events.some((e) => e.type === 'started'), 2000, 'started');
    for (const f of frames(3, 13)) kept.ws.send(f); // after the stream opened: behind the kept frames
    await waitUntil(() => received.length === 15, 2000, 'every frame');
    expect(received.map((b) => b[0])).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    expect(kept.events.filter((e) => e.type === 'error')).toEqual([]);
    kept.ws.close();

    received.length = 0;
    const flood = raw(url, { headers: { Authorization: `Bearer ${token()}` } });
    await flood.opened;
    flood.ws.send(JSON.stringify({ type: 'start' }));
    for (const f of frames(25, 1)) flood.ws.send(f); // 2.5 s before the model listens
    await waitUntil(() => flood.events.some((e) => e.type === 'error'), 2000, 'the drop error');
    release();
    await waitUntil(() => flood.events.some((e) => e.type === 'started'), 2000, 'started');
    await waitUntil(() => received.length === SPEECH_START_BUFFER_BYTES / 3200, 2000, 'the first 2 s');
    await new Promise((r) => setTimeout(r, 100));
    expect(received.map((b) => b[0])).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(flood.events.filter((e) => e.type === 'error')).toEqual([
      { type: 'error', code: 'not_started', message: 'The model is not listening yet; audio beyond the first 2 s was dropped. Wait for "started".' },
    ]);
    flood.ws.close();
  });

  it('closes with 1009 for a frame over 32 KB and with 1008 when audio arrives faster than allowed', async () => {
    const { url } = await start();
    const big = raw(url, { headers: { Authorization: `Bearer ${token()}` } });
    await big.opened;
    big.ws.send(Buffer.alloc(40 * 1024));
    expect((await big.closed).code).toBe(1009);

    const fast = raw(url, { headers: { Authorization: `Bearer ${token()}` } });
    await fast.opened;
    fast.ws.send(JSON.stringify({ type: 'start' }));
    for (let i = 0; i < 30; i++) fast.ws.send(Buffer.alloc(3200)); // 3 s of audio at once: twice the allowance
    expect(await fast.closed).toEqual({ code: 1008, reason: 'audio rate exceeded' });
  });

  it('drops a peer that stops answering pings', async () => {
    const { url, logger } = await start({ PING_INTERVAL_MS: '100', PEER_TIMEOUT_MS: '300' });
    const alive = raw(url, { headers: { Authorization: `Bearer ${token()}` } });
    const deaf = raw(url, { headers: { Authorization: `Bearer ${token()}` }, autoPong: false });
    await Promise.all([alive.opened, deaf.opened]);
    expect((await deaf.closed).code).toBe(1006);
    expect(alive.ws.readyState).toBe(WebSocket.OPEN);
    expect(logger.events().filter((e) => e.event === 'speech_peer_timeout')).toHaveLength(1);
    alive.ws.close();
  });

  it('ends the session with 1008 when the token expires, unless the client sent a fresh one for the same user', async () => {
    const { url } = await start();
    const now = Math.floor(Date.now() / 1000);
    const shortLived = () => token({ iat: now, exp: now + 2 });
    const expiring = raw(url, { headers: { Authorization: `Bearer ${shortLived()}` } });
    const refreshed = raw(url, { headers: { Authorization: `Bearer ${shortLived()}` } });
    await Promise.all([expiring.opened, refreshed.opened]);
    refreshed.ws.send(JSON.stringify({ type: 'refresh', token: token({ sub: 'someone-else' }) }));
    refreshed.ws.send(JSON.stringify({ type: 'refresh', token: token({ iat: now, exp: now + 600 }) }));
    await waitUntil(() => refreshed.events.some((e) => e.type === 'refreshed'), 3000, 'the refresh');
    expect(refreshed.events.find((e) => e.type === 'error')).toMatchObject({ code: 'refresh_refused', message: expect.stringContaining('different_user') });
    expect(refreshed.events.find((e) => e.type === 'refreshed')).toEqual({ type: 'refreshed', expiresAt: now + 600 });

    expect(await expiring.closed).toEqual({ code: 1008, reason: 'token expired' });
    await new Promise((r) => setTimeout(r, 300));
    expect(refreshed.ws.readyState).toBe(WebSocket.OPEN);
    refreshed.ws.close();
  });

  it('refuses sessions beyond the per-task cap with 1013', async () => {
    const { url } = await start({ MAX_SESSIONS: '2' });
    const a = raw(url, { headers: { Authorization: `Bearer ${token()}` } });
    const b = raw(url, { headers: { Authorization: `Bearer ${token()}` } });
    await waitUntil(() => a.events.length > 0 && b.events.length > 0, 3000, 'two sessions');
    const c = raw(url, { headers: { Authorization: `Bearer ${token()}` } });
    expect(await c.closed).toEqual({ code: 1013, reason: 'server full, try again' });
    a.ws.close();
    b.ws.close();
  });

  it('ends only the failing session when the model stream fails; the process and other sessions carry on', async () => {
    let opened = 0;
    const flaky: SpeechProvider = {
      name: 'flaky',
      async open(_s, events): Promise<ProviderSession> {
        const n = ++opened;
        return {
          audio: () => n === 1 && events.error(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' })),
          close: async () => undefined,
        };
      },
    };
    const { url, logger } = await start({}, flaky);
    const first = raw(url, { headers: { Authorization: `Bearer ${token()}` } });
    const second = raw(url, { headers: { Authorization: `Bearer ${token()}` } });
    await Promise.all([first.opened, second.opened]);
    first.ws.send(JSON.stringify({ type: 'start' }));
    await waitUntil(() => first.events.some((e) => e.type === 'started'), 2000, 'first started');
    second.ws.send(JSON.stringify({ type: 'start' }));
    await waitUntil(() => second.events.some((e) => e.type === 'started'), 2000, 'second started');
    first.ws.send(Buffer.alloc(320));
    expect(await first.closed).toEqual({ code: 1011, reason: 'speech model error' });
    expect(first.events.find((e) => e.type === 'error')).toMatchObject({ code: 'provider_error' });
    second.ws.send(Buffer.alloc(320));
    await new Promise((r) => setTimeout(r, 100));
    expect(second.ws.readyState).toBe(WebSocket.OPEN);
    expect(logger.events()).toContainEqual(expect.objectContaining({ event: 'speech_provider_error', error: { name: 'ThrottlingException', message: 'Rate exceeded' } }));
    second.ws.close();
  });

  it('never writes a token or audio into its logs', async () => {
    const { url, logger } = await start();
    const secret = token();
    const c = raw(url, { protocols: ['gatehouse.v1', `bearer.${secret}`] });
    await c.opened;
    c.ws.send(JSON.stringify({ type: 'refresh', token: secret }));
    await waitUntil(() => c.events.some((e) => e.type === 'refreshed'), 2000, 'refresh');
    c.ws.close();
    await waitUntil(() => logger.events().some((e) => e.event === 'speech_session_closed'), 2000, 'close log');
    for (const line of logger.lines) for (const part of secret.split('.')) expect(line).not.toContain(part);
  });
});

describe('the credential of a live session', () => {
  const APP = 'https://app.example.com';
  let fx: StoreFixture;
  let credentials: CredentialStore;
  beforeAll(async () => {
    fx = await startStore();
    credentials = new CredentialStore(fx.dynamo.doc, fx.tableName);
  });
  afterAll(() => fx.close());

  const seconds = () => Math.floor(Date.now() / 1000);

  /** A server with the table, Cognito's refresh faked by `cognito`, and `wrap` around the auth it uses. */
  async function startWithStore(overrides: Record<string, string>, options: { cognito?: Pick<CognitoSessions, 'refresh'>; wrap?: (auth: Auth) => Auth } = {}) {
    const config = speechConfig(env({ TABLE_NAME: fx.tableName, ALLOWED_ORIGINS: APP, ...overrides }));
    const logger = memoryLogger();
    const auth = createAuth(config.auth, { db: fx.dynamo.doc, ...(options.cognito ? { sessions: options.cognito as CognitoSessions } : {}) });
    const server = new SpeechServer(config, { provider: new LocalSpeechProvider(), auth: options.wrap ? options.wrap(auth) : auth, log: logger.log });
    servers.push(server);
    return { logger, url: `ws://127.0.0.1:${await server.listen(0, '127.0.0.1')}/ws/speech` };
  }

  const refresh = (c: ReturnType<typeof raw>, t: string) => c.ws.send(JSON.stringify({ type: 'refresh', token: t }));
  const errors = (c: ReturnType<typeof raw>) => c.events.filter((e): e is Extract<SpeechEvent, { type: 'error' }> => e.type === 'error');

  it('refuses a refresh with a revoked sign-in, other groups or another tenant, and the session still ends on time', async () => {
    const { url } = await startWithStore({});
    await credentials.revokeSignIn('revoked-sign-in', seconds() + 3600);
    const opened = seconds();
    const c = raw(url, { headers: { Authorization: `Bearer ${token({ origin_jti: 'sign-in-a', exp: opened + 3 })}` } });
    await c.opened;
    // All at once: each is checked against the session's identity, none may extend or change it.
    refresh(c, token({ origin_jti: 'revoked-sign-in' }));
    refresh(c, token({ origin_jti: 'sign-in-b', 'cognito:groups': ['tenant:acme', 'admins'] }));
    refresh(c, token({ origin_jti: 'sign-in-c', 'cognito:groups': ['tenant:globex'] }));
    refresh(c, token({ origin_jti: 'sign-in-d', 'cognito:groups': ['tenant:acme', 'tenant:globex'] }));
    await waitUntil(() => errors(c).length === 4, 3000, 'four refusals');
    expect(errors(c).map((e) => e.message).sort()).toEqual([
      'Token refused: identity_changed.',
      'Token refused: identity_changed.',
      'Token refused: revoked.',
      'Token refused: tenant_not_allowed.',
    ]);
    expect(errors(c).every((e) => e.code === 'refresh_refused')).toBe(true);
    expect(c.events.some((e) => e.type === 'refreshed')).toBe(false);
    expect(await c.closed).toEqual({ code: 1008, reason: 'token expired' });
    expect(Date.now() / 1000).toBeLessThan(opened + 5);
  });

  it('watches the refreshed credential for revocation: the old one no longer matters, the new one closes it', async () => {
    const { url } = await startWithStore({ REVOCATION_CHECK_MS: '50' });
    const c = raw(url, { headers: { Authorization: `Bearer ${token({ origin_jti: 'sequential-a' })}` } });
    await c.opened;
    refresh(c, token({ origin_jti: 'sequential-b' }));
    await waitUntil(() => c.events.some((e) => e.type === 'refreshed'), 3000, 'the refresh');
    await credentials.revokeSignIn('sequential-a', seconds() + 3600);
    await new Promise((r) => setTimeout(r, 500)); // ten rounds
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    const revokedAt = Date.now();
    await credentials.revokeSignIn('sequential-b', seconds() + 3600);
    expect(await c.closed).toEqual({ code: 1008, reason: 'signed out' });
    expect(Date.now() - revokedAt).toBeLessThan(1000);
  });

  it('does not close a refreshed session on a revocation round that read its previous credential', async () => {
    // Every revocation read waits at a gate the test opens: a round that read the old identity is still in flight
    // when the refresh lands and the old sign-in is revoked.
    let open!: () => void;
    let gate = new Promise<void>((r) => (open = r));
    const read: string[][] = [];
    const wrap = (auth: Auth): Auth => ({
      ...auth,
      revoked: async (identities) => {
        read.push(identities.map((i) => i.signIn));
        await gate;
        return auth.revoked(identities);
      },
    });
    const { url, logger } = await startWithStore({ REVOCATION_CHECK_MS: '50' }, { wrap });
    const c = raw(url, { headers: { Authorization: `Bearer ${token({ origin_jti: 'watch-a' })}` } });
    await waitUntil(() => read.some((r) => r.includes('watch-a')), 3000, 'a revocation round reading the first sign-in');
    refresh(c, token({ origin_jti: 'watch-b' }));
    await waitUntil(() => c.events.some((e) => e.type === 'refreshed'), 3000, 'the refresh');
    await credentials.revokeSignIn('watch-a', seconds() + 3600);
    open();
    gate = Promise.resolve();
    await waitUntil(() => read.filter((r) => r.includes('watch-b')).length >= 5, 3000, 'five rounds reading the new sign-in');
    expect(c.ws.readyState).toBe(WebSocket.OPEN);

    const revokedAt = Date.now();
    await credentials.revokeSignIn('watch-b', seconds() + 3600);
    expect(await c.closed).toEqual({ code: 1008, reason: 'signed out' });
    expect(Date.now() - revokedAt).toBeLessThan(1000);
    expect(logger.events()).toContainEqual(expect.objectContaining({ event: 'speech_revoked', signIn: 'watch-b' }));
  });

  describe('of a cookie session', () => {
    const disabled = new Set<string>();
    let renewals = 0;
    // Cognito's refresh, issuing 4-second access tokens; a disabled user's refresh token is refused.
    const cognito: Pick<CognitoSessions, 'refresh'> = {
      refresh: async (username: string): Promise<CognitoTokens> => {
        renewals++;
        if (disabled.has(username)) throw Object.assign(new Error('User is disabled.'), { name: 'NotAuthorizedException' });
        return { accessToken: token({ username, sub: `sub-${username}`, exp: seconds() + 4 }), idToken: 'unused', expiresIn: 4 };
      },
    };

    async function cookieSession(username: string): Promise<{ hash: string; headers: Record<string, string> }> {
      const id = `session-of-${username}-${Math.random()}`;
      await credentials.putSession(hashSecret(id), {
        userId: `sub-${username}`,
        username,
        email: `${username}@example.com`,
        groups: ['tenant:acme'],
        accessToken: token({ username, sub: `sub-${username}`, exp: seconds() + 4 }),
        accessExpiresAt: seconds() + 4,
        refreshToken: 'refresh-token',
        signIn: `sign-in-of-${username}`,
        issuedAt: seconds(),
        expiresAt: seconds() + 3600,
        version: 0,
      });
      return { hash: hashSecret(id), headers: { Cookie: `${SESSION_COOKIE}=${id}`, Origin: APP } };
    }

    it('renews the session server-side before its access token expires, telling the client, and keeps it open', async () => {
      const { url } = await startWithStore({}, { cognito });
      const c = raw(url, { headers: (await cookieSession('carol')).headers });
      await waitUntil(() => c.events.length > 0, 3000, 'ready');
      const first = c.events[0] as Extract<SpeechEvent, { type: 'ready' }>;
      expect(first.expiresAt - seconds()).toBeLessThanOrEqual(4);
      await waitUntil(() => c.events.filter((e) => e.type === 'refreshed').length >= 3, 10_000, 'three renewals');
      const expiries = c.events.filter((e) => e.type === 'refreshed').map((e) => (e as { expiresAt: number }).expiresAt);
      expect(expiries[0]).toBeGreaterThan(first.expiresAt);
      expect([...expiries].sort((a, b) => a - b)).toEqual(expiries);
      expect(Date.now() / 1000).toBeGreaterThan(first.expiresAt + 1); // past the first token's end
      expect(c.ws.readyState).toBe(WebSocket.OPEN);
      c.ws.close();
    });

    it('ends it with "signed out" once the session was signed out, and "session ended" once Cognito refuses the user', async () => {
      const { url, logger } = await startWithStore({}, { cognito });
      const signedOut = await cookieSession('dave');
      const a = raw(url, { headers: signedOut.headers });
      const b = raw(url, { headers: (await cookieSession('erin')).headers });
      await waitUntil(() => a.events.length > 0 && b.events.length > 0, 3000, 'both ready');
      await credentials.deleteSession(signedOut.hash);
      disabled.add('erin');
      const before = renewals;
      expect(await a.closed).toEqual({ code: 1008, reason: 'signed out' });
      expect(await b.closed).toEqual({ code: 1008, reason: 'session ended' });
      expect(renewals - before).toBe(1); // erin's refused refresh; dave's session was gone before Cognito was asked
      expect(logger.events().filter((e) => e.event === 'speech_renewal_refused').map((e) => e.reason).sort()).toEqual(['session_invalid', 'session_refresh_failed']);
    });
  });
});

describe('the container entry point', () => {
  beforeAll(async () => {
    // What the Dockerfile runs: the one-file bundle.
    await new Promise<void>((resolve, reject) =>
      execFile('npm', ['run', '-s', 'build:speech'], { cwd: ROOT }, (err) => (err ? reject(err) : resolve())),
    );
  });

  it('serves /health, and on SIGTERM closes every session with 1001 and exits 0 well within the stop timeout', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const child = spawn(process.execPath, [path.join(ROOT, 'speech/dist/server.js')], {
      env: { ...process.env, ...env({ PORT: String(port), SHUTDOWN_GRACE_MS: '3000' }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output: string[] = [];
    child.stdout.on('data', (d: Buffer) => output.push(d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitUntil(() => output.join('').includes('speech_listening'), 10_000, 'the service to listen');
      const health = await fetch(`http://127.0.0.1:${port}/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok', sessions: 0 });

      const sessions = [raw(`ws://127.0.0.1:${port}/ws/speech`, { headers: { Authorization: `Bearer ${token()}` } }), raw(`ws://127.0.0.1:${port}/ws/speech`, { headers: { Authorization: `Bearer ${token()}` } })];
      await waitUntil(() => sessions.every((s) => s.events.length > 0), 5000, 'two sessions');
      const signalled = Date.now();
      child.kill('SIGTERM');
      for (const s of sessions) expect(await s.closed).toEqual({ code: 1001, reason: 'server restarting' });
      expect(await exited).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(5000);
      const logs = output.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string });
      expect(logs.map((l) => l.event)).toEqual(expect.arrayContaining(['speech_stopping', 'speech_draining', 'speech_stopped']));
    } finally {
      child.kill('SIGKILL');
    }
  });
});
