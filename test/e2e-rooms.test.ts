/**
 * Room access end to end, over real sockets against the local system: private rooms (create, invite, remove; a
 * removed user's sockets leave at once), tenant isolation of same-named rooms, and the deployment's authorization
 * hook (the sample, lambda/samples/room-hook.ts, wired for `run:*` by cdk.json) invoked through Lambda's Invoke API
 * with IAM enforced: allow, deny, error, time-out and garbage, each but allow refusing, and its answers cached.
 */
import { AdminAddUserToGroupCommand, CreateGroupCommand } from '@aws-sdk/client-cognito-identity-provider';
import { framesOf, freshRoom, startTestSystem, waitUntil, type TestClient, type TestSystem } from './support/system';

let t: TestSystem;
beforeAll(async () => {
  // The sample's test behaviours (run:fail-*, run:slow-*, run:garbage-*) are off unless its environment says so.
  t = await startTestSystem({ functionEnv: { ROOM_HOOK_TEST_BEHAVIOURS: 'true' } });
  // bob may watch run 42: an administrator's group, in his access token from his next sign-in on.
  const { client, userPoolId } = t.system.cognito;
  await client.send(new CreateGroupCommand({ UserPoolId: userPoolId, GroupName: 'runs:42' }));
  await client.send(new AdminAddUserToGroupCommand({ UserPoolId: userPoolId, Username: 'bob@acme.test', GroupName: 'runs:42' }));
});
afterAll(() => t.stop());

const fresh = freshRoom;

const frames = framesOf;
const userIdOf = async (c: TestClient) => (await c.client.whoami()).userId;
const create = (c: TestClient, room: string) => c.client.request({ action: 'create', room });
const invite = (c: TestClient, room: string, userId: string) => c.client.request({ action: 'invite', room, userId });
const remove = (c: TestClient, room: string, userId: string) => c.client.request({ action: 'remove', room, userId });

/** The audit events the message function wrote about refused joins of `room`. */
const refusals = (room: string) =>
  t.logs
    .filter((l) => l.includes('"event":"join_refused"'))
    .map((l) => JSON.parse(l.slice(l.indexOf('{'))) as Record<string, unknown>)
    .filter((e) => e.room === room);
/** How many times the sample hook was invoked for `room` (it logs each decision once). */
const hookCalls = (room: string, userId?: string) =>
  t.logs.filter((l) => l.includes('"event":"room_hook_decided"') && l.includes(`"room":"${room}"`) && (userId === undefined || l.includes(`"userId":"${userId}"`))).length;

