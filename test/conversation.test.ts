/**
 * Attacks on the conversation layer's guarantees, against dynalite and a real @connections stand-in: concurrent
 * joins and leaves of one user's sockets (presence must end right, and its versions must order the changes),
 * typing floods from several tabs (one passes per throttle window), concurrent edits and a deletion racing an edit
 * (the content is gone, whatever the interleaving), cursor races (only forward), and the bounds that keep big rooms
 * cheap (no signals past signalMaxMembers, no live receipts past receiptSignalMaxMembers).
 */
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { connect } from '../lambda/core/connection';
import { toAuthorizerContext, type Identity } from '../lambda/core/identity';
import { handleMessage, type MessageDeps } from '../lambda/core/messages';
import { createRoomAccess } from '../lambda/core/room-access';
import type { ServerEvent } from '../protocol';
import { startConnectionsEndpoint, type ConnectionsEndpoint } from './support/connections-endpoint';
import { coreDeps } from './support/core';
import { memoryLogger } from './support/log';
import { startStore, type StoreFixture } from './support/store';

let fx: StoreFixture;
let endpoint: ConnectionsEndpoint;

beforeAll(async () => {
  fx = await startStore();
  endpoint = await startConnectionsEndpoint();
});
afterAll(async () => {
  await endpoint.close();
  await fx.close();
});

const person = (userId: string, groups: string[] = ['tenant:acme']): Identity => ({
  userId,
  username: `${userId}@acme.test`,
  tenantId: 'acme',
  groups,
  tokenExpiresAt: 4_000_000_000,
  signIn: `${userId}-sign-in`,
  issuedAt: 1_700_000_000,
});

/** Every function log of the file's handlers: an unexpected error reply is reported with the error it logged. */
const logged = memoryLogger();
const deps = (overrides: Record<string, string> = {}): MessageDeps => coreDeps(fx, endpoint, logged.log, overrides);

/** Asserts a `changed` reply; anything else fails with the reply and the errors the handlers logged. */
function expectChanged(reply: ServerEvent): void {
  if (reply.type === 'changed') return;
  const errors = logged.events().filter((e) => e.level === 'error');
  throw new Error(`expected a changed reply, got ${JSON.stringify(reply)}; errors logged: ${JSON.stringify(errors.slice(-3))}`);
}

let seq = 0;
async function open(who: Identity, d = deps()) {
  const connectionId = `${who.userId}-${++seq}`;
  expect((await connect({ connectionId, authorizer: toAuthorizerContext(who, 'header') }, d)).statusCode).toBe(200);
  endpoint.live.add(connectionId);
  const send = (frame: Record<string, unknown>) => handleMessage({ connectionId, body: JSON.stringify(frame) }, d);
  const inbox = () => (endpoint.received.get(connectionId) ?? []) as ServerEvent[];
  return { connectionId, send, inbox };
}

let rooms = 0;
const fresh = (what: string) => `${what}-${++rooms}`;
const ofType = <T extends ServerEvent['type']>(events: ServerEvent[], type: T) => events.filter((e): e is Extract<ServerEvent, { type: T }> => e.type === type);

async function stored(): Promise<string> {
  const { Items } = await fx.dynamo.doc.send(new ScanCommand({ TableName: fx.tableName }));
  return JSON.stringify(Items ?? [], (_k, v) => (v instanceof Set ? [...v] : v));
}

