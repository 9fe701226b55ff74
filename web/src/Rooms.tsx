/**
 * Rooms of one tenant: the room list, and the current room's messages (recent history, then live, merged by
 * sequence number), who is in it, who is typing, and the compose box.
 */
import { useEffect, useId, useRef, useState, type FormEvent } from 'react';
import { changeError, presenceNames, seenByLine, typingLine } from '@gatehouse/client';
import type { GatehouseClient } from '@gatehouse/client';
import type { Member, MessageDeletedEvent, MessageEvent, MessageUpdatedEvent } from '../../protocol';

const DEFAULT_ROOMS = ['general', 'random'];
/** The jobs room belongs to the Job progress section. */
const JOBS_ROOM = 'jobs';
/** Messages kept per room; live ones push the oldest out (and "Load older" brings them back). */
const KEEP = 500;
/** Messages per history page: a screen or two, so joining a busy room is quick. */
const PAGE = 30;

interface Room {
  /** Ascending by seq, one per seq. */
  messages: MessageEvent[];
  joined: boolean;
  /** The first history page arrived (or failed): until then the room is loading, not empty. */
  loaded: boolean;
  /** Cursor of the next older page; absent: nothing older is kept. */
  before?: number;
  loadingOlder?: boolean;
  notice?: string;
  presence: Member[];
  /** False in rooms too big for live presence: the list is a snapshot. */
  presenceLive: boolean;
  typing: Member[];
  /** Other users' sockets each of this user's messages reached, by seq (from the `sent` reply). */
  delivered: Record<number, number>;
  /** Bumped when a read cursor moves: "seen by" is read from the client at render. */
  receipts: number;
}

const emptyRoom = (): Room => ({ messages: [], joined: false, loaded: false, presence: [], presenceLive: true, typing: [], delivered: {}, receipts: 0 });

export function describeSender(message: MessageEvent): string {
  if ('service' in message.sender) return message.sender.service;
  // Messages stored before senders carried names have none: say so rather than show an id.
  return message.sender.name || 'Unnamed user';
}

export function messageText(message: MessageEvent): string {
  if (message.deleted) return 'Message deleted';
  const data = message.data as { text?: unknown } | null;
  return data && typeof data === 'object' && typeof data.text === 'string' ? data.text : JSON.stringify(message.data);
}

