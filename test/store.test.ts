import { DeleteCommand, GetCommand, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { keys } from '../common/table-schema';
import type { ConnectionRecord } from '../lambda/core/store';
import { startStore, type StoreFixture } from './support/store';

let clock = Date.parse('2026-11-25T12:00:00Z');
let fx: StoreFixture;

beforeAll(async () => {
  fx = await startStore({ now: () => clock, pageSize: 2 });
});
afterAll(() => fx.close());

const nowSeconds = () => Math.floor(clock / 1000);

function record(connectionId: string, overrides: Partial<ConnectionRecord> = {}): ConnectionRecord {
  return {
    connectionId,
    userId: 'user-1',
    username: 'alice',
    tenantId: 'acme',
    groups: ['tenant:acme'],
    tokenExpiresAt: nowSeconds() + 900,
    signIn: 'sign-in-1',
    issuedAt: nowSeconds(),
    source: 'header',
    connectedAt: clock,
    expiresAt: nowSeconds() + 7200,
    ...overrides,
  };
}

async function collect(pages: AsyncGenerator<string[]>): Promise<string[]> {
  const all: string[] = [];
  for await (const page of pages) all.push(...page);
  return all.sort();
}

async function itemCount(): Promise<number> {
  const { Items } = await fx.dynamo.doc.send(new ScanCommand({ TableName: fx.tableName }));
  return Items?.length ?? 0;
}

const roomsOf = async (id: string) => (await fx.store.getConnection(id))?.rooms.sort() ?? [];

describe('ConnectionStore (against the emulated DynamoDB, schema from the synthesized table)', () => {
  it('stores a connection and reads it back, with the rooms it holds', async () => {
    await fx.store.putConnection(record('c-read'));
    expect(await fx.store.getConnection('c-read')).toEqual({ ...record('c-read'), rooms: [] });
    expect(await fx.store.getConnection('c-unknown')).toBeUndefined();
  });

  it('writes idempotently: a retried connect or join leaves one item each', async () => {
    const before = await itemCount();
    await fx.store.putConnection(record('c-idem'));
    await fx.store.putConnection(record('c-idem'));
    expect(await fx.store.join(record('c-idem'), 'general', 50)).toBe('joined');
    expect(await fx.store.join(record('c-idem'), 'general', 50)).toBe('joined');
    expect(await itemCount()).toBe(before + 2); // the connection, and its entry in the room's member list
    expect(await roomsOf('c-idem')).toEqual(['general']);
  });

  it('never joins for a connection that is gone, so a join racing a disconnect cannot resurrect it', async () => {
    expect(await fx.store.join(record('c-never-stored'), 'general', 50)).toBe('gone');
    expect(await fx.store.getConnection('c-never-stored')).toBeUndefined();
    expect(await collect(fx.store.roomMembers('acme', 'general'))).not.toContain('c-never-stored');
  });

  it('deletes a connection with all of its memberships, and a second delete is harmless', async () => {
    await fx.store.putConnection(record('c-del'));
    for (let i = 0; i < 30; i++) await fx.store.join(record('c-del'), `room-${i}`, 50); // more than one BatchWrite
    expect(await roomsOf('c-del')).toHaveLength(30);
    expect(await fx.store.deleteConnection('c-del')).toBe(31);
    expect(await fx.store.getConnection('c-del')).toBeUndefined();
    expect(await collect(fx.store.roomMembers('acme', 'room-3'))).toEqual([]);
    expect(await fx.store.deleteConnection('c-del')).toBe(0);
  });

  it('lists a room from its own partition, page by page, inside one tenant only', async () => {
    for (const id of ['r1', 'r2', 'r3', 'r4', 'r5']) {
      await fx.store.putConnection(record(id));
      await fx.store.join(record(id), 'lobby', 50);
    }
    await fx.store.putConnection(record('other-tenant', { tenantId: 'globex' }));
    await fx.store.join(record('other-tenant', { tenantId: 'globex' }), 'lobby', 50);

    const pages: string[][] = [];
    for await (const page of fx.store.roomMembers('acme', 'lobby')) pages.push(page);
    expect(pages.length).toBeGreaterThanOrEqual(3); // pageSize 2: the Query paginates
    expect(pages.flat().sort()).toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
    expect(await collect(fx.store.roomMembers('globex', 'lobby'))).toEqual(['other-tenant']);
  });

  it('caps the rooms of a connection atomically: 20 concurrent joins against a cap of 5 hold exactly 5', async () => {
    await fx.store.putConnection(record('c-cap'));
    const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => fx.store.join(record('c-cap'), `cap-${i}`, 5)));
    expect(outcomes.filter((o) => o === 'joined')).toHaveLength(5);
    expect(outcomes.filter((o) => o === 'limit')).toHaveLength(15);
    expect(await roomsOf('c-cap')).toHaveLength(5);
    // Joining a room it already holds is no new room.
    const held = (await roomsOf('c-cap'))[0];
    expect(await fx.store.join(record('c-cap'), held, 5)).toBe('joined');
  });

  it("caps a user's connections atomically: 25 concurrent registrations against a cap of 10 take exactly 10 slots", async () => {
    // Each connection's record first, as $connect writes it.
    for (let i = 0; i < 25; i++) await fx.store.putConnection(record(`b-${i}`, { userId: 'user-burst' }));
    const results = await Promise.all(
      Array.from({ length: 25 }, (_, i) => fx.store.registerUserConnection('user-burst', `b-${i}`, nowSeconds() + 7200, 10)),
    );
    expect(results.filter(Boolean)).toHaveLength(10);
    expect(await fx.store.userConnectionIds('user-burst')).toHaveLength(10);
    // Re-registering a connection that holds a slot is not a new one.
    const holder = (await fx.store.userConnectionIds('user-burst'))[0];
    expect(await fx.store.registerUserConnection('user-burst', holder, nowSeconds() + 7200, 10)).toBe(true);
  });

  it('reclaims the slots of connections that expired or whose record is gone, and only those', async () => {
    for (const id of ['s-1', 's-2', 's-3', 's-4']) await fx.store.putConnection(record(id, { userId: 'user-slots' }));
    expect(await fx.store.registerUserConnection('user-slots', 's-1', nowSeconds() + 7200, 3)).toBe(true);
    expect(await fx.store.registerUserConnection('user-slots', 's-2', nowSeconds() + 60, 3)).toBe(true); // expires soon
    expect(await fx.store.registerUserConnection('user-slots', 's-3', nowSeconds() + 7200, 3)).toBe(true);
    expect(await fx.store.registerUserConnection('user-slots', 's-4', nowSeconds() + 7200, 3)).toBe(false);

    clock += 120_000;
    try {
      // s-2 expired: its slot is taken over.
      expect(await fx.store.registerUserConnection('user-slots', 's-4', nowSeconds() + 7200, 3)).toBe(true);
      expect((await fx.store.userConnectionIds('user-slots')).sort()).toEqual(['s-1', 's-3', 's-4']);
      // s-3's record vanished without its slot being freed (a purge that failed half-way): reclaimed as well.
      await fx.dynamo.doc.send(new DeleteCommand({ TableName: fx.tableName, Key: keys.connection('s-3') }));
      await fx.store.putConnection(record('s-5', { userId: 'user-slots' }));
      expect(await fx.store.registerUserConnection('user-slots', 's-5', nowSeconds() + 7200, 3)).toBe(true);
      expect((await fx.store.userConnectionIds('user-slots')).sort()).toEqual(['s-1', 's-4', 's-5']);
    } finally {
      clock -= 120_000;
    }
  });

  it('lists the sign-ins of a user from the user item, strongly consistent, and frees the slot on delete', async () => {
    for (const [id, signIn] of [['u-a', 'one'], ['u-b', 'two']] as const) {
      await fx.store.putConnection(record(id, { userId: 'user-multi', signIn }));
      await fx.store.registerUserConnection('user-multi', id, nowSeconds() + 7200, 10);
    }
    expect((await fx.store.userSignIns('user-multi')).sort((a, b) => a.connectionId.localeCompare(b.connectionId))).toEqual([
      { connectionId: 'u-a', signIn: 'one', connectedAt: expect.any(Number) },
      { connectionId: 'u-b', signIn: 'two', connectedAt: expect.any(Number) },
    ]);
    await fx.store.deleteConnection('u-a');
    expect(await fx.store.userConnectionIds('user-multi')).toEqual(['u-b']);
  });

  it('skips items whose TTL has passed, because DynamoDB deletes them lazily', async () => {
    await fx.store.putConnection(record('old', { tenantId: 'ttl', expiresAt: nowSeconds() + 60 }));
    await fx.store.join(record('old', { tenantId: 'ttl', expiresAt: nowSeconds() + 60 }), 'expiring', 50);
    await fx.store.putConnection(record('new', { tenantId: 'ttl' }));
    await fx.store.join(record('new', { tenantId: 'ttl' }), 'expiring', 50);
    expect(await collect(fx.store.roomMembers('ttl', 'expiring'))).toEqual(['new', 'old']);

    clock += 120_000; // two minutes later: "old" has expired but is still stored
    try {
      expect(await collect(fx.store.roomMembers('ttl', 'expiring'))).toEqual(['new']);
      expect(await fx.store.getConnection('old')).toBeUndefined();
    } finally {
      clock -= 120_000;
    }
  });

  it('reports whether a leave removed a membership, and removes it from the room', async () => {
    await fx.store.putConnection(record('c-leave'));
    await fx.store.join(record('c-leave'), 'general', 50);
    expect(await roomsOf('c-leave')).toEqual(['general']);
    expect(await fx.store.leave(record('c-leave'), 'general')).toBe(true);
    expect(await fx.store.leave(record('c-leave'), 'general')).toBe(false);
    expect(await roomsOf('c-leave')).toEqual([]);
    expect(await collect(fx.store.roomMembers('acme', 'general'))).not.toContain('c-leave');
  });

  it('keeps the room counter without a TTL, and strips the TTL an older version wrote', async () => {
    await fx.dynamo.doc.send(
      new PutCommand({ TableName: fx.tableName, Item: { ...keys.counter('acme', 'legacy'), value: 41, expiresAt: nowSeconds() + 60 } }),
    );
    expect(await fx.store.nextSeq('acme', 'legacy')).toBe(42);
    const { Item } = await fx.dynamo.doc.send(new GetCommand({ TableName: fx.tableName, Key: keys.counter('acme', 'legacy') }));
    expect(Item).toEqual({ ...keys.counter('acme', 'legacy'), value: 42 });
  });
});

