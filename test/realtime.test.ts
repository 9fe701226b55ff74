import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { ServerEvent } from '../protocol';
import { authConfig, createAuth } from '../common/auth';
import { realtimeConfig } from '../lambda/core/config';
import { connect, disconnect } from '../lambda/core/connection';
import { toAuthorizerContext, type Identity } from '../lambda/core/identity';
import { handleMessage, type MessageDeps } from '../lambda/core/messages';
import { handlePublish } from '../lambda/core/publish';
import { ConnectionStore } from '../lambda/core/store';
import { startConnectionsEndpoint, type ConnectionsEndpoint } from './support/connections-endpoint';
import { memoryLogger } from './support/log';
import { startStore, type StoreFixture } from './support/store';

let fx: StoreFixture;
let endpoint: ConnectionsEndpoint;
let deps: MessageDeps;
let logger: ReturnType<typeof memoryLogger>;

const person = (userId: string, tenantId: string, groups: string[]): Identity => ({
  userId,
  username: userId.slice(2),
  tenantId,
  groups,
  tokenExpiresAt: 4_000_000_000,
  signIn: `${userId}-sign-in`,
  issuedAt: 1_700_000_000,
});
const people: Record<string, Identity> = {
  alice: person('u-alice', 'acme', ['tenant:acme']),
  bob: person('u-bob', 'acme', ['tenant:acme']),
  carol: person('u-carol', 'globex', ['tenant:globex']),
  root: person('u-root', 'acme', ['tenant:acme', 'admin']),
};

beforeAll(async () => {
  fx = await startStore();
  endpoint = await startConnectionsEndpoint();
});
afterAll(async () => {
  await endpoint.close();
  await fx.close();
});
beforeEach(() => {
  logger = memoryLogger();
  endpoint.received.clear();
  deps = {
    store: fx.store,
    api: endpoint.client,
    log: logger.log,
    config: realtimeConfig({
      TABLE_NAME: fx.tableName,
      CONNECTIONS_URL: endpoint.url,
      MAX_DATA_BYTES: '200',
      MAX_ROOMS_PER_CONNECTION: '3',
      // Generous here; the limiter has its own tests.
      RATE_LIMIT_PER_SECOND: '1000',
      RATE_LIMIT_BURST: '1000',
      USER_RATE_LIMIT_PER_SECOND: '1000',
      USER_RATE_LIMIT_BURST: '1000',
      MAX_CONNECTIONS_PER_USER: '1000',
    }),
    auth: createAuth(authConfig({ USER_POOL_ID: 'eu-west-1_TestPool1', USER_POOL_CLIENT_ID: 'test', TABLE_NAME: fx.tableName }, { allowQueryToken: false }), {
      db: fx.dynamo.doc,
    }),
  };
});

let seq = 0;
/** Opens a connection for a person, as $connect would after the authorizer allowed it. */
async function open(who: keyof typeof people, headers: Record<string, string> = {}) {
  const connectionId = `${who}-${++seq}`;
  const authorizer = toAuthorizerContext(people[who], 'header');
  const response = await connect({ connectionId, headers, authorizer }, deps);
  expect(response.statusCode).toBe(200);
  endpoint.live.add(connectionId);
  const send = (frame: unknown) =>
    handleMessage({ connectionId, body: typeof frame === 'string' ? frame : JSON.stringify(frame) }, deps);
  // Room traffic only: presence, typing and receipt signals have tests of their own (conversation.test.ts).
  const signals = new Set(['presence', 'typing', 'receipt']);
  const inbox = () => ((endpoint.received.get(connectionId) ?? []) as ServerEvent[]).filter((e) => !signals.has(e.type));
  return { connectionId, send, inbox };
}

async function tableItems() {
  const { Items } = await fx.dynamo.doc.send(new ScanCommand({ TableName: fx.tableName }));
  return (Items ?? []).map((i) => `${i.pk}|${i.sk}`).sort();
}

