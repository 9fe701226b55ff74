/**
 * Session security end to end, through the local edge (the paths CloudFront serves): cookie sign-in, one-time
 * tickets, sign-out that closes sockets (API and speech), expiring sockets swept by the schedule, rate limits and
 * the per-user cap, and finally a search of every log line for every secret issued along the way.
 * Local access tokens live TOKEN_SECONDS (10 s) here and the sweeper runs every second, so expiry is observable.
 */
import { AdminDisableUserCommand, AdminEnableUserCommand } from '@aws-sdk/client-cognito-identity-provider';
import WebSocket from 'ws';
import { SESSION_COOKIE } from '../common/credentials';
import type { ServerEvent } from '../protocol';
import { startTestSystem, waitUntil, type TestSystem } from './support/system';

let t: TestSystem;
let origin: string;
const secrets = new Set<string>(['Demo-Passw0rd!']);
const windows: Record<string, number> = {};
const TOKEN_SECONDS = 10;

beforeAll(async () => {
  t = await startTestSystem({
    accessTokenSeconds: TOKEN_SECONDS,
    scheduleIntervalMs: 1000,
    // A tight per-socket rate (2/s, burst 5, 5 strikes) so a flood is refused and closed well within a token's life,
    // however fast this machine runs the functions.
    functionEnv: { SWEEP_EVERY_SECONDS: '60', TICKET_TTL_SECONDS: '2', RATE_LIMIT_PER_SECOND: '2', RATE_LIMIT_BURST: '5', RATE_LIMIT_STRIKES: '5' },
    speechEnv: { REVOCATION_CHECK_MS: '500' },
  });
  origin = t.system.urls.edge;
});
afterAll(() => t.stop());

async function signIn(email: string) {
  const tokens = await t.system.signIn(email);
  for (const s of [tokens.accessToken, tokens.idToken, tokens.refreshToken]) secrets.add(s);
  return tokens;
}

async function login(email: string): Promise<string> {
  const res = await fetch(`${origin}/api/login`, {
    method: 'POST',
    headers: { origin, 'content-type': 'application/json' },
    body: JSON.stringify({ email, password: 'Demo-Passw0rd!' }),
  });
  expect(res.status).toBe(200);
  const cookie = res.headers.getSetCookie()[0].split(';')[0];
  secrets.add(cookie.split('=')[1]);
  return cookie;
}

async function ticketFor(cookie: string): Promise<string> {
  const res = await fetch(`${origin}/api/ws-ticket`, { method: 'POST', headers: { origin, cookie, 'content-type': 'application/json' }, body: '{}' });
  const { ticket } = (await res.json()) as { ticket: string };
  secrets.add(ticket);
  return ticket;
}

interface Socket {
  ws: WebSocket;
  status: number;
  events: ServerEvent[];
  closed: Promise<{ code: number; reason: string; at: number }>;
  send(frame: unknown): void;
}

/** A raw socket (no client reconnect logic), with what it received and when it closed. */
function socket(url: string, options: { headers?: Record<string, string>; protocols?: string[] } = {}): Promise<Socket> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, options.protocols ?? [], { headers: options.headers });
    const events: ServerEvent[] = [];
    const closed = new Promise<{ code: number; reason: string; at: number }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString(), at: Date.now() })));
    const self = { ws, status: 0, events, closed, send: (frame: unknown) => ws.send(JSON.stringify(frame)) };
    ws.on('message', (data, isBinary) => !isBinary && events.push(JSON.parse(data.toString())));
    ws.on('open', () => resolve({ ...self, status: 101 }));
    ws.on('unexpected-response', (_req, res) => {
      resolve({ ...self, status: res.statusCode ?? 0 });
      ws.terminate();
    });
    ws.on('error', () => undefined);
  });
}

const realtime = () => t.system.urls.realtime;
const speech = () => t.system.urls.speech;

