/**
 * Room access (lambda/core/room-access.ts): private rooms' member lists against a real DynamoDB engine (dynalite,
 * the synthesized table), and the authorization hook with an injected invoker, then through the real Lambda client
 * against a stand-in of Lambda's Invoke API.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from '../lambda/core/connection';
import { toAuthorizerContext, type Identity } from '../lambda/core/identity';
import type { MessageDeps } from '../lambda/core/messages';
import { enterRoom } from '../lambda/core/presence';
import {
  ROOM_ACCESS_DEFAULTS,
  accessHandlers,
  authorizeJoin,
  confirmJoin,
  createRoomAccess,
  hookNamespaceProblem,
  lambdaHookInvoker,
  roomAccessConfig,
  type AccessDeps,
  type HookInvoker,
  type RoomAccess,
} from '../lambda/core/room-access';
import { allows } from '../lambda/samples/room-hook';
import type { ServerEvent } from '../protocol';
import { startConnectionsEndpoint, type ConnectionsEndpoint } from './support/connections-endpoint';
import { coreDeps } from './support/core';
import { memoryLogger } from './support/log';
import { startStore, type StoreFixture } from './support/store';

let fx: StoreFixture;
let endpoint: ConnectionsEndpoint;
let logger: ReturnType<typeof memoryLogger>;
let deps: MessageDeps & AccessDeps;

const person = (userId: string, tenantId: string, groups: string[]): Identity => ({
  userId,
  username: userId.slice(2),
  tenantId,
  groups,
  tokenExpiresAt: 4_000_000_000,
  signIn: `${userId}-sign-in`,
  issuedAt: 1_700_000_000,
});
const people = {
  alice: person('u-alice', 'acme', ['tenant:acme']),
  bob: person('u-bob', 'acme', ['tenant:acme']),
  dave: person('u-dave', 'acme', ['tenant:acme']),
  root: person('u-root', 'acme', ['tenant:acme', 'admin']),
  runner: person('u-runner', 'acme', ['tenant:acme', 'runs:42']),
  carol: person('u-carol', 'globex', ['tenant:globex']),
  // The same user id in another tenant: what isolates the tenants is the key, not the user.
  aliceAtGlobex: person('u-alice', 'globex', ['tenant:globex']),
};
type Who = keyof typeof people;

/** An invoker that answers from a script and records what it was asked. */
function scriptedHook(answer: (request: { identity: { userId: string; tenantId: string; groups: string[] }; room: string }) => Promise<{ payload?: string; functionError?: string }>) {
  const calls: Array<{ identity: { userId: string; tenantId: string; groups: string[] }; room: string }> = [];
  const signals: AbortSignal[] = [];
  const invoker: HookInvoker = async (payload, signal) => {
    const request = JSON.parse(payload);
    calls.push(request);
    signals.push(signal);
    return answer(request);
  };
  return { invoker, calls, signals };
}
const answer = (value: unknown) => ({ payload: JSON.stringify(value) });

let clock = 1_800_000_000_000;
function accessWith(invoker?: HookInvoker, env: Record<string, string> = {}, maxMembers?: number): RoomAccess {
  return createRoomAccess(
    fx.dynamo.doc,
    fx.tableName,
    invoker ? { ROOM_HOOK_FUNCTION: 'arn:aws:lambda:eu-west-1:111122223333:function:hook', ROOM_HOOK_NAMESPACES: 'run,job', ROOM_HOOK_TIMEOUT_MS: '100', ...env } : env,
    { ...(invoker ? { invoker: () => invoker } : {}), now: () => clock, ...(maxMembers ? { maxMembers } : {}) },
  );
}

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
    ...coreDeps(fx, endpoint, logger.log),
    roomAccess: accessWith(),
  };
});

let seq = 0;
let roomSeq = 0;
/** A room name of its own per test, so tests share the table without sharing rooms. */
const fresh = (prefix = 'private:team') => `${prefix}-${++roomSeq}`;