describe('$connect / $disconnect', () => {
  it('records the connection with the identity from the authorizer context', async () => {
    const { connectionId } = await open('alice');
    expect(await fx.store.getConnection(connectionId)).toMatchObject({
      connectionId,
      userId: 'u-alice',
      tenantId: 'acme',
      groups: ['tenant:acme'],
      tokenExpiresAt: 4_000_000_000,
    });
  });

  it('echoes gatehouse.v1 to a client that offered subprotocols, as browsers require', async () => {
    const authorizer = toAuthorizerContext(people.alice, 'subprotocol');
    const response = await connect(
      { connectionId: 'sp-1', headers: { 'Sec-WebSocket-Protocol': 'gatehouse.v1, bearer.x.y.z' }, authorizer },
      deps,
    );
    expect(response).toEqual({ statusCode: 200, headers: { 'Sec-WebSocket-Protocol': 'gatehouse.v1' } });
  });

  it('refuses a client that offered only other subprotocols, and records nothing', async () => {
    const before = await tableItems();
    const authorizer = toAuthorizerContext(people.alice, 'subprotocol');
    const response = await connect({ connectionId: 'sp-2', headers: { 'sec-websocket-protocol': 'chat' }, authorizer }, deps);
    expect(response.statusCode).toBe(400);
    expect(await tableItems()).toEqual(before);
  });

  it('refuses a connection that reached it without an authorizer identity', async () => {
    expect((await connect({ connectionId: 'anon', authorizer: undefined }, deps)).statusCode).toBe(403);
    expect(await fx.store.getConnection('anon')).toBeUndefined();
  });

  it('removes the connection and every membership on disconnect', async () => {
    const alice = await open('alice');
    await alice.send({ action: 'join', room: 'one' });
    await alice.send({ action: 'join', room: 'two' });
    await disconnect({ connectionId: alice.connectionId }, deps);
    expect((await tableItems()).filter((k) => k.includes(alice.connectionId))).toEqual([]);
  });
});

