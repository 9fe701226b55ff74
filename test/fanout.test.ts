/**
 * Big rooms (lambda/core/fanout.ts, membership-store.ts) against dynalite and a SigV4-checking @connections
 * stand-in, with the workers run as Lambda runs asynchronous invocations (queued, each task retried twice when it
 * throws). What is attacked: the sender's reply before any post; every member exactly once, across a split into
 * shards, a failure injected in a shard, a duplicated task run concurrently, a worker that runs out of time, and
 * posts throttled with 429; membership kept in the right shard through rejoin, leave, renewal and disconnect.
 */
import { GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { keys } from '../common/table-schema';
import { connect } from '../lambda/core/connection';
import { runFanoutTask, type FanoutDeps, type FanoutDispatcher, type FanoutOptions, type FanoutTask } from '../lambda/core/fanout';
import { toAuthorizerContext, type Identity } from '../lambda/core/identity';
import { ROOM_SHARDS, SPLIT_AT, shardOf } from '../lambda/core/membership-store';
import { ConnectionStore } from '../lambda/core/store';
import { handleMessage, type MessageDeps } from '../lambda/core/messages';
import type { ServerEvent } from '../protocol';
import { startConnectionsEndpoint, type ConnectionsEndpoint } from './support/connections-endpoint';
import { coreDeps } from './support/core';
import { memoryLogger } from './support/log';
import { startStore, type StoreFixture } from './support/store';

let fx: StoreFixture;
let endpoint: ConnectionsEndpoint;
const logged = memoryLogger();

beforeAll(async () => {
  fx = await startStore();
  endpoint = await startConnectionsEndpoint();
});
afterAll(async () => {
  await endpoint.close();
  await fx.close();
});

let rooms = 0;
const fresh = (what: string) => `${what}-${++rooms}`;
const EXPIRES = 4_000_000_000;

/**
 * The workers as Lambda runs them: each dispatched task after the dispatcher returned, up to 3 attempts when it
 * throws (then it is a failure, as in the failed-invocations queue).
 */
function lambdaWorkers(options: FanoutOptions & { remainingMs?: () => number; beforeRun?: (task: FanoutTask, invocation: number) => Promise<void> } = {}) {
  const running: Array<Promise<void>> = [];
  const failures: Array<{ task: FanoutTask; error: Error }> = [];
  const outcomes: unknown[] = [];
  let invocations = 0;
  const dispatch: FanoutDispatcher = async (task) => {
    running.push(run(task, 1));
  };
  const deps = (): FanoutDeps => ({ ...coreDeps(fx, endpoint, logged.log), fanouts: fx.store.fanouts, dispatch });
  async function run(task: FanoutTask, attempt: number): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    invocations++;
    await options.beforeRun?.(task, invocations);
    try {
      outcomes.push(await runFanoutTask(task, deps(), options.remainingMs ?? (() => 60_000), options));
    } catch (error) {
      if (attempt < 3) return run(task, attempt + 1);
      failures.push({ task, error: error as Error });
    }
  }
  return {
    dispatch,
    deps,
    failures,
    outcomes,
    get invocations() {
      return invocations;
    },
    /** Waits until every task, and every task they dispatched, has finished. */
    async settle() {
      while (running.length > 0) await Promise.all(running.splice(0));
    },
  };
}

/** Members written straight into their shards (as joins would put them), each a live socket of the stand-in. */
async function seedMembers(tenantId: string, room: string, n: number, shards = 1, prefix = room): Promise<string[]> {
  const ids = Array.from({ length: n }, (_, i) => `${prefix}-c${String(i).padStart(6, '0')}`);
  for (let i = 0; i < ids.length; i += 64) {
    await Promise.all(
      ids.slice(i, i + 64).map((connectionId) =>
        fx.store.members.put(tenantId, room, shardOf(connectionId, shards), { connectionId, userId: `u-${connectionId}`, credExp: EXPIRES, expiresAt: EXPIRES }),
      ),
    );
  }
  for (const id of ids) endpoint.live.add(id);
  return ids;
}

