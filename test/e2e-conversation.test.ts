/**
 * The conversation layer end to end, over real sockets against the local system: display names from the user
 * pool, history pages, presence per user (two tabs are one presence; a socket that vanished without $disconnect
 * leaves), typing indicators (throttled, expiring, cleared by the message), and isolation: another tenant sees
 * none of it, not even as frames.
 */
import { ApiGatewayManagementApiClient, DeleteConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { TYPING_EXPIRY_MS, type Member, type ServerEvent } from '../protocol';
import { startTestSystem, waitUntil, type TestClient, type TestSystem } from './support/system';

let t: TestSystem;
beforeAll(async () => {
  t = await startTestSystem();
});
afterAll(() => t.stop());

let rooms = 0;
/** A room name of its own for each test: rooms and their presence outlive a test's sockets. */
const fresh = (what: string) => `${what}-${++rooms}-${Date.now().toString(36)}`;

/** Every frame a client received. */
function frames(c: TestClient): ServerEvent[] {
  const seen: ServerEvent[] = [];
  c.client.on('event', (e) => seen.push(e));
  return seen;
}
const names = (users: Member[]) => users.map((u) => u.name).sort();

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
    const management = new ApiGatewayManagementApiClient({ endpoint: t.system.urls.connections, region: t.system.region, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
    await management.send(new DeleteConnectionCommand({ ConnectionId: (await bob.client.whoami()).connectionId }));
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
    await alice.client.send(room, 'acme only');
    await bob.waitFor(1);
    await bob.client.close();
    await waitUntil(() => alice.client.presenceOf(room).length === 1, 3000, 'bob to leave');

    expect(carolFrames.filter((e) => e.type !== 'pong' && e.type !== 'whoami' && e.type !== 'joined')).toEqual([]);
    expect(names(carol.client.presenceOf(room))).toEqual(['Carol Danvers']);
    expect((await carol.client.history(room)).messages).toEqual([]);
    expect(names(await carol.client.refreshPresence(room))).toEqual(['Carol Danvers']);
    await Promise.all([alice.client.close(), carol.client.close()]);
  });
});