describe('message actions', () => {
  it('answers ping and whoami, echoing the correlation id', async () => {
    const alice = await open('alice');
    expect(await alice.send({ action: 'ping', id: 'p1' })).toEqual({ type: 'pong', ts: expect.any(Number), id: 'p1' });
    expect(await alice.send({ action: 'whoami' })).toEqual({
      type: 'whoami',
      userId: 'u-alice',
      name: 'alice',
      tenantId: 'acme',
      groups: ['tenant:acme'],
      connectionId: alice.connectionId,
      tokenExpiresAt: 4_000_000_000,
    });
  });

  it('delivers a send to every member socket of the room in the sender tenant, and nowhere else', async () => {
    const alice = await open('alice');
    const bob = await open('bob');
    const bobTab2 = await open('bob');
    const carol = await open('carol'); // other tenant, same room name
    const outsider = await open('alice'); // same tenant, not in the room
    for (const c of [alice, bob, bobTab2, carol]) expect(await c.send({ action: 'join', room: 'townhall' })).toMatchObject({ type: 'joined' });

    const reply = await alice.send({ action: 'send', room: 'townhall', data: { text: 'hello' }, id: 's1' });
    // Delivered to bob's two sockets; alice's own does not count.
    expect(reply).toEqual({ type: 'sent', room: 'townhall', messageId: expect.any(String), seq: 1, delivered: 2, id: 's1' });
    const expected = {
      type: 'message',
      room: 'townhall',
      seq: 1,
      messageId: (reply as { messageId: string }).messageId,
      sender: { userId: 'u-alice', name: 'alice' },
      ts: expect.any(Number),
      data: { text: 'hello' },
    };
    expect(alice.inbox()).toEqual([expected]);
    expect(bob.inbox()).toEqual([expected]);
    expect(bobTab2.inbox()).toEqual([expected]);
    expect(carol.inbox()).toEqual([]);
    expect(outsider.inbox()).toEqual([]);
  });

  it('refuses to send to a room the caller has not joined', async () => {
    const alice = await open('alice');
    const bob = await open('bob');
    await bob.send({ action: 'join', room: 'secret' });
    expect(await alice.send({ action: 'send', room: 'secret', data: 'x' })).toMatchObject({ type: 'error', code: 'not_member' });
    expect(bob.inbox()).toEqual([]);
  });

  it.each([
    ['alice', 'user:u-bob', 'forbidden'],
    ['alice', 'admin:ops', 'forbidden'],
    ['alice', 'user:u-alice', 'joined'],
    ['root', 'admin:ops', 'joined'],
  ] as const)('%s joining %s: %s', async (who, room, outcome) => {
    const c = await open(who);
    const reply = await c.send({ action: 'join', room });
    if (outcome === 'joined') expect(reply).toMatchObject({ type: 'joined', room });
    else {
      expect(reply).toMatchObject({ type: 'error', code: 'forbidden', message: expect.stringMatching(/private|admin/) });
      expect((await fx.store.getConnection(c.connectionId))?.rooms).not.toContain(room);
    }
  });

  it('caps rooms per connection, and re-joining a room does not count twice', async () => {
    const alice = await open('alice');
    for (const room of ['r1', 'r2', 'r3', 'r3']) expect(await alice.send({ action: 'join', room })).toMatchObject({ type: 'joined' });
    expect(await alice.send({ action: 'join', room: 'r4' })).toMatchObject({ type: 'error', code: 'room_limit' });
    expect(await alice.send({ action: 'leave', room: 'r1' })).toEqual({ type: 'left', room: 'r1' });
    expect(await alice.send({ action: 'join', room: 'r4' })).toMatchObject({ type: 'joined' });
  });

  it('leaves a room; leaving again or sending afterwards is refused', async () => {
    const alice = await open('alice');
    await alice.send({ action: 'join', room: 'temp' });
    expect(await alice.send({ action: 'leave', room: 'temp' })).toEqual({ type: 'left', room: 'temp' });
    expect(await alice.send({ action: 'leave', room: 'temp' })).toMatchObject({ code: 'not_member' });
    expect(await alice.send({ action: 'send', room: 'temp', data: 1 })).toMatchObject({ code: 'not_member' });
  });

  it.each([
    ['malformed JSON', '{"action":"send",', 'malformed_json'],
    ['an unknown action', { action: 'shout', room: 'general' }, 'unknown_action'],
    ['a missing field', { action: 'send', room: 'general' }, 'invalid_message'],
    ['a wrong field type', { action: 'join', room: ['general'] }, 'invalid_message'],
    ['an extra field (a client-chosen tenant)', { action: 'join', room: 'general', tenantId: 'globex' }, 'invalid_message'],
    ['an oversize payload', { action: 'send', room: 'general', data: 'x'.repeat(500) }, 'too_large'],
  ])('answers %s with an error event and changes nothing', async (_name, frame, code) => {
    const alice = await open('alice');
    const bob = await open('bob');
    await alice.send({ action: 'join', room: 'general' });
    await bob.send({ action: 'join', room: 'general' });
    const before = await tableItems();
    expect(await alice.send(frame)).toEqual({ type: 'error', code, message: expect.any(String) });
    expect(await tableItems()).toEqual(before);
    expect(bob.inbox()).toEqual([]);
  });

  it('purges a recipient whose socket is gone (no $disconnect arrived), never the sender', async () => {
    const alice = await open('alice');
    const ghost = await open('bob');
    await alice.send({ action: 'join', room: 'haunted' });
    await ghost.send({ action: 'join', room: 'haunted' });
    endpoint.live.delete(ghost.connectionId); // the socket died; API Gateway now answers 410

    expect(await alice.send({ action: 'send', room: 'haunted', data: 'boo' })).toMatchObject({ type: 'sent' });
    expect(await fx.store.getConnection(ghost.connectionId)).toBeUndefined();
    const members: string[] = [];
    for await (const page of fx.store.roomMembers('acme', 'haunted')) members.push(...page);
    expect(members).toEqual([alice.connectionId]);
    expect(await fx.store.getConnection(alice.connectionId)).toBeDefined();
    expect(logger.events()).toContainEqual(expect.objectContaining({ event: 'stale_connection_removed', connectionId: ghost.connectionId }));
  });

  it('acts as the stored connection, and refuses frames on a connection it does not know', async () => {
    const alice = await open('alice');
    const reply = await handleMessage({ connectionId: alice.connectionId, body: '{"action":"whoami"}' }, deps);
    expect(reply).toMatchObject({ type: 'whoami', userId: 'u-alice', tenantId: 'acme' });
    expect(await handleMessage({ connectionId: 'never-connected', body: '{"action":"whoami"}' }, deps)).toMatchObject({
      type: 'error',
      code: 'unauthorized',
    });
  });

  it('turns a store failure into an internal error event, logged without the frame', async () => {
    const alice = await open('alice');
    const broken = { ...deps, store: new ConnectionStore(fx.dynamo.doc, 'no-such-table') };
    const reply = await handleMessage(
      { connectionId: alice.connectionId, body: '{"action":"join","room":"x"}' },
      broken,
    );
    expect(reply).toEqual({ type: 'error', code: 'internal', message: expect.any(String) });
    expect(logger.events()).toContainEqual(expect.objectContaining({ event: 'message_failed', action: 'join' }));
  });
});

