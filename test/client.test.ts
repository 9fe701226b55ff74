/**
 * The client's ordering, de-duplication, gap repair, request correlation and reconnect backoff, against a scripted
 * in-memory socket (the end-to-end tests cover the same client over real sockets).
 */
import { GatehouseClient, type SocketFactory, type SocketLike } from '@gatehouse/client';
import type { MessageEvent } from '../protocol';

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: Array<Record<string, unknown>> = [];
  onopen: SocketLike['onopen'] = null;
  onclose: SocketLike['onclose'] = null;
  onmessage: SocketLike['onmessage'] = null;
  onerror: SocketLike['onerror'] = null;
  constructor(readonly token: string) {}
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  /** How it was closed (by the client, or the test standing in for the server). */
  closedWith?: { code: number; reason: string };
  close(code = 1000, reason = '') {
    this.readyState = 3;
    this.closedWith = { code, reason };
    this.onclose?.({ code, reason });
  }
  push(event: unknown) {
    this.onmessage?.({ data: JSON.stringify(event) });
  }
  /** Answers the last request of this action with `reply` (plus its id). */
  reply(action: string, reply: Record<string, unknown>) {
    const request = [...this.sent].reverse().find((m) => m.action === action);
    if (!request) throw new Error(`no ${action} request`);
    this.push({ ...reply, id: request.id });
  }
}

const msg = (seq: number, room = 'r'): MessageEvent => ({
  type: 'message',
  room,
  seq,
  messageId: `m${seq}`,
  sender: { userId: 'u', name: 'U' },
  ts: 0,
  data: seq,
});

const clients: GatehouseClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

function setup(options: Partial<ConstructorParameters<typeof GatehouseClient>[0]> = {}) {
  const sockets: FakeSocket[] = [];
  let tokens = 0;
  const factory: SocketFactory = (_url, token) => {
    const socket = new FakeSocket(token);
    sockets.push(socket);
    return socket;
  };
  const client = new GatehouseClient({
    url: 'ws://test',
    token: () => `token-${++tokens}`,
    socket: factory,
    gapRepairMs: 50,
    heartbeatMs: 60_000,
    reconnect: { initialDelayMs: 10, jitter: 0 },
    renew: false,
    ...options,
  });
  clients.push(client);
  const received: number[] = [];
  client.on('message', (m) => received.push(m.seq));
  return { client, sockets, received, last: () => sockets[sockets.length - 1] };
}

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

async function connected() {
  const s = setup();
  const connecting = s.client.connect();
  await tick();
  s.last().open();
  await connecting;
  return s;
}

/** Connected with a credential 61 s from expiry, renewing 60 s ahead: the renewal is due by now. */
async function nearExpiry(options: Partial<ConstructorParameters<typeof GatehouseClient>[0]>) {
  const s = setup({ renew: 'token', renewMarginMs: 60_000, ...options });
  const connecting = s.client.connect();
  await tick();
  s.last().open();
  await connecting;
  await tick();
  s.last().reply('whoami', { type: 'whoami', tokenExpiresAt: Math.floor(Date.now() / 1000) + 61 });
  await tick(1100);
  return s;
}

async function joined(s: Awaited<ReturnType<typeof connected>>, seq: number) {
  const joining = s.client.join('r');
  s.last().reply('join', { type: 'joined', room: 'r', seq });
  return joining;
}

