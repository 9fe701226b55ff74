/**
 * The hooks. Each reads a snapshot of the store (./store.ts) through useSyncExternalStore, so it never tears and
 * never sets state after unmount; useRoom also holds its room for as long as it is mounted. Untyped here (any room,
 * any JSON): createGatehouseHooks (./typed.ts) gives the same functions typed by a client's room map.
 */
import { useCallback, useEffect, useMemo, useSyncExternalStore } from 'react';
import type { DefaultRooms, GatehouseClient } from '../client';
import type { Json, Member } from '../index';
import type { PayloadOf, RoomMap, RoomMessage } from '../rooms';
import { useStore, useTopic } from './context';
import type { ShownMessage } from './messages';
import { DEFAULT_KEEP, DEFAULT_PAGE_SIZE, roomTopic, type RoomSnapshot, type Sent } from './feed';
import { presenceTopic, typingTopic, type ConnectionSnapshot, type RoomPresence } from './store';

/**
 * The client's connection: `state` (`idle`, `connecting`, `open`, `reconnecting`, `closed`, `signed_out`), why
 * (`reason`), and while reconnecting when the next attempt starts (`retryInMs`, and as a time, `retryAt`).
 */
export function useConnectionState(): ConnectionSnapshot {
  const store = useStore();
  return useTopic(store, 'connection', () => store.connection);
}

export interface RoomOptions {
  /** Messages per history page. Read when the room is first held (later holders share that feed). @default 30 */
  pageSize?: number;
  /** Messages kept: live ones push the oldest out (`loadOlder` brings them back). Read like `pageSize`. @default 500 */
  keep?: number;
}

export interface RoomActions<Payload = Json> {
  /** Loads the page before the oldest message shown (a no-op without `hasOlder` or while one loads); failures land in `error`. */
  loadOlder(): Promise<void>;
  /** Sends a message; it appears in `messages` when the room delivers it, and its reach in `delivered`. Rejects when refused. */
  send(data: Payload): Promise<Sent>;
  /** Replaces the content of one of this user's messages; `messages` shows it when the room delivers the edit. */
  edit(seq: number, data: Payload): ReturnType<GatehouseClient['edit']>;
  /** Deletes a message (this user's, or anyone's for a tenant admin). */
  remove(seq: number): ReturnType<GatehouseClient['delete']>;
  /** Marks the room read up to `seq` (default: everything delivered), which clears its unread count. */
  markRead(seq?: number): Promise<number>;
}

/** What useRoom returns; with a room map (createGatehouseHooks), messages and actions carry the room's payload type. */
export type RoomView<Rooms extends RoomMap = DefaultRooms, Room extends string = string> = Omit<RoomSnapshot, 'messages'> & {
  messages: ReadonlyArray<ShownMessage<RoomMessage<Rooms, Room>>>;
} & RoomActions<PayloadOf<Rooms, Room>>;

/**
 * A room: holds it while mounted (joining it if the client is not in it, once the connection is open; the last
 * holder to unmount leaves it), and shows its messages: the latest history page, then live messages in order,
 * each exactly once, with edits and deletions applied. `status` says where the join stands, `loading` that the
 * first page is on its way, `error` what failed (a refused join, a history page). Components that hold one room
 * share one join and one feed.
 */
export function useRoom(room: string, options: RoomOptions = {}): RoomView {
  const store = useStore();
  const { pageSize = DEFAULT_PAGE_SIZE, keep = DEFAULT_KEEP } = options;
  useEffect(() => store.rooms.hold(room, { pageSize, keep }), [store, room, pageSize, keep]);
  const snapshot = useTopic(store, roomTopic(room), () => store.rooms.snapshot(room));
  const actions = useMemo<RoomActions>(
    () => ({
      loadOlder: () => store.rooms.loadOlder(room),
      send: (data) => store.rooms.send(room, data),
      edit: (seq, data) => store.client.edit(room, seq, data),
      remove: (seq) => store.client.delete(room, seq),
      markRead: (seq) => store.client.read(room, seq),
    }),
    [store, room],
  );
  return useMemo(() => ({ ...snapshot, ...actions }), [snapshot, actions]);
}

/**
 * Who is in a room the client is in (held by useRoom, or joined otherwise), this user included, kept current by
 * presence events. In rooms too big for live presence (`live` false) `refresh()` asks the server again.
 */
export function usePresence(room: string): RoomPresence & { refresh(): Promise<Member[]> } {
  const store = useStore();
  const presence = useTopic(store, presenceTopic(room), () => store.presence(room));
  const refresh = useCallback(() => store.client.refreshPresence(room), [store, room]);
  return useMemo(() => ({ ...presence, refresh }), [presence, refresh]);
}

/**
 * Who else is typing in a room the client is in (each shown until their message or the server's expiry), and
 * `notifyTyping()` to call on every keystroke: the client passes at most one on per throttle window (it resolves
 * false when it sent nothing).
 */
export function useTyping(room: string): { typing: readonly Member[]; notifyTyping(): Promise<boolean> } {
  const store = useStore();
  const typing = useTopic(store, typingTopic(room), () => store.typing(room));
  const notifyTyping = useCallback(() => store.client.typing(room), [store, room]);
  return useMemo(() => ({ typing, notifyTyping }), [typing, notifyTyping]);
}

/**
 * Unread counts (messages from others not yet read here or elsewhere): of every room this user has joined in the
 * tenant, or of one room. The first use makes the store load them from the server on every open (then `unread`
 * events keep them current).
 */
export function useUnread(): ReadonlyMap<string, number>;
export function useUnread(room: string): number;
export function useUnread(room?: string): ReadonlyMap<string, number> | number {
  const store = useStore();
  const subscribe = useCallback((onChange: () => void) => store.listenUnread(onChange), [store]);
  const read = () => (room === undefined ? store.unread : (store.unread.get(room) ?? 0));
  return useSyncExternalStore(subscribe, read, read);
}