describe('presence under concurrency', () => {
  it('ends exactly when the last of a user\'s sockets leaves, however joins and leaves interleave', async () => {
    for (let run = 0; run < 5; run++) {
      const room = fresh('interleave');
      const watcher = await open(person('u-watch'));
      await watcher.send({ action: 'join', room });
      const bob = person('u-bob');
      const tabs = await Promise.all([1, 2, 3, 4].map(() => open(bob)));
      await Promise.all(tabs.map((tab) => tab.send({ action: 'join', room })));
      // Three leave at once while one stays: bob is present throughout, whatever the order.
      await Promise.all(tabs.slice(0, 3).map((tab) => tab.send({ action: 'leave', room })));
      const snapshot = (await watcher.send({ action: 'presence', room })) as Extract<ServerEvent, { type: 'presence_snapshot' }>;
      expect(snapshot.users.map((u) => u.userId).sort()).toEqual(['u-bob', 'u-watch']);
      // What the watcher was told, applied by version, says the same.
      const changes = ofType(watcher.inbox(), 'presence').filter((e) => e.room === room);
      const last = changes.sort((a, b) => b.v - a.v)[0];
      expect(last).toMatchObject({ change: 'joined', user: { userId: 'u-bob' } });
      expect(changes.filter((c) => c.change === 'joined')).toHaveLength(1);

      await tabs[3].send({ action: 'leave', room });
      const after = ofType(watcher.inbox(), 'presence').filter((e) => e.room === room).sort((a, b) => b.v - a.v)[0];
      expect(after).toMatchObject({ change: 'left', user: { userId: 'u-bob' } });
      expect(after.v).toBeGreaterThan(last.v);
    }
  });

  it('gives every change of one user a higher version, so out-of-order arrival cannot leave a wrong state', async () => {
    const room = fresh('versions');
    const watcher = await open(person('u-watch2'));
    await watcher.send({ action: 'join', room });
    const carl = await open(person('u-carl'));
    for (let i = 0; i < 6; i++) await carl.send({ action: i % 2 === 0 ? 'join' : 'leave', room });
    const versions = ofType(watcher.inbox(), 'presence').filter((e) => e.room === room).map((e) => e.v);
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
    expect(new Set(versions).size).toBe(versions.length);
  });
});

describe('typing floods', () => {
  it('passes one indicator per throttle window for a user flooding from several tabs at once', async () => {
    const room = fresh('flood');
    const watcher = await open(person('u-watch3'));
    await watcher.send({ action: 'join', room });
    const dan = person('u-dan');
    const tabs = await Promise.all([1, 2, 3].map(() => open(dan)));
    await Promise.all(tabs.map((tab) => tab.send({ action: 'join', room })));
    const acks = await Promise.all(tabs.flatMap((tab) => [1, 2, 3, 4].map(() => tab.send({ action: 'typing', room }))));
    expect(acks.filter((a) => a.type === 'typing_ack' && a.forwarded)).toHaveLength(1);
    expect(ofType(watcher.inbox(), 'typing').filter((e) => e.room === room)).toHaveLength(1);
  });
});

describe('edits and deletions under concurrency', () => {
  it('leaves the content of the last edit in sequence, whatever order concurrent edits land in', async () => {
    const room = fresh('edits');
    const eve = await open(person('u-eve'));
    await eve.send({ action: 'join', room });
    const sent = (await eve.send({ action: 'send', room, data: 'v0' })) as Extract<ServerEvent, { type: 'sent' }>;
    const replies = await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map((i) => eve.send({ action: 'edit', room, seq: sent.seq, data: `v${i}` })));
    const changed = replies.filter((r): r is Extract<ServerEvent, { type: 'changed' }> => r.type === 'changed');
    expect(changed).toHaveLength(8);
    const updates = ofType(eve.inbox(), 'message.updated').filter((e) => e.room === room);
    const lastInSequence = updates.sort((a, b) => b.seq - a.seq)[0];
    const page = (await eve.send({ action: 'history', room })) as Extract<ServerEvent, { type: 'history' }>;
    expect(page.messages[0].data).toBe(lastInSequence.data);
  });

  it('scrubs the content of a message from storage when its deletion races an edit, in every interleaving', async () => {
    for (let run = 0; run < 8; run++) {
      const room = fresh('race');
      const fay = await open(person('u-fay'));
      await fay.send({ action: 'join', room });
      const sent = (await fay.send({ action: 'send', room, data: `original-${run}` })) as Extract<ServerEvent, { type: 'sent' }>;
      const edit = fay.send({ action: 'edit', room, seq: sent.seq, data: `edited-${run}` });
      await new Promise((r) => setTimeout(r, run % 4));
      const del = fay.send({ action: 'delete', room, seq: sent.seq });
      const [e, d] = await Promise.all([edit, del]);
      expect(d.type).toBe('changed');
      expect(['changed', 'error']).toContain(e.type);
      const all = await stored();
      expect(all).not.toContain(`original-${run}`);
      expect(all).not.toContain(`edited-${run}`);
      // Every sequence number taken is an event in history: no hole for a resuming client to stall on.
      const head = (await fay.send({ action: 'join', room })) as Extract<ServerEvent, { type: 'joined' }>;
      const { items } = await fx.store.historyAfter('acme', room, 0, 100);
      expect(items.map((i) => i.seq)).toEqual(Array.from({ length: head.seq }, (_, i) => i + 1));
    }
  });
});