describe('GatehouseClient', () => {
  it('correlates replies with requests and turns error events into rejections', async () => {
    const { client, last } = await connected();
    const pong = client.ping();
    const who = client.whoami();
    last().reply('whoami', { type: 'whoami', userId: 'u' });
    last().reply('ping', { type: 'pong', ts: 1 });
    await expect(pong).resolves.toMatchObject({ type: 'pong' });
    await expect(who).resolves.toMatchObject({ type: 'whoami' });
    const send = client.send('nowhere', 1);
    last().reply('send', { type: 'error', code: 'not_member', message: 'Join first' });
    await expect(send).rejects.toMatchObject({ name: 'GatehouseError', code: 'not_member' });
  });

  it('delivers room messages in sequence order, exactly once, starting after the join point', async () => {
    const s = await connected();
    const joining = s.client.join('r');
    s.last().push(msg(5)); // before the join completed and at/below its head: history, not news
    s.last().push(msg(7)); // after the head, ahead of 6
    s.last().reply('join', { type: 'joined', room: 'r', seq: 5 });
    await joining;
    s.last().push(msg(6));
    s.last().push(msg(6)); // duplicate
    s.last().push(msg(8));
    s.last().push(msg(7)); // duplicate
    expect(s.received).toEqual([6, 7, 8]);
  });

  it('asks the server to replay a gap that stays open, and delivers the replay in order', async () => {
    const s = await connected();
    await joined(s, 0);
    s.last().push(msg(1));
    s.last().push(msg(3)); // 2 was lost in flight
    expect(s.received).toEqual([1]);
    await tick(80);
    const resume = s.last().sent.filter((m) => m.action === 'join').pop();
    expect(resume).toMatchObject({ action: 'join', room: 'r', after: 1 });
    s.last().push(msg(2));
    s.last().reply('join', { type: 'joined', room: 'r', seq: 3, replayed: 1 });
    await tick();
    expect(s.received).toEqual([1, 2, 3]);
  });

  it('skips what the server says is gone, and reports it', async () => {
    const s = await connected();
    const gaps: unknown[] = [];
    s.client.on('gap', (g) => gaps.push(g));
    await joined(s, 0);
    s.last().push(msg(4));
    await tick(80);
    s.last().reply('join', { type: 'joined', room: 'r', seq: 4, replayed: 0, gap: { from: 1, to: 3 } });
    await tick();
    expect(gaps).toEqual([{ room: 'r', from: 1, to: 3 }]);
    expect(s.received).toEqual([4]);
  });

  it('reconnects with a fresh token after an unrequested close and resumes each room from its last sequence', async () => {
    const s = await connected();
    await joined(s, 10);
    s.last().push(msg(11));
    s.last().close(1001, 'Going away');
    expect(s.client.state).toBe('reconnecting');
    await tick(30);
    expect(s.sockets).toHaveLength(2);
    expect(s.sockets.map((x) => x.token)).toEqual(['token-1', 'token-2']);
    s.last().open();
    await tick();
    // Every room in one frame (one invocation), each from its last sequence number.
    expect(s.last().sent.filter((m) => m.action !== 'whoami')).toEqual([expect.objectContaining({ action: 'join_rooms', rooms: [{ room: 'r', after: 11 }] })]);
  });

  it('rejoins many rooms ten to a frame after a reconnect, applies each answer, and reports a room that failed', async () => {
    const s = await connected();
    const names = Array.from({ length: 12 }, (_, i) => `room-${i}`);
    for (const name of names) {
      const joining = s.client.join(name);
      s.last().reply('join', { type: 'joined', room: name, seq: 5 });
      await joining;
    }
    const errors: string[] = [];
    s.client.on('error', (err) => errors.push(err.message));
    s.last().close(1001, 'Going away');
    await tick(30);
    s.last().open();
    await tick();
    const frames = s.last().sent.filter((m) => m.action === 'join_rooms');
    expect(frames.map((f) => (f.rooms as unknown[]).length)).toEqual([10, 2]);
    const [first, second] = frames;
    s.last().push({
      type: 'joined_rooms',
      id: first.id,
      results: (first.rooms as Array<{ room: string }>).map(({ room }) => (room === 'room-3' ? { type: 'error', code: 'forbidden', message: 'Not any more', room } : { type: 'joined', room, seq: 7, presence: { users: [], live: true } })),
    });
    s.last().push({ type: 'joined_rooms', id: second.id, results: (second.rooms as Array<{ room: string }>).map(({ room }) => ({ type: 'joined', room, seq: 6, presence: { users: [], live: true } })) });
    await tick();
    expect(errors).toEqual(['Not any more']);
    // Each room from its last sequence number.
    expect((first.rooms as Array<{ after: number }>).every((r) => r.after === 5)).toBe(true);
  });

  it('holds requests about a room until its rejoin after a reconnect is answered (the new connection is not in it before)', async () => {
    const s = await connected();
    await joined(s, 10);
    s.last().close(1001, 'Going away');
    await tick(30);
    s.last().open();
    await tick();
    // Typed the moment the socket is back: nothing about the room may overtake its join.
    const sending = s.client.send('r', 'hello');
    const reading = s.client.read('r');
    const paging = s.client.history('r');
    await tick(20);
    const actions = () => s.last().sent.map((m) => m.action).filter((a) => a !== 'whoami');
    expect(actions()).toEqual(['join_rooms']);
    s.last().reply('join_rooms', { type: 'joined_rooms', results: [{ type: 'joined', room: 'r', seq: 10 }] });
    await tick();
    expect(actions()).toEqual(['join_rooms', 'send', 'read', 'history']);
    s.last().reply('send', { type: 'sent', room: 'r', seq: 11, messageId: 'm11', delivered: 1 });
    s.last().reply('read', { type: 'read', room: 'r', seq: 10 });
    s.last().reply('history', { type: 'history', room: 'r', messages: [] });
    await expect(Promise.all([sending, reading, paging])).resolves.toBeDefined();
  });

  it('backs off exponentially between failed reconnects, and stops for good on close()', async () => {
    const s = await connected();
    const delays: number[] = [];
    s.client.on('state', (e) => e.retryInMs !== undefined && delays.push(e.retryInMs));
    s.last().close(1006, '');
    for (let i = 0; i < 3; i++) {
      await tick(10 * 2 ** i + 20);
      s.last().close(1006, ''); // the reconnect attempt fails before opening
    }
    expect(delays).toEqual([10, 20, 40, 80]);
    await s.client.close();
    const count = s.sockets.length;
    await tick(200);
    expect(s.sockets).toHaveLength(count);
    expect(s.client.state).toBe('closed');
  });

  it('rejects connect() when the first attempt is refused', async () => {
    const s = setup();
    const connecting = s.client.connect();
    await tick();
    s.last().onerror?.({ message: 'Unexpected server response: 403' });
    s.last().close(1006, '');
    await expect(connecting).rejects.toMatchObject({ code: 'handshake', status: 403 });
    expect(s.client.state).toBe('closed');
  });

  it('pings only a socket that has been quiet for heartbeatMs, without an id, and takes the next pong as the answer', async () => {
    const s = setup({ heartbeatMs: 60, requestTimeoutMs: 1000 });
    const connecting = s.client.connect();
    await tick();
    s.last().open();
    await connecting;
    const pings = () => s.last().sent.filter((m) => m.action === 'ping');
    // Traffic every 20 ms (API Gateway's idle timer is reset by it): no ping is needed.
    for (let i = 0; i < 8; i++) {
      s.last().push({ type: 'unread', rooms: [] });
      await tick(20);
    }
    expect(pings()).toEqual([]);
    await tick(90); // quiet for longer than heartbeatMs
    expect(pings()).toEqual([{ action: 'ping' }]); // no id: API Gateway's mock pong cannot echo one
    s.last().push({ type: 'pong', ts: 1 });
    await tick(30);
    expect(s.client.state).toBe('open');
    await s.client.close();
  });

  it('closes a connection whose heartbeat gets no answer, which triggers a reconnect', async () => {
    const s = setup({ heartbeatMs: 20, requestTimeoutMs: 20 });
    const connecting = s.client.connect();
    await tick();
    s.last().open();
    await connecting;
    await tick(80);
    expect(s.sockets[0].readyState).toBe(3);
    expect(s.sockets.length).toBeGreaterThanOrEqual(2);
    await s.client.close();
  });

  it('renews by reconnecting when the renewal falls in the connection\'s last 15 minutes (one reconnect instead of a refresh and the 2-hour one)', async () => {
    const opened = Date.now();
    const clock = jest.spyOn(Date, 'now');
    try {
      const s = setup({ renew: 'token', renewMarginMs: 60_000 });
      const connecting = s.client.connect();
      await tick();
      s.last().open();
      await connecting;
      await tick();
      // 1 h 50 min into the connection (API Gateway ends it at 2 h), the credential is due.
      clock.mockImplementation(() => opened + 110 * 60_000);
      s.last().reply('whoami', { type: 'whoami', tokenExpiresAt: Math.floor(Date.now() / 1000) + 61 });
      await tick(1100);
      expect(s.sockets[0].sent.some((m) => m.action === 'refresh')).toBe(false);
      expect(s.sockets[0].closedWith).toEqual({ code: 4002, reason: 'renewing by reconnecting' });
      await tick(1000);
      expect(s.sockets.length).toBe(2); // a new connection, with a fresh token
      expect(s.sockets[1].token).toBe('token-2');
      await s.client.close();
    } finally {
      clock.mockRestore();
    }
  });

  it('renews the socket with a fresh token before it expires', async () => {
    const s = await nearExpiry({});
    const refresh = s.last().sent.find((m) => m.action === 'refresh');
    expect(refresh).toMatchObject({ action: 'refresh', token: 'token-2' });
    s.last().reply('refresh', { type: 'refreshed', tokenExpiresAt: Math.floor(Date.now() / 1000) + 3600 });
    await tick();
    expect(s.client.state).toBe('open');
  });

  it('stops for good when the server says the sign-in ended', async () => {
    const s = await connected();
    const states: string[] = [];
    s.client.on('state', (e) => states.push(e.state));
    s.last().push({ type: 'signed_out', everywhere: false });
    s.last().close(1000, '');
    await tick(50);
    expect(states).toEqual(['signed_out']);
    expect(s.sockets).toHaveLength(1);
  });

  it('renews with renewToken when the connect credential is a one-time ticket', async () => {
    const s = await nearExpiry({ token: () => 'ticket-1', renewToken: () => 'access-token' });
    expect(s.last().token).toBe('ticket-1');
    expect(s.last().sent.find((m) => m.action === 'refresh')).toMatchObject({ token: 'access-token' });
  });

  it('opens no socket for a connect that was closed while it fetched its credential', async () => {
    let release!: (token: string) => void;
    const s = setup({ token: () => new Promise<string>((resolve) => (release = resolve)) });
    // A React effect mounted, cleaned up and mounted again (StrictMode): connect, close, connect.
    const first = s.client.connect();
    await s.client.close();
    const firstRelease = release;
    const second = s.client.connect();
    firstRelease('stale');
    await first;
    release('fresh');
    await tick();
    expect(s.sockets.map((socket) => socket.token)).toEqual(['fresh']);
    s.last().open();
    await second;
    expect(s.client.state).toBe('open');
  });

  it('ends in signed_out instead of knocking forever when a fresh credential is refused on reconnect', async () => {
    const s = await connected();
    const states: Array<{ state: string; reason?: string }> = [];
    s.client.on('state', (e) => states.push({ state: e.state, ...(e.reason ? { reason: e.reason } : {}) }));
    s.last().close(1006, '');
    await tick(30);
    s.last().onerror?.({ message: 'Unexpected server response: 403' });
    s.last().close(1006, '');
    await tick(100);
    expect(s.client.state).toBe('signed_out');
    expect(states[states.length - 1]).toEqual({ state: 'signed_out', reason: 'session_ended' });
    const count = s.sockets.length;
    await tick(100);
    expect(s.sockets).toHaveLength(count); // no more attempts
  });

  it('asks stillSignedIn after a reconnect fails without a status (as in a browser), and stops when it says no', async () => {
    let signedIn = true;
    const s = setup({ stillSignedIn: async () => signedIn });
    const connecting = s.client.connect();
    await tick();
    s.last().open();
    await connecting;
    s.last().close(1006, '');
    await tick(30);
    s.last().close(1006, ''); // refused, cause unknown: still signed in, so try again
    await tick(40);
    expect(s.client.state).toBe('reconnecting');
    signedIn = false;
    s.last().close(1006, '');
    await tick(100);
    expect(s.client.state).toBe('signed_out');
  });

  it('does not reconnect after a close the catalog marks final', async () => {
    const s = await connected();
    s.last().close(1008, 'policy');
    await tick(50);
    expect(s.client.state).toBe('closed');
    expect(s.sockets).toHaveLength(1);
  });

  it('applies one user\'s presence changes by version, whatever order they arrive in', async () => {
    const s = await connected();
    const joining = s.client.join('r');
    s.last().reply('join', { type: 'joined', room: 'r', seq: 0, presence: { users: [{ userId: 'a', name: 'A', v: 1 }], live: true } });
    await joining;
    s.last().push({ type: 'presence', room: 'r', change: 'left', user: { userId: 'b', name: 'B' }, v: 4 });
    s.last().push({ type: 'presence', room: 'r', change: 'joined', user: { userId: 'b', name: 'B' }, v: 3 }); // older: ignored
    expect(s.client.presenceOf('r').map((u) => u.userId)).toEqual(['a']);
    s.last().push({ type: 'presence', room: 'r', change: 'joined', user: { userId: 'b', name: 'B' }, v: 5 });
    expect(s.client.presenceOf('r').map((u) => u.userId)).toEqual(['a', 'b']);
  });

  it('empties presence and typing for a room it leaves, so listeners do not keep showing the last view', async () => {
    const s = await connected();
    const joining = s.client.join('r');
    s.last().reply('join', { type: 'joined', room: 'r', seq: 0, presence: { users: [{ userId: 'a', name: 'A', v: 1 }], live: true } });
    await joining;
    s.last().push({ type: 'typing', room: 'r', user: { userId: 'a', name: 'A' }, expiresInMs: 5000 });
    const seen: string[] = [];
    s.client.on('presence', (p) => seen.push(`presence ${p.room} ${p.users.length}`));
    s.client.on('typing', (t) => seen.push(`typing ${t.room} ${t.users.length}`));
    const leaving = s.client.leave('r');
    s.last().reply('leave', { type: 'left', room: 'r' });
    await leaving;
    expect(seen).toEqual(['presence r 0', 'typing r 0']);
    expect(s.client.presenceOf('r')).toEqual([]);
  });

  it('shows a typing indicator until it expires or that user\'s message arrives', async () => {
    const s = await connected();
    await joined(s, 0);
    s.last().push({ type: 'typing', room: 'r', user: { userId: 'u', name: 'U' }, expiresInMs: 40 });
    expect(s.client.typingIn('r')).toEqual([{ userId: 'u', name: 'U' }]);
    await tick(60);
    expect(s.client.typingIn('r')).toEqual([]);
    s.last().push({ type: 'typing', room: 'r', user: { userId: 'u', name: 'U' }, expiresInMs: 5000 });
    s.last().push(msg(1));
    expect(s.client.typingIn('r')).toEqual([]);
  });

  it('orders edits and deletions with the room\'s messages and counts unread messages from others', async () => {
    const s = await connected();
    await joined(s, 0);
    const order: string[] = [];
    s.client.on('message', (m) => order.push(`message ${m.seq}`));
    s.client.on('changed', (c) => order.push(`${c.type} ${c.seq}->${c.target}`));
    s.last().push({ type: 'message.deleted', room: 'r', seq: 3, ts: 0, target: 1, by: { userId: 'u', name: 'U' } });
    s.last().push(msg(2));
    s.last().push(msg(1));
    expect(order).toEqual(['message 1', 'message 2', 'message.deleted 3->1']);
    expect(s.client.unreadIn('r')).toBe(2);
  });

  it('asks stillSignedIn when the token provider fails on a reconnect, and stops when the sign-in is gone', async () => {
    let fail = false;
    const s = setup({ token: () => (fail ? Promise.reject(new Error('session gone')) : 'token'), stillSignedIn: async () => !fail });
    const connecting = s.client.connect();
    await tick();
    s.last().open();
    await connecting;
    fail = true;
    s.last().close(1006, '');
    await tick(100);
    expect(s.client.state).toBe('signed_out');
    expect(s.sockets).toHaveLength(1);
  });

  it('gives up on a token provider or a handshake that never answers, and tries again', async () => {
    let hang = false;
    const s = setup({ token: () => (hang ? new Promise<string>(() => undefined) : 'token'), connectTimeoutMs: 40 });
    const connecting = s.client.connect();
    await tick();
    s.last().open();
    await connecting;
    hang = true;
    s.last().close(1006, '');
    await tick(120); // the provider hung: the attempt failed by its time-out, and the next one is scheduled
    expect(s.client.state).toBe('reconnecting');
    hang = false;
    await tick(150);
    const stuck = s.last(); // a handshake that never completes
    await tick(100);
    expect(stuck.readyState).toBe(3);
    expect(s.sockets.length).toBeGreaterThan(2);
    s.last().open();
    await tick();
    expect(s.client.state).toBe('open');
  });
});