/** How many times each of `ids` received the event with this seq in this room. */
function receipts(ids: string[], room: string, seq: number): Map<number, number> {
  const histogram = new Map<number, number>();
  for (const id of ids) {
    const got = (endpoint.received.get(id) ?? []).filter((e) => (e as { room?: string; seq?: number }).room === room && (e as { seq?: number }).seq === seq).length;
    histogram.set(got, (histogram.get(got) ?? 0) + 1);
  }
  return histogram;
}

const task = (room: string, seq: number, extra: Partial<FanoutTask> = {}): FanoutTask => ({ kind: 'room', tenantId: 'acme', room, seq, event: JSON.stringify({ type: 'message', room, seq, data: 'x' }), ...extra });

const person = (userId: string): Identity => ({ userId, username: `${userId}@acme.test`, tenantId: 'acme', groups: ['tenant:acme'], tokenExpiresAt: EXPIRES, signIn: `${userId}-sign-in`, issuedAt: 1_700_000_000 });

let connections = 0;
async function open(who: Identity, d: MessageDeps) {
  const connectionId = `${who.userId}-conn-${++connections}`;
  expect((await connect({ connectionId, authorizer: toAuthorizerContext(who, 'header') }, d)).statusCode).toBe(200);
  endpoint.live.add(connectionId);
  return { connectionId, send: (frame: Record<string, unknown>) => handleMessage({ connectionId, body: JSON.stringify(frame) }, d) };
}

describe('the sender and the workers', () => {
  it("answers `sent` once the message is stored, before any post, and hands a room past the inline limit to one worker task", async () => {
    const room = fresh('lobby');
    const workers = lambdaWorkers();
    const d: MessageDeps = { ...coreDeps(fx, endpoint, logged.log, { INLINE_DELIVERY_MAX: '100' }), fanout: workers.dispatch };
    const ids = await seedMembers('acme', room, 300);
    const alice = await open(person('u-alice'), d);
    await alice.send({ action: 'join', room });
    const postsBefore = endpoint.posts;
    const sent = (await alice.send({ action: 'send', room, data: 'to everyone' })) as Extract<ServerEvent, { type: 'sent' }>;
    expect(sent).toMatchObject({ type: 'sent', pending: true, delivered: 0 });
    expect(endpoint.posts).toBe(postsBefore); // nothing posted before the reply
    await workers.settle();
    expect(workers.invocations).toBe(1);
    expect(receipts(ids, room, sent.seq)).toEqual(new Map([[1, 300]]));
    expect(workers.failures).toEqual([]);
  });

  it('posts to a room within the inline limit before answering, with the exact reach, and no worker', async () => {
    const room = fresh('small');
    const workers = lambdaWorkers();
    const d: MessageDeps = { ...coreDeps(fx, endpoint, logged.log, { INLINE_DELIVERY_MAX: '100' }), fanout: workers.dispatch };
    const ids = await seedMembers('acme', room, 20);
    const bob = await open(person('u-bob'), d);
    await bob.send({ action: 'join', room });
    const sent = (await bob.send({ action: 'send', room, data: 'hi' })) as Extract<ServerEvent, { type: 'sent' }>;
    expect(sent).toMatchObject({ type: 'sent', delivered: 20 });
    expect(sent).not.toHaveProperty('pending');
    expect(receipts(ids, room, sent.seq)).toEqual(new Map([[1, 20]]));
    expect(workers.invocations).toBe(0);
  });
});

