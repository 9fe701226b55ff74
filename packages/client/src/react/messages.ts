/**
 * A room's messages as the bindings keep them: ascending by seq, one per seq, each with its current content.
 * Pure functions over immutable arrays (the snapshots useSyncExternalStore compares by identity).
 */
import type { MessageDeletedEvent, MessageEvent, MessageUpdatedEvent } from '../index';

export type Change = MessageUpdatedEvent | MessageDeletedEvent;

/** A message as a room shows it: narrow on `deleted` to get its content (a deleted one has none left). */
export type ShownMessage<Message extends { deleted?: true } = MessageEvent> =
  | (Omit<Message, 'deleted'> & { deleted?: undefined })
  | (Omit<Message, 'deleted' | 'data'> & { deleted: true; data: null });

/** `message` typed by what it holds (the server already sends a deleted message's `data` as null). */
export function shown(message: MessageEvent): ShownMessage {
  const { deleted, ...rest } = message;
  return deleted ? { ...rest, data: null, deleted } : rest;
}

/** `incoming` merged into `messages` by seq: a seq already there is replaced (history has current content), never added twice. */
export function mergeMessages(messages: readonly ShownMessage[], incoming: readonly ShownMessage[]): readonly ShownMessage[] {
  if (incoming.length === 0) return messages;
  const bySeq = new Map(messages.map((m) => [m.seq, m]));
  for (const m of incoming) bySeq.set(m.seq, m);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/**
 * `message` with `change` applied. A deletion is final; an edit older than the content shown (a history page read
 * after a later edit) changes nothing.
 */
export function applyChange(message: ShownMessage, change: Change): ShownMessage {
  if (message.deleted) return message;
  if (change.type === 'message.deleted') return { ...message, data: null, deleted: true };
  if ((message.edited ?? 0) > change.ts) return message;
  return { ...message, data: change.data, edited: change.ts };
}
