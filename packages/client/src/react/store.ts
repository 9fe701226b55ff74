/**
 * What the React bindings know of one client, kept outside React so that every provider and hook of that client
 * shares it: one store per GatehouseClient (a WeakMap entry, so it goes with the client), listening to the client's
 * events for the client's lifetime. Components subscribe to a topic of it through useSyncExternalStore; every
 * snapshot is immutable and replaced on change, so a render never sees half of one. The rooms it holds, and their
 * messages, are ./feed.ts.
 */
import type { ClientEvents, ConnectionState, GatehouseClient } from '../client';
import type { Member } from '../index';
import { RoomFeeds, isClosed } from './feed';

/** The client's connection as its last `state` event told it. */
export interface ConnectionSnapshot {
  state: ConnectionState;
  /** Why it is `signed_out` or `closed`, when the client knows. */
  reason?: ClientEvents['state']['reason'];
  /** While reconnecting: the delay before the next attempt, as the client scheduled it. */
  retryInMs?: number;
  /** The same as a time (epoch ms), for a countdown that renders later than the event. */
  retryAt?: number;
  attempt?: number;
}

export interface RoomPresence {
  /** One entry per user, this user included. */
  members: readonly Member[];
  /** False in rooms too big for live presence: `members` is a snapshot, refresh it on demand. */
  live: boolean;
}

const NOBODY: readonly Member[] = Object.freeze([]);
const NO_PRESENCE: RoomPresence = Object.freeze({ members: NOBODY, live: true });

export const presenceTopic = (room: string) => `presence:${room}`;
export const typingTopic = (room: string) => `typing:${room}`;

export class GatehouseStore {
  readonly rooms: RoomFeeds;
  private connectionSnap: ConnectionSnapshot;
  private unreadSnap: ReadonlyMap<string, number> = new Map();
  private unreadWanted = false;
  private readonly presenceCache = new Map<string, RoomPresence>();
  private readonly typingCache = new Map<string, readonly Member[]>();
  private readonly listeners = new Map<string, Set<() => void>>();
  private readonly errorListeners = new Set<(error: Error) => void>();
  private openWaiters: Array<() => void> = [];

  constructor(readonly client: GatehouseClient) {
    this.connectionSnap = { state: client.state };
    this.rooms = new RoomFeeds({
      client,
      notify: (topic) => this.notify(topic),
      report: (err) => this.report(err),
      nextOpen: () => new Promise((resolve) => this.openWaiters.push(resolve)),
      forget: (room) => this.forget(room),
    });
    client.on('state', (e) => this.onState(e));
    client.on('presence', ({ room, users, live }) => {
      this.presenceCache.set(room, { members: users, live });
      this.notify(presenceTopic(room));
    });
    client.on('typing', ({ room, users }) => {
      this.typingCache.set(room, users);
      this.notify(typingTopic(room));
    });
    client.on('unread', ({ room, unread }) => {
      this.unreadSnap = new Map(this.unreadSnap).set(room, unread);
      this.notify('unread');
    });
  }

  /** Calls `onChange` after every change of `topic`; returns the function that stops it. */
  listen(topic: string, onChange: () => void): () => void {
    const set = this.listeners.get(topic) ?? new Set();
    this.listeners.set(topic, set);
    set.add(onChange);
    return () => {
      set.delete(onChange);
      if (set.size === 0 && this.listeners.get(topic) === set) this.listeners.delete(topic);
    };
  }

  private notify(topic: string): void {
    for (const onChange of [...(this.listeners.get(topic) ?? [])]) onChange();
  }

  /** Failures of background work no snapshot shows (unread counts, receipts, leaving); returns the unsubscribe. */
  onError(listener: (error: Error) => void): () => void {
    this.errorListeners.add(listener);
    return () => {
      this.errorListeners.delete(listener);
    };
  }

  private report(err: unknown): void {
    if (isClosed(err)) return;
    const error = err instanceof Error ? err : new Error(String(err));
    if (this.errorListeners.size > 0) for (const listener of [...this.errorListeners]) listener(error);
    // Nobody asked for them: report them as the platform reports an uncaught error (the console, window.onerror).
    else if (typeof reportError === 'function') reportError(error);
  }

  get connection(): ConnectionSnapshot {
    return this.connectionSnap;
  }

  presence(room: string): RoomPresence {
    let known = this.presenceCache.get(room);
    if (!known) {
      // Joined before the store listened (or with no change since): what the client knows, kept so that it is stable.
      const members = this.client.presenceOf(room);
      if (members.length === 0) return NO_PRESENCE;
      known = { members, live: true };
      this.presenceCache.set(room, known);
    }
    return known;
  }

  typing(room: string): readonly Member[] {
    return this.typingCache.get(room) ?? NOBODY;
  }

  /** Presence and typing of a room the client is no longer in. */
  private forget(room: string): void {
    this.presenceCache.delete(room);
    this.typingCache.delete(room);
    this.notify(presenceTopic(room));
    this.notify(typingTopic(room));
  }

  get unread(): ReadonlyMap<string, number> {
    return this.unreadSnap;
  }

  /** listen('unread'), and the first such subscription makes the store load the counts on every open. */
  listenUnread(onChange: () => void): () => void {
    if (!this.unreadWanted) {
      this.unreadWanted = true;
      if (this.client.state === 'open') void this.loadUnread();
    }
    return this.listen('unread', onChange);
  }

  private async loadUnread(): Promise<void> {
    try {
      // The client tells this user's own messages from others' (which count) once it knows who it is.
      if (!this.client.identity) await this.client.whoami();
      await this.client.unread();
    } catch (err) {
      this.report(err);
    }
  }

  private onState({ state, reason, retryInMs, attempt }: ClientEvents['state']): void {
    this.connectionSnap = {
      state,
      ...(reason ? { reason } : {}),
      ...(retryInMs !== undefined ? { retryInMs, retryAt: Date.now() + retryInMs } : {}),
      ...(attempt !== undefined ? { attempt } : {}),
    };
    this.notify('connection');
    if (state !== 'open') return;
    const waiters = this.openWaiters;
    this.openWaiters = [];
    for (const resolve of waiters) resolve();
    if (this.unreadWanted) void this.loadUnread();
  }
}

const stores = new WeakMap<GatehouseClient, GatehouseStore>();

/** The one store of `client`, made on first use. */
export function storeFor(client: GatehouseClient): GatehouseStore {
  let store = stores.get(client);
  if (!store) {
    store = new GatehouseStore(client);
    stores.set(client, store);
  }
  return store;
}
