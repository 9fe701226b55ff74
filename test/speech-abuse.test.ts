/**
 * The speech service against clients that try to take more than their share: many sessions at once, model streams
 * opened and closed in a loop, floods of control messages, handshakes trickled in byte by byte, and a credential
 * given twice. Real sockets, the local provider (or a counting one), tokens signed by test keys.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import WebSocket from 'ws';
import { createAuth, type Auth } from '../common/auth';
import type { SpeechEvent } from '../protocol';
import { SpeechService } from '../lib/speech-service';
import { speechConfig } from '../speech/config';
import type { ProviderSession, SpeechProvider } from '../speech/provider';
import { LocalSpeechProvider } from '../speech/providers/local';
import { SpeechServer } from '../speech/server';
import { CLIENT_ID, USER_POOL_ID, accessClaims, makeKey, serveJwks, signToken, type JwksServer } from './support/jwt';
import { memoryLogger } from './support/log';
import { waitUntil } from './support/wait';

const key = makeKey('abuse-key');
let jwks: JwksServer;
const servers: SpeechServer[] = [];

beforeAll(async () => {
  jwks = await serveJwks([key]);
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.shutdown()));
  await jwks.close();
});

async function start(overrides: Record<string, string> = {}, options: { provider?: SpeechProvider; wrap?: (auth: Auth) => Auth } = {}) {
  const config = speechConfig({ USER_POOL_ID, USER_POOL_CLIENT_ID: CLIENT_ID, JWKS_URI: jwks.url, SPEECH_PROVIDER: 'local', PORT: '0', ...overrides });
  const logger = memoryLogger();
  const auth = createAuth(config.auth);
  const server = new SpeechServer(config, { provider: options.provider ?? new LocalSpeechProvider(), auth: options.wrap ? options.wrap(auth) : auth, log: logger.log });
  const port = await server.listen(0, '127.0.0.1');
  servers.push(server);
  return { server, logger, port, url: `ws://127.0.0.1:${port}/ws/speech` };
}

/** A token of `user` in `tenant`. */
const token = (user = 'user-1111', tenant = 'acme', claims: Record<string, unknown> = {}) =>
  signToken(key, accessClaims({ sub: user, username: user, 'cognito:groups': [`tenant:${tenant}`], ...claims }));

function client(url: string, bearer: string) {
  const ws = new WebSocket(url, [], { headers: { Authorization: `Bearer ${bearer}` } });
  const events: SpeechEvent[] = [];
  let becameReady!: () => void;
  const readied = new Promise<void>((resolve) => (becameReady = resolve));
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const event = JSON.parse(data.toString()) as SpeechEvent;
    events.push(event);
    if (event.type === 'ready') becameReady();
  });
  ws.on('error', () => undefined);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const ready = () => events.some((e) => e.type === 'ready');
  /** 'ready', or the close code and reason of a session that never was. */
  const outcome = Promise.race([readied.then(() => 'ready'), closed.then((e) => `${e.code} ${e.reason}`)]);
  return { ws, events, closed, ready, outcome, send: (control: object) => ws.send(JSON.stringify(control)) };
}
type Client = ReturnType<typeof client>;
const outcome = (c: Client) => c.outcome;

/** A provider that only counts the model streams it was asked to open. */
function countingProvider() {
  const counter = { opened: 0, open: 0, provider: undefined as unknown as SpeechProvider };
  counter.provider = {
    name: 'counting',
    async open(): Promise<ProviderSession> {
      counter.opened++;
      counter.open++;
      await new Promise((r) => setTimeout(r, 5)); // a stream takes a moment to open
      return { audio: () => undefined, close: async () => void counter.open-- };
    },
  };
  return counter;
}

describe('session caps', () => {
  it('gives one user opening 10 sessions at once exactly 3, and a tenant exactly its cap, and lets others in', async () => {
    const { url } = await start({ MAX_SESSIONS_PER_TENANT: '5' });
    const same = Array.from({ length: 10 }, () => client(url, token('user-1111')));
    const results = await Promise.all(same.map(outcome));
    expect(results.filter((r) => r === 'ready')).toHaveLength(3);
    expect(results.filter((r) => r !== 'ready')).toEqual(Array(7).fill('1013 too many sessions for this user'));

    // Ten other users of the same tenant, at once: the tenant has room for two more.
    const colleagues = Array.from({ length: 10 }, (_, i) => client(url, token(`colleague-${i}`)));
    const theirs = await Promise.all(colleagues.map(outcome));
    expect(theirs.filter((r) => r === 'ready')).toHaveLength(2);
    expect(theirs.filter((r) => r !== 'ready')).toEqual(Array(8).fill('1013 too many sessions for this tenant'));

    // Another tenant is unaffected; a user who closes a session may open one again.
    expect(await outcome(client(url, token('user-2222', 'globex')))).toBe('ready');
    const mine = same.filter((c) => c.ready());
    mine[0].ws.close();
    await mine[0].closed;
    await waitUntil(async () => (await outcome(client(url, token('user-1111')))) === 'ready', 3000, 'a freed slot');
  });
});