describe('deletion that failed half-way', () => {
  it('is finished by deleting again: the edit events that still carried the content are scrubbed', async () => {
    const room = fresh('half-way');
    const ivy = await open(person('u-ivy'));
    await ivy.send({ action: 'join', room });
    const sent = (await ivy.send({ action: 'send', room, data: 'draft-0' })) as Extract<ServerEvent, { type: 'sent' }>;
    for (let i = 1; i <= 3; i++) await ivy.send({ action: 'edit', room, seq: sent.seq, data: `draft-${i}` });
    // A deletion that marked the message and then died before it scrubbed the edit events.
    const tombstone = { type: 'message', room, seq: sent.seq, messageId: sent.messageId, sender: { userId: 'u-ivy', name: 'u-ivy' }, ts: 0, data: null, deleted: true };
    await fx.store.conversation.markDeleted('acme', room, sent.seq, JSON.stringify(tombstone));
    expect(await stored()).toContain('draft-2');
    const again = await ivy.send({ action: 'delete', room, seq: sent.seq });
    expect(again).toMatchObject({ type: 'error', code: 'not_found' });
    const all = await stored();
    for (let i = 0; i <= 3; i++) expect(all).not.toContain(`draft-${i}`);
  });

  it('bounds the edits of one message, so a deletion has a bounded number of events to scrub', async () => {
    const room = fresh('edit-cap');
    const jo = await open(person('u-jo'));
    await jo.send({ action: 'join', room });
    const sent = (await jo.send({ action: 'send', room, data: 'x' })) as Extract<ServerEvent, { type: 'sent' }>;
    for (let i = 0; i < 50; i++) expectChanged(await jo.send({ action: 'edit', room, seq: sent.seq, data: i }));
    expect(await jo.send({ action: 'edit', room, seq: sent.seq, data: 'one too many' })).toMatchObject({ type: 'error', code: 'conflict' });
    expectChanged(await jo.send({ action: 'delete', room, seq: sent.seq }));
  });
});

describe('read cursors under concurrency', () => {
  it('only ever moves forward, whatever order concurrent reads land in', async () => {
    const room = fresh('cursor');
    const gil = await open(person('u-gil'));
    await gil.send({ action: 'join', room });
    for (let i = 0; i < 10; i++) await gil.send({ action: 'send', room, data: i });
    const reader = await open(person('u-hal'));
    await reader.send({ action: 'join', room });
    const acks = await Promise.all([3, 9, 1, 7, 10, 2, 5].map((s) => reader.send({ action: 'read', room, seq: s })));
    expect(acks.every((a) => a.type === 'read_ack')).toBe(true);
    const receipts = (await reader.send({ action: 'receipts', room })) as Extract<ServerEvent, { type: 'receipts' }>;
    expect(receipts.cursors.find((c) => c.userId === 'u-hal')?.seq).toBe(10);
    const unread = (await reader.send({ action: 'unread' })) as Extract<ServerEvent, { type: 'unread' }>;
    expect(unread.rooms.find((r) => r.room === room)).toMatchObject({ unread: 0, readSeq: 10, lastSeq: 10 });
  });
});