describe('cookie sessions (backend for frontend)', () => {
  it('signs in at /api/login and connects both WebSockets with the cookie, from the app origin only', async () => {
    const cookie = await login('alice@acme.test');
    const rt = await socket(realtime(), { headers: { cookie, origin } });
    expect(rt.status).toBe(101);
    rt.send({ action: 'whoami', id: 'w' });
    await waitUntil(() => rt.events.length > 0, 3000, 'whoami');
    expect(rt.events[0]).toMatchObject({ type: 'whoami', tenantId: 'acme' });
    const sp = await socket(speech(), { headers: { cookie, origin } });
    await waitUntil(() => sp.events.length > 0, 3000, 'ready');
    expect(sp.events[0]).toMatchObject({ type: 'ready' });
    // Cross-site WebSocket hijacking: the browser would send the cookie, but not our origin.
    expect((await socket(realtime(), { headers: { cookie, origin: 'https://attacker.test' } })).status).toBe(403);
    const hijack = await socket(speech(), { headers: { cookie, origin: 'https://attacker.test' } });
    expect(await hijack.closed).toMatchObject({ code: 1008, reason: 'unauthorized: origin_not_allowed' });
    rt.ws.close();
    sp.ws.close();
  });

  it('/api/logout ends the session and closes its sockets within 5 s, API and speech alike', async () => {
    const cookie = await login('bob@acme.test');
    const rt = await socket(realtime(), { headers: { cookie, origin } });
    const sp = await socket(speech(), { headers: { cookie, origin } });
    await waitUntil(() => sp.events.length > 0, 3000, 'speech ready');
    const started = Date.now();
    const out = await fetch(`${origin}/api/logout`, { method: 'POST', headers: { origin, cookie, 'content-type': 'application/json' }, body: '{}' });
    expect(out.status).toBe(200);
    const [a, b] = await Promise.all([rt.closed, sp.closed]);
    windows.logoutRealtime = a.at - started;
    windows.logoutSpeech = b.at - started;
    expect(a.at - started).toBeLessThan(5000);
    expect(b.at - started).toBeLessThan(5000);
    expect(b).toMatchObject({ code: 1008, reason: 'signed out' });
    expect(rt.events).toContainEqual({ type: 'signed_out', everywhere: false });
    expect((await socket(realtime(), { headers: { cookie, origin } })).status).toBe(403);
  });
});

describe('one-time tickets', () => {
  it('work once, from the origin they were issued to, for a short while', async () => {
    const cookie = await login('carol@globex.test');
    const ticket = await ticketFor(cookie);
    const first = await socket(`${realtime()}?ticket=${ticket}`, { headers: { origin } });
    expect(first.status).toBe(101);
    expect((await socket(`${realtime()}?ticket=${ticket}`, { headers: { origin } })).status).toBe(403);
    const late = await ticketFor(cookie);
    await new Promise((r) => setTimeout(r, 2500));
    expect((await socket(`${realtime()}?ticket=${late}`, { headers: { origin } })).status).toBe(403);
    const speechTicket = await ticketFor(cookie);
    const sp = await socket(`${speech()}?ticket=${speechTicket}`, { headers: { origin } });
    await waitUntil(() => sp.events.length > 0, 3000, 'speech ready');
    expect(sp.events[0]).toMatchObject({ type: 'ready' });
    first.ws.close();
    sp.ws.close();
  });
});