describe('model streams per minute', () => {
  /** start, then stop, `cycles` times, each waiting for its answer; the codes of the refused starts. */
  async function cycle(c: Client, cycles: number): Promise<string[]> {
    const refused: string[] = [];
    for (let i = 0; i < cycles; i++) {
      const seen = c.events.length;
      c.send({ type: 'start' });
      await waitUntil(() => c.events.slice(seen).some((e) => e.type === 'started' || e.type === 'error'), 3000, `start ${i}`);
      const answer = c.events.slice(seen).find((e) => e.type === 'started' || e.type === 'error')!;
      if (answer.type === 'error') refused.push(answer.code);
      const stopped = c.events.length;
      c.send({ type: 'stop' });
      await waitUntil(() => c.events.slice(stopped).some((e) => e.type === 'stopped'), 3000, `stop ${i}`);
    }
    return refused;
  }
  // Control messages are limited too; here only the start limit is under test.
  const manyControls = { MAX_CONTROL_MESSAGES_PER_SECOND: '10000', CONTROL_MESSAGE_BURST: '10000' };

  it('opens at most 10 a minute for a user over 50 start/stop cycles, and a new session does not refill it', async () => {
    const counter = countingProvider();
    const { url } = await start(manyControls, { provider: counter.provider });
    const c = client(url, token('user-1111'));
    await waitUntil(c.ready, 3000, 'ready');
    const began = Date.now();
    const refused = await cycle(c, 50);
    const allowed = 10 + Math.floor(((Date.now() - began) / 60_000) * 10);
    expect(counter.opened).toBeLessThanOrEqual(allowed);
    expect(counter.opened).toBeGreaterThanOrEqual(10);
    expect(refused).toEqual(Array(50 - counter.opened).fill('rate_limited'));
    expect(c.events.find((e) => e.type === 'error')).toMatchObject({ message: expect.stringMatching(/^Too many starts; try again in \d+ s\.$/) });

    const again = client(url, token('user-1111'));
    await waitUntil(again.ready, 3000, 'ready');
    expect(await cycle(again, 1)).toEqual(['rate_limited']);
    const other = client(url, token('user-2222'));
    await waitUntil(other.ready, 3000, 'ready');
    expect(await cycle(other, 1)).toEqual([]);
    expect(counter.open).toBe(0);
  });

  it('holds the per-session and per-user limits against three sessions of one user, blasting starts and cycling at once', async () => {
    const counter = countingProvider();
    const { url } = await start({ ...manyControls, MAX_STARTS_PER_MINUTE: '5', MAX_STARTS_PER_MINUTE_PER_SESSION: '2' }, { provider: counter.provider });
    const sessions = [client(url, token('user-1111')), client(url, token('user-1111')), client(url, token('user-1111'))];
    await waitUntil(() => sessions.every((s) => s.ready()), 3000, 'ready');
    // Sent without waiting for answers: starts race the stops and each other.
    for (const s of sessions) for (let i = 0; i < 50; i++) [{ type: 'start' }, { type: 'stop' }].forEach((m) => s.send(m));
    await waitUntil(() => sessions.every((s) => s.events.filter((e) => e.type === 'stopped').length === 50), 10_000, 'every stop answered');
    expect(counter.opened).toBeLessThanOrEqual(5);
    expect(counter.open).toBe(0); // a stop that overtook a stream still opening ended it
    // Then all three at once, each as fast as the answers come.
    await Promise.all(sessions.map((s) => cycle(s, 50)));
    expect(counter.opened).toBe(5);
    const started = sessions.map((s) => s.events.filter((e) => e.type === 'started').length);
    expect(Math.max(...started)).toBeLessThanOrEqual(2);
    expect(counter.open).toBe(0);
  });
});

