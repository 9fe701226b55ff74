/**
 * The Gatehouse client: the one WebSocket client in this repository, for browsers and Node (see ./node.ts).
 *
 * - connects with a fresh token from a provider callback on every (re)connect;
 * - correlates requests and replies (`join`, `send`, ... return promises);
 * - sends a heartbeat so API Gateway's 10-minute idle timeout never closes a live session, and treats a heartbeat
 *   that gets no answer as a dead connection;
 * - reconnects with exponential backoff and jitter after any close it did not ask for (including API Gateway's
 *   2-hour maximum), rejoins its rooms and resumes each from the last sequence number it saw, so every message
 *   arrives exactly once and in order, or a `gap` event says what is older than the server's replay window.
 *
 * No Node-only imports here: the browser bundle of the web app uses this file as it is.
 */
import {
  BEARER_SUBPROTOCOL_PREFIX,
  CLOSE,
  HEARTBEAT_MS,
  MAX_JOIN_ROOMS,
  REALTIME_DEFAULTS,
  SUBPROTOCOL,
  ROOM_EVENT_TYPES,
  TYPING_THROTTLE_MS,
  shouldReconnect,
  type Action,
  type ErrorCode,
  type JoinedEvent,
  type Json,
  type Member,
  type PongEvent,
  type PresenceEvent,
  type PresenceSnapshot,
  type ReadCursor,
  type Replies,
  type RoomEvent,
  type MessageDeletedEvent,
  type RequestOf,
  type ServerEvent,
  type TypingEvent,
  type WhoamiEvent,
} from '../../../protocol';
import { Emitter } from './emitter';
import type { PayloadOf, RoomHistory, RoomMap, RoomOf, TypedMessage, TypedUpdate } from './rooms';

/** A renewal due within the connection's last this-many milliseconds is done by reconnecting (CLOSE.renewByReconnect). */
export const RECONNECT_TO_RENEW_MS = 15 * 60 * 1000;

/** Any room, any JSON payload. */
export type DefaultRooms = { '*': Json };

/** The part of the WebSocket interface the client uses (browsers' WebSocket and `ws` both have it). */
export interface SocketLike {
  readonly readyState: number;
  binaryType?: string;
  send(data: string | ArrayBufferView | ArrayBuffer): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

/** Opens a socket to `url` carrying `token`. The browser can only use the subprotocol list. */
export type SocketFactory = (url: string, token: string) => SocketLike;

export const browserSocket: SocketFactory = (url, token) =>
  new WebSocket(url, [SUBPROTOCOL, `${BEARER_SUBPROTOCOL_PREFIX}${token}`]) as unknown as SocketLike;

/**
 * `signed_out`: the sign-in is over (signed out here, in another tab or device, revoked, or the session is gone:
 * the server refused a fresh credential); no reconnect. The state event's `reason` says which.
 */
export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed' | 'signed_out';

export interface ClientOptions {
  url: string;
  /** Called before every connection attempt: return a current access token (refresh it here). */
  token: () => string | Promise<string>;
  /** How to open sockets. @default browserSocket */
  socket?: SocketFactory;
  /**
   * How long the socket may go without a frame either way before the client pings (HEARTBEAT_MS): API Gateway closes
   * a connection idle for 10 minutes, and a hidden browser tab's timers may fire a minute late. @default 8 minutes
   */
  heartbeatMs?: number;
  /** A request without a reply for this long fails (and a heartbeat without one closes the socket). @default 10 s */
  requestTimeoutMs?: number;
  /** Reconnect backoff. `false` disables reconnecting. */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number; factor?: number; jitter?: number } | false;
  /** How long an out-of-order gap may stay open before the client asks the server to replay it. @default 1 s */
  gapRepairMs?: number;
  /**
   * Keep the socket's credential fresh before it expires: `token` sends a new token from the provider, `session`
   * asks the server to extend a cookie connection from its session, `false` lets the socket expire (and reconnect).
   * @default 'token'
   */
  renew?: 'token' | 'session' | false;
  /** Where `renew: 'token'` gets its access token, when `token` returns something else (a one-time ticket). */
  renewToken?: () => string | Promise<string>;
  /** Renew this long before the credential expires. @default 60 s */
  renewMarginMs?: number;
  /** A connection attempt (the token provider, then the handshake) that takes longer fails. @default 15 s */
  connectTimeoutMs?: number;
  /**
   * Asked after a reconnect attempt fails where the cause cannot be seen (a browser never sees the handshake's
   * status): resolve false when the sign-in is gone (e.g. the session API answers 401), and the client stops in
   * `signed_out` instead of retrying forever. Node clients see the status: 401 and 403 to a fresh credential stop
   * it without asking. @default no check: keep retrying
   */
  stillSignedIn?: () => Promise<boolean>;
}

