/**
 * The open room: who is here, its messages (the latest history page, then live, older pages on request), who is
 * typing, and the compose box. Mounted per room (keyed by its name), so a draft, an edit or a refusal belongs to
 * the room it happened in.
 */
import { useEffect, useId, useRef, useState, useSyncExternalStore, type FormEvent, type ReactNode } from 'react';
import { changeError, presenceNames, typingLine } from '@gatehouse/client';
import { useConnectionState, usePresence, useTyping, useUnread, type RoomView, type ShownMessage } from '@gatehouse/client/react';
import { Message, type Editing } from './Message';

const subscribeVisibility = (onChange: () => void) => {
  document.addEventListener('visibilitychange', onChange);
  return () => document.removeEventListener('visibilitychange', onChange);
};
/** The page is on screen (not a background tab): only then does showing a message mean it was read. */
const usePageVisible = () => useSyncExternalStore(subscribeVisibility, () => document.visibilityState === 'visible');

/** What the room says about itself: a history page that failed, messages missed while offline, a removal. */
function notices(room: RoomView): string[] {
  const said: string[] = [];
  if (room.status === 'joined' && room.error) said.push(`Could not load earlier messages: ${room.error.message}`);
  if (room.missed) said.push(`Some messages (${room.missed.from}–${room.missed.to}) were missed while offline; reloading the latest.`);
  if (room.status === 'removed') said.push('You were removed from this room.');
  return said;
}

