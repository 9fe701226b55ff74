/**
 * Edits, deletions, read cursors and unread counts: the conversation layer over the room's message stream.
 *
 * - An edit or a deletion is itself a room event with its own sequence number (`message.updated`,
 *   `message.deleted` referencing the message's seq), stored and replayed in order like messages, so a client that
 *   reconnects applies them as everyone else did. The message's history item is rewritten too, so history pages
 *   show current content. A deletion overwrites the message and every edit event that carried its content: the
 *   content is gone from storage. Only the author edits; the author or a tenant admin deletes; services' messages
 *   are neither.
 * - A read cursor per user and room (not an item per message per recipient): "seen by" is the set of cursors at or
 *   past a seq; unread is the room's message count minus the cursor's. A cursor move is a receipt signal, sent only
 *   to rooms small enough (receiptSignalMaxMembers); bigger rooms ask (`receipts`).
 */
import {
  PRESENCE_SNAPSHOT_MAX,
  REALTIME_DEFAULTS,
  errorEvent,
  type ChangedEvent,
  type ErrorEvent,
  type Json,
  type Member,
  type MessageDeletedEvent,
  type MessageEvent,
  type MessageUpdatedEvent,
  type ReadAck,
  type ReceiptEvent,
} from '../../protocol';
import type { RealtimeConfig } from './config';
import { deliverRoomEvent, type DeliverDeps } from './deliver';
import { signalRoom } from './presence';
import type { StoredConnection } from './store';

export type ConversationDeps = DeliverDeps & { config: Pick<RealtimeConfig, 'adminGroup'> & Partial<Pick<RealtimeConfig, 'receiptSignalMaxMembers'>> };

/** Edits one message may take (each is an event in history that its deletion overwrites). */
export const MAX_EDITS_PER_MESSAGE = 50;

/** How long a read cursor is kept after its last move: well past the history it points into. */
const CURSOR_SECONDS = 90 * 24 * 3600;

type Actor = Pick<StoredConnection, 'connectionId' | 'userId' | 'tenantId' | 'groups'> & { member: Member };

/** The message at `seq`, when it is one (not an edit or deletion event) and is still there. */
async function messageAt(tenantId: string, room: string, seq: number, deps: ConversationDeps) {
  const stored = await deps.store.conversation.roomEvent(tenantId, room, seq);
  if (!stored) return undefined;
  const event = JSON.parse(stored.event) as MessageEvent | MessageUpdatedEvent | MessageDeletedEvent;
  return event.type === 'message' ? { stored, event } : undefined;
}

const nowOf = (deps: ConversationDeps) => (deps.now ?? Date.now)();

export async function editMessage(actor: Actor, room: string, target: number, data: Json, deps: ConversationDeps, id?: string): Promise<ChangedEvent | ErrorEvent> {
  const { tenantId } = actor;
  const found = await messageAt(tenantId, room, target, deps);
  if (!found || found.stored.deleted) return errorEvent('not_found', `No message ${target} in ${room}.`, id);
  const { event: original } = found;
  if (!('userId' in original.sender) || original.sender.userId !== actor.userId) {
    deps.log.warn('edit_refused', { category: 'audit', connectionId: actor.connectionId, userId: actor.userId, room, seq: target });
    return errorEvent('forbidden', 'Only its author can edit a message.', id);
  }
  // Each edit is an event a deletion must scrub: a message takes a bounded number of them.
  if (found.stored.edits.length >= MAX_EDITS_PER_MESSAGE) return errorEvent('conflict', `A message can be edited at most ${MAX_EDITS_PER_MESSAGE} times.`, id);
  const { seq, n } = await deps.store.nextNumber(tenantId, room, false);
  const ts = nowOf(deps);
  const update: MessageUpdatedEvent = { type: 'message.updated', room, seq, ts, target, data, by: actor.member };
  const outcome = await deps.store.conversation.applyEdit(tenantId, room, target, JSON.stringify({ ...original, data, edited: ts }), seq, ts);
  if (outcome === 'deleted') {
    // Deleted while this edit was on its way: its number carries the deletion instead (no content, nothing lost).
    await deliverRoomEvent(tenantId, room, { type: 'message.deleted', room, seq, ts, target, by: actor.member }, deps, { n });
    return errorEvent('not_found', `Message ${target} was deleted.`, id);
  }
  // onlyNew: a deletion that ran since wrote a tombstone at this number, which must stay.
  const result = await deliverRoomEvent(tenantId, room, update, deps, { n, onlyNew: true });
  if (!result) return errorEvent('not_found', `Message ${target} was deleted.`, id);
  deps.log.info('message_edited', { connectionId: actor.connectionId, room, target, seq, superseded: outcome === 'superseded' });
  return { type: 'changed', room, target, seq, ...(id ? { id } : {}) };
}

/** Edit events overwritten at once while deleting (bounded, so a heavily edited message cannot throttle the table). */
const SCRUB_BATCH = 25;

