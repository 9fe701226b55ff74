/**
 * The rooms a client's store holds (see ./store.ts), and what each shows.
 *
 * Rooms are held by reference count. The first holder of a room joins it (once the client is open; unless the
 * client is in it already, in which case it is not the store's to leave), and the last one to let go leaves it, a
 * task later: a StrictMode remount, or a holder that moves in the tree, takes the room back first, so nothing joins
 * or leaves twice. A room's joins and leaves run one after another, so a leave and the next join cannot cross.
 *
 * A held room has a feed: its latest history page, then live messages merged by seq (a duplicate replaces, never
 * adds), edits and deletions applied in order, older pages on request, the latest page again after a gap.
 */
import { GatehouseError, type GatehouseClient } from '../client';
import type { Json, Member, MessageEvent } from '../index';
import { applyChange, mergeMessages, shown, type Change, type ShownMessage } from './messages';

/** Messages per history page unless the room's first holder says otherwise: a screen or two. */
export const DEFAULT_PAGE_SIZE = 30;
/** Messages kept per room unless its first holder says otherwise; live ones push the oldest out. */
export const DEFAULT_KEEP = 500;

/**
 * `waiting`: for an open connection to join on; `joining`; `joined`; `failed`: the join was refused (see `error`);
 * `removed`: this user was removed from the (private) room.
 */
export type RoomStatus = 'waiting' | 'joining' | 'joined' | 'failed' | 'removed';

export interface RoomSnapshot {
  status: RoomStatus;
  /** Ascending by seq, one per seq, each with its current content (a deleted one: `deleted`, `data` null). */
  messages: readonly ShownMessage[];
  /** The first history page has not arrived yet (nor failed): the room is loading, not empty. */
  loading: boolean;
  loadingOlder: boolean;
  /** The server keeps messages older than the oldest here: `loadOlder()` brings the next page. */
  hasOlder: boolean;
  /** The last thing that failed in the background: the join (status `failed`) or a history page. */
  error?: Error;
  /** Messages the server could not replay after a reconnect (older than its window); the latest page is reloaded. */
  missed?: { from: number; to: number };
  /** Other users' sockets each message this client sent with `send` reached, by seq (0: stored, nobody else there). */
  delivered: ReadonlyMap<number, number>;
  /** Other users whose read cursor is at `seq` or past it; a new function whenever a cursor moves. */
  seenBy: (seq: number) => Member[];
}

export interface FeedOptions {
  pageSize: number;
  keep: number;
}

/** The `sent` reply: where the message was stored (`seq`) and how many other users' sockets it reached. */
export type Sent = Awaited<ReturnType<GatehouseClient['send']>>;

/** What the feeds need of their store. */
export interface FeedHost {
  readonly client: GatehouseClient;
  notify(topic: string): void;
  /** A background failure no snapshot shows. */
  report(err: unknown): void;
  /** Resolves on the client's next `open`. */
  nextOpen(): Promise<void>;
  /** The client is no longer in the room: its presence and typing are gone. */
  forget(name: string): void;
}

interface Feed {
  readonly name: string;
  readonly options: FeedOptions;
  snap: RoomSnapshot;
  refs: number;
  /** The store joined the room, so it leaves it; false when the client was in it already. */
  owned: boolean;
  /** Cursor of the next older page; absent: nothing older is kept. */
  before?: number;
  /** Edits and deletions of messages not loaded (yet), by target: a history page that brings one applies them. */
  orphans: Map<number, Change>;
  leaveTimer?: ReturnType<typeof setTimeout>;
}

const IDLE: RoomSnapshot = Object.freeze({ status: 'waiting', messages: [], loading: true, loadingOlder: false, hasOlder: false, delivered: new Map(), seenBy: () => [] });

/** Cut short by a closed connection: what matters is redone once it is back (joins, the latest page), or moot (a leave). */
export const isClosed = (err: unknown) => err instanceof GatehouseError && err.code === 'closed';
const asError = (err: unknown) => (err instanceof Error ? err : new Error(String(err)));