describe('published events: one event id, one claim at a time, one sequence number', () => {
  const lease = () => clock + 10_000;

  it('lets one of many concurrent claims win, and none after the event is done', async () => {
    const claims = await Promise.all(Array.from({ length: 10 }, () => fx.store.claimPublished('evt-1', lease(), nowSeconds() + 86_400)));
    expect(claims.filter((c) => c.claimed)).toHaveLength(1);
    expect(claims.filter((c) => !c.claimed).every((c) => !c.claimed && !c.done)).toBe(true);
    await fx.store.finishPublished('evt-1', 'done');
    expect(await fx.store.claimPublished('evt-1', lease(), nowSeconds() + 86_400)).toEqual({ claimed: false, done: true });
  });

  it('hands a retry the sequence number and content of the attempt before it', async () => {
    const first = await fx.store.claimPublished('evt-2', lease(), nowSeconds() + 86_400);
    expect(first).toEqual({ claimed: true, record: { seq: undefined, messageId: undefined, ts: undefined } });
    await fx.store.assignPublished('evt-2', { seq: 7, messageId: 'm-7', ts: 1234 });
    // A second assignment cannot change it.
    expect(await fx.store.assignPublished('evt-2', { seq: 8, messageId: 'm-8', ts: 9999 })).toEqual({ seq: 7, messageId: 'm-7', ts: 1234 });
    await fx.store.finishPublished('evt-2', 'released');
    expect(await fx.store.claimPublished('evt-2', lease(), nowSeconds() + 86_400)).toEqual({ claimed: true, record: { seq: 7, messageId: 'm-7', ts: 1234 } });
  });

  it('lets a claim be taken over once its lease ran out (the holder timed out)', async () => {
    expect((await fx.store.claimPublished('evt-3', clock + 1000, nowSeconds() + 86_400)).claimed).toBe(true);
    expect((await fx.store.claimPublished('evt-3', clock + 1000, nowSeconds() + 86_400)).claimed).toBe(false);
    clock += 2000;
    try {
      expect((await fx.store.claimPublished('evt-3', clock + 1000, nowSeconds() + 86_400)).claimed).toBe(true);
    } finally {
      clock -= 2000;
    }
  });
});