describe('what a frame may cost', () => {
  it('charges a join the room hook decides several tokens, so inventing room names cannot drive the hook', async () => {
    let calls = 0;
    const roomAccess = createRoomAccess(fx.dynamo.doc, fx.tableName, { ROOM_HOOK_FUNCTION: 'hook', ROOM_HOOK_NAMESPACES: 'run' }, {
      invoker: () => async () => {
        calls++;
        return { payload: JSON.stringify({ allow: true }) };
      },
    });
    // Ten frames of burst: two hook joins (five tokens each) fit, the third is refused before the hook is asked.
    const d = { ...deps({ RATE_LIMIT_BURST: '10', RATE_LIMIT_PER_SECOND: '0.01' }), roomAccess };
    const kim = await open(person('u-kim'), d);
    const replies = [];
    for (const id of [1, 2, 3]) replies.push(await kim.send({ action: 'join', room: `run:${id}-${seq}` }));
    expect(replies.map((r) => r.type)).toEqual(['joined', 'joined', 'error']);
    expect(replies[2]).toMatchObject({ code: 'rate_limited' });
    expect(calls).toBe(2);
  });

  it('lists no unread counts of rooms the static rules now refuse (an admin room after leaving the admin group)', async () => {
    const room = `admin:ops-${seq}`;
    const admin = await open(person('u-lee', ['tenant:acme', 'admin']));
    await admin.send({ action: 'join', room });
    await admin.send({ action: 'send', room, data: 'ops only' });
    const listed = (await admin.send({ action: 'unread' })) as Extract<ServerEvent, { type: 'unread' }>;
    expect(listed.rooms.map((r) => r.room)).toContain(room);
    const demoted = await open(person('u-lee'));
    const now = (await demoted.send({ action: 'unread' })) as Extract<ServerEvent, { type: 'unread' }>;
    expect(now.rooms.map((r) => r.room)).not.toContain(room);
  });
});

describe('big rooms stay cheap', () => {
  it('sends no presence or typing signals past signalMaxMembers, and no live receipts past receiptSignalMaxMembers', async () => {
    const small = deps({ SIGNAL_MAX_MEMBERS: '3', RECEIPT_SIGNAL_MAX_MEMBERS: '2' });
    const room = fresh('big');
    const members = await Promise.all(['u-m1', 'u-m2', 'u-m3', 'u-m4'].map((u) => open(person(u), small)));
    for (const m of members.slice(0, 3)) await m.send({ action: 'join', room });
    const sent = (await members[0].send({ action: 'send', room, data: 'hi' })) as Extract<ServerEvent, { type: 'sent' }>;
    // Three connections: live. Receipts already past their limit of two.
    await members[1].send({ action: 'read', room, seq: sent.seq });
    expect(ofType(members[0].inbox(), 'receipt').filter((e) => e.room === room)).toHaveLength(0);
    const typingSmall = (await members[1].send({ action: 'typing', room })) as Extract<ServerEvent, { type: 'typing_ack' }>;
    expect(typingSmall.forwarded).toBe(true);

    const joined = (await members[3].send({ action: 'join', room })) as Extract<ServerEvent, { type: 'joined' }>;
    expect(joined.presence.live).toBe(false); // four connections: snapshots only
    expect(joined.presence.users).toHaveLength(4);
    expect(ofType(members[0].inbox(), 'presence').filter((e) => e.room === room && e.user.userId === 'u-m4')).toHaveLength(0);
    const typingBig = (await members[2].send({ action: 'typing', room })) as Extract<ServerEvent, { type: 'typing_ack' }>;
    expect(typingBig.forwarded).toBe(false);
  });
});
