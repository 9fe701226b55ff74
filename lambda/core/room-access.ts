/**
 * Who may join which room, beyond the static rules of rooms.ts: private rooms (`private:<name>`, decided by their
 * member list, room-access-store.ts) and namespaces a deployment hands to an authorization hook (a Lambda function
 * the deployer names: `run` for `run:<id>`). Also the `create`, `invite` and `remove` actions of private rooms.
 *
 * Invariants:
 * - The identity asked about is the connection's verified one (from its record), never anything the client sent;
 *   the tenant is part of every key, so no tenant can see or join another's private room of the same name.
 * - Fail closed: a namespace neither built in nor configured is refused; a hook that throws, times out or answers
 *   anything but `{ "allow": boolean }` refuses; without a configured store (deps.roomAccess) private rooms refuse.
 * - Every refusal is one audit event, `join_refused`, with a reason code (JoinRefusal).
 * - A hook is invoked at most once per join, and its answers (allow and deny, never a failure) are cached in the
 *   container per tenant, user, groups and room for `cacheTtlMs`: a changed answer takes effect within that time,
 *   for joins only (a socket in the room stays until it leaves).
 * - A removed member's sockets leave the room at once (membership, then presence, then a `removed` event), and a
 *   join that raced the removal undoes itself (confirmJoin re-reads the list after writing the membership).
 *
 * Over 300 lines because the hook's client, its cache and the three actions share one configuration and one set of
 * reason codes; the store part lives in room-access-store.ts.
 */
import type { LambdaClientConfig } from '@aws-sdk/client-lambda';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { envNumber } from '../../common/auth';
import {
  BUILT_IN_NAMESPACES,
  NAMESPACE_PATTERN,
  byteLength,
  errorEvent,
  namespaceOf,
  parseBoundedJson,
  type ErrorEvent,
  type RemovedEvent,
  type Replies,
  type RequestOf,
  type RoomMembersEvent,
} from '../../protocol';
import type { RealtimeConfig } from './config';
import { exitRoom, type SignalDeps } from './presence';
import { RoomAclStore, type RoomAcl } from './room-access-store';
import { roomRule, type StaticRefusal } from './rooms';
import type { StoredConnection } from './store';

// --- configuration ---------------------------------------------------------------------------------------------

/** Environment of the message function (set by lib/realtime-api.ts from its `roomAuthorizer` prop). */
export const ROOM_ACCESS_ENV = {
  /** Name or ARN of the hook function; unset: no hook (every non-built-in namespace is refused). */
  hookFunction: 'ROOM_HOOK_FUNCTION',
  /** Comma-separated namespaces the hook decides. */
  hookNamespaces: 'ROOM_HOOK_NAMESPACES',
  hookTimeoutMs: 'ROOM_HOOK_TIMEOUT_MS',
  hookCacheTtlMs: 'ROOM_HOOK_CACHE_TTL_MS',
} as const;

export const ROOM_ACCESS_DEFAULTS = {
  /** A hook that has not answered by then refuses. */
  hookTimeoutMs: 2000,
  /** How long a hook's answer is reused for the same user, groups and room (per container). */
  hookCacheTtlMs: 30_000,
  /** Most answers one container keeps (the oldest go first). */
  hookCacheEntries: 10_000,
  /**
   * Most members of a private room. A `room_members` reply lists them all: 200 ids of up to 128 characters fit in
   * one 32 KiB frame with room to spare.
   */
  privateRoomMaxMembers: 200,
} as const;

/** Namespaces a hook may be given: the protocol's namespace form, and none Gatehouse decides itself. */
export function hookNamespaceProblem(namespace: string): string | undefined {
  if (!NAMESPACE_PATTERN.test(namespace)) return `Room namespace "${namespace}" must be 1-16 characters of [a-z0-9], starting with a letter.`;
  if ((BUILT_IN_NAMESPACES as readonly string[]).includes(namespace)) return `Room namespace "${namespace}" is built in; a hook cannot decide it.`;
  return undefined;
}

export interface RoomHookConfig {
  functionName: string;
  namespaces: string[];
  timeoutMs: number;
  cacheTtlMs: number;
  cacheEntries: number;
}

export interface RoomAccessConfig {
  hook?: RoomHookConfig;
}

type Env = Record<string, string | undefined>;

