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
  SUBPROTOCOL,
  type ClientMessage,
  type ErrorCode,
  type JoinedEvent,
  type Json,
  type MessageEvent,
  type ServerEvent,
} from '../protocol';
import { Emitter } from './emitter';

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

/** `signed_out`: the server ended this sign-in (here or in another tab or device); no reconnect. */
export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed' | 'signed_out';

export interface ClientOptions {
  url: string;
  /** Called before every connection attempt: return a current access token (refresh it here). */
  token: () => string | Promise<string>;
  /** How to open sockets. @default browserSocket */
  socket?: SocketFactory;
  /** Heartbeat interval; must stay well under API Gateway's 10-minute idle timeout. @default 4 minutes */
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
}

export interface ClientEvents {
  state: { state: ConnectionState; retryInMs?: number; attempt?: number };
  /** A room message, in sequence order, exactly once. */
  message: MessageEvent;
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
  /** False until the first `joined` reply tells where the room stands. */
  synced: boolean;
  /** Received ahead of order, waiting for the missing ones. */
  pending: Map<number, MessageEvent>;
  repair?: ReturnType<typeof setTimeout>;
}

const OPEN = 1;

export class GatehouseClient extends Emitter<ClientEvents> {
  private socket?: SocketLike;
  private stateValue: ConnectionState = 'idle';
  private readonly pending = new Map<string, { resolve: (e: ServerEvent) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }>();
  private readonly rooms = new Map<string, RoomState>();
  private nextId = 0;
  private attempt = 0;
  private heartbeat?: ReturnType<typeof setInterval>;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private closing = false;
  /** Bumped by close(): a connect still waiting for its token when the client was closed must not open a socket. */
  private generation = 0;
  private renewTimer?: ReturnType<typeof setTimeout>;
  private readonly opts: Required<Omit<ClientOptions, 'reconnect' | 'renewToken'>> & Pick<ClientOptions, 'reconnect' | 'renewToken'>;

  constructor(options: ClientOptions) {
    super();
    this.opts = {
      socket: browserSocket,
      heartbeatMs: 4 * 60 * 1000,
      renew: 'token',
      renewMarginMs: 60_000,
      requestTimeoutMs: 10_000,
      gapRepairMs: 1000,
      ...options,
      reconnect: options.reconnect ?? {},
    };
  }