describe('sign-out with bearer tokens', () => {
  it('closes the sockets of that sign-in within 5 s; "everywhere" closes the rest', async () => {
    const session1 = await signIn('dana@acme.test');
    const session2 = await signIn('dana@acme.test');
    const bearer = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } });
    const a = await socket(realtime(), bearer(session1.accessToken));
    const b = await socket(realtime(), bearer(session1.accessToken));
    const s = await socket(speech(), bearer(session1.accessToken));
    const other = await socket(realtime(), bearer(session2.accessToken));
    const otherSpeech = await socket(speech(), bearer(session2.accessToken));
    await waitUntil(() => s.events.length > 0 && otherSpeech.events.length > 0, 3000, 'speech ready');

    const started = Date.now();
    a.send({ action: 'logout', refreshToken: session1.refreshToken });
    const closed = await Promise.all([a.closed, b.closed, s.closed]);
    for (const c of closed) expect(c.at - started).toBeLessThan(5000);
    await new Promise((r) => setTimeout(r, 1000));
    expect(other.ws.readyState).toBe(WebSocket.OPEN);
    expect(otherSpeech.ws.readyState).toBe(WebSocket.OPEN);
    expect((await socket(realtime(), bearer(session1.accessToken))).status).toBe(403);

    other.send({ action: 'logout', everywhere: true });
    await Promise.all([other.closed, otherSpeech.closed]);
    expect((await socket(realtime(), bearer(session2.accessToken))).status).toBe(403);
  });
});

describe('expiring sockets', () => {
  it('closes a socket whose token expired (telling it why) within 60 s, while a refreshed one lives on', async () => {
    const expiring = await signIn('erin@both.test');
    const refreshed = await signIn('erin@both.test');
    const exp = JSON.parse(Buffer.from(expiring.accessToken.split('.')[1], 'base64url').toString()).exp as number;
    const a = await socket(`${realtime()}?tenant=acme`, { headers: { Authorization: `Bearer ${expiring.accessToken}` } });
    const b = await socket(`${realtime()}?tenant=acme`, { headers: { Authorization: `Bearer ${refreshed.accessToken}` } });
    expect([a.status, b.status]).toEqual([101, 101]);

    await new Promise((r) => setTimeout(r, 2000));
    const fresh = await t.system.cognito.refresh(refreshed.refreshToken);
    secrets.add(fresh.accessToken);
    secrets.add(fresh.idToken);
    b.send({ action: 'refresh', token: fresh.accessToken, id: 'r' });
    await waitUntil(() => b.events.some((e) => e.type === 'refreshed'), 3000, 'the refresh');

    const closed = await a.closed;
    windows.expiryToClose = closed.at - exp * 1000;
    expect(closed.at / 1000 - exp).toBeLessThan(60);
    expect(a.events).toContainEqual({ type: 'expired', message: expect.any(String) });
    await new Promise((r) => setTimeout(r, 1500));
    expect(b.ws.readyState).toBe(WebSocket.OPEN);
    b.send({ action: 'ping', id: 'p' });
    await waitUntil(() => b.events.some((e) => e.type === 'pong'), 3000, 'a pong after the old token expired');
    b.ws.close();
  });
});

const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as { sub: string };

describe('limits', () => {
  it('rate-limits a flooding socket, then disconnects it: the limiter closes it, not the expiry sweeper', async () => {
    const { accessToken } = await signIn('alice@acme.test');
    const s = await socket(realtime(), { headers: { cookie: await login('alice@acme.test'), origin } });
    const started = Date.now();
    // Far more than the burst (5) plus the strikes that disconnect (5), faster than the refill (2/s).
    for (let i = 0; i < 300; i++) s.send({ action: 'whoami' }); // ping is API Gateway's own: it is not limited here
    const closed = await s.closed;
    expect(closed.code).toBe(1000); // API Gateway's close after the DELETE on @connections
    // Not the sweeper: the socket's credential had seconds left, and it was never told it expired.
    expect(s.events.some((e) => e.type === 'expired')).toBe(false);
    expect(closed.at - started).toBeLessThan(TOKEN_SECONDS * 1000);
    // 5 strikes disconnect; the last refusal's reply goes to a socket already closed.
    const limited = s.events.filter((e) => e.type === 'error' && e.code === 'rate_limited');
    expect(limited.length).toBeGreaterThanOrEqual(4);
    expect(t.logs.some((l) => l.includes('"rate_limit_disconnect"') && l.includes(`"userId":"${claimsOf(accessToken).sub}"`))).toBe(true);
    // Allowed: the burst, plus what refilled (2/s, and at most a second's slack) while the flood lasted.
    const answered = s.events.filter((e) => e.type === 'whoami').length;
    expect(answered).toBeGreaterThanOrEqual(5);
    expect(answered).toBeLessThanOrEqual(5 + Math.ceil(((closed.at - started) / 1000 + 1) * 2));
  });

  it('caps the connections of one user', async () => {
    const { accessToken } = await signIn('bob@acme.test');
    const open: Socket[] = [];
    for (let i = 0; i < 10; i++) open.push(await socket(realtime(), { headers: { Authorization: `Bearer ${accessToken}` } }));
    expect(open.every((s) => s.status === 101)).toBe(true);
    expect((await socket(realtime(), { headers: { Authorization: `Bearer ${accessToken}` } })).status).toBe(429);
    for (const s of open) s.ws.close();
  });
});

