/**
 * One message of a conversation: sender, time, text (or the inline edit form), Edit and Delete where this user may,
 * and for this user's own messages their delivery status and who has seen the latest.
 */
import type { FormEvent } from 'react';
import { seenByLine, type Member } from '@gatehouse/client';
import type { ShownMessage } from '@gatehouse/client/react';

export function describeSender(message: ShownMessage): string {
  if ('service' in message.sender) return message.sender.service;
  // Messages stored before senders carried names have none: say so rather than show an id.
  return message.sender.name || 'Unnamed user';
}

export function messageText(message: ShownMessage): string {
  if (message.deleted) return 'Message deleted';
  const data = message.data as { text?: unknown } | null;
  return data && typeof data === 'object' && typeof data.text === 'string' ? data.text : JSON.stringify(message.data);
}

/** Sent → Delivered (another user's socket got it) → Read (another user's cursor is past it). */
function deliveryStatus(seenBy: Member[], delivered: number | undefined): 'Sent' | 'Delivered' | 'Read' {
  if (seenBy.length > 0) return 'Read';
  return (delivered ?? 0) > 0 ? 'Delivered' : 'Sent';
}
const MARKS = { Sent: '', Delivered: '✓ ', Read: '✓✓ ' } as const;

export interface Editing {
  seq: number;
  text: string;
}

export function Message({
  message: m,
  mine,
  admin,
  canSend,
  latestOfMine,
  seenBy,
  delivered,
  editing,
  editId,
  onEdit,
  onSave,
  onDelete,
}: {
  message: ShownMessage;
  mine: boolean;
  admin: boolean;
  canSend: boolean;
  /** The newest of this user's messages: it carries the "seen by" line. */
  latestOfMine: boolean;
  /** Other users who have read this message. */
  seenBy: Member[];
  /** Other users' sockets it reached, when this page sent it. */
  delivered: number | undefined;
  /** The edit in progress, when it is this message's. */
  editing: Editing | undefined;
  editId: string;
  onEdit: (editing: Editing | undefined) => void;
  onSave: (event: FormEvent) => void;
  onDelete: () => void;
}) {
  const byUser = 'userId' in m.sender;
  const canEdit = mine && !m.deleted;
  const canDelete = byUser && !m.deleted && (mine || admin);
  const status = deliveryStatus(seenBy, delivered);
  const seen = latestOfMine ? seenByLine(seenBy) : '';
  return (
    <li data-seq={m.seq} className={[mine ? 'mine' : '', m.deleted ? 'deleted' : ''].filter(Boolean).join(' ')}>
      <span className="sender">{describeSender(m)}</span>
      <time dateTime={new Date(m.ts).toISOString()}>{new Date(m.ts).toLocaleTimeString()}</time>
      {m.edited && !m.deleted && <span className="edited muted small"> (edited)</span>}
      {editing ? (
        <form className="edit-form row" onSubmit={onSave}>
          <label htmlFor={editId} className="visually-hidden">Edit message</label>
          <input
            id={editId}
            value={editing.text}
            autoFocus
            onChange={(e) => onEdit({ seq: m.seq, text: e.target.value })}
            onKeyDown={(e) => e.key === 'Escape' && onEdit(undefined)}
          />
          <button type="submit" className="small" disabled={!editing.text.trim()}>Save</button>
          <button type="button" className="secondary small" onClick={() => onEdit(undefined)}>Cancel</button>
        </form>
      ) : (
        <p className="text">{messageText(m)}</p>
      )}
      {(canEdit || canDelete) && !editing && (
        <span className="message-actions">
          {canEdit && (
            <button type="button" className="secondary small" aria-label={`Edit message ${m.seq}`} disabled={!canSend} onClick={() => onEdit({ seq: m.seq, text: messageText(m) })}>
              Edit
            </button>
          )}
          {canDelete && (
            <button type="button" className="secondary small" aria-label={`Delete message ${m.seq}`} disabled={!canSend} onClick={onDelete}>
              Delete
            </button>
          )}
        </span>
      )}
      {mine && !m.deleted && (
        <span className="status muted small" data-status={status.toLowerCase()}>
          {MARKS[status]}
          {status}
        </span>
      )}
      {seen && <p className="seen-by muted small">{seen}</p>}
    </li>
  );
}