  get state(): ConnectionState {
    return this.stateValue;
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
      token = await this.opts.token();
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
      socket.onopen = () => {
        opened = true;
        this.attempt = 0;
        this.setState('open');
        this.startHeartbeat();
        this.resumeRooms();
        void this.scheduleRenewal();
        resolve();
      };
      socket.onmessage = (event) => this.receive(String(event.data));
      socket.onerror = (event) => {
        const message = (event as { message?: string })?.message ?? 'WebSocket error';
        const status = /Unexpected server response: (\d+)/.exec(message)?.[1];
        failure = new GatehouseError('handshake', message, status ? Number(status) : undefined);
      };
      socket.onclose = (event) => {
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
            this.scheduleReconnect();
            resolve();
          }
          return;
        }
        if (this.stateValue === 'signed_out') return;
        if (this.closing) this.setState('closed');
        else this.scheduleReconnect();
      };
    });
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
        this.emit('error', err);
        this.scheduleReconnect();
      });
    }, delay);
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    this.heartbeat = setInterval(() => {
      this.request({ action: 'ping' }).catch(() => {
        // No pong: the connection is dead even if the socket has not noticed. Closing it triggers a reconnect.
        this.socket?.close(CLOSE.heartbeatTimeout.code, CLOSE.heartbeatTimeout.reason);
      });
    }, this.opts.heartbeatMs);
  }

  /** Renews the credential of the open socket shortly before it expires (the server closes expired sockets). */
  private async scheduleRenewal(expiresAt?: number): Promise<void> {
    this.stopRenewal();
    if (this.opts.renew === false) return;
    try {
      const at = expiresAt ?? (await this.whoami()).tokenExpiresAt;
      const delay = Math.max(1000, at * 1000 - Date.now() - this.opts.renewMarginMs);
      this.renewTimer = setTimeout(() => void this.renew(), Math.min(delay, 2 ** 31 - 1));
    } catch {
      // Not connected any more: the next open schedules again.
    }
  }

  private async renew(): Promise<void> {
    try {
      const token = this.opts.renew === 'token' ? await (this.opts.renewToken ?? this.opts.token)() : undefined;
      const renewed = await this.request<Extract<ServerEvent, { type: 'refreshed' }>>({ action: 'refresh', ...(token ? { token } : {}) });
      await this.scheduleRenewal(renewed.tokenExpiresAt);
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
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  private failPending(err: Error): void {
    for (const [id, call] of this.pending) {
      clearTimeout(call.timer);
      call.reject(err);
      this.pending.delete(id);
    }
  }

  /** Sends an action and resolves with its reply (rejects with the server's error event as a GatehouseError). */
  request<T extends ServerEvent = ServerEvent>(message: ClientMessage): Promise<T> {
    const socket = this.socket;
    if (!socket || socket.readyState !== OPEN) return Promise.reject(new GatehouseError('closed', 'Not connected'));
    const id = `r${++this.nextId}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new GatehouseError('timeout', `No reply to ${message.action} within ${this.opts.requestTimeoutMs} ms`));
      }, this.opts.requestTimeoutMs);
      this.pending.set(id, { resolve: resolve as (e: ServerEvent) => void, reject, timer });
      socket.send(JSON.stringify({ ...message, id }));
    });
  }

  private receive(raw: string): void {
    let event: ServerEvent;
    try {
      event = JSON.parse(raw) as ServerEvent;
    } catch {
      this.emit('error', new Error('Server sent a frame that is not JSON'));
      return;
    }
    this.emit('event', event);
    if (event.type === 'message') {
      this.deliver(event);
      return;
    }
    if (event.type === 'signed_out') {
      // The sign-in is over: do not come back with it. The server closes the socket next.
      this.closing = true;
      this.setState('signed_out');
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

  private deliver(message: MessageEvent): void {
    const room = this.rooms.get(message.room);
    if (!room) return; // not (or no longer) in this room
    if (message.seq <= room.lastSeq && room.synced) return; // duplicate (a replay overlapping live delivery)
    room.pending.set(message.seq, message);
    if (room.synced) this.flush(message.room, room);
  }

  private flush(name: string, room: RoomState): void {
    for (const seq of [...room.pending.keys()]) if (seq <= room.lastSeq) room.pending.delete(seq);
    let next: MessageEvent | undefined;
    while ((next = room.pending.get(room.lastSeq + 1))) {
      room.pending.delete(next.seq);
      room.lastSeq = next.seq;
      this.emit('message', next);
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
    const joined = await this.request<JoinedEvent>({
      action: 'join',
      room: name,
      ...(room.synced ? { after: room.lastSeq } : {}),
    });
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
    // The server replays a long backlog in parts: ask for the next one from where this one ended.
    if (joined.more) void this.sync(name, room).catch((err: Error) => this.emit('error', err));
    return joined;
  }

  private resumeRooms(): void {
    for (const [name, room] of this.rooms) {
      void this.sync(name, room).catch((err: Error) => this.emit('error', err));
    }
  }

  async join(room: string): Promise<JoinedEvent> {
    const state = this.rooms.get(room) ?? { lastSeq: 0, synced: false, pending: new Map() };
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
    this.rooms.delete(room);
    await this.request({ action: 'leave', room });
  }

  send(room: string, data: Json) {
    return this.request<Extract<ServerEvent, { type: 'sent' }>>({ action: 'send', room, data });
  }

  whoami() {
    return this.request<Extract<ServerEvent, { type: 'whoami' }>>({ action: 'whoami' });
  }

  ping() {
    return this.request<Extract<ServerEvent, { type: 'pong' }>>({ action: 'ping' });
  }

  /** Closes for good: no reconnect. Resolves when the socket is closed. */
  async close(): Promise<void> {
    this.closing = true;
    this.generation++;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.stopHeartbeat();
    this.stopRenewal();
    for (const room of this.rooms.values()) if (room.repair) clearTimeout(room.repair);
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