describe('splitting a big room into shards', () => {
  it(`splits a room once a delivery counts ${SPLIT_AT} members in its partition; later joiners spread over ${ROOM_SHARDS} shards, and every member gets each message once`, async () => {
    const room = fresh('arena');
    const first = await seedMembers('acme', room, SPLIT_AT);
    const workers = lambdaWorkers();
    await workers.dispatch(task(room, 1));
    await workers.settle();
    expect(receipts(first, room, 1)).toEqual(new Map([[1, SPLIT_AT]]));
    expect(await fx.store.members.shardCount('acme', room, true)).toBe(ROOM_SHARDS);

    // Joiners after the split go to the shard their connection hashes to, through the store's own join.
    const joiners: string[] = [];
    for (let i = 0; i < 400; i++) {
      const connectionId = `${room}-late-${i}`;
      await fx.store.putConnection({ connectionId, ...person(`u-late-${i}`), source: 'header', connectedAt: Date.now(), expiresAt: EXPIRES });
      expect(await fx.store.join({ connectionId, tenantId: 'acme', userId: `u-late-${i}`, expiresAt: EXPIRES, tokenExpiresAt: EXPIRES }, room, 50)).toBe('joined');
      endpoint.live.add(connectionId);
      joiners.push(connectionId);
    }
    const { Items = [] } = await fx.dynamo.doc.send(new ScanCommand({ TableName: fx.tableName, FilterExpression: 'begins_with(pk, :p)', ExpressionAttributeValues: { ':p': `room#acme#${room}` } }));
    const used = new Set(Items.filter((i) => String(i.sk).startsWith('conn#') && joiners.includes(String(i.connectionId))).map((i) => String(i.pk)));
    expect(used.size).toBeGreaterThan(ROOM_SHARDS / 2); // spread, not piled into one partition

    const again = lambdaWorkers();
    await again.dispatch(task(room, 2));
    await again.settle();
    expect(again.invocations).toBe(ROOM_SHARDS); // the room task, then one per other shard
    expect(receipts([...first, ...joiners], room, 2)).toEqual(new Map([[1, SPLIT_AT + 400]]));
  });

  it('splits a room that fills up before anyone posts: a sample of joins counts its partition, and later joiners spread', async () => {
    const room = fresh('quiet');
    await seedMembers('acme', room, SPLIT_AT - 1);
    const checking = new ConnectionStore(fx.dynamo.doc, fx.tableName, { splitCheckEvery: 1 }); // every join counts
    const join = async (i: number) => {
      const connectionId = `${room}-join-${i}`;
      await checking.putConnection({ connectionId, ...person(`u-q${i}`), source: 'header', connectedAt: Date.now(), expiresAt: EXPIRES });
      expect(await checking.join({ connectionId, tenantId: 'acme', userId: `u-q${i}`, expiresAt: EXPIRES, tokenExpiresAt: EXPIRES }, room, 50)).toBe('joined');
      return connectionId;
    };
    await join(0); // the 1,000th member of the partition: the room is split
    expect(await fx.store.members.shardCount('acme', room, true)).toBe(ROOM_SHARDS);
    const later = await Promise.all(Array.from({ length: 40 }, (_, i) => join(i + 1)));
    const shards = new Set((await Promise.all(later.map((id) => checking.getConnection(id)))).map((c) => c!.roomShards?.[room] ?? 0));
    expect(shards.size).toBeGreaterThan(8);
  });

  it('counts a split room that has shrunk across its shards: a few members get presence signals and are posted to before the reply again', async () => {
    const room = fresh('shrunk');
    await fx.store.members.split('acme', room);
    const ids = await seedMembers('acme', room, 5, ROOM_SHARDS);
    expect(new Set(ids.map((id) => shardOf(id, ROOM_SHARDS))).size).toBeGreaterThan(1);
    expect((await fx.store.roomMembersUpTo('acme', room, 250))?.sort()).toEqual([...ids].sort());
    const workers = lambdaWorkers();
    const d: MessageDeps = { ...coreDeps(fx, endpoint, logged.log), fanout: workers.dispatch };
    const erin = await open(person('u-erin'), d);
    await erin.send({ action: 'join', room });
    const sent = (await erin.send({ action: 'send', room, data: 'still here?' })) as Extract<ServerEvent, { type: 'sent' }>;
    expect(sent).toMatchObject({ delivered: 5 });
    expect(sent).not.toHaveProperty('pending');
    expect(workers.invocations).toBe(0);
    expect(receipts(ids, room, sent.seq)).toEqual(new Map([[1, 5]]));
  });

  it('keeps a member in its shard through a rejoin, and removes it from there when it leaves or disconnects', async () => {
    const room = fresh('hall');
    await fx.store.members.split('acme', room);
    const d = coreDeps(fx, endpoint, logged.log);
    const carol = await open(person('u-carol'), d);
    await carol.send({ action: 'join', room });
    const shard = shardOf(carol.connectionId, ROOM_SHARDS);
    const item = () => fx.dynamo.doc.send(new ScanCommand({ TableName: fx.tableName, FilterExpression: 'begins_with(pk, :p) AND sk = :sk', ExpressionAttributeValues: { ':p': `room#acme#${room}`, ':sk': `conn#${carol.connectionId}` } }));
    expect((await item()).Items!.map((i) => i.pk)).toEqual([keys.memberPartition('acme', room, shard)]);
    expect((await fx.store.getConnection(carol.connectionId))!.roomShards).toEqual({ [room]: shard });
    await carol.send({ action: 'join', room }); // a rejoin (a resume) writes the same item, nowhere else
    expect((await item()).Items).toHaveLength(1);
    await carol.send({ action: 'leave', room });
    expect((await item()).Items).toEqual([]);
    expect((await fx.store.getConnection(carol.connectionId))!.roomShards).toBeUndefined();

    await carol.send({ action: 'join', room });
    expect((await item()).Items).toHaveLength(1);
    await fx.store.deleteConnection(carol.connectionId); // $disconnect
    expect((await item()).Items).toEqual([]);
  });

  it('renews the credential expiry of a membership in its shard, so a refreshed member keeps getting messages', async () => {
    const room = fresh('renew');
    await fx.store.members.split('acme', room);
    const dave = person('u-dave');
    const connectionId = 'dave-renew-1';
    await fx.store.putConnection({ connectionId, ...dave, tokenExpiresAt: Math.floor(Date.now() / 1000) + 5, source: 'header', connectedAt: Date.now(), expiresAt: EXPIRES });
    await fx.store.join({ connectionId, tenantId: 'acme', userId: dave.userId, expiresAt: EXPIRES, tokenExpiresAt: Math.floor(Date.now() / 1000) + 5 }, room, 50);
    expect(await fx.store.renewConnection(connectionId, { ...dave, tokenExpiresAt: EXPIRES })).toBe(true);
    const refs: string[] = [];
    for await (const page of fx.store.roomMemberRefs('acme', room)) refs.push(...page.map((r) => `${r.connectionId}@${r.shard}`));
    expect(refs).toEqual([`${connectionId}@${shardOf(connectionId, ROOM_SHARDS)}`]);
    const { Item } = await fx.dynamo.doc.send(new GetCommand({ TableName: fx.tableName, Key: keys.member('acme', room, connectionId, shardOf(connectionId, ROOM_SHARDS)) }));
    expect(Item!.credExp).toBe(EXPIRES);
  });
});