describe('sequence numbers and resume', () => {
  const seqs = (events: ServerEvent[]) => events.map((e) => (e.type === 'message' ? e.seq : -1));

  it('numbers messages per room and per tenant, starting at 1', async () => {
    const alice = await open('alice');
    const carol = await open('carol');
    for (const c of [alice, carol]) for (const room of ['seq-a', 'seq-b']) await c.send({ action: 'join', room });
    await alice.send({ action: 'send', room: 'seq-a', data: 1 });
    await alice.send({ action: 'send', room: 'seq-a', data: 2 });
    await alice.send({ action: 'send', room: 'seq-b', data: 3 });
    await carol.send({ action: 'send', room: 'seq-a', data: 4 });
    expect(alice.inbox().map((e) => e.type === 'message' && [e.room, e.seq])).toEqual([
      ['seq-a', 1],
      ['seq-a', 2],
      ['seq-b', 1],
    ]);
    expect(carol.inbox().map((e) => e.type === 'message' && [e.room, e.seq])).toEqual([['seq-a', 1]]);
  });

  it('replays what a re-joining connection missed, oldest first, before its joined reply', async () => {
    const bob = await open('bob');
    await bob.send({ action: 'join', room: 'replay' });
    for (let i = 1; i <= 5; i++) await bob.send({ action: 'send', room: 'replay', data: i });
    const alice = await open('alice'); // a new connection that saw up to seq 2 on its previous one
    expect(await alice.send({ action: 'join', room: 'replay', after: 2 })).toEqual({ type: 'joined', room: 'replay', seq: 5, replayed: 3, presence: expect.any(Object) });
    expect(seqs(alice.inbox())).toEqual([3, 4, 5]);
    expect(alice.inbox().map((e) => e.type === 'message' && e.data)).toEqual([3, 4, 5]);
    // Up to date: nothing to replay.
    const again = await open('alice');
    expect(await again.send({ action: 'join', room: 'replay', after: 5 })).toEqual({ type: 'joined', room: 'replay', seq: 5, presence: expect.any(Object) });
    expect(again.inbox()).toEqual([]);
  });

  it('rejoins several rooms in one frame, each as its own join would: replays, a refusal, and the rate limit charged per room', async () => {
    const bob = await open('bob');
    for (const room of ['multi-a', 'multi-b']) {
      await bob.send({ action: 'join', room });
      for (let i = 1; i <= 3; i++) await bob.send({ action: 'send', room, data: `${room}-${i}` });
    }
    const alice = await open('alice');
    const reply = await alice.send({ action: 'join_rooms', id: 'j1', rooms: [{ room: 'multi-a', after: 1 }, { room: 'multi-b' }, { room: 'admin:ops' }] });
    expect(reply).toEqual({
      type: 'joined_rooms',
      id: 'j1',
      results: [
        { type: 'joined', room: 'multi-a', seq: 3, replayed: 2, presence: expect.any(Object) },
        { type: 'joined', room: 'multi-b', seq: 3, presence: expect.any(Object) },
        { type: 'error', code: 'forbidden', message: expect.any(String), room: 'admin:ops' },
      ],
    });
    expect(alice.inbox().map((e) => e.type === 'message' && e.data)).toEqual(['multi-a-2', 'multi-a-3']);
    // In both rooms now: a message to each reaches it.
    await bob.send({ action: 'send', room: 'multi-b', data: 'after' });
    expect(alice.inbox().map((e) => e.type === 'message' && e.data)).toContain('after');
    // Three rooms cost three tokens, as three frames would: a burst of 3 lets the frame through, then nothing.
    const tight = { ...deps, config: { ...deps.config, rateLimit: { ...deps.config.rateLimit, rate: 0.001, burst: 3, strikes: 100 } } };
    const carol = await open('alice');
    const frame = (rooms: string[]) => handleMessage({ connectionId: carol.connectionId, body: JSON.stringify({ action: 'join_rooms', rooms: rooms.map((room) => ({ room })) }) }, tight);
    expect((await frame(['t1', 't2', 't3'])).type).toBe('joined_rooms');
    expect(await frame(['t4'])).toMatchObject({ type: 'error', code: 'rate_limited' });
  });

  it('reports a gap when what was missed is older than the retention window', async () => {
    const bob = await open('bob');
    await bob.send({ action: 'join', room: 'expired' });
    const past = { ...deps, now: () => Date.now() - (deps.config.historyRetentionSeconds + 60) * 1000 }; // written longer ago than the retention
    for (let i = 1; i <= 3; i++) await handleMessage({ connectionId: bob.connectionId, body: JSON.stringify({ action: 'send', room: 'expired', data: i }) }, past);
    await bob.send({ action: 'send', room: 'expired', data: 4 });
    const alice = await open('alice');
    expect(await alice.send({ action: 'join', room: 'expired', after: 1 })).toEqual({
      type: 'joined',
      room: 'expired',
      seq: 4,
      replayed: 1,
      gap: { from: 2, to: 3 },
      presence: expect.any(Object),
    });
    expect(seqs(alice.inbox())).toEqual([4]);
  });

  it('replays at most maxReplay messages and reports the older rest as a gap', async () => {
    const bob = await open('bob');
    await bob.send({ action: 'join', room: 'backlog' });
    for (let i = 1; i <= 6; i++) await bob.send({ action: 'send', room: 'backlog', data: i });
    const alice = await open('alice');
    const reply = await handleMessage(
      { connectionId: alice.connectionId, body: '{"action":"join","room":"backlog","after":0}' },
      { ...deps, config: { ...deps.config, maxReplay: 4 } },
    );
    expect(reply).toEqual({ type: 'joined', room: 'backlog', seq: 6, replayed: 4, gap: { from: 1, to: 2 }, presence: expect.any(Object) });
    expect(seqs(alice.inbox())).toEqual([3, 4, 5, 6]);
  });
});