/** `incoming` merged into `messages` by seq (the later copy wins: history shows current content). */
export function mergeMessages(messages: MessageEvent[], incoming: MessageEvent[]): MessageEvent[] {
  const bySeq = new Map(messages.map((m) => [m.seq, m]));
  for (const m of incoming) bySeq.set(m.seq, m);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/** An edit or deletion applied to the message it targets (history already shows messages this way). */
export function applyChange(messages: MessageEvent[], change: MessageUpdatedEvent | MessageDeletedEvent): MessageEvent[] {
  return messages.map((m) => {
    if (m.seq !== change.target) return m;
    if (change.type === 'message.deleted') return { ...m, data: null, deleted: true };
    return m.deleted ? m : { ...m, data: change.data, edited: change.ts };
  });
}

/**
 * The rooms of one client: which are joined, in a stable order, and what each holds. Messages come from a first
 * history page on join, live delivery, older pages on request and a reload after a gap, merged by seq.
 * Refusals go to `onError`.
 */
function useRooms(client: GatehouseClient, live: boolean, onError: (message: string) => void) {
  const [rooms, setRooms] = useState<Record<string, Room>>({});
  // Defaults first, then rooms in the order they were joined: the list never reorders by itself.
  const [order, setOrder] = useState<string[]>(DEFAULT_ROOMS);
  /** Unread counts by room, from the server after connecting, then kept live by the client. */
  const [unread, setUnread] = useState<Record<string, number>>({});

  /** Changes a room this view knows of (joined or joining); anything else (the jobs room) is not ours. */
  const update = (name: string, change: (room: Room) => Room) => setRooms((all) => (all[name] ? { ...all, [name]: change(all[name]) } : all));

  async function loadHistory(name: string, before?: number) {
    if (before !== undefined) update(name, (r) => ({ ...r, loadingOlder: true }));
    try {
      const page = await client.history(name, { limit: PAGE, ...(before === undefined ? {} : { before }) });
      update(name, (r) => {
        const { before: _old, ...rest } = r;
        // The latest page sets the cursor only the first time: after that the user may have paged further back.
        const cursor = before !== undefined || !r.loaded ? page.before : r.before;
        return { ...rest, messages: mergeMessages(r.messages, page.messages), loaded: true, loadingOlder: false, ...(cursor !== undefined ? { before: cursor } : {}) };
      });
    } catch (err) {
      update(name, (r) => ({ ...r, loaded: true, loadingOlder: false, notice: `Could not load earlier messages: ${(err as Error).message}` }));
    }
  }

  /** Resolves true once joined (the history follows by itself). */
  async function join(name: string): Promise<boolean> {
    // Known before the join is sent, so the presence it brings and the first live messages have a home.
    setRooms((all) => (all[name] ? all : { ...all, [name]: emptyRoom() }));
    setOrder((all) => (all.includes(name) ? all : [...all, name]));
    try {
      await client.join(name);
    } catch (err) {
      // A refused join leaves no room behind (unless it was joined before); its place in `order` is never shown.
      setRooms((all) => {
        if (all[name]?.joined) return all;
        const { [name]: _gone, ...rest } = all;
        return rest;
      });
      onError(`Could not join ${name}: ${(err as Error).message}`);
      return false;
    }
    update(name, (r) => ({ ...r, joined: true, presence: client.presenceOf(name) }));
    void loadHistory(name);
    // Who has read what so far ("seen by"); small rooms then get cursor moves live.
    void client.receipts(name).then(
      () => update(name, (r) => ({ ...r, receipts: r.receipts + 1 })),
      () => undefined,
    );
    return true;
  }

  useEffect(() => {
    const off = [
      client.on('message', (m) =>
        update(m.room, (r) => {
          const messages = mergeMessages(r.messages, [m]);
          if (messages.length <= KEEP) return { ...r, messages };
          const kept = messages.slice(-KEEP);
          return { ...r, messages: kept, before: kept[0].seq };
        }),
      ),
      client.on('changed', (c) => update(c.room, (r) => ({ ...r, messages: applyChange(r.messages, c) }))),
      client.on('receipt', (e) => update(e.room, (r) => ({ ...r, receipts: r.receipts + 1 }))),
      client.on('unread', (u) => setUnread((all) => ({ ...all, [u.room]: u.unread }))),
      client.on('presence', (p) => update(p.room, (r) => ({ ...r, presence: p.users, presenceLive: p.live }))),
      client.on('typing', (t) => update(t.room, (r) => ({ ...r, typing: t.users }))),
      client.on('gap', (g) => {
        update(g.room, (r) => ({ ...r, notice: `Some messages (${g.from}–${g.to}) were missed while offline; reloading the latest.` }));
        // What the replay could not bring back, the room's history may still have.
        if (g.room !== JOBS_ROOM) void loadHistory(g.room);
      }),
    ];
    return () => off.forEach((f) => f());
    // loadHistory and update only use the client and state setters.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [client]);

  // Join the default rooms once the socket is live (the client rejoins them by itself after a reconnect).
  useEffect(() => {
    if (!live) return;
    for (const name of DEFAULT_ROOMS.filter((n) => !client.joinedRooms.includes(n))) void join(name);
    // The client tells this user's own messages and cursor from others' once it knows who it is.
    (client.identity ? Promise.resolve(client.identity) : client.whoami())
      .then(() => client.unread())
      .then(
        (counts) => setUnread(Object.fromEntries(counts)),
        () => undefined,
      );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [live, client]);

  /** Sends, and remembers how many other users' sockets the message reached (its delivery status). */
  async function send(name: string, text: string) {
    const sent = await client.send(name, { text });
    update(name, (r) => ({ ...r, delivered: { ...r.delivered, [sent.seq]: sent.delivered } }));
  }

  return { rooms, order, unread, join, send, loadOlder: (name: string) => loadHistory(name, rooms[name]?.before) };
}

/** The rooms view. Long for its markup; the state lives in useRooms. */
export function Rooms({ client, me, admin, live, active }: { client: GatehouseClient; me: string; admin: boolean; live: boolean; active: boolean }) {
  const [current, setCurrent] = useState(DEFAULT_ROOMS[0]);
  const [draft, setDraft] = useState('');
  const [newRoom, setNewRoom] = useState('');
  const [error, setError] = useState<string>();
  const { rooms, order, unread, join, send: sendTo, loadOlder } = useRooms(client, live, setError);
  /** The message being edited inline, and its draft. */
  const [editing, setEditing] = useState<{ seq: number; text: string }>();
  // The page is on screen (not a background tab): only then does showing a message mean it was read.
  const [visible, setVisible] = useState(() => document.visibilityState === 'visible');
  // Phone width: the room list folds away behind a toggle so the conversation keeps the screen.
  const [listOpen, setListOpen] = useState(false);
  const list = useRef<HTMLOListElement>(null);
  const compose = useRef<HTMLInputElement>(null);
  const focused = useRef(false);
  // Ids unique per tenant view (several may be mounted, one shown).
  const id = useId();

  function choose(name: string) {
    setCurrent(name);
    // An error belongs to the room it happened in.
    setError(undefined);
    setListOpen(false);
    setEditing(undefined);
  }

  const room = rooms[current];
  const canSend = live && room?.joined === true;
  const newest = room?.messages[room.messages.length - 1]?.seq;
  const isMine = (m: MessageEvent) => 'userId' in m.sender && m.sender.userId === me;
  const myLatest = room?.messages.filter(isMine).at(-1)?.seq;
  // Reading one's own messages is implied by sending them: only others' move the cursor.
  const newestOther = room?.messages.filter((m) => !isMine(m)).at(-1)?.seq;

  useEffect(() => {
    const seen = () => setVisible(document.visibilityState === 'visible');
    document.addEventListener('visibilitychange', seen);
    return () => document.removeEventListener('visibilitychange', seen);
  }, []);

  // Messages shown in the open room of the view on screen are read: move the cursor (which clears its unread count).
  const readUpTo = useRef<Record<string, number>>({});
  useEffect(() => {
    if (!active || !visible || !live || !room?.joined || newestOther === undefined) return;
    if ((readUpTo.current[current] ?? 0) >= newestOther && !unread[current]) return;
    readUpTo.current[current] = newestOther;
    void client.read(current).catch(() => undefined);
  }, [active, visible, live, room?.joined, newestOther, current, unread, client]);

  // New messages (or another room) scroll to the end; a page of older ones does not move the view.
  useEffect(() => {
    list.current?.lastElementChild?.scrollIntoView({ block: 'end' });
  }, [newest, current]);

  // Once the compose box can be used the first time, it takes the focus the workspace heading had after sign-in
  // (never from a control the user is on).
  useEffect(() => {
    if (!active || !canSend || focused.current) return;
    focused.current = true;
    const at = document.activeElement;
    if (!at || at === document.body || at.classList.contains('brand')) compose.current?.focus();
  }, [active, canSend]);

  async function send(event: FormEvent) {
    event.preventDefault();
    const text = draft.trim();
    if (!text) return;
    setError(undefined);
    try {
      await sendTo(current, text);
      setDraft('');
    } catch (err) {
      setError((err as Error).message);
    }
  }

  function typed(value: string) {
    setDraft(value);
    // The client passes at most one "typing" per throttle window on; a refusal is not worth a message.
    if (value.trim() && canSend) void client.typing(current).catch(() => undefined);
  }

  async function submitJoin(event: FormEvent) {
    event.preventDefault();
    const name = newRoom.trim();
    if (!name) return;
    if (await join(name)) choose(name);
    setNewRoom('');
  }

  async function saveEdit(event: FormEvent) {
    event.preventDefault();
    if (!editing) return;
    const text = editing.text.trim();
    if (!text) return;
    setError(undefined);
    try {
      await client.edit(current, editing.seq, { text });
      setEditing(undefined);
    } catch (err) {
      setError(changeError('edit', err));
    }
  }

  async function remove(seq: number) {
    setError(undefined);
    try {
      await client.delete(current, seq);
      if (editing?.seq === seq) setEditing(undefined);
    } catch (err) {
      setError(changeError('delete', err));
    }
  }

  /** Other users who have read this room up to `seq`. */
  const seenBy = (seq: number) => client.seenBy(current, seq).filter((u) => u.userId !== me);

  /** Sent → Delivered (another user's socket got it) → Read (another user's cursor is past it). */
  function status(m: MessageEvent): string {
    if (seenBy(m.seq).length > 0) return 'Read';
    return (room?.delivered[m.seq] ?? 0) > 0 ? 'Delivered' : 'Sent';
  }

  const people = room ? presenceNames(room.presence, me) : [];
  return (
    <div className={`rooms${listOpen ? ' list-open' : ''}`}>
      <aside className="room-list" id={`${id}-list`} aria-label="Your rooms">
        <h2>Rooms</h2>
        <ul>
          {order
            .filter((name) => rooms[name]?.joined)
            .map((name) => (
              <li key={name}>
                <button type="button" className={name === current ? 'active' : ''} aria-current={name === current ? 'true' : undefined} onClick={() => choose(name)}>
                  # {name}
                  {name !== current && (unread[name] ?? 0) > 0 && (
                    <span className="badge" data-room={name}>
                      {unread[name]}
                      <span className="visually-hidden"> unread</span>
                    </span>
                  )}
                </button>
              </li>
            ))}
        </ul>
        <form onSubmit={submitJoin} className="join-form">
          <label htmlFor={`${id}-join`}>Join a room</label>
          <div className="row">
            <input id={`${id}-join`} value={newRoom} onChange={(e) => setNewRoom(e.target.value)} placeholder="room name" disabled={!live} />
            <button type="submit" disabled={!live}>Join</button>
          </div>
        </form>
      </aside>
      <div className="conversation">
        <div className="conversation-head">
          <button type="button" className="secondary rooms-toggle" aria-controls={`${id}-list`} aria-expanded={listOpen} onClick={() => setListOpen((o) => !o)}>
            All rooms
          </button>
          <h2># {current}</h2>
        </div>
        <div className="presence" aria-label={`People in ${current}`} data-room={current}>
          {people.length > 0 && (
            <>
              <span className="muted small">{people.length} here:</span>
              <ul>
                {people.map((name, i) => (
                  <li key={`${i}-${name}`}>{name}</li>
                ))}
              </ul>
            </>
          )}
          {room && !room.presenceLive && (
            <button type="button" className="secondary small" onClick={() => void client.refreshPresence(current).catch(() => undefined)}>
              Refresh
            </button>
          )}
        </div>
        {room?.notice && <p className="notice">{room.notice}</p>}
        {room?.before !== undefined && (
          <button type="button" className="secondary load-older" disabled={room.loadingOlder} onClick={() => void loadOlder(current)}>
            {room.loadingOlder ? 'Loading…' : 'Load older messages'}
          </button>
        )}
        <ol className="messages" ref={list} aria-live="polite" aria-busy={!room?.loaded} aria-label={`Messages in ${current}`} data-room={current}>
          {(room?.messages ?? []).map((m) => {
            const mine = isMine(m);
            const byUser = 'userId' in m.sender;
            const canEdit = mine && !m.deleted;
            const canDelete = byUser && !m.deleted && (mine || admin);
            const seen = mine && m.seq === myLatest ? seenByLine(seenBy(m.seq)) : '';
            return (
              <li key={m.seq} data-seq={m.seq} className={[mine ? 'mine' : '', m.deleted ? 'deleted' : ''].filter(Boolean).join(' ')}>
                <span className="sender">{describeSender(m)}</span>
                <time dateTime={new Date(m.ts).toISOString()}>{new Date(m.ts).toLocaleTimeString()}</time>
                {m.edited && !m.deleted && <span className="edited muted small"> (edited)</span>}
                {editing?.seq === m.seq ? (
                  <form className="edit-form row" onSubmit={saveEdit}>
                    <label htmlFor={`${id}-edit`} className="visually-hidden">Edit message</label>
                    <input
                      id={`${id}-edit`}
                      value={editing.text}
                      autoFocus
                      onChange={(e) => setEditing({ seq: m.seq, text: e.target.value })}
                      onKeyDown={(e) => e.key === 'Escape' && setEditing(undefined)}
                    />
                    <button type="submit" className="small" disabled={!editing.text.trim()}>Save</button>
                    <button type="button" className="secondary small" onClick={() => setEditing(undefined)}>Cancel</button>
                  </form>
                ) : (
                  <p className="text">{messageText(m)}</p>
                )}
                {(canEdit || canDelete) && editing?.seq !== m.seq && (
                  <span className="message-actions">
                    {canEdit && (
                      <button type="button" className="secondary small" aria-label={`Edit message ${m.seq}`} disabled={!canSend} onClick={() => setEditing({ seq: m.seq, text: messageText(m) })}>
                        Edit
                      </button>
                    )}
                    {canDelete && (
                      <button type="button" className="secondary small" aria-label={`Delete message ${m.seq}`} disabled={!canSend} onClick={() => void remove(m.seq)}>
                        Delete
                      </button>
                    )}
                  </span>
                )}
                {mine && !m.deleted && (
                  <span className="status muted small" data-status={status(m).toLowerCase()}>
                    {status(m) === 'Read' ? '✓✓ ' : status(m) === 'Delivered' ? '✓ ' : ''}
                    {status(m)}
                  </span>
                )}
                {seen && <p className="seen-by muted small">{seen}</p>}
              </li>
            );
          })}
          {!room?.loaded && <li className="empty">Loading messages…</li>}
          {room?.loaded && room.messages.length === 0 && <li className="empty">No messages yet.</li>}
        </ol>
        <p className="typing muted small" aria-live="polite">
          {typingLine(room?.typing ?? [])}
        </p>
        {error && <p className="error" role="alert">{error}</p>}
        <form onSubmit={send} className="compose">
          <label htmlFor={`${id}-message`} className="visually-hidden">Message to {current}</label>
          <input id={`${id}-message`} ref={compose} value={draft} onChange={(e) => typed(e.target.value)} placeholder={`Message #${current}`} disabled={!canSend} autoComplete="off" />
          <button type="submit" disabled={!canSend || !draft.trim()}>Send</button>
        </form>
      </div>
    </div>
  );
}