describe('control messages', () => {
  it('closes a session that floods control messages with 1008 after its burst, having checked few of them', async () => {
    let refreshes = 0;
    const wrap = (auth: Auth): Auth => ({ ...auth, refresh: (...args) => (refreshes++, auth.refresh(...args)) });
    const { url, logger } = await start({}, { wrap });
    const flood = client(url, token());
    const steady = client(url, token('user-2222'));
    await waitUntil(() => flood.ready() && steady.ready(), 3000, 'ready');
    const fresh = token();
    for (let i = 0; i < 500; i++) flood.send({ type: 'refresh', token: fresh });
    const late = new Promise((r) => setTimeout(() => r('still open after 3 s'), 3000).unref());
    expect(await Promise.race([flood.closed, late])).toEqual({ code: 1008, reason: 'too many control messages' });
    expect(refreshes).toBeGreaterThanOrEqual(20);
    expect(refreshes).toBeLessThanOrEqual(25); // the burst, and what refilled meanwhile
    expect(logger.events().filter((e) => e.event === 'speech_control_flood')).toHaveLength(1);

    // Eight a second for three seconds is within the rate.
    for (let i = 0; i < 24; i++) {
      steady.send({ type: 'refresh', token: token('user-2222') });
      await new Promise((r) => setTimeout(r, 125));
    }
    await waitUntil(() => steady.events.filter((e) => e.type === 'refreshed').length === 24, 3000, 'every refresh answered');
    expect(steady.ws.readyState).toBe(WebSocket.OPEN);
    steady.ws.close();
  });
});

describe('slow handshakes', () => {
  it('drops 300 handshakes trickled in byte by byte within seconds, while a real session opens and stays', async () => {
    const headersTimeoutMs = 2000;
    const { url, port } = await start({ HEADERS_TIMEOUT_MS: String(headersTimeoutMs), REQUEST_TIMEOUT_MS: String(headersTimeoutMs) });
    const began = Date.now();
    const heldFor: number[] = [];
    const request = 'GET /ws/speech HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n';
    const trickles = Array.from({ length: 300 }, (_, i) => {
      const socket = connect(port, '127.0.0.1');
      // Half stall in the request line, half in the headers.
      const text = i % 2 === 0 ? request : `${request}X-Padding: ${'a'.repeat(100_000)}`;
      let at = i % 2 === 0 ? 0 : request.length;
      socket.once('connect', () => i % 2 === 1 && socket.write(request));
      const timer = setInterval(() => socket.writable && at < text.length && socket.write(text[at++]), 200);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearInterval(timer);
        heldFor.push(Date.now() - began);
      });
      return socket;
    });
    await new Promise((r) => setTimeout(r, 300));
    const real = client(url, token());
    await waitUntil(real.ready, 1500, 'a real session to open meanwhile');

    await waitUntil(() => heldFor.length === trickles.length, 10_000, 'every trickling socket dropped');
    expect(Math.min(...heldFor)).toBeGreaterThanOrEqual(headersTimeoutMs - 100);
    expect(Math.max(...heldFor)).toBeLessThan(headersTimeoutMs + 1000 + 1500); // the time-out, one check interval, slack
    // An upgraded socket is no request in progress: the time-outs never end a session.
    await new Promise((r) => setTimeout(r, headersTimeoutMs + 1000));
    expect(real.ws.readyState).toBe(WebSocket.OPEN);
    real.ws.close();
  });
});