/** Opens a connection for a person, as $connect would after the authorizer allowed it. */
async function open(who: Who) {
  const connectionId = `${who}-${++seq}`;
  expect((await connect({ connectionId, authorizer: toAuthorizerContext(people[who], 'header') }, deps)).statusCode).toBe(200);
  endpoint.live.add(connectionId);
  const record = async () => (await fx.store.getConnection(connectionId))!;
  const ctx = async () => ({ connection: await record(), now: clock, deps });
  return {
    connectionId,
    record,
    inbox: () => (endpoint.received.get(connectionId) ?? []) as ServerEvent[],
    create: async (room: string) => accessHandlers.create({ action: 'create', room }, await ctx()),
    invite: async (room: string, userId: string) => accessHandlers.invite({ action: 'invite', room, userId }, await ctx()),
    remove: async (room: string, userId: string) => accessHandlers.remove({ action: 'remove', room, userId }, await ctx()),
    /** The join handler's access steps, in the order the wiring runs them. */
    join: async (room: string): Promise<string> => {
      const connection = await record();
      const refusal = await authorizeJoin(connection, room, deps);
      if (refusal) return `refused: ${refusal}`;
      expect(await fx.store.join(connection, room, 50)).toBe('joined');
      const revoked = await confirmJoin(connection, room, deps);
      if (revoked) return `revoked: ${revoked}`;
      await enterRoom(connection.tenantId, room, { userId: connection.userId, name: connection.userId }, connection, deps);
      return 'joined';
    },
  };
}

const audits = (event: string) => logger.events().filter((e) => e.event === event && e.category === 'audit');
async function roomConnections(tenantId: string, room: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const page of fx.store.roomMembers(tenantId, room)) ids.push(...page);
  return ids.sort();
}

