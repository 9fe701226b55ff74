/**
 * Message actions. Every frame costs the connection one token of its rate limit (garbage included), is validated
 * against the shared protocol, and is refused once the connection's credential has expired (except the actions
 * that renew or end it). A bad frame gets an error event and changes nothing. The reply is returned (API Gateway
 * sends it back on the same socket as the route response); room traffic goes out through the broadcast module.
 */
import type { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import type { Auth } from '../../common/auth';
import type { Logger } from '../../common/log';
import { METRICS } from '../../common/metrics';
import {
  HISTORY_PAGE_BYTES,
  HISTORY_PAGE_DEFAULT,
  TYPING_EXPIRY_MS,
  TYPING_THROTTLE_MS,
  byteLength,
  errorEvent,
  parseClientMessage,
  type Action,
  type ClientMessage,
  type ErrorEvent,
  type MessageEvent,
  type Replies,
  type RequestOf,
  type ServerEvent,
} from '../../protocol';
import type { RealtimeConfig } from './config';
import type { ConnectionsApi } from './connections-api';
import type { FanoutDispatcher } from './fanout';
import { deleteMessage, editMessage, markRead, readOwn, receiptsOf } from './conversation';
import { REPLAY_BYTES_PER_TOKEN, deliverToRoom, numberMessage, replayAfter } from './deliver';
import { enterRoom, exitRoom, isLive, signalRoom, snapshotOf } from './presence';
import { memberOf } from './profiles';
import { signOut, signOutDeps } from './revoke';
import { accessHandlers, authorizeJoin, confirmJoin, type RoomAccess } from './room-access';
import { roomRule } from './rooms';
import type { ConnectionStore, StoredConnection } from './store';

export interface MessageDeps {
  store: ConnectionStore;
  api: ConnectionsApi;
  config: RealtimeConfig;
  auth: Pick<Auth, 'verifier' | 'credentials' | 'sessions' | 'config' | 'refresh' | 'revoked'>;
  cognito?: CognitoIdentityProviderClient;
  log: Logger;
  now?: () => number;
  newId?: () => string;
  /** Private rooms' member lists and the deployment's room hook (room-access.ts). Absent: those rooms are refused. */
  roomAccess?: RoomAccess;
  /** Hands big rooms to the fan-out workers (fanout.ts). Absent: every room is posted to in this function. */
  fanout?: FanoutDispatcher;
}

export interface IncomingFrame {
  connectionId: string;
  body: string | null | undefined;
}

/** Actions still allowed on a connection whose credential expired: the ones that renew it or end it. */
const AFTER_EXPIRY = new Set(['refresh', 'logout', 'ping']);

/** Extra rate-limit tokens a join costs when the deployment's room hook must be asked (see the join handler). */
export const HOOK_JOIN_TOKENS = 4;

export async function handleMessage(frame: IncomingFrame, deps: MessageDeps): Promise<ServerEvent> {
  const { store, config, log } = deps;
  const body = frame.body ?? '';
  let id: string | undefined;
  let action: string | undefined;
  try {
    const connection = await store.getConnection(frame.connectionId);
    if (!connection || connection.revoked) {
      // A socket without a record (purged), or signed out while it connected: nothing it sends can act; close it.
      await deps.api.remove(frame.connectionId).catch(() => undefined);
      return notRegistered();
    }

    // Every frame is charged before any work is done on it (garbage, oversize and deeply nested frames included).
    const rate = await store.takeToken(connection, config.rateLimit);
    // Parsing is bounded (size, then nesting depth without recursion): it cannot throw or run long.
    const parsed = parseClientMessage(body, config.limits);
    id = parsed.ok ? parsed.message.id : parsed.error.id;
    if (!rate) return notRegistered(id);
    if (!rate.allowed) return await refuseForRate(frame.connectionId, connection.userId, rate.strikes, id, deps);

    if (!parsed.ok) {
      log.info('message_rejected', { connectionId: frame.connectionId, code: parsed.error.code });
      return parsed.error;
    }
    const message = parsed.message;
    action = message.action;
    const now = (deps.now ?? Date.now)();
    if (connection.tokenExpiresAt * 1000 <= now && !AFTER_EXPIRY.has(message.action)) {
      return errorEvent('token_expired', 'The credential of this connection expired: send {"action":"refresh","token":...} or reconnect.', message.id);
    }
    return await act(message, connection, now, deps);
  } catch (err) {
    if (action === undefined) {
      // Bounded, so safe to repeat here: what was asked for belongs in the error log.
      const parsed = parseClientMessage(body, config.limits);
      if (parsed.ok) action = parsed.message.action;
    }
    log.error('message_failed', { connectionId: frame.connectionId, action, error: err as Error });
    return errorEvent('internal', 'The request failed; try again.', id);
  }
}

/** A frame over the rate: refused, and once the strikes add up the socket is closed. */
async function refuseForRate(connectionId: string, userId: string, strikes: number, id: string | undefined, deps: MessageDeps): Promise<ErrorEvent> {
  const { config, log } = deps;
  log.warn('rate_limited', { category: 'audit', connectionId, userId, strikes });
  log.metrics({ [METRICS.rateLimited]: 1 });
  if (strikes >= config.rateLimit.strikes) {
    log.warn('rate_limit_disconnect', { category: 'audit', connectionId, userId });
    await deps.api.remove(connectionId).catch(() => undefined);
    return errorEvent('rate_limited', 'Too many messages: disconnected.', id);
  }
  return errorEvent('rate_limited', `Too many messages: at most ${config.rateLimit.rate} per second.`, id);
}

const withId = <T extends ServerEvent>(event: T, id: string | undefined): T => (id === undefined ? event : { ...event, id });

interface Context {
  connection: StoredConnection;
  now: number;
  deps: MessageDeps;
}

/** One handler per action, each given its own request type (the protocol's Replies map types what it returns). */
type Handlers = { [A in Action]: (message: RequestOf<A>, ctx: Context) => Promise<Replies[A] | ErrorEvent> };

const notRegistered = (id?: string) => errorEvent('unauthorized', 'This connection is no longer registered; reconnect.', id);
const notJoined = (room: string, id?: string) => errorEvent('not_member', `Join ${room} first.`, id);

const HANDLERS: Handlers = {
  ...accessHandlers,
  ping: async (message, { now }) => withId({ type: 'pong', ts: now }, message.id),

  whoami: async (message, { connection }) =>
    withId(
      {
        type: 'whoami',
        userId: connection.userId,
        name: memberOf(connection).name,
        tenantId: connection.tenantId,
        groups: connection.groups,
        connectionId: connection.connectionId,
        tokenExpiresAt: connection.tokenExpiresAt,
      },
      message.id,
    ),

  join: async (message, { connection, deps }) => {
    const { store, config, log } = deps;
    const { connectionId } = connection;
    // A join the hook must be asked about costs a Lambda invocation: it pays HOOK_JOIN_TOKENS of the rate limit, so
    // inventing room names cannot drive the hook faster than that (a cached answer costs nothing more).
    const hook = deps.roomAccess?.hook;
    if (hook && roomRule(connection, message.room, config.adminGroup, hook.namespaces).kind === 'hook' && !hook.cached(connection, message.room)) {
      const rate = await store.takeToken(connection, config.rateLimit, HOOK_JOIN_TOKENS);
      if (!rate?.allowed) return refuseForRate(connectionId, connection.userId, rate?.strikes ?? 0, message.id, deps);
    }
    // Writes its own audit event (join_refused, with a reason) when it refuses.
    const refusal = await authorizeJoin(connection, message.room, deps);
    if (refusal) return errorEvent('forbidden', refusal, message.id);
    const joined = await store.join(connection, message.room, config.maxRoomsPerConnection);
    if (joined === 'limit') return errorEvent('room_limit', `A connection may join at most ${config.maxRoomsPerConnection} rooms.`, message.id);
    if (joined === 'gone') return notRegistered(message.id);
    const presence = await enterRoom(connection.tenantId, message.room, memberOf(connection), connection, deps);
    await store.conversation.rememberRoom(connection.tenantId, connection.userId, message.room);
    // A private room's list is read again once the membership, presence and unread entry are written: a removal
    // that raced this join either is seen here (and the join undoes all three), or sees them (and removes them).
    const revoked = await confirmJoin(connection, message.room, deps);
    if (revoked) return errorEvent('forbidden', revoked, message.id);
    // Membership first, history second: whatever the replay misses arrives live (see deliver.ts).
    const resume = await replayAfter(connection.tenantId, message.room, connectionId, message.after, deps, (tokens) =>
      store.takeToken(connection, config.rateLimit, tokens),
    );
    if ('refused' in resume) return refuseForRate(connectionId, connection.userId, resume.refused, message.id, deps);
    if (resume.gap) log.info('resume_gap', { connectionId, room: message.room, ...resume.gap });
    return withId({ type: 'joined', room: message.room, ...resume, presence }, message.id);
  },

  join_rooms: async (message, ctx) => {
    const { connection, deps } = ctx;
    // The frame paid one token; each further room pays one more, as its own `join` frame would have.
    if (message.rooms.length > 1) {
      const rate = await deps.store.takeToken(connection, deps.config.rateLimit, message.rooms.length - 1);
      if (!rate?.allowed) return refuseForRate(connection.connectionId, connection.userId, rate?.strikes ?? 0, message.id, deps);
    }
    // Each room as `join` would answer it, in parallel: the connection item takes concurrent joins atomically.
    const results = await Promise.all(
      message.rooms.map(async ({ room, after }) => {
        try {
          const reply = await HANDLERS.join({ action: 'join', room, ...(after !== undefined ? { after } : {}) }, ctx);
          return reply.type === 'error' ? { ...reply, room } : reply;
        } catch (err) {
          // One room's failure is that room's answer; the others stand.
          deps.log.error('message_failed', { connectionId: connection.connectionId, action: 'join_rooms', room, error: err as Error });
          return { ...errorEvent('internal', 'The request failed; try again.'), room };
        }
      }),
    );
    return withId({ type: 'joined_rooms', results }, message.id);
  },

  leave: async (message, { connection, deps }) => {
    if (!(await deps.store.leave(connection, message.room))) return errorEvent('not_member', `Not a member of ${message.room}.`, message.id);
    await exitRoom(connection.tenantId, message.room, connection.userId, connection.connectionId, deps);
    return withId({ type: 'left', room: message.room }, message.id);
  },

  send: async (message, { connection, deps }) => {
    if (!connection.rooms.includes(message.room)) return errorEvent('not_member', `Join ${message.room} before sending to it.`, message.id);
    const numbered = await numberMessage(connection.tenantId, message.room, deps);
    const { event, result } = await deliverToRoom(
      connection.tenantId,
      message.room,
      { sender: memberOf(connection), data: message.data },
      deps,
      { protect: connection.connectionId, numbered },
    );
    // The author has read what they wrote: it is no unread message of theirs.
    await readOwn(actorOf(connection), message.room, event.seq, numbered.n, deps);
    deps.log.info('message_sent', { connectionId: connection.connectionId, tenantId: connection.tenantId, room: message.room, ...result });
    return withId({ type: 'sent', room: message.room, messageId: event.messageId, seq: event.seq, delivered: result.others ?? 0, ...(result.pending ? { pending: true as const } : {}) }, message.id);
  },

  history: async (message, { connection, deps }) => {
    if (!connection.rooms.includes(message.room)) return notJoined(message.room, message.id);
    const page = await deps.store.historyBefore(connection.tenantId, message.room, message.before, message.limit ?? HISTORY_PAGE_DEFAULT, HISTORY_PAGE_BYTES);
    // A page costs what sending it as frames would (the frame itself already paid one token).
    const tokens = Math.ceil(page.items.reduce((n, item) => n + byteLength(item.event), 0) / REPLAY_BYTES_PER_TOKEN) - 1;
    if (tokens > 0) {
      const rate = await deps.store.takeToken(connection, deps.config.rateLimit, tokens);
      if (!rate?.allowed) return refuseForRate(connection.connectionId, connection.userId, rate?.strikes ?? 0, message.id, deps);
    }
    const messages = page.items.map((item) => JSON.parse(item.event) as MessageEvent).filter((event) => event.type === 'message');
    return withId({ type: 'history', room: message.room, messages, ...(page.next !== undefined ? { before: page.next } : {}) }, message.id);
  },

  typing: async (message, { connection, deps }) => {
    if (!connection.rooms.includes(message.room)) return notJoined(message.room, message.id);
    const { tenantId, userId, connectionId } = connection;
    let forwarded = false;
    if (await deps.store.presence.typed(tenantId, message.room, userId, TYPING_THROTTLE_MS)) {
      const event = { type: 'typing' as const, room: message.room, user: memberOf(connection), expiresInMs: TYPING_EXPIRY_MS };
      forwarded = (await signalRoom(tenantId, message.room, event, deps, connectionId)).live;
    }
    return withId({ type: 'typing_ack', room: message.room, forwarded }, message.id);
  },

  presence: async (message, { connection, deps }) => {
    if (!connection.rooms.includes(message.room)) return notJoined(message.room, message.id);
    const snapshot = await snapshotOf(connection.tenantId, message.room, await isLive(connection.tenantId, message.room, deps), deps);
    return withId({ type: 'presence_snapshot', room: message.room, ...snapshot }, message.id);
  },

  read: async (message, { connection, deps }) => {
    if (!connection.rooms.includes(message.room)) return notJoined(message.room, message.id);
    return markRead(actorOf(connection), message.room, message.seq, deps, message.id);
  },

  unread: async (message, { connection, deps }) => {
    const rooms = await deps.store.conversation.unread(connection.tenantId, connection.userId);
    // Not the rooms the static rules now refuse (an admin:* room after leaving the admin group): not even their counts.
    const hookNamespaces = deps.roomAccess?.hook?.namespaces ?? [];
    const readable = rooms.filter((r) => roomRule(connection, r.room, deps.config.adminGroup, hookNamespaces).kind !== 'refused');
    return withId({ type: 'unread', rooms: readable }, message.id);
  },

  receipts: async (message, { connection, deps }) => {
    if (!connection.rooms.includes(message.room)) return notJoined(message.room, message.id);
    return withId({ type: 'receipts', room: message.room, ...(await receiptsOf(connection.tenantId, message.room, deps)) }, message.id);
  },

  edit: async (message, { connection, deps }) => {
    if (!connection.rooms.includes(message.room)) return notJoined(message.room, message.id);
    return editMessage(actorOf(connection), message.room, message.seq, message.data, deps, message.id);
  },

  delete: async (message, { connection, deps }) => {
    if (!connection.rooms.includes(message.room)) return notJoined(message.room, message.id);
    return deleteMessage(actorOf(connection), message.room, message.seq, deps, message.id);
  },

  refresh: async (message, { connection, deps }) => {
    const { log } = deps;
    const { connectionId } = connection;
    // The one refresh policy (common/handshake.ts): the identity is derived anew from the token or the session,
    // and a credential that no longer grants what this socket holds is refused; the client reconnects.
    const renewed = await deps.auth.refresh(connection, message.token);
    if (!renewed.ok) {
      log.info('refresh_refused', { category: 'audit', connectionId, userId: connection.userId, reason: renewed.reason });
      return errorEvent('refresh_refused', `Refresh refused: ${renewed.reason}.`, message.id);
    }
    if (!(await deps.store.renewConnection(connectionId, renewed.identity))) return notRegistered(message.id);
    const { tokenExpiresAt } = renewed.identity;
    log.info('refreshed', { category: 'audit', connectionId, userId: connection.userId, tokenExpiresAt });
    return withId({ type: 'refreshed', tokenExpiresAt }, message.id);
  },

  logout: async (message, { connection, deps }) => {
    const deps2 = signOutDeps(deps);
    if (!deps2) return errorEvent('internal', 'Sign-out is not configured.', message.id);
    const everywhere = message.everywhere ?? false;
    await signOut(
      {
        userId: connection.userId,
        username: connection.username,
        signIn: connection.signIn,
        ...(connection.session ? { session: connection.session } : {}),
        ...(message.refreshToken ? { refreshToken: message.refreshToken } : {}),
        everywhere,
      },
      deps2,
    );
    return withId({ type: 'signed_out', everywhere }, message.id);
  },
};

const actorOf = (connection: StoredConnection) => ({ ...connection, member: memberOf(connection) });

function act(message: ClientMessage, connection: StoredConnection, now: number, deps: MessageDeps): Promise<ServerEvent> {
  const handler = HANDLERS[message.action] as (m: ClientMessage, ctx: Context) => Promise<ServerEvent>;
  return handler(message, { connection, now, deps });
}