describe('a credential given twice', () => {
  /** Sends a handshake with exactly these extra header lines; resolves with the status line and the first frame. */
  function handshake(port: number, lines: string[]): Promise<{ status: string; opcode?: number; code?: number; text?: string }> {
    return new Promise((resolve, reject) => {
      const socket: Socket = connect(port, '127.0.0.1', () =>
        socket.write(
          [
            'GET /ws/speech HTTP/1.1',
            'Host: 127.0.0.1',
            'Upgrade: websocket',
            'Connection: Upgrade',
            `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
            'Sec-WebSocket-Version: 13',
            ...lines,
            '',
            '',
          ].join('\r\n'),
        ),
      );
      let received = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        const end = received.indexOf('\r\n\r\n');
        if (end < 0) return;
        const status = received.subarray(0, received.indexOf('\r\n')).toString();
        const frame = received.subarray(end + 4);
        if (!status.includes('101')) return resolve({ status });
        if (frame.length < 2 || frame.length < 2 + (frame[1] & 0x7f)) return; // server frames are unmasked, short
        const payload = frame.subarray(2, 2 + (frame[1] & 0x7f));
        const opcode = frame[0] & 0x0f;
        socket.destroy();
        resolve(opcode === 8 ? { status, opcode, code: payload.readUInt16BE(0), text: payload.subarray(2).toString() } : { status, opcode, text: payload.toString() });
      });
      socket.on('error', reject);
    });
  }

  it('refuses two Authorization headers with 1008 malformed_token, whichever comes first', async () => {
    const { port } = await start();
    const refused = { status: 'HTTP/1.1 101 Switching Protocols', opcode: 8, code: 1008, text: 'unauthorized: malformed_token' };
    // Node keeps only the first of repeated Authorization headers; API Gateway refuses them all.
    expect(await handshake(port, [`Authorization: Bearer ${token()}`, `Authorization: Bearer ${token('user-2222')}`])).toEqual(refused);
    expect(await handshake(port, [`Authorization: Bearer ${token()}`, 'Authorization: Basic YWRtaW46YWRtaW4='])).toEqual(refused);
    expect(await handshake(port, [`Authorization: Bearer ${token()}`, `authorization: Bearer ${token()}`])).toEqual(refused);
    // The same client with one header is let in (and a header named like an object's prototype is just a header).
    const once = await handshake(port, [`Authorization: Bearer ${token()}`, '__proto__: x', 'constructor: y']);
    expect(once).toMatchObject({ opcode: 1, text: expect.stringContaining('"type":"ready"') });
  });
});

describe('configuration', () => {
  const base = { USER_POOL_ID, USER_POOL_CLIENT_ID: CLIENT_ID };

  it('defaults to 3 sessions a user, 20 a tenant, 10 starts a minute, 10 controls a second (20 at once), 5 s for headers', () => {
    expect(speechConfig(base)).toMatchObject({
      maxSessions: 50,
      maxSessionsPerUser: 3,
      maxSessionsPerTenant: 20,
      maxStartsPerMinute: 10,
      maxStartsPerMinutePerSession: 10,
      maxControlMessagesPerSecond: 10,
      controlMessageBurst: 20,
      headersTimeoutMs: 5000,
      requestTimeoutMs: 10_000,
      connectionsCheckIntervalMs: 1000,
    });
    expect(speechConfig({ ...base, HEADERS_TIMEOUT_MS: '20000' }).requestTimeoutMs).toBe(20_000);
    expect(() => speechConfig({ ...base, HEADERS_TIMEOUT_MS: '5000', REQUEST_TIMEOUT_MS: '1000' })).toThrow('REQUEST_TIMEOUT_MS must be at least HEADERS_TIMEOUT_MS');
    expect(() => speechConfig({ ...base, MAX_SESSIONS_PER_USER: '0' })).toThrow('MAX_SESSIONS_PER_USER must be a positive number');
  });

  it('passes the limits set on the construct to the task, and leaves unset ones to the service', () => {
    const stack = new Stack(new App(), 'SpeechLimits', { env: { account: '123456789012', region: 'eu-west-1' } });
    const pool = new cognito.UserPool(stack, 'Pool');
    const props = {
      vpc: new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 }),
      userPool: pool,
      userPoolClient: pool.addClient('Client'),
      maxTokenLifetime: Duration.hours(1),
      tenantGroupPrefix: 'tenant:',
      authEnvironment: {},
    };
    new SpeechService(stack, 'Speech', { ...props, maxSessionsPerUser: 2, maxStartsPerMinute: 4, headersTimeout: Duration.seconds(3) });
    const environment = Object.values(Template.fromStack(stack).findResources('AWS::ECS::TaskDefinition'))[0].Properties.ContainerDefinitions[0]
      .Environment as Array<{ Name: string; Value: string }>;
    const env = Object.fromEntries(environment.map((e) => [e.Name, e.Value]));
    expect(env).toMatchObject({ MAX_SESSIONS_PER_USER: '2', MAX_STARTS_PER_MINUTE: '4', HEADERS_TIMEOUT_MS: '3000' });
    expect(env).not.toHaveProperty('MAX_SESSIONS_PER_TENANT');
    expect(speechConfig({ ...base, ...env })).toMatchObject({ maxSessionsPerUser: 2, maxSessionsPerTenant: 20, maxStartsPerMinute: 4, headersTimeoutMs: 3000 });
  });
});