describe('private rooms', () => {
  it('create makes the caller owner and first member; the name is then taken in the tenant', async () => {
    const alice = await open('alice');
    const room = fresh();
    expect(await alice.create(room)).toEqual({ type: 'room_members', room, owner: 'u-alice', members: ['u-alice'] });
    expect(await alice.join(room)).toBe('joined');
    const bob = await open('bob');
    expect(await bob.create(room)).toMatchObject({ type: 'error', code: 'conflict' });
    expect(await alice.create('general')).toMatchObject({ type: 'error', code: 'invalid_message' });
    expect(await alice.create('run:7')).toMatchObject({ type: 'error', code: 'invalid_message' });
  });

  it('refuses a non-member (forbidden, audited with a reason), and lets them in once invited', async () => {
    const alice = await open('alice');
    const bob = await open('bob');
    const room = fresh();
    await alice.create(room);
    expect(await bob.join(room)).toMatch(/^refused: Room private:team-\d+ is for its members only/);
    expect((await bob.record()).rooms).not.toContain(room);
    expect(audits('join_refused')).toEqual([expect.objectContaining({ level: 'warn', userId: 'u-bob', tenantId: 'acme', room, reason: 'not_member' })]);
    // A room that does not exist refuses in the same words: nothing tells it apart from one you are not in.
    expect(await bob.join(fresh())).toMatch(/^refused: Room private:team-\d+ is for its members only/);

    expect(await alice.invite(room, 'u-bob')).toEqual({ type: 'room_members', room, owner: 'u-alice', members: ['u-alice', 'u-bob'] });
    expect(await bob.join(room)).toBe('joined');
    expect(await roomConnections('acme', room)).toEqual([bob.connectionId]);
    // Inviting again changes nothing.
    expect(await alice.invite(room, 'u-bob')).toMatchObject({ members: ['u-alice', 'u-bob'] });
  });

  it('lets the owner and tenant admins invite, and nobody else (members included)', async () => {
    const alice = await open('alice');
    const bob = await open('bob');
    const root = await open('root');
    const room = fresh();
    await alice.create(room);
    await alice.invite(room, 'u-bob');
    expect(await bob.invite(room, 'u-dave')).toMatchObject({ type: 'error', code: 'forbidden' });
    expect(audits('room_access_refused')).toEqual([expect.objectContaining({ action: 'invite', by: 'u-bob', userId: 'u-dave', reason: 'not_owner' })]);
    expect(await root.invite(room, 'u-dave')).toMatchObject({ type: 'room_members', members: ['u-alice', 'u-bob', 'u-dave'] });
    expect(audits('room_access_changed').map((e) => [e.action, e.by, e.userId])).toEqual([
      ['create', 'u-alice', undefined],
      ['invite', 'u-alice', 'u-bob'],
      ['invite', 'u-root', 'u-dave'],
    ]);
    expect(await alice.invite(fresh(), 'u-bob')).toMatchObject({ type: 'error', code: 'not_found' });
    expect(await alice.invite('general', 'u-bob')).toMatchObject({ type: 'error', code: 'invalid_message' });
  });

  it('lets the owner, an admin or the user themself remove; never anyone else, and never the owner', async () => {
    const alice = await open('alice');
    const bob = await open('bob');
    const dave = await open('dave');
    const root = await open('root');
    const room = fresh();
    await alice.create(room);
    for (const u of ['u-bob', 'u-dave', 'u-root']) await alice.invite(room, u);
    expect(await bob.remove(room, 'u-dave')).toMatchObject({ type: 'error', code: 'forbidden' });
    expect(await bob.remove(room, 'u-alice')).toMatchObject({ type: 'error', code: 'forbidden' });
    expect(await root.remove(room, 'u-alice')).toMatchObject({ type: 'error', code: 'conflict', message: expect.stringMatching(/owner/) });
    expect(await alice.remove(room, 'u-alice')).toMatchObject({ type: 'error', code: 'conflict' });
    expect(await dave.remove(room, 'u-dave')).toEqual({ type: 'room_members', room, owner: 'u-alice', members: ['u-alice', 'u-bob', 'u-root'] });
    expect(await root.remove(room, 'u-bob')).toMatchObject({ members: ['u-alice', 'u-root'] });
    expect(await alice.remove(room, 'u-root')).toMatchObject({ members: ['u-alice'] });
    // Removing someone who is not a member answers the list as it is.
    expect(await alice.remove(room, 'u-bob')).toMatchObject({ type: 'room_members', members: ['u-alice'] });
    expect(await alice.remove(fresh(), 'u-bob')).toMatchObject({ type: 'error', code: 'not_found' });
  });

  it("takes every socket of a removed user that joined the room out of it at once, and tells each of them", async () => {
    const alice = await open('alice');
    const bobTab1 = await open('bob');
    const bobTab2 = await open('bob');
    const bobElsewhere = await open('bob'); // never joined the room
    const room = fresh();
    await alice.create(room);
    await alice.invite(room, 'u-bob');
    for (const c of [alice, bobTab1, bobTab2]) expect(await c.join(room)).toBe('joined');
    expect(await bobElsewhere.join('general')).toBe('joined');
    endpoint.received.clear();

    expect(await alice.remove(room, 'u-bob')).toMatchObject({ members: ['u-alice'] });
    expect(bobTab1.inbox()).toEqual([{ type: 'removed', room }]);
    expect(bobTab2.inbox()).toEqual([{ type: 'removed', room }]);
    expect(bobElsewhere.inbox()).toEqual([]);
    // Out of the room's partition (no delivery reaches them) and out of their connections' rooms (no send).
    expect(await roomConnections('acme', room)).toEqual([alice.connectionId]);
    expect((await bobTab1.record()).rooms).not.toContain(room);
    expect((await bobElsewhere.record()).rooms).toEqual(['general']);
    // The others see them leave, once (their last socket there).
    expect(alice.inbox()).toEqual([{ type: 'presence', room, change: 'left', user: { userId: 'u-bob', name: 'u-bob' }, v: expect.any(Number) }]);
    expect(audits('room_access_changed').at(-1)).toMatchObject({ action: 'remove', userId: 'u-bob', wasMember: true, evicted: 2 });
    // And they cannot come back.
    expect(await bobTab1.join(room)).toMatch(/^refused/);
  });

  it('undoes a join that raced the removal (the list is read again once the membership is written)', async () => {
    const alice = await open('alice');
    const bob = await open('bob');
    const room = fresh();
    await alice.create(room);
    await alice.invite(room, 'u-bob');
    const connection = await bob.record();
    expect(await authorizeJoin(connection, room, deps)).toBeUndefined();
    // The removal runs between the check and the membership write: its sweep finds bob in no room.
    await alice.remove(room, 'u-bob');
    expect(await fx.store.join(connection, room, 50)).toBe('joined');
    expect(await confirmJoin(connection, room, deps)).toMatch(/members only/);
    expect(await roomConnections('acme', room)).toEqual([]);
    expect((await bob.record()).rooms).not.toContain(room);
    expect(audits('join_refused').at(-1)).toMatchObject({ reason: 'removed_during_join', userId: 'u-bob' });
  });

  it('caps the member list atomically: concurrent invites never overshoot it', async () => {
    deps.roomAccess = accessWith(undefined, {}, 5);
    const alice = await open('alice');
    const room = fresh();
    await alice.create(room);
    const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => alice.invite(room, `u-guest${i}`)));
    expect(replies.filter((r) => r.type === 'room_members')).toHaveLength(4);
    expect(replies.filter((r) => r.type === 'error' && r.code === 'conflict')).toHaveLength(8);
    expect((await deps.roomAccess.acl.get('acme', room))!.members).toHaveLength(5);
    // At the cap, inviting a member again still answers the list.
    const member = (replies.find((r) => r.type === 'room_members') as { members: string[] }).members.find((m) => m !== 'u-alice')!;
    expect(await alice.invite(room, member)).toMatchObject({ type: 'room_members' });
    expect(ROOM_ACCESS_DEFAULTS.privateRoomMaxMembers * 131 + 512).toBeLessThan(32 * 1024); // the reply fits one frame
  });

  it("keeps tenants apart: another tenant's same-named room is another room, invisible and closed to the first", async () => {
    const alice = await open('alice');
    const carol = await open('carol');
    const aliceAtGlobex = await open('aliceAtGlobex');
    const room = fresh();
    await alice.create(room);
    await alice.invite(room, 'u-carol');
    // u-carol is on acme's list, but her connection is globex's: that tenant has no such room.
    expect(await carol.join(room)).toMatch(/^refused/);
    expect(await carol.invite(room, 'u-carol')).toMatchObject({ type: 'error', code: 'not_found' });
    expect(await carol.remove(room, 'u-alice')).toMatchObject({ type: 'error', code: 'not_found' });
    // The same user id connected to another tenant is not a member there either.
    expect(await aliceAtGlobex.join(room)).toMatch(/^refused/);
    // globex can create its own room of that name, with its own members.
    expect(await carol.create(room)).toEqual({ type: 'room_members', room, owner: 'u-carol', members: ['u-carol'] });
    expect(await carol.join(room)).toBe('joined');
    expect(await roomConnections('acme', room)).toEqual([]);
    expect(await roomConnections('globex', room)).toEqual([carol.connectionId]);
  });

  it('fails closed without a configured store: private rooms are refused and cannot be managed', async () => {
    const alice = await open('alice');
    delete deps.roomAccess;
    expect(await alice.join(fresh())).toMatch(/^refused: Access to this room cannot be checked/);
    expect(await alice.create(fresh())).toMatchObject({ type: 'error', code: 'internal' });
    expect(audits('join_refused').at(-1)).toMatchObject({ reason: 'not_configured' });
  });
});

