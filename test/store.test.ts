import { ScanCommand } from '@aws-sdk/lib-dynamodb';
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

describe('ConnectionStore (against dynalite, schema from the synthesized table)', () => {
  it('stores a connection and reads it back', async () => {
    await fx.store.putConnection(record('c-read'));
    expect(await fx.store.getConnection('c-read')).toEqual(record('c-read'));
    expect(await fx.store.getConnection('c-unknown')).toBeUndefined();
  });

  it('writes idempotently: a retried connect or join leaves one item each', async () => {
    const before = await itemCount();
    await fx.store.putConnection(record('c-idem'));
    await fx.store.putConnection(record('c-idem'));
    await fx.store.join(record('c-idem'), 'general');
    await fx.store.join(record('c-idem'), 'general');
    expect(await itemCount()).toBe(before + 2);
    expect(await fx.store.countRooms('c-idem')).toBe(1);
  });

  it('deletes a connection with all of its memberships, and a second delete is harmless', async () => {
    await fx.store.putConnection(record('c-del'));
    for (let i = 0; i < 30; i++) await fx.store.join(record('c-del'), `room-${i}`); // more than one BatchWrite
    expect(await fx.store.countRooms('c-del')).toBe(30);
    expect(await fx.store.deleteConnection('c-del')).toBe(31);
    expect(await fx.store.getConnection('c-del')).toBeUndefined();
    expect(await collect(fx.store.roomMembers('acme', 'room-3'))).toEqual([]);
    expect(await fx.store.deleteConnection('c-del')).toBe(0);
  });

  it('lists a room through the index, page by page, inside one tenant only', async () => {
    for (const id of ['r1', 'r2', 'r3', 'r4', 'r5']) {
      await fx.store.putConnection(record(id));
      await fx.store.join(record(id), 'lobby');
    }
    await fx.store.putConnection(record('other-tenant', { tenantId: 'globex' }));
    await fx.store.join(record('other-tenant', { tenantId: 'globex' }), 'lobby');

    const pages: string[][] = [];
    for await (const page of fx.store.roomMembers('acme', 'lobby')) pages.push(page);
    expect(pages.length).toBeGreaterThanOrEqual(3); // pageSize 2: the Query paginates
    expect(pages.flat().sort()).toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
    expect(await collect(fx.store.roomMembers('globex', 'lobby'))).toEqual(['other-tenant']);
  });

  it('finds all sockets of a user, and all connections of a tenant', async () => {
    await fx.store.putConnection(record('u-a', { userId: 'user-multi' }));
    await fx.store.putConnection(record('u-b', { userId: 'user-multi' }));
    await fx.store.putConnection(record('t-x', { tenantId: 'initech' }));
    expect(await collect(fx.store.userConnections('user-multi'))).toEqual(['u-a', 'u-b']);
    expect(await collect(fx.store.tenantConnections('initech'))).toEqual(['t-x']);
  });

  it('skips items whose TTL has passed, because DynamoDB deletes them lazily', async () => {
    await fx.store.putConnection(record('old', { tenantId: 'ttl', expiresAt: nowSeconds() + 60 }));
    await fx.store.join(record('old', { tenantId: 'ttl', expiresAt: nowSeconds() + 60 }), 'expiring');
    await fx.store.putConnection(record('new', { tenantId: 'ttl' }));
    await fx.store.join(record('new', { tenantId: 'ttl' }), 'expiring');
    expect(await collect(fx.store.roomMembers('ttl', 'expiring'))).toEqual(['new', 'old']);

    clock += 120_000; // two minutes later: "old" has expired but is still stored
    try {
      expect(await collect(fx.store.roomMembers('ttl', 'expiring'))).toEqual(['new']);
      expect(await collect(fx.store.tenantConnections('ttl'))).toEqual(['new']);
      expect(await fx.store.getConnection('old')).toBeUndefined();
      expect(await fx.store.isMember('old', 'expiring')).toBe(false);
      expect(await fx.store.countRooms('old')).toBe(0);
    } finally {
      clock -= 120_000;
    }
  });

  it('reports whether a leave removed a membership', async () => {
    await fx.store.join(record('c-leave'), 'general');
    expect(await fx.store.isMember('c-leave', 'general')).toBe(true);
    expect(await fx.store.leave('c-leave', 'general')).toBe(true);
    expect(await fx.store.leave('c-leave', 'general')).toBe(false);
    expect(await fx.store.isMember('c-leave', 'general')).toBe(false);
  });
});