/** Reads the hook's settings; a half or malformed configuration fails the cold start with a message naming it. */
export function roomAccessConfig(env: Env): RoomAccessConfig {
  const functionName = env[ROOM_ACCESS_ENV.hookFunction];
  const namespaces = (env[ROOM_ACCESS_ENV.hookNamespaces] ?? '').split(',').map((n) => n.trim()).filter(Boolean);
  if (!functionName && namespaces.length === 0) return {};
  if (!functionName || namespaces.length === 0) {
    throw new Error(`${ROOM_ACCESS_ENV.hookFunction} and ${ROOM_ACCESS_ENV.hookNamespaces} are set together or not at all.`);
  }
  const problem = namespaces.map(hookNamespaceProblem).find(Boolean);
  if (problem) throw new Error(`${ROOM_ACCESS_ENV.hookNamespaces}: ${problem}`);
  return {
    hook: {
      functionName,
      namespaces,
      timeoutMs: envNumber(env, ROOM_ACCESS_ENV.hookTimeoutMs, ROOM_ACCESS_DEFAULTS.hookTimeoutMs),
      cacheTtlMs: envNumber(env, ROOM_ACCESS_ENV.hookCacheTtlMs, ROOM_ACCESS_DEFAULTS.hookCacheTtlMs, { allowZero: true }),
      cacheEntries: ROOM_ACCESS_DEFAULTS.hookCacheEntries,
    },
  };
}

// --- the hook ----------------------------------------------------------------------------------------------------

/** What the hook is asked: the connection's verified identity and the room. */
export interface RoomHookRequest {
  identity: { userId: string; tenantId: string; groups: string[] };
  room: string;
}
/** What the hook answers. Anything else refuses. */
export interface RoomHookAnswer {
  allow: boolean;
}

/** One synchronous invocation of the hook: its response payload and Lambda's FunctionError, if it threw. */
export type HookInvoker = (payload: string, signal: AbortSignal) => Promise<{ payload?: string; functionError?: string }>;

/**
 * Invokes `functionName` (name or ARN) with Lambda's Invoke API, RequestResponse, one attempt (the caller's
 * deadline bounds it). Region, credentials and endpoint come from the environment unless `clientConfig` says.
 */
export function lambdaHookInvoker(functionName: string, clientConfig: LambdaClientConfig = {}): HookInvoker {
  // Required here, not imported at the top: the module (some 20-40 ms of cold start) is loaded only by a function
  // that has a hook, never by the others that share this code. The bundles are CommonJS.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { LambdaClient: Client, InvokeCommand } = require('@aws-sdk/client-lambda') as typeof import('@aws-sdk/client-lambda');
  const lambda = new Client({ ...clientConfig, maxAttempts: 1 });
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  return async (payload, signal) => {
    const out = await lambda.send(
      new InvokeCommand({ FunctionName: functionName, InvocationType: 'RequestResponse', Payload: encoder.encode(payload) }),
      { abortSignal: signal },
    );
    return { ...(out.Payload ? { payload: decoder.decode(out.Payload) } : {}), ...(out.FunctionError ? { functionError: out.FunctionError } : {}) };
  };
}

export type HookFailure = 'hook_error' | 'hook_timeout' | 'hook_malformed';
export type HookDecision = { allow: true; cached: boolean } | { allow: false; reason: 'denied' | HookFailure; cached: boolean; detail?: string };

/** Largest answer read: `{"allow":false}` needs 15 bytes. */
const MAX_ANSWER_BYTES = 4096;

function parseAnswer(payload: string | undefined): { allow: boolean } | { failure: 'hook_malformed'; detail: string } {
  if (payload === undefined || byteLength(payload) > MAX_ANSWER_BYTES) return { failure: 'hook_malformed', detail: payload === undefined ? 'empty answer' : 'answer too large' };
  const parsed = parseBoundedJson(payload, 4);
  const value = parsed.ok ? (parsed.value as Record<string, unknown> | null) : undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value) || typeof value.allow !== 'boolean') {
    return { failure: 'hook_malformed', detail: 'expected {"allow": true|false}' };
  }
  return { allow: value.allow };
}

/** The deployment's hook, with the container's cache of its answers. */
export class RoomHook {
  private readonly cache = new Map<string, { allow: boolean; until: number }>();

  constructor(
    readonly config: RoomHookConfig,
    private readonly invoke: HookInvoker,
    private readonly now: () => number = Date.now,
  ) {}

  get namespaces(): readonly string[] {
    return this.config.namespaces;
  }

  /** Groups are part of the key: a refreshed token with other groups is asked anew. */
  private keyOf(identity: RoomHookRequest['identity'], room: string): string {
    return JSON.stringify([identity.tenantId, identity.userId, [...identity.groups].sort(), room]);
  }