export interface ClientEvents<Rooms extends RoomMap = DefaultRooms> {
  state: { state: ConnectionState; retryInMs?: number; attempt?: number; reason?: 'signed_out' | 'session_ended' | 'closed_by_server' };
  /** A room message, in sequence order, exactly once. */
  message: TypedMessage<Rooms>;
  /** Who is in a room now, after any change (one entry per user, this user included). */
  presence: { room: string; users: Member[]; live: boolean };
  /** Who is typing in a room now (never this user). */
  typing: { room: string; users: Member[] };
  /** An edit or a deletion of a message (`target`), in sequence order with the room's messages, exactly once. */
  changed: TypedUpdate<Rooms> | MessageDeletedEvent;
  /** A user's read cursor moved (live in small rooms; see `receipts()` for the others). */
  receipt: { room: string; cursor: ReadCursor };
  /** A room's unread count changed (a message from someone else, or this user read it here or elsewhere). */
  unread: { room: string; unread: number };
  /** This user was removed from a private room: it is left. */
  removed: { room: string };
  /** Messages of a room that could not be replayed (older than the server's window): reload that room. */
  gap: { room: string; from: number; to: number };
  /** Every event from the server, as received. */
  event: ServerEvent;
  error: Error;
}

export class GatehouseError extends Error {
  constructor(
    readonly code: ErrorCode | 'timeout' | 'closed' | 'handshake',
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'GatehouseError';
  }
}

interface RoomState {
  /** Highest sequence number delivered to the application. */
  lastSeq: number;
  /** Users present, with the version of the last change applied (changes may arrive out of order). */
  presence: Map<string, Member & { v: number; present: boolean }>;
  live: boolean;
  typing: Map<string, { user: Member; timer: ReturnType<typeof setTimeout> }>;
  /** When this client last passed "typing" on for the room (client-side throttle, the server's too). */
  typedAt: number;
  /** False until the first `joined` reply tells where the room stands. */
  synced: boolean;
  /** Received ahead of order, waiting for the missing ones. */
  pending: Map<number, RoomEvent>;
  /** Read cursors known for the room, per user. */
  cursors: Map<string, ReadCursor>;
  /** The rejoin after a reconnect, while in flight: requests about the room wait for it (the server would refuse them). */
  resuming?: Promise<unknown>;
  repair?: ReturnType<typeof setTimeout>;
}

