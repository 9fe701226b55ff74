/**
 * Rooms of one tenant: the room list, and the current room's messages (recent history, then live, merged by
 * sequence number), who is in it, who is typing, and the compose box.
 */
import { useEffect, useId, useRef, useState, type FormEvent } from 'react';
import type { GatehouseClient } from '../../client/index';
import type { Member, MessageEvent } from '../../protocol';

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
}

const emptyRoom = (): Room => ({ messages: [], joined: false, loaded: false, presence: [], presenceLive: true, typing: [] });

export function describeSender(message: MessageEvent): string {
  if ('service' in message.sender) return message.sender.service;
  // Messages stored before senders carried names have none: say so rather than show an id.
  return message.sender.name || 'Unnamed user';
}

export function messageText(message: MessageEvent): string {
  const data = message.data as { text?: unknown } | null;
  return data && typeof data === 'object' && typeof data.text === 'string' ? data.text : JSON.stringify(message.data);
}

/** `incoming` merged into `messages` by seq (the later copy wins: history shows current content). */
export function mergeMessages(messages: MessageEvent[], incoming: MessageEvent[]): MessageEvent[] {
  const bySeq = new Map(messages.map((m) => [m.seq, m]));
  for (const m of incoming) bySeq.set(m.seq, m);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/** "Bob is typing…", "Bob and Carol are typing…", "Bob, Carol and Dan are typing…", "5 people are typing…". */
export function typingLine(users: Member[]): string {
  const names = users.map((u) => u.name || 'Someone');
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length > 3) return `${names.length} people are typing…`;
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]} are typing…`;
}

/** This user first, marked, then everyone else by name: a list that does not jump around as people come and go. */
function presenceList(users: Member[], me: string): string[] {
  const mine = users.filter((u) => u.userId === me).map((u) => `${u.name} (you)`);
  const others = users.filter((u) => u.userId !== me).map((u) => u.name).sort((a, b) => a.localeCompare(b));
  return [...mine, ...others];
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
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [live, client]);

  return { rooms, order, join, loadOlder: (name: string) => loadHistory(name, rooms[name]?.before) };
}

/** The rooms view. Long for its markup; the state lives in useRooms. */
export function Rooms({ client, me, live, active }: { client: GatehouseClient; me: string; live: boolean; active: boolean }) {
  const [current, setCurrent] = useState(DEFAULT_ROOMS[0]);
  const [draft, setDraft] = useState('');
  const [newRoom, setNewRoom] = useState('');
  const [error, setError] = useState<string>();
  const { rooms, order, join, loadOlder } = useRooms(client, live, setError);
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
  }

  const room = rooms[current];
  const canSend = live && room?.joined === true;
  const newest = room?.messages[room.messages.length - 1]?.seq;

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
      await client.send(current, { text });
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

  const people = room ? presenceList(room.presence, me) : [];
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
          {(room?.messages ?? []).map((m) => (
            <li key={m.seq} data-seq={m.seq} className={'userId' in m.sender && m.sender.userId === me ? 'mine' : ''}>
              <span className="sender">{describeSender(m)}</span>
              <time dateTime={new Date(m.ts).toISOString()}>{new Date(m.ts).toLocaleTimeString()}</time>
              <p className="text">{messageText(m)}</p>
            </li>
          ))}
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