export function Conversation({
  name,
  room,
  me,
  admin,
  active,
  claimFocus,
  toggle,
}: {
  name: string;
  room: RoomView;
  me: string;
  admin: boolean;
  /** This view is the one on screen. */
  active: boolean;
  /** True the first time it is asked (per rooms view): the compose box may take the focus once. */
  claimFocus: () => boolean;
  /** The control that unfolds the room list on a phone. */
  toggle: ReactNode;
}) {
  const live = useConnectionState().state === 'open';
  const presence = usePresence(name);
  const { typing, notifyTyping } = useTyping(name);
  const unread = useUnread(name);
  const visible = usePageVisible();
  const [draft, setDraft] = useState('');
  const [editing, setEditing] = useState<Editing>();
  const [error, setError] = useState<string>();
  const list = useRef<HTMLOListElement>(null);
  const compose = useRef<HTMLInputElement>(null);
  const readUpTo = useRef(0);
  // Ids unique per tenant view (several may be mounted, one shown).
  const id = useId();

  const { messages, markRead } = room;
  const canSend = live && room.status === 'joined';
  const isMine = (m: ShownMessage) => 'userId' in m.sender && m.sender.userId === me;
  const newest = messages.at(-1)?.seq;
  const myLatest = messages.filter(isMine).at(-1)?.seq;
  // Reading one's own messages is implied by sending them: only others' move the cursor.
  const newestOther = messages.filter((m) => !isMine(m)).at(-1)?.seq;

  // Messages shown in the open room of the view on screen are read: move the cursor (which clears the unread count).
  useEffect(() => {
    if (!active || !visible || !canSend || newestOther === undefined) return;
    if (readUpTo.current >= newestOther && !unread) return;
    readUpTo.current = newestOther;
    // A cursor that did not move is retried with the next message; not worth interrupting the reader for.
    void markRead().catch(() => undefined);
  }, [active, visible, canSend, newestOther, unread, markRead]);

  // New messages (or another room) scroll to the end; a page of older ones does not move the view.
  useEffect(() => {
    list.current?.lastElementChild?.scrollIntoView({ block: 'end' });
  }, [newest]);

  // Once the compose box can be used the first time, it takes the focus the workspace heading had after sign-in
  // (never from a control the user is on).
  useEffect(() => {
    if (!active || !canSend || !claimFocus()) return;
    const at = document.activeElement;
    if (!at || at === document.body || at.classList.contains('brand')) compose.current?.focus();
  }, [active, canSend, claimFocus]);

  /** Runs a request of this user's; its refusal, as `describe` words it, shows under the messages. */
  async function attempt(request: () => Promise<unknown>, describe: (err: unknown) => string): Promise<boolean> {
    setError(undefined);
    try {
      await request();
      return true;
    } catch (err) {
      setError(describe(err));
      return false;
    }
  }

  async function send(event: FormEvent) {
    event.preventDefault();
    const text = draft.trim();
    if (text && (await attempt(() => room.send({ text }), (err) => (err as Error).message))) setDraft('');
  }

  function typed(value: string) {
    setDraft(value);
    // The client passes at most one "typing" per throttle window on; a refusal is not worth a message.
    if (value.trim() && canSend) void notifyTyping().catch(() => undefined);
  }

  async function saveEdit(event: FormEvent) {
    event.preventDefault();
    const text = editing?.text.trim();
    if (editing && text && (await attempt(() => room.edit(editing.seq, { text }), (err) => changeError('edit', err)))) setEditing(undefined);
  }

  async function remove(seq: number) {
    if ((await attempt(() => room.remove(seq), (err) => changeError('delete', err))) && editing?.seq === seq) setEditing(undefined);
  }

  const people = presenceNames([...presence.members], me);
  const refused = room.status === 'failed' ? `Could not join ${name}: ${room.error?.message ?? 'refused'}` : undefined;
  return (
    <div className="conversation">
      <div className="conversation-head">
        {toggle}
        <h2># {name}</h2>
      </div>
      <div className="presence" aria-label={`People in ${name}`} data-room={name}>
        {people.length > 0 && (
          <>
            <span className="muted small">{people.length} here:</span>
            <ul>
              {people.map((person, i) => (
                <li key={`${i}-${person}`}>{person}</li>
              ))}
            </ul>
          </>
        )}
        {room.status === 'joined' && !presence.live && (
          <button type="button" className="secondary small" onClick={() => void presence.refresh().catch((err: Error) => setError(err.message))}>
            Refresh
          </button>
        )}
      </div>
      {notices(room).map((notice) => (
        <p key={notice} className="notice">{notice}</p>
      ))}
      {room.hasOlder && (
        <button type="button" className="secondary load-older" disabled={room.loadingOlder} onClick={() => void room.loadOlder()}>
          {room.loadingOlder ? 'Loading…' : 'Load older messages'}
        </button>
      )}
      <ol className="messages" ref={list} aria-live="polite" aria-busy={room.loading} aria-label={`Messages in ${name}`} data-room={name}>
        {messages.map((m) => {
          const mine = isMine(m);
          return (
            <Message
              key={m.seq}
              message={m}
              mine={mine}
              admin={admin}
              canSend={canSend}
              latestOfMine={mine && m.seq === myLatest}
              seenBy={mine ? room.seenBy(m.seq) : []}
              delivered={room.delivered.get(m.seq)}
              editing={editing?.seq === m.seq ? editing : undefined}
              editId={`${id}-edit`}
              onEdit={setEditing}
              onSave={saveEdit}
              onDelete={() => void remove(m.seq)}
            />
          );
        })}
        {room.loading && <li className="empty">Loading messages…</li>}
        {!room.loading && room.status === 'joined' && messages.length === 0 && <li className="empty">No messages yet.</li>}
      </ol>
      <p className="typing muted small" aria-live="polite">
        {typingLine([...typing])}
      </p>
      {(error ?? refused) && <p className="error" role="alert">{error ?? refused}</p>}
      <form onSubmit={send} className="compose">
        <label htmlFor={`${id}-message`} className="visually-hidden">Message to {name}</label>
        <input id={`${id}-message`} ref={compose} value={draft} onChange={(e) => typed(e.target.value)} placeholder={`Message #${name}`} disabled={!canSend} autoComplete="off" />
        <button type="submit" disabled={!canSend || !draft.trim()}>Send</button>
      </form>
    </div>
  );
}