describe('exactly once, whatever fails', () => {
  it('resumes a shard whose worker failed half-way (a read fault after its first page) from its record: nobody twice, nobody missed', async () => {
    const room = fresh('fault');
    const ids = await seedMembers('acme', room, 3 * 64, ROOM_SHARDS);
    await fx.store.members.split('acme', room);
    // The shard with the most members (several pages of 4).
    const sizes = new Map<number, number>();
    for (const id of ids) sizes.set(shardOf(id, ROOM_SHARDS), (sizes.get(shardOf(id, ROOM_SHARDS)) ?? 0) + 1);
    const [victim, size] = [...sizes.entries()].sort((a, b) => b[1] - a[1])[0];
    expect(size).toBeGreaterThan(8);
    // The first read of that shard that goes on from a page (its second page) fails, with every retry of the SDK's.
    const heal = fx.dynamo.injectFault({ operation: 'Query', times: await fx.dynamo.doc.config.maxAttempts(), when: (input) => input.ExpressionAttributeValues?.[':pk']?.S === keys.memberPartition('acme', room, victim) && input.ExclusiveStartKey !== undefined });
    const workers = lambdaWorkers({ pageSize: 4 });
    await workers.dispatch(task(room, 1));
    await workers.settle();
    heal();
    expect(workers.invocations).toBe(ROOM_SHARDS + 1); // one retry
    expect(workers.failures).toEqual([]);
    expect(logged.events().some((e) => e.event === 'fanout_failed' && e.shard === victim && e.room === room)).toBe(true);
    expect(receipts(ids, room, 1)).toEqual(new Map([[1, ids.length]]));
  });

  it('runs a task delivered twice, at once and again later, once: the duplicate finds the shard leased, then done', async () => {
    const room = fresh('dup');
    const ids = await seedMembers('acme', room, 150);
    const workers = lambdaWorkers({ pageSize: 10 });
    endpoint.delayMs = 2;
    try {
      await Promise.all([workers.dispatch(task(room, 1)), workers.dispatch(task(room, 1))]);
      await workers.settle();
    } finally {
      endpoint.delayMs = 0;
    }
    await workers.dispatch(task(room, 1));
    await workers.settle();
    expect(receipts(ids, room, 1)).toEqual(new Map([[1, 150]]));
    expect(workers.outcomes.filter((o) => (o as { delivered: boolean }).delivered === false).map((o) => (o as { reason: string }).reason).sort()).toEqual(['done', 'in_flight']);
  });

  it('hands the rest of a shard to a fresh invocation when the worker runs short of time, and finishes it once', async () => {
    const room = fresh('long');
    const ids = await seedMembers('acme', room, 100);
    let calls = 0;
    // Every fourth look at the clock finds too little time: an invocation posts a page or two, then hands on the rest.
    const workers = lambdaWorkers({ pageSize: 10, reserveMs: 1000, remainingMs: () => (++calls % 4 === 0 ? 500 : 60_000) });
    await workers.dispatch(task(room, 1));
    await workers.settle();
    expect(workers.invocations).toBeGreaterThan(2);
    expect(workers.outcomes.some((o) => (o as { reason?: string }).reason === 'continued')).toBe(true);
    expect(receipts(ids, room, 1)).toEqual(new Map([[1, 100]]));
  });

  it('skips whom an interrupted page reached even when joins move the page boundaries before the rest is posted', async () => {
    const room = fresh('moving');
    const ids = await seedMembers('acme', room, 60);
    let calls = 0;
    const workers = lambdaWorkers({
      pageSize: 20,
      // The first invocation runs out of time in its first page after 17 posts (each post but the first looks at the clock).
      remainingMs: () => (++calls === 18 ? 500 : 60_000),
      beforeRun: async (_task, invocation) => {
        if (invocation !== 2) return;
        // Before the rest is posted, members join in the middle of that page's range (ids sort between the seeded ones).
        const joiners = ids.slice(0, 10).map((id) => `${id}x`);
        await Promise.all(joiners.map((connectionId) => fx.store.members.put('acme', room, 0, { connectionId, userId: `u-${connectionId}`, credExp: EXPIRES, expiresAt: EXPIRES })));
        joiners.forEach((id) => endpoint.live.add(id));
      },
    });
    await workers.dispatch(task(room, 1));
    await workers.settle();
    expect(workers.outcomes.some((o) => (o as { reason?: string }).reason === 'continued')).toBe(true);
    // Nobody twice: the seeded members once each (the joiners once or not at all: they came after the message).
    expect(receipts(ids, room, 1)).toEqual(new Map([[1, 60]]));
  });

  it('retries posts answered 429 with backoff, so a throttle that clears loses nothing, and counts one that does not', async () => {
    const room = fresh('throttled');
    const ids = await seedMembers('acme', room, 40);
    ids.slice(0, 10).forEach((id) => endpoint.throttle.set(id, 2)); // cleared by the client's retries
    endpoint.throttle.set(ids[10], 100); // never clears
    const workers = lambdaWorkers();
    await workers.dispatch(task(room, 1));
    await workers.settle();
    endpoint.throttle.clear();
    expect(receipts(ids, room, 1)).toEqual(new Map([[1, 39], [0, 1]]));
    const delivered = logged.events().find((e) => e.event === 'fanout_delivered' && e.room === room)!;
    expect(delivered).toMatchObject({ delivered: 39, throttled: 1, failed: 1, gone: 0 });
  });

  it('removes members whose socket is gone (410), from their shard, and never the sender', async () => {
    const room = fresh('ghosts');
    await fx.store.members.split('acme', room);
    const ids = await seedMembers('acme', room, 40, ROOM_SHARDS);
    const ghosts = ids.slice(0, 5);
    ghosts.forEach((id) => endpoint.live.delete(id));
    const workers = lambdaWorkers();
    await workers.dispatch(task(room, 1, { protect: ids[0] }));
    await workers.settle();
    const left: string[] = [];
    for await (const page of fx.store.roomMembers('acme', room)) left.push(...page);
    expect(left.sort()).toEqual([ids[0], ...ids.slice(5)].sort());
  });
});