describe('private rooms', () => {
  it('refuses a non-member, lets them in once invited, and messages then reach them', async () => {
    const room = fresh('private:plan');
    const alice = await t.connect('alice@acme.test');
    const bob = await t.connect('bob@acme.test');
    const bobId = await userIdOf(bob);
    const aliceId = await userIdOf(alice);
    expect(await create(alice, room)).toEqual({ type: 'room_members', room, owner: aliceId, members: [aliceId], id: expect.any(String) });
    await alice.client.join(room);

    await expect(bob.client.join(room)).rejects.toMatchObject({ code: 'forbidden', message: expect.stringMatching(/members only/) });
    await waitUntil(() => refusals(room).length === 1, 3000, 'the refusal to be audited');
    expect(refusals(room)[0]).toMatchObject({ level: 'warn', category: 'audit', userId: bobId, tenantId: 'acme', reason: 'not_member' });
    await expect(create(bob, room)).rejects.toMatchObject({ code: 'conflict' });

    expect((await invite(alice, room, bobId)).members).toEqual([aliceId, bobId].sort());
    await bob.client.join(room);
    await alice.client.send(room, { text: 'welcome' });
    expect((await bob.waitFor(1)).map((m) => m.data)).toEqual([{ text: 'welcome' }]);
    await Promise.all([alice.client.close(), bob.client.close()]);
  });

  it("takes every socket of a removed user out of the room at once: each gets `removed`, then nothing more of it", async () => {
    const room = fresh('private:plan');
    const alice = await t.connect('alice@acme.test');
    const bobTab1 = await t.connect('bob@acme.test');
    const bobTab2 = await t.connect('bob@acme.test');
    const bobId = await userIdOf(bobTab1);
    await create(alice, room);
    await invite(alice, room, bobId);
    for (const c of [alice, bobTab1, bobTab2]) await c.client.join(room);
    await alice.client.send(room, { text: 'before' });
    await bobTab1.waitFor(1);
    await bobTab2.waitFor(1);
    const seen1 = frames(bobTab1);
    const seen2 = frames(bobTab2);
    const removedEvents: string[] = [];
    bobTab1.client.on('removed', (e) => removedEvents.push(e.room));

    expect((await remove(alice, room, bobId)).members).toEqual([await userIdOf(alice)]);
    // At once: by the time the owner has the reply, both sockets were told.
    await waitUntil(() => seen1.some((e) => e.type === 'removed') && seen2.some((e) => e.type === 'removed'), 2000, 'both tabs to be told');
    expect(seen1.filter((e) => e.type === 'removed')).toEqual([{ type: 'removed', room }]);
    expect(removedEvents).toEqual([room]);
    // Alice sees bob leave (his presence ended with his last socket there).
    await waitUntil(() => !alice.client.presenceOf(room).some((u) => u.userId === bobId), 2000, 'alice to see bob leave');

    await alice.client.send(room, { text: 'after' });
    await alice.waitFor(2);
    await new Promise((r) => setTimeout(r, 500));
    for (const seen of [seen1, seen2]) expect(seen.filter((e) => 'room' in e && e.room === room && e.type !== 'removed')).toEqual([]);
    expect(bobTab1.messages.map((m) => m.data)).toEqual([{ text: 'before' }]);
    await expect(bobTab1.client.send(room, { text: 'still here?' })).rejects.toMatchObject({ code: 'not_member' });
    await expect(bobTab2.client.join(room)).rejects.toMatchObject({ code: 'forbidden' });
    // Not even how busy it is: the room is gone from his unread counts.
    expect((await bobTab1.client.request({ action: 'unread' })).rooms.map((r) => r.room)).not.toContain(room);
    await Promise.all([alice, bobTab1, bobTab2].map((c) => c.client.close()));
  });

  it('lets only the owner or a tenant admin invite or remove others (a member may leave by removing themself); the owner stays', async () => {
    const room = fresh('private:plan');
    const alice = await t.connect('alice@acme.test');
    const bob = await t.connect('bob@acme.test');
    const dana = await t.connect('dana@acme.test'); // an admin of acme
    const erin = await t.connect('erin@both.test', { tenant: 'acme' });
    const [aliceId, bobId, danaId, erinId] = await Promise.all([alice, bob, dana, erin].map(userIdOf));
    await create(alice, room);
    await invite(alice, room, bobId);

    await expect(invite(bob, room, erinId)).rejects.toMatchObject({ code: 'forbidden' });
    await expect(remove(bob, room, aliceId)).rejects.toMatchObject({ code: 'forbidden' });
    await expect(invite(erin, room, erinId)).rejects.toMatchObject({ code: 'forbidden' });
    await expect(erin.client.join(room)).rejects.toMatchObject({ code: 'forbidden' });

    expect((await invite(dana, room, erinId)).members).toEqual([aliceId, bobId, erinId].sort());
    await erin.client.join(room);
    expect((await remove(dana, room, bobId)).members).toEqual([aliceId, erinId].sort());
    expect((await remove(erin, room, erinId)).members).toEqual([aliceId]);
    await expect(remove(dana, room, aliceId)).rejects.toMatchObject({ code: 'conflict' });
    await expect(invite(dana, fresh('private:none'), bobId)).rejects.toMatchObject({ code: 'not_found' });
    expect(danaId).not.toBe(aliceId);
    await Promise.all([alice, bob, dana, erin].map((c) => c.client.close()));
  });

  it("keeps tenants apart: globex neither sees nor joins acme's room, and its own of the same name is another", async () => {
    const room = fresh('private:plan');
    const alice = await t.connect('alice@acme.test');
    const carol = await t.connect('carol@globex.test');
    const erinAtGlobex = await t.connect('erin@both.test', { tenant: 'globex' });
    const erinId = await userIdOf(erinAtGlobex);
    const carolId = await userIdOf(carol);
    await create(alice, room);
    await alice.client.join(room);
    // erin is on acme's list; her globex socket is not let in by it.
    await invite(alice, room, erinId);
    await expect(erinAtGlobex.client.join(room)).rejects.toMatchObject({ code: 'forbidden' });
    await expect(carol.client.join(room)).rejects.toMatchObject({ code: 'forbidden' });
    await expect(invite(carol, room, carolId)).rejects.toMatchObject({ code: 'not_found' });
    await expect(remove(carol, room, erinId)).rejects.toMatchObject({ code: 'not_found' });

    expect(await create(carol, room)).toMatchObject({ owner: carolId, members: [carolId] });
    await carol.client.join(room);
    await alice.client.send(room, { text: 'acme only' });
    await carol.client.send(room, { text: 'globex only' });
    expect((await alice.waitFor(1)).map((m) => m.data)).toEqual([{ text: 'acme only' }]);
    expect((await carol.waitFor(1)).map((m) => m.data)).toEqual([{ text: 'globex only' }]);
    await new Promise((r) => setTimeout(r, 300));
    expect(alice.messages).toHaveLength(1);
    expect(carol.messages).toHaveLength(1);
    await Promise.all([alice, carol, erinAtGlobex].map((c) => c.client.close()));
  });
});