export const roomTopic = (name: string) => `room:${name}`;

export class RoomFeeds {
  private readonly feeds = new Map<string, Feed>();
  /** Per room, the end of its chain of joins and leaves. */
  private readonly queues = new Map<string, Promise<void>>();

  constructor(private readonly host: FeedHost) {
    const { client } = host;
    client.on('message', (m) => this.onMessage(m));
    client.on('changed', (c) => this.onChange(c));
    client.on('gap', ({ room, from, to }) =>
      this.withFeed(room, (feed) => {
        this.update(feed, { missed: { from, to } });
        void this.loadPage(feed, false);
      }),
    );
    client.on('removed', ({ room }) => {
      host.forget(room);
      this.withFeed(room, (feed) => {
        feed.owned = false;
        this.update(feed, { status: 'removed' });
      });
    });
    client.on('receipt', ({ room }) => this.withFeed(room, (feed) => this.update(feed, { seenBy: this.seenBy(room) })));
  }

  private get client(): GatehouseClient {
    return this.host.client;
  }

  snapshot(name: string): RoomSnapshot {
    return this.feeds.get(name)?.snap ?? IDLE;
  }

  // --- holding ----------------------------------------------------------------------------------------------

  /** Holds `name` (joining it if this is the first hold); returns the release, which is safe to call twice. */
  hold(name: string, options: FeedOptions): () => void {
    let feed = this.feeds.get(name);
    if (!feed) {
      const created: Feed = { name, options, snap: IDLE, refs: 0, owned: false, orphans: new Map() };
      this.feeds.set(name, created);
      this.enqueue(name, () => this.join(created));
      feed = created;
    }
    const held = feed;
    clearTimeout(held.leaveTimer);
    held.leaveTimer = undefined;
    held.refs++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--held.refs > 0) return;
      held.leaveTimer = setTimeout(() => this.drop(held), 0);
    };
  }

  private enqueue(name: string, op: () => Promise<void>): void {
    const next = (this.queues.get(name) ?? Promise.resolve()).then(op).catch((err: unknown) => this.host.report(err));
    this.queues.set(name, next);
    void next.then(() => this.queues.get(name) === next && this.queues.delete(name));
  }

  private async join(feed: Feed): Promise<void> {
    const current = () => this.feeds.get(feed.name) === feed;
    while (current()) {
      if (this.client.state !== 'open') {
        await this.host.nextOpen();
        continue;
      }
      // Someone joined it without the store (client.join): theirs to leave.
      if (this.client.joinedRooms.includes(feed.name)) return this.joined(feed);
      this.update(feed, { status: 'joining' });
      try {
        await this.client.join(feed.name);
      } catch (err) {
        if (!isClosed(err)) return this.update(feed, { status: 'failed', loading: false, error: asError(err) });
        // The connection dropped mid-join and the client forgot the room: join once it is back.
        this.update(feed, { status: 'waiting' });
        await this.host.nextOpen();
        continue;
      }
      feed.owned = true;
      if (current()) this.joined(feed);
      return;
    }
  }

  private joined(feed: Feed): void {
    this.update(feed, { status: 'joined', error: undefined, seenBy: this.seenBy(feed.name) });
    void this.loadPage(feed, false);
    // Who has read what so far; small rooms then move the cursors live (`receipt` events).
    void this.client.receipts(feed.name).then(
      () => this.update(feed, { seenBy: this.seenBy(feed.name) }),
      (err: unknown) => this.host.report(err),
    );
  }

  private drop(feed: Feed): void {
    if (this.feeds.get(feed.name) !== feed) return;
    this.feeds.delete(feed.name);
    this.host.notify(roomTopic(feed.name));
    this.enqueue(feed.name, async () => {
      if (!feed.owned || !this.client.joinedRooms.includes(feed.name)) return;
      feed.owned = false;
      this.host.forget(feed.name);
      // Not connected: the client forgets the room all the same (no rejoin), and the server already has.
      await this.client.leave(feed.name);
    });
  }

  // --- a feed -----------------------------------------------------------------------------------------------

  private withFeed(name: string, change: (feed: Feed) => void): void {
    const feed = this.feeds.get(name);
    if (feed) change(feed);
  }

  private update(feed: Feed, patch: Partial<RoomSnapshot>): void {
    feed.snap = { ...feed.snap, ...patch };
    if (this.feeds.get(feed.name) === feed) this.host.notify(roomTopic(feed.name));
  }

  private seenBy(name: string): (seq: number) => Member[] {
    return (seq) => this.client.seenBy(name, seq);
  }

  /**
   * The latest page (on join, after a gap), or the one before the oldest loaded (`older`). Failures land in
   * `error`, except a latest page cut short by a dropped connection: that one is asked for again once it is back.
   */
  private async loadPage(feed: Feed, older: boolean): Promise<void> {
    const before = feed.before;
    if (older) {
      if (before === undefined || feed.snap.loadingOlder) return;
      this.update(feed, { loadingOlder: true });
    }
    const done = older ? { loadingOlder: false } : {};
    try {
      const page = await this.client.history(feed.name, { limit: feed.options.pageSize, ...(older ? { before } : {}) });
      // The latest page sets the cursor only the first time: by then the user may have paged further back.
      if (older || feed.snap.loading) feed.before = page.before;
      const messages = mergeMessages(feed.snap.messages, page.messages.map((m) => this.withOrphan(feed, m)));
      this.update(feed, { ...done, messages, loading: false, hasOlder: feed.before !== undefined, error: undefined });
    } catch (err) {
      if (older || !isClosed(err)) return this.update(feed, { ...done, loading: false, error: asError(err) });
      // The connection state says what is wrong; the page comes once it is back.
      await this.host.nextOpen();
      if (this.feeds.get(feed.name) === feed) await this.loadPage(feed, false);
    }
  }

  private withOrphan(feed: Feed, message: MessageEvent): ShownMessage {
    const change = feed.orphans.get(message.seq);
    if (!change) return shown(message);
    feed.orphans.delete(message.seq);
    return applyChange(shown(message), change);
  }

  private onMessage(message: MessageEvent): void {
    this.withFeed(message.room, (feed) => {
      let messages = mergeMessages(feed.snap.messages, [shown(message)]);
      if (messages.length > feed.options.keep) {
        messages = messages.slice(-feed.options.keep);
        feed.before = messages[0].seq;
      }
      this.update(feed, { messages, hasOlder: feed.before !== undefined });
    });
  }

  private onChange(change: Change): void {
    this.withFeed(change.room, (feed) => {
      const at = feed.snap.messages.findIndex((m) => m.seq === change.target);
      if (at < 0) {
        // Its message is older than what is loaded, or on a page still on its way: keep the latest change for it.
        feed.orphans.delete(change.target);
        feed.orphans.set(change.target, change);
        const oldest = feed.orphans.keys().next();
        if (feed.orphans.size > feed.options.keep && !oldest.done) feed.orphans.delete(oldest.value);
        return;
      }
      const messages = [...feed.snap.messages];
      messages[at] = applyChange(messages[at], change);
      this.update(feed, { messages });
    });
  }

  // --- actions ----------------------------------------------------------------------------------------------

  loadOlder(name: string): Promise<void> {
    const feed = this.feeds.get(name);
    return feed ? this.loadPage(feed, true) : Promise.resolve();
  }

  async send(name: string, data: Json): Promise<Sent> {
    const sent = await this.client.send(name, data);
    this.withFeed(name, (feed) => this.update(feed, { delivered: new Map(feed.snap.delivered).set(sent.seq, sent.delivered) }));
    return sent;
  }
}