const OPEN = 1;

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new GatehouseError('timeout', `No answer for ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * `Rooms` types payloads per room pattern (see ./rooms.ts): `new GatehouseClient<{ 'chat:*': { text: string } }>()`.
 * @default any room, any JSON
 */
export class GatehouseClient<Rooms extends RoomMap = DefaultRooms> extends Emitter<ClientEvents<Rooms>> {
  private socket?: SocketLike;
  private stateValue: ConnectionState = 'idle';
  private readonly pending = new Map<string, { resolve: (e: ServerEvent) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }>();
  private readonly rooms = new Map<string, RoomState>();
  private nextId = 0;
  private attempt = 0;
  private heartbeat?: ReturnType<typeof setTimeout>;
  /** When the open socket opened (API Gateway ends it 2 hours later). */
  private openedAt = 0;
  /** When a frame last went either way on the socket (API Gateway's idle timer is reset by both). */
  private lastTraffic = Date.now();
  /** Pings waiting for a pong (API Gateway's own answer carries no id: the next pong answers them all). */
  private readonly pongWaiters: Array<{ resolve: (pong: PongEvent) => void; reject: (err: Error) => void }> = [];
  private retryTimer?: ReturnType<typeof setTimeout>;
  private closing = false;
  /** Bumped by close(): a connect still waiting for its token when the client was closed must not open a socket. */
  private generation = 0;
  private renewTimer?: ReturnType<typeof setTimeout>;
  private me?: WhoamiEvent;
  private whoamiInFlight?: Promise<WhoamiEvent>;
  private readonly unreadCounts = new Map<string, number>();
  private readonly opts: Required<Omit<ClientOptions, 'reconnect' | 'renewToken' | 'stillSignedIn'>> & Pick<ClientOptions, 'reconnect' | 'renewToken' | 'stillSignedIn'>;

  constructor(options: ClientOptions) {
    super();
    this.opts = {
      socket: browserSocket,
      heartbeatMs: HEARTBEAT_MS,
      renew: 'token',
      renewMarginMs: 60_000,
      requestTimeoutMs: 10_000,
      gapRepairMs: 1000,
      connectTimeoutMs: 15_000,
      ...options,
      reconnect: options.reconnect ?? {},
    };
  }

  get state(): ConnectionState {
    return this.stateValue;
  }

  /** Who this connection is (after the first `whoami`, which the client sends on every open). */
  get identity(): WhoamiEvent | undefined {
    return this.me;
  }

  /** Rooms this client is in (it rejoins them after a reconnect). */
  get joinedRooms(): string[] {
    return [...this.rooms.keys()];
  }

  private setState(state: ConnectionState, extra: Omit<ClientEvents['state'], 'state'> = {}): void {
    this.stateValue = state;
    this.emit('state', { state, ...extra });
  }

  /** Opens the connection. Rejects if this first attempt fails (bad token, server down); later drops reconnect. */
  async connect(): Promise<void> {
    if (this.stateValue === 'open' || this.stateValue === 'connecting') return;
    this.closing = false;
    await this.open('connecting');
  }

  private async open(state: 'connecting' | 'reconnecting'): Promise<void> {
    this.setState(state === 'connecting' ? 'connecting' : 'reconnecting', { attempt: this.attempt });
    const generation = this.generation;
    let token: string;
    try {
      // A provider that never answers must not stall the client: it counts as a failed attempt.
      token = await withTimeout(Promise.resolve(this.opts.token()), this.opts.connectTimeoutMs, 'the credential');
    } catch (err) {
      if (state === 'connecting') this.setState('closed');
      throw err;
    }
    if (this.closing || generation !== this.generation) return;
    await new Promise<void>((resolve, reject) => {
      const socket = this.opts.socket(this.opts.url, token);
      this.socket = socket;
      let opened = false;
      let failure: GatehouseError | undefined;
      // Nor may a handshake that never completes: close it, and the close below decides what comes next.
      const handshakeTimer = setTimeout(() => {
        failure = new GatehouseError('timeout', `No handshake within ${this.opts.connectTimeoutMs} ms`);
        socket.close();
        // A socket that never opened may never report its close either.
        socket.onclose?.({ code: 1006, reason: 'handshake timeout' });
      }, this.opts.connectTimeoutMs);
      socket.onopen = () => {
        clearTimeout(handshakeTimer);
        opened = true;
        this.openedAt = Date.now();
        this.attempt = 0;
        this.setState('open');
        this.startHeartbeat();
        this.resumeRooms();
        // Who this is (typing and presence tell this user apart by it), and when its credential needs renewing.
        void this.whoami().then((me) => this.scheduleRenewal(me.tokenExpiresAt), () => undefined);
        resolve();
      };
      socket.onmessage = (event) => this.receive(String(event.data));
      socket.onerror = (event) => {
        const message = (event as { message?: string })?.message ?? 'WebSocket error';
        const status = /Unexpected server response: (\d+)/.exec(message)?.[1];
        failure = new GatehouseError('handshake', message, status ? Number(status) : undefined);
      };
      socket.onclose = (event) => {
        clearTimeout(handshakeTimer);
        if (this.socket !== socket) return;
        this.socket = undefined;
        this.stopHeartbeat();
        this.stopRenewal();
        this.failPending(new GatehouseError('closed', `Connection closed (${event.code})`));
        if (!opened) {
          const err = failure ?? new GatehouseError('handshake', `Connection refused (${event.code})`);
          if (state === 'connecting') {
            this.setState('closed');
            reject(err);
          } else {
            this.emit('error', err);
            void this.afterFailedReconnect(err).then(resolve);
          }
          return;
        }
        if (this.stateValue === 'signed_out') return;
        if (this.closing) this.setState('closed');
        else if (!shouldReconnect(event.code)) this.setState('closed', { reason: 'closed_by_server' });
        else this.scheduleReconnect();
      };
    });
  }

  /**
   * A reconnect was refused. A fresh credential refused (401/403, or the app's own check says the sign-in is gone)
   * means the sign-in is over: stop, in `signed_out`, rather than knock forever. Anything else: try again later.
   */
  private async afterFailedReconnect(err: GatehouseError): Promise<void> {
    let ended = err.status === 401 || err.status === 403;
    if (!ended && err.status === undefined && this.opts.stillSignedIn) ended = !(await this.opts.stillSignedIn().catch(() => true));
    if (this.closing) return;
    if (ended) {
      this.closing = true;
      this.setState('signed_out', { reason: 'session_ended' });
      return;
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const policy = this.opts.reconnect;
    if (policy === false || this.closing) {
      this.setState('closed');
      return;
    }
    const { initialDelayMs = 500, maxDelayMs = 30_000, factor = 2, jitter = 0.5 } = policy ?? {};
    const base = Math.min(maxDelayMs, initialDelayMs * factor ** this.attempt);
    // Jitter spreads out the reconnect storm after a deployment drops every client at once.
    const delay = Math.round(base * (1 - jitter * Math.random()));
    this.attempt++;
    this.setState('reconnecting', { retryInMs: delay, attempt: this.attempt });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.open('reconnecting').catch((err: Error) => {
        // The provider could not give a credential: the same question as a refused handshake, is the sign-in gone?
        this.emit('error', err);
        void this.afterFailedReconnect(err instanceof GatehouseError ? err : new GatehouseError('handshake', err.message));
      });
    }, delay);
  }

  /**
   * Pings only a socket that has been quiet (no frame either way) for heartbeatMs: API Gateway's idle timer is reset
   * by traffic in either direction, so a busy socket needs no ping. The ping is answered by API Gateway itself (a mock
   * route: no function runs, nothing is stored), so an idle socket costs two messages every heartbeatMs.
   */
  private startHeartbeat(): void {
    this.stopHeartbeat();
    const check = () => {
      const quiet = Date.now() - this.lastTraffic;
      if (quiet < this.opts.heartbeatMs) {
        this.heartbeat = setTimeout(check, this.opts.heartbeatMs - quiet);
        return;
      }
      this.ping().then(
        () => (this.heartbeat = setTimeout(check, this.opts.heartbeatMs)),
        // No pong: the connection is dead even if the socket has not noticed. Closing it triggers a reconnect.
        () => this.socket?.close(CLOSE.heartbeatTimeout.code, CLOSE.heartbeatTimeout.reason),
      );
    };
    this.heartbeat = setTimeout(check, this.opts.heartbeatMs);
  }

  /** Renews the credential of the open socket shortly before it expires (the server closes expired sockets). */
  private scheduleRenewal(expiresAt: number): void {
    this.stopRenewal();
    if (this.opts.renew === false) return;
    const delay = Math.max(1000, expiresAt * 1000 - Date.now() - this.opts.renewMarginMs);
    this.renewTimer = setTimeout(() => void this.renew(), Math.min(delay, 2 ** 31 - 1));
  }

  private async renew(): Promise<void> {
    // API Gateway ends the connection at 2 hours anyway: within its last RECONNECT_TO_RENEW_MS, one reconnect with a
    // fresh credential (authorizer, $connect, a rejoin, $disconnect) replaces a refresh and that reconnect.
    if (this.openedAt + REALTIME_DEFAULTS.maxConnectionSeconds * 1000 - Date.now() <= RECONNECT_TO_RENEW_MS) {
      this.socket?.close(CLOSE.renewByReconnect.code, CLOSE.renewByReconnect.reason);
      return;
    }
    try {
      const token = this.opts.renew === 'token' ? await (this.opts.renewToken ?? this.opts.token)() : undefined;
      const renewed = await this.request<'refresh'>({ action: 'refresh', ...(token ? { token } : {}) });
      this.scheduleRenewal(renewed.tokenExpiresAt);
    } catch (err) {
      // Refused (e.g. the sign-in was revoked) or unreachable: start over with a fresh connection.
      this.emit('error', err as Error);
      this.socket?.close(CLOSE.renewalFailed.code, CLOSE.renewalFailed.reason);
    }
  }

  private stopRenewal(): void {
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearTimeout(this.heartbeat);
    this.heartbeat = undefined;
    for (const waiter of this.pongWaiters.splice(0)) waiter.reject(new GatehouseError('closed', 'Not connected'));
  }

  private failPending(err: Error): void {
    for (const [id, call] of this.pending) {
      clearTimeout(call.timer);
      call.reject(err);
      this.pending.delete(id);
    }
  }

  /** Sends an action and resolves with its reply (rejects with the server's error event as a GatehouseError). */
  request<A extends Action>(message: RequestOf<A>): Promise<Replies[A]> {
    const socket = this.socket;
    if (!socket || socket.readyState !== OPEN) return Promise.reject(new GatehouseError('closed', 'Not connected'));
    const id = `r${++this.nextId}`;
    return new Promise<Replies[A]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new GatehouseError('timeout', `No reply to ${message.action} within ${this.opts.requestTimeoutMs} ms`));
      }, this.opts.requestTimeoutMs);
      this.pending.set(id, { resolve: resolve as (e: ServerEvent) => void, reject, timer });
      this.lastTraffic = Date.now();
      socket.send(JSON.stringify({ ...message, id }));
    });
  }

  private receive(raw: string): void {
    this.lastTraffic = Date.now();
    let event: ServerEvent;
    try {
      event = JSON.parse(raw) as ServerEvent;
    } catch {
      this.emit('error', new Error('Server sent a frame that is not JSON'));
      return;
    }
    this.emit('event', event);
    if (event.type === 'pong' && !('id' in event && event.id !== undefined)) {
      for (const waiter of this.pongWaiters.splice(0)) waiter.resolve(event);
      return;
    }
    if ((ROOM_EVENT_TYPES as readonly string[]).includes(event.type)) {
      this.deliver(event as RoomEvent);
      return;
    }
    if (event.type === 'receipt') {
      this.applyReceipt(event.room, event.cursor);
      return;
    }
    if (event.type === 'removed') {
      const state = this.rooms.get(event.room);
      if (state?.repair) clearTimeout(state.repair);
      for (const t of state?.typing.values() ?? []) clearTimeout(t.timer);
      this.rooms.delete(event.room);
      this.setUnread(event.room, 0);
      this.unreadCounts.delete(event.room);
      this.emit('removed', { room: event.room });
      return;
    }
    if (event.type === 'signed_out') {
      // The sign-in is over: do not come back with it. The server closes the socket next.
      this.closing = true;
      this.setState('signed_out', { reason: 'signed_out' });
      return;
    }
    if (event.type === 'presence') {
      this.applyPresence(event);
      return;
    }
    if (event.type === 'typing') {
      this.applyTyping(event);
      return;
    }
    const id = 'id' in event ? event.id : undefined;
    const call = id === undefined ? undefined : this.pending.get(id);
    if (!call) {
      if (event.type === 'error') this.emit('error', new GatehouseError(event.code, event.message));
      return;
    }
    this.pending.delete(id!);
    clearTimeout(call.timer);
    if (event.type === 'error') call.reject(new GatehouseError(event.code, event.message));
    else call.resolve(event);
  }

  // --- rooms: ordering, de-duplication, resume -------------------------------------------------------------

  private deliver(message: RoomEvent): void {
    const room = this.rooms.get(message.room);
    if (!room) return; // not (or no longer) in this room
    // Their message is what they were typing.
    if (message.type === 'message' && 'userId' in message.sender && room.typing.has(message.sender.userId)) this.stopTyping(message.room, room, message.sender.userId);
    if (message.seq <= room.lastSeq && room.synced) return; // duplicate (a replay overlapping live delivery)
    room.pending.set(message.seq, message);
    if (room.synced) this.flush(message.room, room);
  }

  private flush(name: string, room: RoomState): void {
    for (const seq of [...room.pending.keys()]) if (seq <= room.lastSeq) room.pending.delete(seq);
    let next: RoomEvent | undefined;
    while ((next = room.pending.get(room.lastSeq + 1))) {
      room.pending.delete(next.seq);
      room.lastSeq = next.seq;
      // The room map is the application's contract for what its rooms carry (see ./rooms.ts).
      if (next.type !== 'message') this.emit('changed', next as TypedUpdate<Rooms> | MessageDeletedEvent);
      else {
        this.emit('message', next as TypedMessage<Rooms>);
        const mine = 'userId' in next.sender && next.sender.userId === this.me?.userId;
        if (!mine) this.setUnread(name, (this.unreadCounts.get(name) ?? 0) + 1);
      }
    }
    if (room.repair) clearTimeout(room.repair);
    room.repair = undefined;
    // Something later arrived before what precedes it: give the in-flight message a moment, then ask for a replay.
    if (room.pending.size > 0) {
      room.repair = setTimeout(() => {
        room.repair = undefined;
        if (this.rooms.get(name) === room) void this.sync(name, room).catch((err: Error) => this.emit('error', err));
      }, this.opts.gapRepairMs);
    }
  }

  /** Joins (or rejoins) a room and aligns the local sequence with the server's, replaying what was missed. */
  private async sync(name: string, room: RoomState): Promise<JoinedEvent> {
    const joined = await this.request<'join'>({
      action: 'join',
      room: name,
      ...(room.synced ? { after: room.lastSeq } : {}),
    });
    return this.applyJoined(name, room, joined);
  }

  /** What a (re)join answered: the gap, the local sequence, the replayed messages in order, presence, the rest of a long replay. */
  private applyJoined(name: string, room: RoomState, joined: JoinedEvent): JoinedEvent {
    if (joined.gap) {
      this.emit('gap', { room: name, ...joined.gap });
      room.lastSeq = Math.max(room.lastSeq, joined.gap.to);
    }
    if (!room.synced) {
      // A first join starts at the room's current head: earlier messages are history, not news.
      room.lastSeq = joined.seq;
      room.synced = true;
    }
    this.flush(name, room);
    if (joined.presence) this.applySnapshot(name, room, joined.presence);
    // The server replays a long backlog in parts: ask for the next one from where this one ended.
    if (joined.more) void this.sync(name, room).catch((err: Error) => this.emit('error', err));
    return joined;
  }

  /**
   * Rejoins every room after a reconnect, MAX_JOIN_ROOMS to a `join_rooms` frame: one function invocation for up
   * to ten rooms instead of one each. A room that fails is reported (an `error` event).
   */
  private resumeRooms(): void {
    const rooms = [...this.rooms];
    for (let i = 0; i < rooms.length; i += MAX_JOIN_ROOMS) {
      const chunk = rooms.slice(i, i + MAX_JOIN_ROOMS);
      const answered = this.request<'join_rooms'>({ action: 'join_rooms', rooms: chunk.map(([name, room]) => ({ room: name, ...(room.synced ? { after: room.lastSeq } : {}) })) });
      for (const [name, room] of chunk) {
        const resuming = answered
          .then(({ results }) => {
            const result = results.find((r) => r.room === name);
            if (!result || result.type === 'error') throw new GatehouseError(result?.code ?? 'internal', result?.message ?? `No answer for ${name}`);
            if (this.rooms.get(name) === room) this.applyJoined(name, room, result);
          })
          .catch((err: Error) => this.emit('error', err))
          .finally(() => room.resuming === resuming && (room.resuming = undefined));
        room.resuming = resuming;
      }
    }
  }

  /**
   * Waits for a joined room's rejoin after a reconnect. The new connection is not in the room until it is, and
   * Lambda may run a request sent meanwhile before the join: a message typed just after a reconnect would be refused.
   */
  private inRoom<T>(room: string, request: () => Promise<T>): Promise<T> {
    const resuming = this.rooms.get(room)?.resuming;
    // Sent at once when nothing is in flight, so requests keep the order they were made in.
    return resuming ? resuming.then(request) : request();
  }

  async join(room: string): Promise<JoinedEvent> {
    const state = this.rooms.get(room) ?? { lastSeq: 0, synced: false, pending: new Map(), presence: new Map(), live: true, typing: new Map(), typedAt: 0, cursors: new Map() };
    this.rooms.set(room, state);
    try {
      return await this.sync(room, state);
    } catch (err) {
      if (!state.synced) this.rooms.delete(room);
      throw err;
    }
  }

  async leave(room: string): Promise<void> {
    const state = this.rooms.get(room);
    if (state?.repair) clearTimeout(state.repair);
    for (const t of state?.typing.values() ?? []) clearTimeout(t.timer);
    this.rooms.delete(room);
    // What this client showed of the room is no longer known: say so, rather than leave listeners with the last view.
    if (state) {
      this.emit('presence', { room, users: [], live: state.live });
      if (state.typing.size) this.emit('typing', { room, users: [] });
    }
    await this.request({ action: 'leave', room });
  }

  send<Room extends RoomOf<Rooms>>(room: Room, data: PayloadOf<Rooms, Room>): Promise<Replies['send']> {
    return this.inRoom(room, () => this.request<'send'>({ action: 'send', room, data: data as Json }));
  }

  /**
   * A page of a joined room's history, oldest first, each message with its current content. Without `before`, the
   * latest page; pass the page's `before` for the one older than it (absent: nothing older is kept).
   */
  history<Room extends RoomOf<Rooms>>(room: Room, options: { before?: number; limit?: number } = {}): Promise<RoomHistory<Rooms, Room>> {
    return this.inRoom(room, () => this.request<'history'>({ action: 'history', room, ...options }) as Promise<RoomHistory<Rooms, Room>>);
  }

  /**
   * Tells the room this user is typing. Call it on every keystroke: it passes at most one on per
   * TYPING_THROTTLE_MS (the server throttles too). Resolves false when nothing was sent.
   */
  async typing(room: string): Promise<boolean> {
    const state = this.rooms.get(room);
    if (!state || Date.now() - state.typedAt < TYPING_THROTTLE_MS) return false;
    state.typedAt = Date.now();
    return (await this.inRoom(room, () => this.request<'typing'>({ action: 'typing', room }))).forwarded;
  }

  /** Asks the server who is in a room now (in big rooms without live presence, this is how to refresh it). */
  async refreshPresence(room: string): Promise<Member[]> {
    const reply = await this.inRoom(room, () => this.request<'presence'>({ action: 'presence', room }));
    const state = this.rooms.get(room);
    if (state) this.applySnapshot(room, state, reply);
    return this.presenceOf(room);
  }

  /** Replaces the content of one of this user's messages; every member gets the edit, in order. */
  edit<Room extends RoomOf<Rooms>>(room: Room, seq: number, data: PayloadOf<Rooms, Room>): Promise<Replies['edit']> {
    return this.inRoom(room, () => this.request<'edit'>({ action: 'edit', room, seq, data: data as Json }));
  }

  /** Deletes a message (this user's, or anyone's for a tenant admin): its content is gone from the server. */
  delete(room: string, seq: number): Promise<Replies['delete']> {
    return this.inRoom(room, () => this.request<'delete'>({ action: 'delete', room, seq }));
  }

  /** Marks a joined room read up to `seq` (default: everything delivered so far). */
  async read(room: string, seq?: number): Promise<number> {
    const state = this.rooms.get(room);
    // What "everything delivered" means is known once a rejoin has replayed what was missed.
    const ack = await this.inRoom(room, () => this.request<'read'>({ action: 'read', room, seq: Math.max(1, seq ?? state?.lastSeq ?? 0) }));
    if (state && ack.seq >= state.lastSeq) this.setUnread(room, 0);
    if (state && this.me) state.cursors.set(this.me.userId, { userId: this.me.userId, name: this.me.name, seq: ack.seq });
    return ack.seq;
  }

  /** Unread counts of every room this user has joined in this tenant (from the server; then kept live here). */
  async unread(): Promise<Map<string, number>> {
    const reply = await this.request<'unread'>({ action: 'unread' });
    for (const r of reply.rooms) this.setUnread(r.room, r.unread);
    return new Map(this.unreadCounts);
  }

  /** The unread count of a room, as last known. */
  unreadIn(room: string): number {
    return this.unreadCounts.get(room) ?? 0;
  }

  /** Asks for a joined room's read cursors (small rooms also get them live). */
  async receipts(room: string): Promise<ReadCursor[]> {
    const reply = await this.inRoom(room, () => this.request<'receipts'>({ action: 'receipts', room }));
    for (const cursor of reply.cursors) this.applyReceipt(room, cursor, false);
    return reply.cursors;
  }

  /** Who else has read a joined room's message `seq`, from the cursors known. */
  seenBy(room: string, seq: number): Member[] {
    return [...(this.rooms.get(room)?.cursors.values() ?? [])]
      .filter((c) => c.seq >= seq && c.userId !== this.me?.userId)
      .map(({ userId, name }) => ({ userId, name }));
  }

  private applyReceipt(room: string, cursor: ReadCursor, announce = true): void {
    const state = this.rooms.get(room);
    if (!state) return;
    const known = state.cursors.get(cursor.userId);
    if (known && known.seq >= cursor.seq) return;
    state.cursors.set(cursor.userId, cursor);
    // This user read it in another tab or device.
    if (cursor.userId === this.me?.userId && cursor.seq >= state.lastSeq) this.setUnread(room, 0);
    if (announce) this.emit('receipt', { room, cursor });
  }

  private setUnread(room: string, unread: number): void {
    if (this.unreadCounts.get(room) === unread) return;
    this.unreadCounts.set(room, unread);
    this.emit('unread', { room, unread });
  }

  /** Who is in a joined room (one entry per user), as last known. */
  presenceOf(room: string): Member[] {
    const state = this.rooms.get(room);
    return state ? [...state.presence.values()].filter((p) => p.present).map(({ userId, name }) => ({ userId, name })) : [];
  }

  /** Who is typing in a joined room now. */
  typingIn(room: string): Member[] {
    return [...(this.rooms.get(room)?.typing.values() ?? [])].map((t) => t.user);
  }

  /** Who this connection is. Calls made while one is in flight (the client asks on every open) share its answer. */
  whoami(): Promise<WhoamiEvent> {
    this.whoamiInFlight ??= this.request<'whoami'>({ action: 'whoami' })
      .then((me) => (this.me = me))
      .finally(() => (this.whoamiInFlight = undefined));
    return this.whoamiInFlight;
  }

  /**
   * Pings the server and resolves with its pong. The ping carries no id: API Gateway answers it from a mock route
   * (the pong cannot echo an id), so any pong arriving next answers it.
   */
  ping(): Promise<PongEvent> {
    const socket = this.socket;
    if (!socket || socket.readyState !== OPEN) return Promise.reject(new GatehouseError('closed', 'Not connected'));
    return new Promise<PongEvent>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.pongWaiters.indexOf(waiter);
        if (i >= 0) this.pongWaiters.splice(i, 1);
        reject(new GatehouseError('timeout', `No pong within ${this.opts.requestTimeoutMs} ms`));
      }, this.opts.requestTimeoutMs);
      const waiter = {
        resolve: (pong: PongEvent) => (clearTimeout(timer), resolve(pong)),
        reject: (err: Error) => (clearTimeout(timer), reject(err)),
      };
      this.pongWaiters.push(waiter);
      this.lastTraffic = Date.now();
      socket.send(JSON.stringify({ action: 'ping' }));
    });
  }

  // --- presence and typing -----------------------------------------------------------------------------------

  /** A snapshot replaces what is known, except changes newer than it (by `v`) that arrived first. */
  private applySnapshot(name: string, room: RoomState, snapshot: PresenceSnapshot): void {
    const listed = new Set(snapshot.users.map((u) => u.userId));
    for (const [userId, entry] of room.presence) {
      if (!listed.has(userId) && entry.present && !snapshot.more) room.presence.delete(userId);
    }
    for (const u of snapshot.users) {
      const known = room.presence.get(u.userId);
      if (!known || known.v <= u.v) room.presence.set(u.userId, { userId: u.userId, name: u.name, v: u.v, present: true });
    }
    room.live = snapshot.live;
    this.emit('presence', { room: name, users: this.presenceOf(name), live: room.live });
  }

  private applyPresence(event: PresenceEvent): void {
    const room = this.rooms.get(event.room);
    if (!room) return;
    const known = room.presence.get(event.user.userId);
    if (known && known.v >= event.v) return; // older than what is known
    room.presence.set(event.user.userId, { ...event.user, v: event.v, present: event.change === 'joined' });
    if (event.change === 'left' && room.typing.has(event.user.userId)) this.stopTyping(event.room, room, event.user.userId);
    this.emit('presence', { room: event.room, users: this.presenceOf(event.room), live: room.live });
  }

  private applyTyping(event: TypingEvent): void {
    const room = this.rooms.get(event.room);
    if (!room || event.user.userId === this.me?.userId) return;
    const known = room.typing.get(event.user.userId);
    if (known) clearTimeout(known.timer);
    const timer = setTimeout(() => this.stopTyping(event.room, room, event.user.userId), event.expiresInMs);
    room.typing.set(event.user.userId, { user: event.user, timer });
    this.emit('typing', { room: event.room, users: this.typingIn(event.room) });
  }

  private stopTyping(name: string, room: RoomState, userId: string): void {
    const known = room.typing.get(userId);
    if (!known) return;
    clearTimeout(known.timer);
    room.typing.delete(userId);
    this.emit('typing', { room: name, users: this.typingIn(name) });
  }

  /** Closes for good: no reconnect. Resolves when the socket is closed. */
  async close(): Promise<void> {
    this.closing = true;
    this.generation++;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.stopHeartbeat();
    this.stopRenewal();
    for (const room of this.rooms.values()) {
      if (room.repair) clearTimeout(room.repair);
      for (const t of room.typing.values()) clearTimeout(t.timer);
    }
    const socket = this.socket;
    if (!socket) {
      if (this.stateValue !== 'signed_out') this.setState('closed');
      return;
    }
    await new Promise<void>((resolve) => {
      const previous = socket.onclose;
      socket.onclose = (event) => {
        previous?.(event);
        resolve();
      };
      socket.close(CLOSE.normal.code, CLOSE.normal.reason);
    });
  }
}
