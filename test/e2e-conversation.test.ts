/**
 * The conversation layer end to end, over real sockets against the local system: display names from the user
 * pool, history pages, presence per user (two tabs are one presence; a socket that vanished without $disconnect
 * leaves), typing indicators (throttled, expiring, cleared by the message), and isolation: another tenant sees
 * none of it, not even as frames.
 */
import { ApiGatewayManagementApiClient, DeleteConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { loadTemplate, resourcesOfType } from '../local/emulator/template';
import { CDK_OUT } from '../local/paths';
import { TYPING_EXPIRY_MS, type Member, type MessageDeletedEvent, type MessageUpdatedEvent } from '../protocol';
import { framesOf, freshRoom, startTestSystem, waitUntil, type TestSystem } from './support/system';

let t: TestSystem;
beforeAll(async () => {
  t = await startTestSystem();
});
afterAll(() => t.stop());

const fresh = freshRoom;

const frames = framesOf;
const names = (users: Member[]) => users.map((u) => u.name).sort();
const management = () =>
  new ApiGatewayManagementApiClient({ endpoint: t.system.urls.connections, region: t.system.region, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });

/** Every item of the table, as stored. */
async function everything(): Promise<string> {
  const [tableName] = resourcesOfType(loadTemplate(CDK_OUT, 'Gatehouse'), 'AWS::DynamoDB::Table')[0];
  const items: unknown[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await t.system.dynamo.doc.send(new ScanCommand({ TableName: tableName, ExclusiveStartKey: start }));
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  return JSON.stringify(items, (_k, v) => (v instanceof Set ? [...v] : v));
}

describe('display names', () => {
  it('names every sender by the name the user pool holds, never by what the client says', async () => {
    const room = fresh('names');
    const alice = await t.connect('alice@acme.test');
    const bob = await t.connect('bob@acme.test');
    expect((await alice.client.whoami()).name).toBe('Alice Liddell');
    await alice.client.join(room);
    await bob.client.join(room);
    // A client cannot claim a name: `send` takes `data` only, and a `name` field is refused.
    await expect(alice.client.request({ action: 'send', room, data: 'x', name: 'Bob Marley' } as never)).rejects.toMatchObject({ code: 'invalid_message' });
    await alice.client.send(room, { text: 'hello' });
    const [message] = await bob.waitFor(1);
    expect(message.sender).toEqual({ userId: (await alice.client.whoami()).userId, name: 'Alice Liddell' });
    await Promise.all([alice.client.close(), bob.client.close()]);
  });
});

describe('history', () => {
  it('gives a joiner the recent messages and pages back with a cursor to the first', async () => {
    const room = fresh('history');
    const alice = await t.connect('alice@acme.test');
    await alice.client.join(room);
    for (let i = 1; i <= 5; i++) await alice.client.send(room, { text: `m${i}` });
    await alice.client.close();

    const bob = await t.connect('bob@acme.test');
    const joined = await bob.client.join(room);
    expect(joined.seq).toBe(5);
    const latest = await bob.client.history(room, { limit: 2 });
    expect(latest.messages.map((m) => m.data)).toEqual([{ text: 'm4' }, { text: 'm5' }]);
    expect(latest.messages[0].sender).toMatchObject({ name: 'Alice Liddell' });
    expect(latest.before).toBe(4);
    const older = await bob.client.history(room, { before: latest.before, limit: 2 });
    expect(older.messages.map((m) => m.seq)).toEqual([2, 3]);
    const first = await bob.client.history(room, { before: older.before, limit: 2 });
    expect(first.messages.map((m) => m.seq)).toEqual([1]);
    expect(first.before).toBeUndefined();
    // The default page is everything here, oldest first.
    expect((await bob.client.history(room)).messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    await bob.client.close();
  });

  it('refuses history, typing and presence of a room the socket has not joined, and bad cursors', async () => {
    const room = fresh('closed');
    const bob = await t.connect('bob@acme.test');
    for (const action of ['history', 'typing', 'presence'] as const) {
      await expect(bob.client.request({ action, room })).rejects.toMatchObject({ code: 'not_member' });
    }
    await bob.client.join(room);
    await expect(bob.client.request({ action: 'history', room, before: 0 })).rejects.toMatchObject({ code: 'invalid_message' });
    await expect(bob.client.request({ action: 'history', room, limit: 101 })).rejects.toMatchObject({ code: 'invalid_message' });
    await bob.client.close();
  });
});

describe('presence', () => {
  it('is per user: a snapshot on join, joined for the first socket, left only after the last', async () => {
    const room = fresh('presence');
    const alice = await t.connect('alice@acme.test');
    const aliceFrames = frames(alice);
    const joined = await alice.client.join(room);
    expect(joined.presence).toMatchObject({ users: [{ name: 'Alice Liddell' }], live: true });

    const bob1 = await t.connect('bob@acme.test');
    const bob2 = await t.connect('bob@acme.test');
    const seen = (await bob1.client.join(room)).presence;
    expect(names(seen.users)).toEqual(['Alice Liddell', 'Bob Marley']);
    await waitUntil(() => names(alice.client.presenceOf(room)).join() === 'Alice Liddell,Bob Marley', 3000, 'alice to see bob');
    await bob2.client.join(room); // a second tab: no second "joined"
    await bob2.client.leave(room); // and its leaving is no "left"
    await new Promise((r) => setTimeout(r, 300));
    const changes = () => aliceFrames.filter((e) => e.type === 'presence').map((e) => (e.type === 'presence' ? `${e.change}:${e.user.name}` : ''));
    expect(changes()).toEqual(['joined:Bob Marley']);

    await bob1.client.close(); // the last socket: $disconnect ends the presence
    await waitUntil(() => changes().length === 2, 3000, 'bob to leave');
    expect(changes()).toEqual(['joined:Bob Marley', 'left:Bob Marley']);
    expect(names(alice.client.presenceOf(room))).toEqual(['Alice Liddell']);
    await Promise.all([alice.client.close(), bob2.client.close()]);
  });

  it('ends the presence of a socket that vanished without $disconnect when the room next hears from it', async () => {
    const room = fresh('vanish');
    const alice = await t.connect('alice@acme.test');
    const ghost = await t.connect('bob@acme.test', { reconnect: false });
    await alice.client.join(room);
    await ghost.client.join(room);
    await waitUntil(() => alice.client.presenceOf(room).length === 2, 3000, 'alice to see bob');
    expect(t.system.gateway.drop((await ghost.client.whoami()).connectionId)).toBe(true); // no $disconnect
    await new Promise((r) => setTimeout(r, 200));
    expect(alice.client.presenceOf(room)).toHaveLength(2); // nobody told the store yet

    await alice.client.send(room, 'anyone?'); // the post to the ghost answers 410: purged, and its presence ends
    await waitUntil(() => alice.client.presenceOf(room).length === 1, 3000, 'the ghost to leave');
    expect(names((await alice.client.refreshPresence(room)))).toEqual(['Alice Liddell']);
    await alice.client.close();
  });

  it('ends a presence when the server closes the socket (sign-out elsewhere, expiry) through $disconnect', async () => {
    const room = fresh('closed-by-server');
    const alice = await t.connect('alice@acme.test');
    const bob = await t.connect('bob@acme.test', { reconnect: false });
    await alice.client.join(room);
    await bob.client.join(room);
    await waitUntil(() => alice.client.presenceOf(room).length === 2, 3000, 'alice to see bob');
    await management().send(new DeleteConnectionCommand({ ConnectionId: (await bob.client.whoami()).connectionId }));
    await waitUntil(() => alice.client.presenceOf(room).length === 1, 3000, 'bob to leave');
    await alice.client.close();
  });
});

describe('typing', () => {
  it('passes one indicator per 2 s per user on, expires it after 5 s, and clears it when the message arrives', async () => {
    const room = fresh('typing');
    const alice = await t.connect('alice@acme.test');
    const bob = await t.connect('bob@acme.test');
    const aliceFrames = frames(alice);
    await alice.client.join(room);
    await bob.client.join(room);

    // The server's throttle, not only the client's: raw requests straight after one another.
    const first = await bob.client.request({ action: 'typing', room });
    const second = await bob.client.request({ action: 'typing', room });
    expect([first.forwarded, second.forwarded]).toEqual([true, false]);
    await waitUntil(() => alice.client.typingIn(room).length === 1, 2000, 'alice to see bob typing');
    expect(alice.client.typingIn(room)).toEqual([{ userId: (await bob.client.whoami()).userId, name: 'Bob Marley' }]);
    expect(aliceFrames.filter((e) => e.type === 'typing')).toHaveLength(1);
    // Typing is never stored: not in history.
    expect((await alice.client.history(room)).messages).toEqual([]);

    await bob.client.send(room, 'done typing');
    await waitUntil(() => alice.client.typingIn(room).length === 0, 2000, 'the message to clear the indicator');

    await new Promise((r) => setTimeout(r, 2100)); // past the throttle
    expect(await bob.client.typing(room)).toBe(true);
    await waitUntil(() => alice.client.typingIn(room).length === 1, 2000, 'alice to see bob typing again');
    const shownAt = Date.now();
    await waitUntil(() => alice.client.typingIn(room).length === 0, TYPING_EXPIRY_MS + 2000, 'the indicator to expire');
    expect(Date.now() - shownAt).toBeGreaterThanOrEqual(TYPING_EXPIRY_MS - 300);
    await Promise.all([alice.client.close(), bob.client.close()]);
  }, 20_000);
});

describe('tenant isolation', () => {
  it('shows another tenant none of it, not even as frames: presence, typing, messages, history', async () => {
    const room = fresh('shared-name');
    const carol = await t.connect('carol@globex.test');
    const carolFrames = frames(carol);
    const joined = await carol.client.join(room);
    expect(names(joined.presence.users)).toEqual(['Carol Danvers']);

    const alice = await t.connect('alice@acme.test');
    const bob = await t.connect('bob@acme.test');
    await alice.client.join(room);
    await bob.client.join(room);
    await bob.client.request({ action: 'typing', room });
    const sent = await alice.client.send(room, 'acme only');
    await bob.waitFor(1);
    await bob.client.read(room, sent.seq);
    await alice.client.edit(room, sent.seq, 'still acme only');
    await bob.client.close();
    await waitUntil(() => alice.client.presenceOf(room).length === 1, 3000, 'bob to leave');

    expect(carolFrames.filter((e) => e.type !== 'pong' && e.type !== 'whoami' && e.type !== 'joined')).toEqual([]);
    expect(names(carol.client.presenceOf(room))).toEqual(['Carol Danvers']);
    expect((await carol.client.history(room)).messages).toEqual([]);
    expect(await carol.client.receipts(room)).toEqual([]);
    await expect(carol.client.edit(room, sent.seq, 'from globex')).rejects.toMatchObject({ code: 'not_found' });
    expect(names(await carol.client.refreshPresence(room))).toEqual(['Carol Danvers']);
    await Promise.all([alice.client.close(), carol.client.close()]);
  });
});

describe('edit and delete', () => {
  it('applies an edit and a deletion in order at every member, and replays both to a socket that was away', async () => {
    const room = fresh('edits');
    const alice = await t.connect('alice@acme.test');
    const bob = await t.connect('bob@acme.test', { reconnect: { initialDelayMs: 1500, jitter: 0 } });
    const changes: Array<MessageUpdatedEvent | MessageDeletedEvent> = [];
    bob.client.on('changed', (c) => changes.push(c));
    await alice.client.join(room);
    await bob.client.join(room);
    const one = await alice.client.send(room, { text: 'first draft' });
    const two = await alice.client.send(room, { text: 'a secret' });
    await bob.waitFor(2);

    // Bob's socket goes; while he is away, Alice edits one message and deletes the other.
    await management().send(new DeleteConnectionCommand({ ConnectionId: (await bob.client.whoami()).connectionId }));
    await waitUntil(() => bob.client.state === 'reconnecting', 2000, 'bob to be away');
    const edited = await alice.client.edit(room, one.seq, { text: 'final text' });
    const deleted = await alice.client.delete(room, two.seq);
    expect([edited.target, deleted.target]).toEqual([one.seq, two.seq]);
    await waitUntil(() => changes.length === 2, 8000, 'bob to replay the edit and the deletion');
    expect(changes.map((c) => [c.type, c.target, c.seq])).toEqual([
      ['message.updated', one.seq, edited.seq],
      ['message.deleted', two.seq, deleted.seq],
    ]);
    expect((changes[0] as MessageUpdatedEvent).data).toEqual({ text: 'final text' });
    expect(changes[0].by).toMatchObject({ name: 'Alice Liddell' });

    // History shows the current content: the edit applied, the deletion without content.
    const page = await bob.client.history(room);
    expect(page.messages.map((m) => [m.seq, m.data, !!m.edited, !!m.deleted])).toEqual([
      [one.seq, { text: 'final text' }, true, false],
      [two.seq, null, false, true],
    ]);
    // The deleted content is gone from storage (message item and all), the edited one only as its last version.
    const stored = await everything();
    expect(stored).not.toContain('a secret');
    expect(stored).not.toContain('first draft');
    await Promise.all([alice.client.close(), bob.client.close()]);
  }, 20_000);

  it('lets only the author edit, the author or a tenant admin delete, and nobody edit a deleted message', async () => {
    const room = fresh('authz');
    const alice = await t.connect('alice@acme.test');
    const bob = await t.connect('bob@acme.test');
    const dana = await t.connect('dana@acme.test'); // the admin group
    for (const c of [alice, bob, dana]) await c.client.join(room);
    const sent = await alice.client.send(room, 'mine');
    await expect(bob.client.edit(room, sent.seq, 'hijacked')).rejects.toMatchObject({ code: 'forbidden' });
    await expect(dana.client.edit(room, sent.seq, 'admins do not edit')).rejects.toMatchObject({ code: 'forbidden' });
    await expect(bob.client.delete(room, sent.seq)).rejects.toMatchObject({ code: 'forbidden' });
    await expect(alice.client.edit(room, 9999, 'nothing there')).rejects.toMatchObject({ code: 'not_found' });
    expect(t.logs.some((l) => l.includes('edit_refused'))).toBe(true);

    const deleted = await dana.client.delete(room, sent.seq);
    expect(deleted.target).toBe(sent.seq);
    await expect(alice.client.edit(room, sent.seq, 'too late')).rejects.toMatchObject({ code: 'not_found' });
    await expect(alice.client.delete(room, sent.seq)).rejects.toMatchObject({ code: 'not_found' });
    // Edits and deletions of messages of a room the socket has not joined are refused.
    await alice.client.leave(room);
    await expect(alice.client.edit(room, sent.seq, 'x')).rejects.toMatchObject({ code: 'not_member' });
    await Promise.all([alice.client.close(), bob.client.close(), dana.client.close()]);
  });
});

describe('receipts, delivery status and unread counts', () => {
  it('tells the sender delivered and read: a receipt when a cursor passes the message, "seen by" from cursors', async () => {
    const room = fresh('receipts');
    const alice = await t.connect('alice@acme.test');
    await alice.client.join(room);
    const alone = await alice.client.send(room, 'anyone?');
    expect(alone.delivered).toBe(0); // stored (seq), but no other user's socket got it

    const bob = await t.connect('bob@acme.test');
    await bob.client.join(room);
    const m1 = await alice.client.send(room, 'one');
    const m2 = await alice.client.send(room, 'two');
    expect(m1.delivered).toBe(1);
    await bob.waitFor(2);
    expect(await bob.client.read(room, m1.seq)).toBe(m1.seq);
    await waitUntil(() => alice.client.seenBy(room, m1.seq).length === 1, 3000, 'the receipt');
    expect(alice.client.seenBy(room, m1.seq)).toEqual([{ userId: (await bob.client.whoami()).userId, name: 'Bob Marley' }]);
    expect(alice.client.seenBy(room, m2.seq)).toEqual([]);
    // A cursor only moves forward.
    expect(await bob.client.read(room, 1)).toBe(m1.seq);
    // And cannot pass what exists.
    expect(await bob.client.read(room, 10_000)).toBe(m2.seq);
    const cursors = await alice.client.receipts(room);
    expect(cursors.find((c) => c.name === 'Bob Marley')?.seq).toBe(m2.seq);
    await Promise.all([alice.client.close(), bob.client.close()]);
  });

  it('counts unread messages per room on connect and live, never the user\'s own', async () => {
    const room = fresh('unread');
    const bob = await t.connect('bob@acme.test');
    await bob.client.join(room);
    await bob.client.close();

    const alice = await t.connect('alice@acme.test');
    await alice.client.join(room);
    await alice.client.send(room, 'a');
    await alice.client.send(room, 'b');
    expect((await alice.client.unread()).get(room)).toBe(0);

    const again = await t.connect('bob@acme.test');
    const counts = await again.client.unread();
    expect(counts.get(room)).toBe(2);
    await again.client.join(room);
    await alice.client.send(room, 'c');
    await waitUntil(() => again.client.unreadIn(room) === 3, 3000, 'the live count');
    await again.client.read(room);
    expect(again.client.unreadIn(room)).toBe(0);
    expect((await again.client.unread()).get(room)).toBe(0);
    await Promise.all([alice.client.close(), again.client.close()]);
  });
});