  /** Whether deciding this join would answer from the cache (no invocation). */
  cached(identity: RoomHookRequest['identity'], room: string): boolean {
    return (this.cache.get(this.keyOf(identity, room))?.until ?? 0) > this.now();
  }

  async decide(identity: RoomHookRequest['identity'], room: string): Promise<HookDecision> {
    const key = this.keyOf(identity, room);
    const now = this.now();
    const hit = this.cache.get(key);
    if (hit && hit.until > now) return hit.allow ? { allow: true, cached: true } : { allow: false, reason: 'denied', cached: true };
    this.cache.delete(key);
    const answer = await this.ask({ identity: { userId: identity.userId, tenantId: identity.tenantId, groups: [...identity.groups] }, room });
    if ('failure' in answer) return { allow: false, reason: answer.failure, cached: false, detail: answer.detail };
    if (this.config.cacheTtlMs > 0) {
      if (this.cache.size >= this.config.cacheEntries) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(key, { allow: answer.allow, until: now + this.config.cacheTtlMs });
    }
    return answer.allow ? { allow: true, cached: false } : { allow: false, reason: 'denied', cached: false };
  }

  private async ask(request: RoomHookRequest): Promise<{ allow: boolean } | { failure: HookFailure; detail: string }> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.config.timeoutMs);
    });
    const call = this.invoke(JSON.stringify(request), controller.signal);
    call.catch(() => undefined); // a call abandoned at the deadline may still fail; nobody waits for it
    try {
      const result = await Promise.race([call, deadline]);
      if (result === 'timeout') {
        controller.abort();
        return { failure: 'hook_timeout', detail: `no answer within ${this.config.timeoutMs} ms` };
      }
      if (result.functionError) return { failure: 'hook_error', detail: `FunctionError: ${result.functionError}` };
      return parseAnswer(result.payload);
    } catch (err) {
      return { failure: 'hook_error', detail: (err as Error)?.name ?? 'Error' };
    } finally {
      clearTimeout(timer);
    }
  }
}

// --- what the message handlers get ------------------------------------------------------------------------------

/** Private rooms' lists and the deployment's hook, created once per container. */
export interface RoomAccess {
  acl: RoomAclStore;
  hook?: RoomHook;
  /** Most members of a private room. @default ROOM_ACCESS_DEFAULTS.privateRoomMaxMembers */
  maxMembers: number;
}

export function createRoomAccess(
  db: DynamoDBDocumentClient,
  tableName: string,
  env: Env,
  options: { invoker?: (functionName: string) => HookInvoker; now?: () => number; maxMembers?: number } = {},
): RoomAccess {
  const { hook } = roomAccessConfig(env);
  const now = options.now ?? Date.now;
  return {
    acl: new RoomAclStore(db, tableName, now),
    ...(hook ? { hook: new RoomHook(hook, (options.invoker ?? lambdaHookInvoker)(hook.functionName), now) } : {}),
    maxMembers: Math.min(options.maxMembers ?? ROOM_ACCESS_DEFAULTS.privateRoomMaxMembers, ROOM_ACCESS_DEFAULTS.privateRoomMaxMembers),
  };
}

/** What the access checks and actions need (MessageDeps has all of it). */
export interface AccessDeps extends SignalDeps {
  config: Pick<RealtimeConfig, 'adminGroup'> & Partial<Pick<RealtimeConfig, 'signalMaxMembers' | 'broadcastConcurrency'>>;
  /** Absent: private rooms and hook namespaces refuse (fail closed). */
  roomAccess?: RoomAccess;
}

type Joiner = Pick<StoredConnection, 'connectionId' | 'userId' | 'tenantId' | 'groups'>;

/** Audit reason codes of a refused join. */
export type JoinRefusal = StaticRefusal | 'not_member' | 'not_configured' | 'removed_during_join' | 'denied' | HookFailure;

type JoinDecision = { allowed: true; cached?: boolean } | { allowed: false; reason: JoinRefusal; message: string; cached?: boolean; detail?: string };

const NOT_CONFIGURED = 'Access to this room cannot be checked here; it is refused.';
const membersOnly = (room: string) => `Room ${room} is for its members only: ask its owner to invite you.`;

