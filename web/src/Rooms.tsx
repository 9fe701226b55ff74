import { useEffect, useRef, useState, type FormEvent } from 'react';
import type { GatehouseClient } from '../../client/index';
import type { MessageEvent } from '../../protocol';

const DEFAULT_ROOMS = ['general', 'random'];
const KEEP = 200;

interface Room {
  messages: MessageEvent[];
  joined: boolean;
  notice?: string;
}

export function describeSender(message: MessageEvent, me: string): string {
  if ('service' in message.sender) return message.sender.service;
  return message.sender.userId === me ? 'You' : `User ${message.sender.userId.slice(0, 8)}`;
}

export function messageText(message: MessageEvent): string {
  const data = message.data as { text?: unknown } | null;
  return data && typeof data === 'object' && typeof data.text === 'string' ? data.text : JSON.stringify(message.data);
}

export function Rooms({ client, me, live }: { client: GatehouseClient; me: string; live: boolean }) {
  const [rooms, setRooms] = useState<Record<string, Room>>({});
  const [current, setCurrent] = useState(DEFAULT_ROOMS[0]);
  const [draft, setDraft] = useState('');
  const [newRoom, setNewRoom] = useState('');
  const [error, setError] = useState<string>();
  const list = useRef<HTMLOListElement>(null);

  const update = (name: string, change: (room: Room) => Room) =>
    setRooms((all) => ({ ...all, [name]: change(all[name] ?? { messages: [], joined: false }) }));

  async function join(name: string) {
    try {
      await client.join(name);
      setError(undefined);
      update(name, (r) => ({ ...r, joined: true, notice: undefined }));
      setCurrent(name);
    } catch (err) {
      setError(`Could not join ${name}: ${(err as Error).message}`);
    }
  }

  useEffect(() => {
    const off = [
      client.on('message', (m) => m.room !== 'jobs' && update(m.room, (r) => ({ ...r, messages: [...r.messages, m].slice(-KEEP) }))),
      client.on('gap', (g) => update(g.room, (r) => ({ ...r, notice: `Some older messages (${g.from}–${g.to}) could not be recovered.` }))),
    ];
    return () => off.forEach((f) => f());
  }, [client]);

  // Join the default rooms once the socket is live (the client rejoins them by itself after a reconnect).
  useEffect(() => {
    if (!live) return;
    for (const name of DEFAULT_ROOMS.filter((n) => !client.joinedRooms.includes(n))) {
      client.join(name).then(
        () => setRooms((all) => ({ ...all, [name]: { ...(all[name] ?? { messages: [] }), joined: true } })),
        (err: Error) => setError(`Could not join ${name}: ${err.message}`),
      );
    }
  }, [live, client]);

  useEffect(() => {
    list.current?.lastElementChild?.scrollIntoView({ block: 'end' });
  }, [rooms, current]);

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

  async function submitJoin(event: FormEvent) {
    event.preventDefault();
    const name = newRoom.trim();
    if (!name) return;
    await join(name);
    setNewRoom('');
  }

  const room = rooms[current];
  return (
    <div className="rooms">
      <aside className="room-list" aria-label="Your rooms">
        <h2>Rooms</h2>
        <ul>
          {Object.entries(rooms)
            .filter(([, r]) => r.joined)
            .map(([name]) => (
              <li key={name}>
                <button type="button" className={name === current ? 'active' : ''} aria-current={name === current ? 'true' : undefined} onClick={() => setCurrent(name)}>
                  # {name}
                </button>
              </li>
            ))}
        </ul>
        <form onSubmit={submitJoin} className="join-form">
          <label htmlFor="join-room">Join a room</label>
          <div className="row">
            <input id="join-room" value={newRoom} onChange={(e) => setNewRoom(e.target.value)} placeholder="room name" disabled={!live} />
            <button type="submit" disabled={!live}>Join</button>
          </div>
        </form>
      </aside>
      <div className="conversation">
        <h2># {current}</h2>
        {room?.notice && <p className="notice">{room.notice}</p>}
        <ol className="messages" ref={list} aria-live="polite" aria-label={`Messages in ${current}`} data-room={current}>
          {(room?.messages ?? []).map((m) => (
            <li key={m.messageId} className={'userId' in m.sender && m.sender.userId === me ? 'mine' : ''}>
              <span className="sender">{describeSender(m, me)}</span>
              <time dateTime={new Date(m.ts).toISOString()}>{new Date(m.ts).toLocaleTimeString()}</time>
              <p className="text">{messageText(m)}</p>
            </li>
          ))}
          {room && room.messages.length === 0 && <li className="empty">No messages yet.</li>}
        </ol>
        {error && <p className="error" role="alert">{error}</p>}
        <form onSubmit={send} className="compose">
          <label htmlFor="message" className="visually-hidden">Message to {current}</label>
          <input id="message" value={draft} onChange={(e) => setDraft(e.target.value)} placeholder={`Message #${current}`} disabled={!live || !room?.joined} autoComplete="off" />
          <button type="submit" disabled={!live || !room?.joined || !draft.trim()}>Send</button>
        </form>
      </div>
    </div>
  );
}
