/**
 * Room delivery with sequence numbers: the one path by which a message reaches a room (user sends and server-side
 * publishing alike), and the replay that lets a reconnecting client catch up.
 *
 * Order of operations matters for "nothing lost": the history item is written before the members are read, and a
 * joining connection's membership is written before its history is read. A message is therefore either read
 * live by a member query that sees the new member, or it is already in the history the joiner reads.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../common/log';
import { REALTIME_DEFAULTS, byteLength, type Json, type JoinedEvent, type MessageEvent, type RoomEvent, type Sender } from '../../protocol';
import { broadcast, deliveryMetrics, type BroadcastResult } from './broadcast';
import { isGone, type ConnectionsApi } from './connections-api';
import type { FanoutDispatcher } from './fanout';
import type { MemberRef } from './membership-store';
import type { RealtimeConfig } from './config';
import { departConnection } from './presence';
import type { ConnectionStore } from './store';

export interface DeliverDeps {
  store: ConnectionStore;
  api: ConnectionsApi;
  config: Pick<RealtimeConfig, 'broadcastConcurrency' | 'historyRetentionSeconds' | 'maxReplay'> & Partial<Pick<RealtimeConfig, 'signalMaxMembers' | 'inlineDeliveryMax'>>;
  /** Hands big rooms to the fan-out workers (fanout.ts). @default none: every room is posted to here */
  fanout?: FanoutDispatcher;
  log: Logger;
  now?: () => number;
  newId?: () => string;
}

/** A message's identity in its room: its sequence number, id and server time; `n`: messages up to it. */
export interface Numbered {
  seq: number;
  messageId: string;
  ts: number;
  n?: number;
}

/** Takes the room's next sequence number for a new message. */
export async function numberMessage(tenantId: string, room: string, deps: Pick<DeliverDeps, 'store' | 'now' | 'newId'>): Promise<Numbered> {
  const { seq, n } = await deps.store.nextNumber(tenantId, room, true);
  return { seq, n, messageId: (deps.newId ?? randomUUID)(), ts: (deps.now ?? Date.now)() };
}

/**
 * Stores a message in the room's history and posts it to every member. `numbered` is the message's number and id
 * (new: from numberMessage; a retry: the ones it was given before), so a retried delivery sends the same message.
 */
export async function deliverToRoom(
  tenantId: string,
  room: string,
  content: { sender: Sender; kind?: string; data: Json },
  deps: DeliverDeps,
  options: { protect?: string; numbered?: Numbered } = {},
): Promise<{ event: MessageEvent; result: BroadcastResult }> {
  const { seq, messageId, ts, n } = options.numbered ?? (await numberMessage(tenantId, room, deps));
  const event: MessageEvent = {
    type: 'message',
    room,
    seq,
    messageId,
    sender: content.sender,
    ts,
    ...(content.kind === undefined ? {} : { kind: content.kind }),
    data: content.data,
  };
  const sender = 'userId' in content.sender ? content.sender.userId : undefined;
  const result = await deliverRoomEvent(tenantId, room, event, deps, { ...options, ...(n === undefined ? {} : { n }), ...(sender ? { sender } : {}) });
  return { event, result: result ?? { delivered: 0, gone: 0, failed: 0 } };
}

/**
 * The one path of a room event (a message, an edit, a deletion) to its room: stored in history at its sequence
 * number first, then posted to every member. `onlyNew`: not stored, and not sent, when its number already holds
 * an event (undefined is returned). `sender`: whose sockets do not count as `others` in the result.
 */