async function decideJoin(connection: Joiner, room: string, deps: AccessDeps): Promise<JoinDecision> {
  const access = deps.roomAccess;
  const rule = roomRule(connection, room, deps.config.adminGroup, access?.hook?.namespaces);
  switch (rule.kind) {
    case 'open':
      return { allowed: true };
    case 'refused':
      return { allowed: false, reason: rule.reason, message: rule.message };
    case 'members':
      if (!access) return { allowed: false, reason: 'not_configured', message: NOT_CONFIGURED };
      return (await access.acl.isMember(connection.tenantId, room, connection.userId))
        ? { allowed: true }
        : { allowed: false, reason: 'not_member', message: membersOnly(room) };
    case 'hook': {
      if (!access?.hook) return { allowed: false, reason: 'not_configured', message: NOT_CONFIGURED };
      const decision = await access.hook.decide(connection, room);
      if (decision.allow) return { allowed: true, cached: decision.cached };
      const message =
        decision.reason === 'denied' ? `Access to ${room} was refused.` : `Access to ${room} could not be checked (${decision.reason}); it is refused. Try again later.`;
      return { allowed: false, reason: decision.reason, message, cached: decision.cached, ...(decision.detail ? { detail: decision.detail } : {}) };
    }
  }
}

function auditRefusal(connection: Joiner, room: string, refusal: Extract<JoinDecision, { allowed: false }>, deps: AccessDeps): void {
  deps.log.warn('join_refused', {
    category: 'audit',
    connectionId: connection.connectionId,
    userId: connection.userId,
    tenantId: connection.tenantId,
    room,
    reason: refusal.reason,
    ...(refusal.cached ? { cached: true } : {}),
    ...(refusal.detail ? { detail: refusal.detail } : {}),
  });
}

/**
 * Whether the connection may join `room`: undefined when it may, else the refusal's message (the join answers
 * `forbidden` with it). Every refusal is logged as an audit event.
 */
export async function authorizeJoin(connection: Joiner, room: string, deps: AccessDeps): Promise<string | undefined> {
  const decision = await decideJoin(connection, room, deps);
  if (decision.allowed) return undefined;
  auditRefusal(connection, room, decision, deps);
  return decision.message;
}

/**
 * Called once the membership is written: a private room's list is read again, and a member removed since
 * authorizeJoin read it leaves at once (remove's sweep may have read the connection before this join wrote it).
 * Undefined when the join stands, else the refusal's message.
 */
export async function confirmJoin(connection: Joiner, room: string, deps: AccessDeps): Promise<string | undefined> {
  if (namespaceOf(room) !== 'private' || !deps.roomAccess) return undefined;
  if (await deps.roomAccess.acl.isMember(connection.tenantId, room, connection.userId)) return undefined;
  // Undo all the join wrote: membership, presence, the room in the unread list.
  await deps.store.leave(connection, room);
  await exitRoom(connection.tenantId, room, connection.userId, connection.connectionId, deps);
  await deps.store.conversation.forgetRoom(connection.tenantId, connection.userId, room);
  const refusal = { allowed: false as const, reason: 'removed_during_join' as const, message: membersOnly(room) };
  auditRefusal(connection, room, refusal, deps);
  return refusal.message;
}

// --- create, invite, remove ---------------------------------------------------------------------------------------

export interface AccessContext {
  connection: StoredConnection;
  now: number;
  deps: AccessDeps;
}

type AccessAction = 'create' | 'invite' | 'remove';
type AccessHandlers = { [A in AccessAction]: (message: RequestOf<A>, ctx: AccessContext) => Promise<Replies[A] | ErrorEvent> };

const membersEvent = (room: string, acl: RoomAcl, id: string | undefined): RoomMembersEvent => ({
  type: 'room_members',
  room,
  owner: acl.owner,
  members: acl.members,
  ...(id === undefined ? {} : { id }),
});

const notPrivate = (id?: string) => errorEvent('invalid_message', 'Only private rooms (private:<name>) have members to manage.', id);
const noSuchRoom = (room: string, id?: string) => errorEvent('not_found', `There is no private room ${room}.`, id);
const isAdmin = (connection: StoredConnection, deps: AccessDeps) => connection.groups.includes(deps.config.adminGroup);

function auditChange(action: AccessAction, connection: StoredConnection, room: string, fields: Record<string, unknown>, deps: AccessDeps): void {
  deps.log.info('room_access_changed', { category: 'audit', action, tenantId: connection.tenantId, room, by: connection.userId, ...fields });
}

function auditForbidden(action: AccessAction, connection: StoredConnection, room: string, userId: string, deps: AccessDeps): void {
  deps.log.warn('room_access_refused', { category: 'audit', action, connectionId: connection.connectionId, tenantId: connection.tenantId, room, by: connection.userId, userId, reason: 'not_owner' });
}