describe('disabled users', () => {
  // Cognito does not tell anyone it disabled a user; what ends a cookie session's sockets is the next renewal of its
  // access token, a refresh at Cognito that is refused. The window is one access-token lifetime (TOKEN_SECONDS here).
  it('closes a disabled user\'s cookie sockets, API and speech, within one access-token lifetime', async () => {
    const cookie = await login('carol@globex.test');
    const rt = await socket(realtime(), { headers: { cookie, origin } });
    const sp = await socket(speech(), { headers: { cookie, origin } });
    await waitUntil(() => sp.events.length > 0, 3000, 'speech ready');
    const disabledAt = Date.now();
    await t.system.cognito.client.send(new AdminDisableUserCommand({ UserPoolId: t.system.cognito.userPoolId, Username: 'carol@globex.test' }));
    try {
      // A renewal asked for now is refused: the server-side refresh at Cognito re-checks the user.
      rt.send({ action: 'refresh', id: 'renew' });
      await waitUntil(() => rt.events.some((e) => e.type === 'error' && e.code === 'refresh_refused') || rt.events.some((e) => e.type === 'refreshed'), 3000, 'the renewal answer');
      const [a, b] = await Promise.all([rt.closed, sp.closed]);
      windows.disabledRealtime = a.at - disabledAt;
      windows.disabledSpeech = b.at - disabledAt;
      expect(a.at - disabledAt).toBeLessThan(TOKEN_SECONDS * 1000 + 3000);
      expect(b.at - disabledAt).toBeLessThan(TOKEN_SECONDS * 1000 + 3000);
      expect(b).toMatchObject({ code: 1008, reason: 'session ended' });
      expect((await socket(realtime(), { headers: { cookie, origin } })).status).toBe(403);
    } finally {
      await t.system.cognito.client.send(new AdminEnableUserCommand({ UserPoolId: t.system.cognito.userPoolId, Username: 'carol@globex.test' }));
    }
  });
});

afterAll(() => {
  // The measured windows, for the README's threat model.
  // eslint-disable-next-line no-console -- the measured windows are reported for the README's threat model
  if (Object.keys(windows).length > 0) console.log(`measured windows (ms): ${JSON.stringify(windows)}`);
});

describe('logs', () => {
  it('never contain a token, refresh token, cookie, ticket or password issued in these flows', async () => {
    await new Promise((r) => setTimeout(r, 500)); // let the last log lines arrive
    expect(secrets.size).toBeGreaterThan(15);
    expect(t.logs.length).toBeGreaterThan(100);
    const leaks: string[] = [];
    for (const secret of secrets) {
      // Whole values, and each part of a JWT (a signature alone is enough to be a leak worth finding).
      const needles = [secret, ...secret.split('.').filter((part) => part.length >= 16)];
      for (const line of t.logs) if (needles.some((n) => line.includes(n))) leaks.push(line.slice(0, 120));
    }
    expect(leaks).toEqual([]);
    expect(t.logs.some((l) => l.includes(SESSION_COOKIE))).toBe(false);
  });
});