describe('the authorization hook (the sample, for run:*)', () => {
  it('allows a user whose groups the hook accepts and denies one it does not, with an audit event', async () => {
    const bob = await t.connect('bob@acme.test'); // in runs:42
    const alice = await t.connect('alice@acme.test');
    await bob.client.join('run:42');
    await expect(alice.client.join('run:42')).rejects.toMatchObject({ code: 'forbidden', message: 'Access to run:42 was refused.' });
    await waitUntil(() => refusals('run:42').length === 1, 3000, 'the denial to be audited');
    expect(refusals('run:42')[0]).toMatchObject({ category: 'audit', userId: await userIdOf(alice), reason: 'denied' });
    await bob.client.send('run:42', { text: 'progress' });
    expect((await bob.waitFor(1)).map((m) => m.data)).toEqual([{ text: 'progress' }]);
    await Promise.all([alice.client.close(), bob.client.close()]);
  });

  it.each([
    ['throws', 'run:fail-1', 'hook_error'],
    ['answers garbage', 'run:garbage-1', 'hook_malformed'],
    ['takes longer than the time-out', 'run:slow-1', 'hook_timeout'],
  ])('refuses when the hook %s (%s: %s)', async (_what, room, reason) => {
    const bob = await t.connect('bob@acme.test');
    const started = Date.now();
    await expect(bob.client.join(room)).rejects.toMatchObject({ code: 'forbidden', message: expect.stringContaining(`(${reason})`) });
    // The time-out is 2 s, and the refusal does not wait for the hook's 3 s.
    if (reason === 'hook_timeout') expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    expect(Date.now() - started).toBeLessThan(2900);
    await waitUntil(() => refusals(room).length === 1, 3000, 'the refusal to be audited');
    expect(refusals(room)[0]).toMatchObject({ category: 'audit', reason, detail: expect.any(String) });
    expect(hookCalls(room)).toBe(1);
    await bob.client.close();
  });

  it('caches answers: within the TTL, each container asks the hook once per user and room, for allow and deny alike', async () => {
    // The cache is per container (Lambda execution environment); the emulator runs several, like Lambda.
    const fn = [...t.system.aws.functions].find(([name]) => name.startsWith('RealtimeMessage'))![1];
    const room = 'run:42';
    const bob = await t.connect('bob@acme.test');
    const bobTab2 = await t.connect('bob@acme.test');
    const alice = await t.connect('alice@acme.test');
    const [bobId, aliceId] = [await userIdOf(bob), await userIdOf(alice)];
    const before = { bob: hookCalls(room, bobId), alice: hookCalls(room, aliceId), refusals: refusals(room).length };
    const joins = 8;
    for (let i = 0; i < joins / 2; i++) {
      for (const c of [bob, bobTab2]) {
        await c.client.join(room);
        await c.client.leave(room);
      }
    }
    for (let i = 0; i < joins; i++) await expect(alice.client.join(room)).rejects.toMatchObject({ code: 'forbidden' });
    await waitUntil(() => refusals(room).length >= before.refusals + joins, 3000, "alice's refusals to be audited");
    await new Promise((r) => setTimeout(r, 300)); // the hook's last log lines
    const environments = fn.stats.environments;
    const bobAsked = hookCalls(room, bobId) - before.bob;
    expect(bobAsked).toBeLessThanOrEqual(environments);
    expect(bobAsked).toBeLessThan(joins);
    // Each denial says whether it came from the cache: the hook was asked exactly for the others.
    const denials = refusals(room).slice(before.refusals);
    const fromHook = denials.filter((e) => !e.cached).length;
    expect(denials).toHaveLength(joins);
    expect(fromHook).toBe(hookCalls(room, aliceId) - before.alice);
    expect(fromHook).toBeLessThanOrEqual(environments);
    expect(fromHook).toBeLessThan(joins);
    await Promise.all([bob, bobTab2, alice].map((c) => c.client.close()));
  });

  it('refuses namespaces neither built in nor configured, without asking the hook', async () => {
    const bob = await t.connect('bob@acme.test');
    await expect(bob.client.join('ops:deploys')).rejects.toMatchObject({ code: 'forbidden', message: expect.stringMatching(/reserved/) });
    await waitUntil(() => refusals('ops:deploys').length === 1, 3000, 'the refusal to be audited');
    expect(refusals('ops:deploys')[0]).toMatchObject({ reason: 'reserved_namespace' });
    expect(hookCalls('ops:deploys')).toBe(0);
    await bob.client.close();
  });
});