/**
 * Takes every socket of `userId` in this tenant that joined `room` out of it: membership first (no delivery after
 * it), then presence (the others see them leave), then `removed` to the socket. Returns how many left.
 */
async function evict(tenantId: string, room: string, userId: string, deps: AccessDeps): Promise<number> {
  const event: RemovedEvent = { type: 'removed', room };
  // No unread counts of a room they may no longer read (the count alone would tell them it is busy).
  await deps.store.conversation.forgetRoom(tenantId, userId, room);
  const ids = await deps.store.userConnectionIds(userId);
  const left = await Promise.all(
    ids.map(async (connectionId) => {
      const connection = await deps.store.getConnection(connectionId);
      if (!connection || connection.tenantId !== tenantId || !connection.rooms.includes(room)) return false;
      if (!(await deps.store.leave(connection, room))) return false;
      await exitRoom(tenantId, room, userId, connectionId, deps);
      await deps.api.post(connectionId, JSON.stringify(event)).catch((err) =>
        deps.log.info('removed_notice_failed', { connectionId, room, error: err as Error }),
      );
      return true;
    }),
  );
  return left.filter(Boolean).length;
}

export const accessHandlers: AccessHandlers = {
  create: async (message, { connection, deps }) => {
    if (namespaceOf(message.room) !== 'private') return errorEvent('invalid_message', 'Only private rooms (private:<name>) are created.', message.id);
    if (!deps.roomAccess) return errorEvent('internal', 'Private rooms are not configured.', message.id);
    const acl = await deps.roomAccess.acl.create(connection.tenantId, message.room, connection.userId);
    if (acl === 'exists') return errorEvent('conflict', `Room ${message.room} exists already.`, message.id);
    auditChange('create', connection, message.room, {}, deps);
    return membersEvent(message.room, acl, message.id);
  },

  invite: async (message, { connection, deps }) => {
    if (namespaceOf(message.room) !== 'private') return notPrivate(message.id);
    const access = deps.roomAccess;
    if (!access) return errorEvent('internal', 'Private rooms are not configured.', message.id);
    const current = await access.acl.get(connection.tenantId, message.room);
    if (!current) return noSuchRoom(message.room, message.id);
    // The owner never changes, so this check cannot be outrun by another write.
    if (current.owner !== connection.userId && !isAdmin(connection, deps)) {
      auditForbidden('invite', connection, message.room, message.userId, deps);
      return errorEvent('forbidden', `Only the owner of ${message.room} or a member of the ${deps.config.adminGroup} group may invite.`, message.id);
    }
    const acl = await access.acl.add(connection.tenantId, message.room, message.userId, access.maxMembers);
    if (acl === 'missing') return noSuchRoom(message.room, message.id);
    if (acl === 'full') return errorEvent('conflict', `Room ${message.room} has ${access.maxMembers} members, its most.`, message.id);
    auditChange('invite', connection, message.room, { userId: message.userId }, deps);
    return membersEvent(message.room, acl, message.id);
  },

  remove: async (message, { connection, deps }) => {
    if (namespaceOf(message.room) !== 'private') return notPrivate(message.id);
    const access = deps.roomAccess;
    if (!access) return errorEvent('internal', 'Private rooms are not configured.', message.id);
    const current = await access.acl.get(connection.tenantId, message.room);
    if (!current) return noSuchRoom(message.room, message.id);
    const self = message.userId === connection.userId;
    if (!self && current.owner !== connection.userId && !isAdmin(connection, deps)) {
      auditForbidden('remove', connection, message.room, message.userId, deps);
      return errorEvent('forbidden', `Only the owner of ${message.room}, a member of the ${deps.config.adminGroup} group, or the user themself may remove.`, message.id);
    }
    const result = await access.acl.remove(connection.tenantId, message.room, message.userId);
    if (result === 'missing') return noSuchRoom(message.room, message.id);
    if (result === 'owner') return errorEvent('conflict', `The owner of ${message.room} cannot be removed from it.`, message.id);
    // Also when they were no longer on the list: a retry finishes an eviction an earlier attempt left half done.
    const evicted = await evict(connection.tenantId, message.room, message.userId, deps);
    auditChange('remove', connection, message.room, { userId: message.userId, wasMember: result.removed, evicted }, deps);
    return membersEvent(message.room, result.acl, message.id);
  },
};