describe('server-side publishing', () => {
  const event = (detail: unknown, id = 'evt-1') => ({ id, source: 'jobs.service', 'detail-type': 'Gatehouse Publish', detail });
  const invocation = { remainingMs: 10_000 };
  const job = (room: string) => ({ tenantId: 'acme', room, type: 'job.progress', payload: { job: '7' } });
  const seqs = (c: { inbox(): ServerEvent[] }) => c.inbox().map((e) => (e.type === 'message' ? e.seq : -1));

  it("delivers to the room's sockets in the named tenant only, as the service", async () => {
    const dana = await open('root');
    const bob = await open('bob');
    const carol = await open('carol');
    for (const c of [dana, bob, carol]) await c.send({ action: 'join', room: 'jobs' });
    const outcome = await handlePublish(event({ tenantId: 'acme', room: 'jobs', type: 'job.progress', payload: { job: '42', percent: 50 } }), deps, invocation);
    expect(outcome).toMatchObject({ delivered: true, seq: 1, result: { delivered: 2, gone: 0, failed: 0 } });
    const expected = [
      {
        type: 'message',
        room: 'jobs',
        seq: 1,
        messageId: expect.any(String),
        sender: { service: 'jobs.service' },
        ts: expect.any(Number),
        kind: 'job.progress',
        data: { job: '42', percent: 50 },
      },
    ];
    expect(dana.inbox()).toEqual(expected);
    expect(bob.inbox()).toEqual(expected);
    expect(carol.inbox()).toEqual([]);
  });

  it.each([
    ['a missing tenant', { room: 'jobs', type: 'x', payload: 1 }],
    ['a tenant id that could break a key', { tenantId: 'acme#x', room: 'jobs', type: 'x', payload: 1 }],
    ['a bad room', { tenantId: 'acme', room: 'no spaces', type: 'x', payload: 1 }],
    ['a missing payload', { tenantId: 'acme', room: 'jobs', type: 'x' }],
    ['an oversize payload', { tenantId: 'acme', room: 'jobs', type: 'x', payload: 'x'.repeat(500) }],
    ['an extra field', { tenantId: 'acme', room: 'jobs', type: 'x', payload: 1, sender: 'forged' }],
    ['a non-object detail', 'hello'],
  ])('rejects %s without delivering or storing anything', async (_name, detail) => {
    const bob = await open('bob');
    await bob.send({ action: 'join', room: 'jobs' });
    const before = await tableItems();
    const { log, events } = memoryLogger();
    expect(await handlePublish(event(detail), { ...deps, log }, invocation)).toMatchObject({ delivered: false, error: expect.any(String) });
    expect(await tableItems()).toEqual(before);
    expect(bob.inbox()).toEqual([]);
    expect(events()).toEqual([expect.objectContaining({ event: 'publish_rejected', eventId: 'evt-1' })]);
  });

  it('delivers one event id once: a second delivery of the same event is a duplicate that sends and stores nothing', async () => {
    const bob = await open('bob');
    await bob.send({ action: 'join', room: 'once' });
    expect(await handlePublish(event(job('once'), 'evt-once'), deps, invocation)).toMatchObject({ delivered: true, seq: 1 });
    const before = await tableItems();
    expect(await handlePublish(event(job('once'), 'evt-once'), deps, invocation)).toEqual({ delivered: false, duplicate: 'delivered', eventId: 'evt-once' });
    expect(await tableItems()).toEqual(before);
    expect(seqs(bob)).toEqual([1]);
  });

  it('gives a retried event the sequence number and content of the failed attempt, never a new one', async () => {
    const bob = await open('bob');
    await bob.send({ action: 'join', room: 'retry' });
    // The attempt takes seq 1, then DynamoDB fails its history write: the invocation throws, as Lambda would see it.
    // (More failures than the SDK's own retries.)
    const heal = fx.dynamo.injectFault({ operation: 'PutItem', times: 5, when: (input) => String(input.Item?.pk?.S).startsWith('hist#') });
    await expect(handlePublish(event(job('retry'), 'evt-retry'), deps, invocation)).rejects.toThrow(/Injected fault/);
    heal();
    expect(seqs(bob)).toEqual([]);
    const retried = await handlePublish(event(job('retry'), 'evt-retry'), deps, invocation);
    expect(retried).toMatchObject({ delivered: true, seq: 1 });
    // A later event continues the numbering: no number was lost or used twice.
    expect(await handlePublish(event(job('retry'), 'evt-next'), deps, invocation)).toMatchObject({ delivered: true, seq: 2 });
    expect(seqs(bob)).toEqual([1, 2]);
  });

  it('re-sends the very same message when a retry follows a delivery that failed half-way', async () => {
    const bob = await open('bob');
    await bob.send({ action: 'join', room: 'half' });
    // Delivered to the room, then the record of having done so fails: the retry must send the same message again.
    const heal = fx.dynamo.injectFault({ operation: 'UpdateItem', times: 5, when: (input) => String(input.UpdateExpression).startsWith('SET done') });
    await expect(handlePublish(event(job('half'), 'evt-half'), deps, invocation)).rejects.toThrow(/Injected fault/);
    heal();
    expect(await handlePublish(event(job('half'), 'evt-half'), deps, invocation)).toMatchObject({ delivered: true, seq: 1 });
    const [first, second] = bob.inbox();
    expect(second).toEqual(first); // same seq, messageId, ts and data: the client drops the copy
  });

  it('delivers once when the same event arrives many times at the same moment; the other copies do nothing', async () => {
    const bob = await open('bob');
    await bob.send({ action: 'join', room: 'twice' });
    const outcomes = await Promise.all([1, 2, 3, 4].map(() => handlePublish(event(job('twice'), 'evt-twice'), deps, invocation)));
    expect(outcomes.filter((o) => o.delivered)).toHaveLength(1);
    expect(outcomes.filter((o) => !o.delivered).every((o) => 'duplicate' in o)).toBe(true);
    expect(await handlePublish(event(job('twice'), 'evt-twice'), deps, invocation)).toMatchObject({ duplicate: 'delivered' });
    expect(seqs(bob)).toEqual([1]);
  });
});
