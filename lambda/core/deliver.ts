/**
 * Room delivery with sequence numbers: the one path by which a message reaches a room (user sends and server-side
 * publishing alike), and the replay that lets a reconnecting client catch up.
 *
 * Order of operations matters for "nothing lost": the history item is written before the members are read, and a
 * joining connection's membership is written before its history is read. A message is therefore either read
 * live by a member query that sees the new member, or it is already in the history the joiner reads.
 */
import { randomUUID } from 'node:crypto';
import type { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import type { Logger } from '../../common/log';
import type { Json, JoinedEvent, MessageEvent, Sender } from '../../common/protocol';
import { broadcast, isGone, postToConnection, type BroadcastResult } from './broadcast';
import type { RealtimeConfig } from './config';
import type { ConnectionStore } from './store';

export interface DeliverDeps {
  store: ConnectionStore;
  api: ApiGatewayManagementApiClient;
  config: Pick<RealtimeConfig, 'broadcastConcurrency' | 'historyRetentionSeconds' | 'maxReplay'>;
  log: Logger;
  now?: () => number;
  newId?: () => string;
}

export async function deliverToRoom(
  tenantId: string,
  room: string,
  content: { sender: Sender; kind?: string; data: Json },
  deps: DeliverDeps,
  options: { protect?: string } = {},
): Promise<{ event: MessageEvent; result: BroadcastResult }> {
  const { store } = deps;
  const now = (deps.now ?? Date.now)();
  const seq = await store.nextSeq(tenantId, room);
  const event: MessageEvent = {
    type: 'message',
    room,
    seq,
    messageId: (deps.newId ?? randomUUID)(),
    sender: content.sender,
    ts: now,
    ...(content.kind === undefined ? {} : { kind: content.kind }),
    data: content.data,
  };
  const json = JSON.stringify(event);
  await store.appendHistory(tenantId, room, seq, json, Math.floor(now / 1000) + deps.config.historyRetentionSeconds);
  const result = await broadcast(
    store.roomMembers(tenantId, room),
    json,
    {
      api: deps.api,
      removeConnection: (id) => store.deleteConnection(id),
      log: deps.log,
      concurrency: deps.config.broadcastConcurrency,
    },
    options,
  );
  return { event, result };
}

/**
 * Sends a (just re-joined) connection what the room received after `after`, oldest first, and describes the result
 * for the `joined` reply. Messages older than the retention window, or beyond `maxReplay`, are reported as a gap.
 */
export async function replayAfter(
  tenantId: string,
  room: string,
  connectionId: string,
  after: number | undefined,
  deps: DeliverDeps,
): Promise<Omit<JoinedEvent, 'type' | 'room' | 'id'>> {
  const head = await deps.store.headSeq(tenantId, room);
  if (after === undefined || after >= head) return { seq: head };

  const from = Math.max(after, head - deps.config.maxReplay);
  const items = await deps.store.historyAfter(tenantId, room, from, deps.config.maxReplay);
  const firstAvailable = items[0]?.seq ?? head + 1;
  let replayed = 0;
  try {
    for (const item of items) {
      await postToConnection(deps.api, connectionId, item.event);
      replayed++;
    }
  } catch (err) {
    if (!isGone(err)) throw err;
  }
  const last = items[items.length - 1]?.seq ?? head;
  return {
    seq: Math.max(head, last),
    replayed,
    ...(firstAvailable > after + 1 ? { gap: { from: after + 1, to: firstAvailable - 1 } } : {}),
  };
}
