/**
 * Rooms of one tenant: the room list, the join form and the open room. Every listed room is held (useRoom) by its
 * entry in the list, so it stays joined and keeps taking in messages while another is open; the open room is held
 * by this view, which is what joins a room the user names.
 */
import { useCallback, useId, useRef, useState, type FormEvent } from 'react';
import { useConnectionState, useRoom, useUnread, type RoomOptions } from '@gatehouse/client/react';
import { Conversation } from './Conversation';

const DEFAULT_ROOMS = ['general', 'random'];
/** Messages per history page: a screen or two, so joining a busy room is quick. The same for every holder. */
const ROOM_OPTIONS: RoomOptions = { pageSize: 30 };

/** A listed room: shown once joined, with its unread count unless it is the open one. */
function RoomEntry({ name, open, onChoose }: { name: string; open: boolean; onChoose: (name: string) => void }) {
  const { status } = useRoom(name, ROOM_OPTIONS);
  const unread = useUnread(name);
  if (status !== 'joined') return null;
  return (
    <li>
      <button type="button" className={open ? 'active' : ''} aria-current={open ? 'true' : undefined} onClick={() => onChoose(name)}>
        # {name}
        {!open && unread > 0 && (
          <span className="badge" data-room={name}>
            {unread}
            <span className="visually-hidden"> unread</span>
          </span>
        )}
      </button>
    </li>
  );
}

export function Rooms({ me, admin, active }: { me: string; admin: boolean; active: boolean }) {
  const [current, setCurrent] = useState(DEFAULT_ROOMS[0]);
  // Defaults first, then rooms in the order they were joined: the list never reorders by itself.
  const [order, setOrder] = useState(DEFAULT_ROOMS);
  const [newRoom, setNewRoom] = useState('');
  // Phone width: the room list folds away behind a toggle so the conversation keeps the screen.
  const [listOpen, setListOpen] = useState(false);
  const live = useConnectionState().state === 'open';
  const room = useRoom(current, ROOM_OPTIONS);
  const focused = useRef(false);
  const id = useId();

  // A room the user named joins the list once joined (a refused one never does).
  const listed = order.includes(current) || room.status !== 'joined' ? order : [...order, current];

  function choose(name: string) {
    // The room being left stays listed, and so held (joined), if it is joined: the list only grows.
    setOrder(listed);
    setCurrent(name);
    setListOpen(false);
  }

  function submitJoin(event: FormEvent) {
    event.preventDefault();
    const name = newRoom.trim();
    if (!name) return;
    choose(name);
    setNewRoom('');
  }

  const claimFocus = useCallback(() => {
    if (focused.current) return false;
    focused.current = true;
    return true;
  }, []);

  return (
    <div className={`rooms${listOpen ? ' list-open' : ''}`}>
      <aside className="room-list" id={`${id}-list`} aria-label="Your rooms">
        <h2>Rooms</h2>
        <ul>
          {listed.map((name) => (
            <RoomEntry key={name} name={name} open={name === current} onChoose={choose} />
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
      <Conversation
        key={current}
        name={current}
        room={room}
        me={me}
        admin={admin}
        active={active}
        claimFocus={claimFocus}
        toggle={
          <button type="button" className="secondary rooms-toggle" aria-controls={`${id}-list`} aria-expanded={listOpen} onClick={() => setListOpen((o) => !o)}>
            All rooms
          </button>
        }
      />
    </div>
  );
}