async function scrubEdits(tenantId: string, room: string, edits: number[], deletion: MessageDeletedEvent, expiresAt: number, deps: ConversationDeps): Promise<void> {
  for (let i = 0; i < edits.length; i += SCRUB_BATCH) {
    await Promise.all(edits.slice(i, i + SCRUB_BATCH).map((e) => deps.store.conversation.overwrite(tenantId, room, e, JSON.stringify({ ...deletion, seq: e }), expiresAt)));
  }
}

export async function deleteMessage(actor: Actor, room: string, target: number, deps: ConversationDeps, id?: string): Promise<ChangedEvent | ErrorEvent> {
  const { tenantId } = actor;
  const found = await messageAt(tenantId, room, target, deps);
  if (found?.stored.deleted) {
    // Deleted already: scrub its edit events again (idempotent), so a deletion that failed half-way is finished by
    // asking again, and its content never outlives it.
    const original = found.event;
    const mayDelete = ('userId' in original.sender && original.sender.userId === actor.userId) || actor.groups.includes(deps.config.adminGroup);
    if (mayDelete && found.stored.edits.length > 0) {
      const ts = nowOf(deps);
      await scrubEdits(tenantId, room, found.stored.edits, { type: 'message.deleted', room, seq: 0, ts, target, by: actor.member }, Math.floor(ts / 1000) + deps.config.historyRetentionSeconds, deps);
    }
    return errorEvent('not_found', `Message ${target} was deleted already.`, id);
  }
  if (!found) return errorEvent('not_found', `No message ${target} in ${room}.`, id);
  const { event: original } = found;
  const author = 'userId' in original.sender && original.sender.userId === actor.userId;
  const admin = actor.groups.includes(deps.config.adminGroup);
  if (!author && !admin) {
    deps.log.warn('delete_refused', { category: 'audit', connectionId: actor.connectionId, userId: actor.userId, room, seq: target });
    return errorEvent('forbidden', `Only its author or a member of ${deps.config.adminGroup} can delete a message.`, id);
  }
  const { seq, n } = await deps.store.nextNumber(tenantId, room, false);
  const ts = nowOf(deps);
  const tombstone: MessageEvent = { type: 'message', room, seq: target, messageId: original.messageId, sender: original.sender, ts: original.ts, data: null, deleted: true };
  const edits = await deps.store.conversation.markDeleted(tenantId, room, target, JSON.stringify(tombstone));
  const deletion: MessageDeletedEvent = { type: 'message.deleted', room, seq, ts, target, by: actor.member };
  const expiresAt = Math.floor(ts / 1000) + deps.config.historyRetentionSeconds;
  // Every edit event that carried the content becomes a deletion too (written even if its edit has not been yet).
  if (edits) await scrubEdits(tenantId, room, edits, deletion, expiresAt, deps);
  // The number is used either way (a concurrent deletion won: this one repeats it, harmlessly).
  await deliverRoomEvent(tenantId, room, deletion, deps, { n });
  if (!edits) return errorEvent('not_found', `Message ${target} was deleted already.`, id);
  deps.log.info('message_deleted', { category: 'audit', connectionId: actor.connectionId, userId: actor.userId, room, target, seq, byAdmin: !author });
  return { type: 'changed', room, target, seq, ...(id ? { id } : {}) };
}

/** Moves the actor's read cursor; a move is a receipt for the room's other sockets (in small rooms). */
export async function markRead(actor: Actor, room: string, seq: number, deps: ConversationDeps, id?: string): Promise<ReadAck> {
  const { tenantId } = actor;
  const head = await deps.store.headSeq(tenantId, room);
  const upTo = Math.min(seq, head); // nothing is read past what exists
  const n = await deps.store.conversation.messagesUpTo(tenantId, room, upTo);
  const stored = await deps.store.conversation.advanceCursor(tenantId, room, actor.member, upTo, n, Math.floor(nowOf(deps) / 1000) + CURSOR_SECONDS);
  if (stored.moved && upTo > 0) {
    const receipt: ReceiptEvent = { type: 'receipt', room, cursor: { ...actor.member, seq: upTo } };
    const max = deps.config.receiptSignalMaxMembers ?? REALTIME_DEFAULTS.receiptSignalMaxMembers;
    await signalRoom(tenantId, room, receipt, { ...deps, config: { ...deps.config, signalMaxMembers: max } }, actor.connectionId);
  }
  return { type: 'read_ack', room, seq: stored.seq, ...(id ? { id } : {}) };
}

/** The sender has read their own message: no unread count for it. */
export async function readOwn(actor: Actor, room: string, seq: number, n: number | undefined, deps: ConversationDeps): Promise<void> {
  await deps.store.conversation.advanceCursor(actor.tenantId, room, actor.member, seq, n ?? (await deps.store.conversation.messagesUpTo(actor.tenantId, room, seq)), Math.floor(nowOf(deps) / 1000) + CURSOR_SECONDS);
}

export async function receiptsOf(tenantId: string, room: string, deps: ConversationDeps) {
  const { cursors, more } = await deps.store.conversation.cursors(tenantId, room, PRESENCE_SNAPSHOT_MAX);
  return { cursors, ...(more ? { more: true as const } : {}) };
}