describe('built-in and reserved namespaces', () => {
  it.each([
    ['alice', 'general', 'joined'],
    ['alice', 'user:u-alice', 'joined'],
    ['alice', 'user:u-bob', 'other_user'],
    ['alice', 'admin:ops', 'not_admin'],
    ['root', 'admin:ops', 'joined'],
    ['alice', 'ops:deploys', 'reserved_namespace'],
    ['alice', 'run:42', 'reserved_namespace'], // no hook configured
  ] as const)('%s joining %s: %s', async (who, room, outcome) => {
    const c = await open(who);
    const result = await c.join(room);
    if (outcome === 'joined') expect(result).toBe('joined');
    else {
      expect(result).toMatch(/^refused/);
      expect(audits('join_refused')).toEqual([expect.objectContaining({ room, reason: outcome })]);
    }
  });
});

describe('the authorization hook', () => {
  it('asks with the verified identity of the connection and the room, and follows the answer', async () => {
    const hook = scriptedHook(async (r) => answer({ allow: r.identity.groups.includes('runs:42') }));
    deps.roomAccess = accessWith(hook.invoker);
    const runner = await open('runner');
    const alice = await open('alice');
    expect(await runner.join('run:42')).toBe('joined');
    expect(await alice.join('run:42')).toBe('refused: Access to run:42 was refused.');
    expect(hook.calls).toEqual([
      { identity: { userId: 'u-runner', tenantId: 'acme', groups: ['tenant:acme', 'runs:42'] }, room: 'run:42' },
      { identity: { userId: 'u-alice', tenantId: 'acme', groups: ['tenant:acme'] }, room: 'run:42' },
    ]);
    expect(audits('join_refused')).toEqual([expect.objectContaining({ userId: 'u-alice', room: 'run:42', reason: 'denied' })]);
    // Only the namespaces it was given: others stay reserved, built-in ones are never asked.
    expect(await alice.join('ops:1')).toMatch(/reserved/);
    expect(await alice.join('user:u-alice')).toBe('joined');
    expect(hook.calls).toHaveLength(2);
  });

  it('caches answers (allow and deny) per tenant, user, groups and room for the TTL; failures are asked again', async () => {
    let allow = true;
    let fail = false;
    const hook = scriptedHook(async () => (fail ? { functionError: 'Unhandled' } : answer({ allow })));
    deps.roomAccess = accessWith(hook.invoker, { ROOM_HOOK_CACHE_TTL_MS: '1000' });
    const runner = await open('runner');
    const runner2 = await open('runner');
    expect(await runner.join('run:1')).toBe('joined');
    allow = false;
    expect(await runner2.join('run:1')).toBe('joined'); // cached: not asked again
    expect(hook.calls).toHaveLength(1);
    expect(await runner.join('job:1')).toMatch(/refused/); // another room is asked
    expect(await (await open('bob')).join('run:1')).toMatch(/refused/); // another user is asked
    expect(hook.calls).toHaveLength(3);
    clock += 1001;
    expect(await runner.join('run:1')).toMatch(/refused/); // expired: asked, now denied
    expect(await runner2.join('run:1')).toMatch(/refused/); // the denial is cached too
    expect(audits('join_refused').at(-1)).toMatchObject({ reason: 'denied', cached: true });
    expect(hook.calls).toHaveLength(4);
    clock += 1001;
    fail = true;
    expect(await runner.join('run:1')).toMatch(/hook_error/);
    expect(await runner.join('run:1')).toMatch(/hook_error/);
    expect(hook.calls).toHaveLength(6);
  });

  it('asks again when the user comes with other groups (a refreshed token)', async () => {
    const hook = scriptedHook(async () => answer({ allow: true }));
    deps.roomAccess = accessWith(hook.invoker);
    const runner = await open('runner');
    const connection = await runner.record();
    expect(await authorizeJoin(connection, 'run:9', deps)).toBeUndefined();
    expect(await authorizeJoin({ ...connection, groups: ['runs:42', 'tenant:acme'] }, 'run:9', deps)).toBeUndefined(); // same set
    expect(await authorizeJoin({ ...connection, groups: ['tenant:acme'] }, 'run:9', deps)).toBeUndefined();
    expect(hook.calls).toHaveLength(2);
  });

  it.each([
    ['throws (FunctionError)', async () => ({ functionError: 'Unhandled', payload: '{"errorMessage":"boom"}' }), 'hook_error'],
    ['fails to be invoked', async () => Promise.reject(Object.assign(new Error('denied'), { name: 'AccessDeniedException' })), 'hook_error'],
    ['answers late', () => new Promise<{ payload: string }>((r) => setTimeout(() => r(answer({ allow: true })), 400)), 'hook_timeout'],
    ['answers a string', async () => answer({ allow: 'yes' }), 'hook_malformed'],
    ['answers not JSON', async () => ({ payload: 'allow' }), 'hook_malformed'],
    ['answers an array', async () => answer([{ allow: true }]), 'hook_malformed'],
    ['answers nothing', async () => ({}), 'hook_malformed'],
    ['answers null', async () => ({ payload: 'null' }), 'hook_malformed'],
    ['answers too much', async () => answer({ allow: true, padding: 'x'.repeat(5000) }), 'hook_malformed'],
  ] as const)('refuses when the hook %s (%s), audited, and does not cache it', async (_what, behaviour, reason) => {
    const hook = scriptedHook(behaviour);
    deps.roomAccess = accessWith(hook.invoker);
    const runner = await open('runner');
    const started = Date.now();
    expect(await runner.join('run:42')).toMatch(new RegExp(`^refused: Access to run:42 could not be checked \\(${reason}\\)`));
    expect(Date.now() - started).toBeLessThan(350); // a time-out answers at the deadline (100 ms here), not later
    expect((await runner.record()).rooms).toEqual([]);
    expect(audits('join_refused')).toEqual([expect.objectContaining({ userId: 'u-runner', room: 'run:42', reason, detail: expect.any(String) })]);
    if (reason === 'hook_timeout') expect(hook.signals[0].aborted).toBe(true);
    await runner.join('run:42');
    expect(hook.calls).toHaveLength(2);
  });

  it('invokes a real function through the Lambda client: RequestResponse, once, payload in and answer out', async () => {
    const requests: Array<{ path: string; body: string; type?: string }> = [];
    let respond = (res: import('node:http').ServerResponse) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"allow":true}');
    const server: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        requests.push({ path: req.url ?? '', body: Buffer.concat(chunks).toString('utf8'), type: req.headers['x-amz-invocation-type'] as string | undefined });
        respond(res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const invoke = lambdaHookInvoker('arn:aws:lambda:eu-west-1:111122223333:function:hook', {
        endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        region: 'eu-west-1',
        credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' },
      });
      expect(await invoke('{"room":"run:1"}', new AbortController().signal)).toEqual({ payload: '{"allow":true}' });
      expect(requests).toEqual([{ path: `/2015-03-31/functions/${encodeURIComponent('arn:aws:lambda:eu-west-1:111122223333:function:hook')}/invocations`, body: '{"room":"run:1"}', type: 'RequestResponse' }]);

      respond = (res) => res.writeHead(200, { 'content-type': 'application/json', 'x-amz-function-error': 'Unhandled' }).end('{"errorMessage":"boom"}');
      expect(await invoke('{}', new AbortController().signal)).toEqual({ payload: '{"errorMessage":"boom"}', functionError: 'Unhandled' });

      // One attempt only: a throttled hook is not retried within the join's deadline.
      requests.length = 0;
      respond = (res) => res.writeHead(429, { 'content-type': 'application/json', 'x-amzn-errortype': 'TooManyRequestsException' }).end('{"message":"Rate Exceeded."}');
      await expect(invoke('{}', new AbortController().signal)).rejects.toMatchObject({ name: 'TooManyRequestsException' });
      expect(requests).toHaveLength(1);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe('configuration', () => {
  it('reads the hook from the environment, with defaults, and fails the cold start on a half or bad one', () => {
    expect(roomAccessConfig({})).toEqual({});
    expect(roomAccessConfig({ ROOM_HOOK_FUNCTION: 'f', ROOM_HOOK_NAMESPACES: 'run, job' })).toEqual({
      hook: { functionName: 'f', namespaces: ['run', 'job'], timeoutMs: 2000, cacheTtlMs: 30_000, cacheEntries: ROOM_ACCESS_DEFAULTS.hookCacheEntries },
    });
    expect(roomAccessConfig({ ROOM_HOOK_FUNCTION: 'f', ROOM_HOOK_NAMESPACES: 'run', ROOM_HOOK_CACHE_TTL_MS: '0' }).hook?.cacheTtlMs).toBe(0);
    expect(() => roomAccessConfig({ ROOM_HOOK_FUNCTION: 'f' })).toThrow('set together');
    expect(() => roomAccessConfig({ ROOM_HOOK_NAMESPACES: 'run' })).toThrow('set together');
    expect(() => roomAccessConfig({ ROOM_HOOK_FUNCTION: 'f', ROOM_HOOK_NAMESPACES: 'admin' })).toThrow('built in');
    expect(() => roomAccessConfig({ ROOM_HOOK_FUNCTION: 'f', ROOM_HOOK_NAMESPACES: 'run', ROOM_HOOK_TIMEOUT_MS: 'soon' })).toThrow('ROOM_HOOK_TIMEOUT_MS');
  });

  it.each([
    ['run', undefined],
    ['r2d2', undefined],
    ['private', 'built in'],
    ['user', 'built in'],
    ['Run', 'must be'],
    ['2run', 'must be'],
    ['a'.repeat(17), 'must be'],
    ['run-x', 'must be'],
  ])('namespace %s: %s', (namespace, problem) => {
    if (problem) expect(hookNamespaceProblem(namespace)).toContain(problem);
    else expect(hookNamespaceProblem(namespace)).toBeUndefined();
  });
});

describe('the sample hook', () => {
  const ask = (room: string, groups: string[]) => allows({ identity: { userId: 'u', tenantId: 'acme', groups }, room });
  it('allows run:<id> to the groups runs:<id> and run-viewers, and nothing else', () => {
    expect(ask('run:42', ['tenant:acme', 'runs:42'])).toBe(true);
    expect(ask('run:42', ['run-viewers'])).toBe(true);
    expect(ask('run:42', ['runs:43', 'runs:4'])).toBe(false);
    expect(ask('run:42', [])).toBe(false);
    expect(ask('job:42', ['runs:42', 'run-viewers'])).toBe(false);
  });
});