export async function deliverRoomEvent(
  tenantId: string,
  room: string,
  event: RoomEvent,
  deps: DeliverDeps,
  options: { protect?: string; n?: number; sender?: string; onlyNew?: boolean } = {},
): Promise<BroadcastResult | undefined> {
  const { store } = deps;
  const json = JSON.stringify(event);
  const expiresAt = Math.floor(event.ts / 1000) + deps.config.historyRetentionSeconds;
  const stored = await store.appendHistory(tenantId, room, event.seq, json, expiresAt, { ...(options.n === undefined ? {} : { n: options.n }), ...(options.onlyNew ? { onlyNew: true } : {}) });
  if (!stored) return undefined;
  let pages: AsyncIterable<MemberRef[]> | Iterable<MemberRef[]>;
  if (deps.fanout) {
    // A small room now, before the reply; a bigger one by the fan-out workers, after it (fanout.ts).
    const few = await store.members.upToRefs(tenantId, room, deps.config.inlineDeliveryMax ?? REALTIME_DEFAULTS.inlineDeliveryMax);
    if (!few) {
      await deps.fanout({ kind: 'room', tenantId, room, seq: event.seq, event: json, ...(options.protect ? { protect: options.protect } : {}) });
      return { delivered: 0, gone: 0, failed: 0, ...(options.sender !== undefined ? { others: 0 } : {}), pending: true };
    }
    pages = [few];
  } else {
    pages = store.roomMemberRefs(tenantId, room);
  }
  const own = new Set<string>();
  /** The shard of each member read so far in a split room (shard 0 is left out): where a gone member's item is. */
  const shards = new Map<string, number>();
  async function* members() {
    for await (const page of pages) {
      for (const m of page) {
        if (options.sender !== undefined && m.userId === options.sender) own.add(m.connectionId);
        if (m.shard > 0) shards.set(m.connectionId, m.shard);
      }
      yield page.map((m) => m.connectionId);
    }
  }
  const result = await broadcast(
    members(),
    json,
    {
      api: deps.api,
      // The membership itself too: a connection deleted while it was joining may have left one behind.
      removeConnection: (id) => Promise.all([store.removeMember(tenantId, room, id, shards.get(id) ?? 0), departConnection(id, deps)]),
      log: deps.log,
      concurrency: deps.config.broadcastConcurrency,
    },
    { ...(options.protect ? { protect: options.protect } : {}), ...(options.sender !== undefined ? { others: (id: string) => !own.has(id) } : {}) },
  );
  deps.log.metrics(deliveryMetrics(result));
  return result;
}

/** Replayed bytes one rate-limit token pays for: a replay costs as many tokens as it would take frames to send it. */
export const REPLAY_BYTES_PER_TOKEN = 16 * 1024;

/**
 * Sends a (just re-joined) connection what the room received after `after`, oldest first, and describes the result
 * for the `joined` reply. Messages older than the retention window, or beyond `maxReplay`, are reported as a gap.
 * One join replays at most `maxReplayBytes` (then says `more`: the client joins again from where it got to), and
 * is charged one rate-limit token per REPLAY_BYTES_PER_TOKEN replayed, before anything is sent.
 */
export async function replayAfter(
  tenantId: string,
  room: string,
  connectionId: string,
  after: number | undefined,
  deps: DeliverDeps & { config: Pick<RealtimeConfig, 'maxReplayBytes'> },
  charge: (tokens: number) => Promise<{ allowed: boolean; strikes: number } | undefined>,
): Promise<Omit<JoinedEvent, 'type' | 'room' | 'id' | 'presence'> | { refused: number }> {
  const head = await deps.store.headSeq(tenantId, room);
  if (after === undefined || after >= head) return { seq: head };

  const from = Math.max(after, head - deps.config.maxReplay);
  const { items, more } = await deps.store.historyAfter(tenantId, room, from, deps.config.maxReplay, deps.config.maxReplayBytes);
  const bytes = items.reduce((n, item) => n + byteLength(item.event), 0);
  const tokens = Math.ceil(bytes / REPLAY_BYTES_PER_TOKEN);
  if (tokens > 0) {
    const rate = await charge(tokens);
    if (!rate?.allowed) return { refused: rate?.strikes ?? 0 };
  }
  const firstAvailable = items[0]?.seq ?? head + 1;
  let replayed = 0;
  try {
    for (const item of items) {
      await deps.api.post(connectionId, item.event);
      replayed++;
    }
  } catch (err) {
    if (!isGone(err)) throw err;
  }
  const last = items[items.length - 1]?.seq ?? head;
  return {
    seq: more ? last : Math.max(head, last),
    replayed,
    ...(more ? { more: true as const } : {}),
    ...(firstAvailable > after + 1 ? { gap: { from: after + 1, to: firstAvailable - 1 } } : {}),
  };
}
