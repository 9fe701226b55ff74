/**
 * @jest-environment jsdom
 *
 * The React bindings (@gatehouse/client/react) against a real GatehouseClient whose sockets talk to a scripted
 * in-memory server: connection state, a room's history then live messages (each once, in order, edits and
 * deletions applied, older pages prepended), presence, typing, unread counts, and who owns a room's join (one per
 * room however many components hold it, none leaked by StrictMode's double mount).
 */
import { TextDecoder, TextEncoder } from 'node:util';
// jsdom's window has no TextEncoder, which the protocol uses as it loads: before the imports that load it.
Object.assign(globalThis, { TextEncoder, TextDecoder });
import { StrictMode, type ReactNode } from 'react';
import { act, render, renderHook, screen, waitFor } from '@testing-library/react';
import { GatehouseClient, type Member, type MessageEvent, type SocketFactory, type SocketLike } from '@gatehouse/client';
import { GatehouseProvider, createGatehouseHooks, useConnectionState, usePresence, useRoom, useTyping, useUnread } from '@gatehouse/client/react';

type Frame = Record<string, unknown> & { action: string; id?: string; room?: string };

const ME: Member = { userId: 'me', name: 'Me' };
const BOB: Member = { userId: 'bob', name: 'Bob' };
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

class FakeSocket implements SocketLike {
  readyState = 0;
  onopen: SocketLike['onopen'] = null;
  onclose: SocketLike['onclose'] = null;
  onmessage: SocketLike['onmessage'] = null;
  onerror: SocketLike['onerror'] = null;
  constructor(private readonly server: FakeServer) {}
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  send(data: string) {
    this.server.receive(this, JSON.parse(data) as Frame);
  }
  close(code = 1000, reason = '') {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  push(event: unknown) {
    this.onmessage?.({ data: JSON.stringify(event) });
  }
}

/**
 * Answers each request as Gatehouse would, from rooms it keeps in memory (history with current content, one seq
 * per room for messages and changes), a moment later. Actions in `held` wait for `release(action)`.
 */
class FakeServer {
  readonly sockets: FakeSocket[] = [];
  readonly requests: Frame[] = [];
  readonly held = new Set<string>();
  autoOpen = true;
  refuse = new Set<string>();
  /** What a resuming join (one with `after`) says could not be replayed. */
  gap?: { from: number; to: number };
  private readonly waiting: Array<[FakeSocket, Frame]> = [];
  private readonly rooms = new Map<string, { seq: number; messages: MessageEvent[] }>();
  unread: Array<{ room: string; unread: number }> = [];

  readonly factory: SocketFactory = () => {
    const socket = new FakeSocket(this);
    this.sockets.push(socket);
    if (this.autoOpen) setTimeout(() => socket.open(), 0);
    return socket;
  };

  get last(): FakeSocket {
    return this.sockets[this.sockets.length - 1];
  }

  count(action: string, room?: string): number {
    return this.requests.filter((r) => r.action === action && (room === undefined || r.room === room)).length;
  }

  private room(name: string) {
    const known = this.rooms.get(name) ?? { seq: 0, messages: [] };
    this.rooms.set(name, known);
    return known;
  }

  /** Stores a message from `sender` (as if sent before, or by someone else), and returns it. */
  store(room: string, text: string, sender: Member = BOB): MessageEvent {
    const r = this.room(room);
    const message: MessageEvent = { type: 'message', room, seq: ++r.seq, messageId: `m${r.seq}`, sender, ts: 1000 + r.seq, data: { text } };
    r.messages.push(message);
    return message;
  }

  /** Stores a message and delivers it live. */
  deliver(room: string, text: string, sender: Member = BOB): MessageEvent {
    const message = this.store(room, text, sender);
    this.last.push(message);
    return message;
  }

  /** Stores an edit of `target` (a deletion without `data`) and returns the event that carries it. */
  change(room: string, target: number, by: Member, data?: MessageEvent['data']) {
    const r = this.room(room);
    const seq = ++r.seq;
    const ts = 1000 + seq;
    const message = r.messages.find((m) => m.seq === target)!;
    if (data === undefined) Object.assign(message, { data: null, deleted: true });
    else Object.assign(message, { data, edited: ts });
    const event = data === undefined ? { type: 'message.deleted' as const } : { type: 'message.updated' as const, data };
    return { ...event, room, seq, ts, target, by };
  }

  receive(socket: FakeSocket, frame: Frame) {
    this.requests.push(frame);
    if (this.held.has(frame.action)) this.waiting.push([socket, frame]);
    else setTimeout(() => this.answer(socket, frame), 0);
  }

  release(action: string) {
    this.held.delete(action);
    const due = this.waiting.filter(([, f]) => f.action === action);
    this.waiting.splice(0, this.waiting.length, ...this.waiting.filter(([, f]) => f.action !== action));
    for (const [socket, frame] of due) this.answer(socket, frame);
  }

  /** What a join of `room` answers (with the gap this server was told to report on a resume). */
  private joined(room: string, after: unknown) {
    return { type: 'joined', room, seq: this.room(room).seq, presence: { users: [{ ...ME, v: 1 }], live: true }, ...(after !== undefined && this.gap ? { gap: this.gap } : {}) };
  }

  private answer(socket: FakeSocket, frame: Frame) {
    if (socket.readyState !== 1) return;
    const reply = (event: Record<string, unknown>) => socket.push({ ...event, id: frame.id });
    const room = frame.room ?? '';
    if (this.refuse.has(room)) return reply({ type: 'error', code: 'forbidden', message: `You may not join ${room}.` });
    switch (frame.action) {
      case 'whoami':
        return reply({ type: 'whoami', ...ME, tenantId: 'acme', groups: [], connectionId: 'c1', tokenExpiresAt: Math.floor(Date.now() / 1000) + 3600 });
      case 'join':
        return reply(this.joined(room, frame.after));
      case 'join_rooms':
        return reply({ type: 'joined_rooms', results: (frame.rooms as Array<{ room: string; after?: number }>).map((r) => this.joined(r.room, r.after)) });
      case 'leave':
        return reply({ type: 'left', room });
      case 'history': {
        const before = typeof frame.before === 'number' ? frame.before : Infinity;
        const older = this.room(room).messages.filter((m) => m.seq < before);
        const page = older.slice(-Number(frame.limit ?? 50));
        const more = older.length > page.length;
        return reply({ type: 'history', room, messages: page, ...(more ? { before: page[0].seq } : {}) });
      }
      case 'send': {
        const r = this.room(room);
        const message: MessageEvent = { type: 'message', room, seq: ++r.seq, messageId: `m${r.seq}`, sender: ME, ts: 1000 + r.seq, data: frame.data as MessageEvent['data'] };
        r.messages.push(message);
        reply({ type: 'sent', room, messageId: message.messageId, seq: message.seq, delivered: 1 });
        return socket.push(message);
      }
      case 'edit':
      case 'delete': {
        const change = this.change(room, Number(frame.seq), ME, frame.action === 'edit' ? (frame.data as MessageEvent['data']) : undefined);
        reply({ type: 'changed', room, target: change.target, seq: change.seq });
        return socket.push(change);
      }
      case 'read':
        return reply({ type: 'read_ack', room, seq: frame.seq });
      case 'unread':
        return reply({ type: 'unread', rooms: this.unread.map((u) => ({ ...u, lastSeq: 0, readSeq: 0 })) });
      case 'receipts':
        return reply({ type: 'receipts', room, cursors: [] });
      case 'typing':
        return reply({ type: 'typing_ack', room, forwarded: true });
      case 'ping':
        return reply({ type: 'pong', ts: Date.now() });
      default:
        return reply({ type: 'error', code: 'invalid_message', message: `no ${frame.action} here` });
    }
  }
}

const clients: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await act(() => Promise.all(clients.splice(0).map((c) => c.close())));
});

/** A client of a fresh server, the provider around a tree, and the background errors it reported. */
function setup() {
  const server = new FakeServer();
  const client = new GatehouseClient({ url: 'ws://test', token: () => 'token', socket: server.factory, reconnect: { initialDelayMs: 10, jitter: 0 }, renew: false, heartbeatMs: 60_000 });
  clients.push(client);
  const errors: Error[] = [];
  const onError = (err: Error) => errors.push(err);
  const wrapper = ({ children }: { children?: ReactNode }) => (
    <GatehouseProvider client={client} onError={onError}>
      {children}
    </GatehouseProvider>
  );
  return { server, client, wrapper, errors };
}

async function connected() {
  const s = setup();
  await act(() => s.client.connect());
  return s;
}

const texts = (messages: ReadonlyArray<{ data: unknown }>) => messages.map((m) => (m.data as { text?: string } | null)?.text ?? null);

describe('@gatehouse/client/react', () => {
  it('renders the connection state as it moves: connecting, open, reconnecting in N ms, open, signed out', async () => {
    const { server, client, wrapper } = setup();
    server.autoOpen = false;
    function Status() {
      const c = useConnectionState();
      if (c.state === 'reconnecting' && c.retryInMs !== undefined) return <p data-testid="state">{`reconnecting in ${c.retryInMs} ms, at ${c.retryAt !== undefined}`}</p>;
      return <p data-testid="state">{`${c.state}${c.reason ? ` (${c.reason})` : ''}`}</p>;
    }
    render(<Status />, { wrapper });
    const state = () => screen.getByTestId('state').textContent;
    expect(state()).toBe('idle');
    let connecting: Promise<void> | undefined;
    act(() => {
      connecting = client.connect();
    });
    expect(state()).toBe('connecting');
    await waitFor(() => expect(server.sockets).toHaveLength(1));
    await act(async () => {
      server.last.open();
      await connecting;
    });
    expect(state()).toBe('open');
    act(() => server.last.close(1006, ''));
    expect(state()).toBe('reconnecting in 10 ms, at true');
    await waitFor(() => expect(server.sockets).toHaveLength(2));
    act(() => server.last.open());
    expect(state()).toBe('open');
    act(() => server.last.push({ type: 'signed_out', everywhere: false }));
    expect(state()).toBe('signed_out (signed_out)');
  });

  it('shows a room\'s latest history page, then live messages in order, each once', async () => {
    const { server, wrapper, errors } = await connected();
    for (const text of ['one', 'two', 'three']) server.store('r', text);
    server.held.add('history');
    const { result } = renderHook(() => useRoom('r'), { wrapper });
    expect(result.current).toMatchObject({ status: 'waiting', loading: true, messages: [] });
    await waitFor(() => expect(result.current.status).toBe('joined'));
    expect(result.current.loading).toBe(true);
    // Live messages arrive before the page: the page merges with them, the one in both shows once.
    act(() => {
      server.deliver('r', 'four');
      server.last.push({ ...server.deliver('r', 'five') }); // delivered twice
    });
    act(() => server.release('history'));
    await waitFor(() => expect(result.current.loading).toBe(false));
    expect(texts(result.current.messages)).toEqual(['one', 'two', 'three', 'four', 'five']);
    act(() => {
      const six = server.deliver('r', 'six');
      server.last.push(six);
      server.last.push(six);
    });
    expect(texts(result.current.messages)).toEqual(['one', 'two', 'three', 'four', 'five', 'six']);
    expect(result.current.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(server.count('join', 'r')).toBe(1);
    expect(errors).toEqual([]);
  });

  it('applies edits and deletions, its own and others\', and records how far its own messages reached', async () => {
    const { server, wrapper } = await connected();
    for (const text of ['one', 'two', 'three']) server.store('r', text);
    const { result } = renderHook(() => useRoom('r'), { wrapper });
    await waitFor(() => expect(result.current.messages).toHaveLength(3));
    let sent!: Awaited<ReturnType<typeof result.current.send>>;
    await act(async () => {
      sent = await result.current.send({ text: 'mine' });
    });
    expect(sent).toMatchObject({ seq: 4, delivered: 1 });
    await waitFor(() => expect(texts(result.current.messages)).toEqual(['one', 'two', 'three', 'mine']));
    expect(result.current.delivered.get(4)).toBe(1);
    await act(() => result.current.edit(4, { text: 'mine, edited' }));
    await waitFor(() => expect(texts(result.current.messages)[3]).toBe('mine, edited'));
    expect(result.current.messages[3].edited).toBe(1005);
    // Someone else's change, straight from the room's sequence.
    act(() => server.last.push(server.change('r', 2, BOB)));
    expect(result.current.messages[1]).toMatchObject({ seq: 2, deleted: true, data: null });
    await act(() => result.current.remove(1));
    await waitFor(() => expect(result.current.messages[0]).toMatchObject({ deleted: true, data: null }));
    expect(texts(result.current.messages)).toEqual([null, null, 'three', 'mine, edited']);
  });

  it('pages back with loadOlder, prepending the older page, until nothing older is kept', async () => {
    const { server, wrapper } = await connected();
    for (let i = 1; i <= 45; i++) server.store('r', `m${i}`);
    const { result } = renderHook(() => useRoom('r', { pageSize: 20 }), { wrapper });
    await waitFor(() => expect(result.current.loading).toBe(false));
    expect(result.current.messages.map((m) => m.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 26 + i));
    expect(result.current.hasOlder).toBe(true);
    await act(() => result.current.loadOlder());
    expect(result.current.messages[0].seq).toBe(6);
    expect(result.current.hasOlder).toBe(true);
    await act(() => result.current.loadOlder());
    expect(result.current.messages.map((m) => m.seq)).toEqual(Array.from({ length: 45 }, (_, i) => i + 1));
    expect(result.current.hasOlder).toBe(false);
    await act(() => result.current.loadOlder()); // nothing older: no request
    expect(server.count('history', 'r')).toBe(3);
  });

  it('applies an edit that arrived before the page with its message', async () => {
    const { server, wrapper } = await connected();
    for (const text of ['one', 'two']) server.store('r', text);
    server.held.add('history');
    const { result } = renderHook(() => useRoom('r'), { wrapper });
    await waitFor(() => expect(result.current.status).toBe('joined'));
    // The page was read before the edit was stored (the server here never stores it): it has the old text.
    act(() => server.last.push({ type: 'message.updated', room: 'r', seq: 3, ts: 2000, target: 1, data: { text: 'one, edited' }, by: BOB }));
    act(() => server.release('history'));
    await waitFor(() => expect(result.current.loading).toBe(false));
    expect(texts(result.current.messages)).toEqual(['one, edited', 'two']);
  });

  it('surfaces a refused join as the room\'s error, and leaves nothing joined', async () => {
    const { server, client, wrapper } = await connected();
    server.refuse.add('admin:ops');
    const { result } = renderHook(() => useRoom('admin:ops'), { wrapper });
    await waitFor(() => expect(result.current.status).toBe('failed'));
    expect(result.current.error).toMatchObject({ code: 'forbidden', message: 'You may not join admin:ops.' });
    expect(result.current.loading).toBe(false);
    expect(client.joinedRooms).toEqual([]);
  });

  it('joins once the connection opens, when the room is held before', async () => {
    const { server, client, wrapper } = setup();
    const { result } = renderHook(() => useRoom('r'), { wrapper });
    await act(() => tick(5));
    expect(result.current.status).toBe('waiting');
    expect(server.count('join')).toBe(0);
    await act(() => client.connect());
    await waitFor(() => expect(result.current.status).toBe('joined'));
    expect(server.count('join', 'r')).toBe(1);
  });

  it('joins again once the connection is back when it dropped mid-join', async () => {
    const { server, wrapper, errors } = await connected();
    server.store('r', 'one');
    server.held.add('join');
    const { result } = renderHook(() => useRoom('r'), { wrapper });
    await waitFor(() => expect(result.current.status).toBe('joining'));
    server.held.delete('join'); // the join in flight is never answered: its socket goes
    act(() => server.last.close(1006, ''));
    await waitFor(() => expect(result.current.loading).toBe(false));
    expect(result.current.status).toBe('joined');
    expect(texts(result.current.messages)).toEqual(['one']);
    expect(server.count('join', 'r')).toBe(2);
    expect(errors).toEqual([]);
  });

  it('reloads the latest page after a gap the server could not replay, and says what was missed', async () => {
    const { server, wrapper } = await connected();
    server.store('r', 'one');
    const { result } = renderHook(() => useRoom('r'), { wrapper });
    await waitFor(() => expect(result.current.loading).toBe(false));
    act(() => server.last.close(1006, ''));
    server.store('r', 'two');
    server.store('r', 'three');
    server.gap = { from: 2, to: 3 };
    await waitFor(() => expect(texts(result.current.messages)).toEqual(['one', 'two', 'three']));
    expect(result.current.missed).toEqual({ from: 2, to: 3 });
    expect(server.count('history', 'r')).toBe(2);
  });

  it('keeps who is here current from presence events', async () => {
    const { server, wrapper } = await connected();
    const { result } = renderHook(() => [useRoom('r'), usePresence('r')] as const, { wrapper });
    await waitFor(() => expect(result.current[1].members).toEqual([ME]));
    expect(result.current[1].live).toBe(true);
    act(() => server.last.push({ type: 'presence', room: 'r', change: 'joined', user: BOB, v: 1 }));
    expect(result.current[1].members).toEqual([ME, BOB]);
    act(() => server.last.push({ type: 'presence', room: 'r', change: 'left', user: BOB, v: 2 }));
    expect(result.current[1].members).toEqual([ME]);
  });

  it('shows who is typing until it expires, and passes this user\'s typing on', async () => {
    const { server, wrapper } = await connected();
    const { result } = renderHook(() => [useRoom('r'), useTyping('r')] as const, { wrapper });
    await waitFor(() => expect(result.current[0].status).toBe('joined'));
    act(() => server.last.push({ type: 'typing', room: 'r', user: BOB, expiresInMs: 60 }));
    expect(result.current[1].typing).toEqual([BOB]);
    await waitFor(() => expect(result.current[1].typing).toEqual([]));
    await act(async () => {
      await expect(result.current[1].notifyTyping()).resolves.toBe(true);
      await expect(result.current[1].notifyTyping()).resolves.toBe(false); // within the throttle window
    });
    expect(server.count('typing', 'r')).toBe(1);
  });

  it('keeps unread counts: loaded on open, counted live, cleared by markRead', async () => {
    const { server, wrapper } = await connected();
    server.unread = [{ room: 'elsewhere', unread: 2 }];
    const { result } = renderHook(() => ({ all: useUnread(), here: useUnread('r'), room: useRoom('r') }), { wrapper });
    await waitFor(() => expect(result.current.all.get('elsewhere')).toBe(2));
    await waitFor(() => expect(result.current.room.loading).toBe(false));
    act(() => {
      server.deliver('r', 'hello');
      server.deliver('r', 'are you there?');
    });
    expect(result.current.here).toBe(2);
    expect(result.current.all.get('r')).toBe(2);
    await act(() => result.current.room.markRead());
    expect(result.current.here).toBe(0);
  });

  it('shares one join between two components of a room, and leaves when the last one unmounts', async () => {
    const { server, client, wrapper } = await connected();
    function Count({ id }: { id: string }) {
      const room = useRoom('r');
      return <p data-testid={id}>{room.status}</p>;
    }
    function Both({ a, b }: { a: boolean; b: boolean }) {
      return (
        <>
          {a && <Count id="a" />}
          {b && <Count id="b" />}
        </>
      );
    }
    const view = render(<Both a b />, { wrapper });
    await waitFor(() => expect(screen.getByTestId('b').textContent).toBe('joined'));
    expect(screen.getByTestId('a').textContent).toBe('joined');
    expect(server.count('join', 'r')).toBe(1);
    view.rerender(<Both a={false} b />);
    await act(() => tick(20));
    expect(server.count('leave', 'r')).toBe(0);
    view.rerender(<Both a={false} b={false} />);
    await waitFor(() => expect(server.count('leave', 'r')).toBe(1));
    expect(client.joinedRooms).toEqual([]);
    expect(server.count('join', 'r')).toBe(1);
  });

  it('joins once under StrictMode\'s double mount, and leaves once on unmount', async () => {
    const { server, client, wrapper } = await connected();
    function Room() {
      const room = useRoom('r');
      return <p data-testid="status">{room.status}</p>;
    }
    const view = render(
      <StrictMode>
        <Room />
      </StrictMode>,
      { wrapper },
    );
    await waitFor(() => expect(screen.getByTestId('status').textContent).toBe('joined'));
    await act(() => tick(20));
    expect(server.count('join', 'r')).toBe(1);
    expect(server.count('leave', 'r')).toBe(0);
    view.unmount();
    await waitFor(() => expect(server.count('leave', 'r')).toBe(1));
    expect(client.joinedRooms).toEqual([]);
  });

  it('never leaves a room the app joined itself', async () => {
    const { server, client, wrapper } = await connected();
    await act(() => client.join('r'));
    const view = renderHook(() => useRoom('r'), { wrapper });
    await waitFor(() => expect(view.result.current.loading).toBe(false));
    view.unmount();
    await act(() => tick(20));
    expect(server.count('join', 'r')).toBe(1);
    expect(server.count('leave', 'r')).toBe(0);
    expect(client.joinedRooms).toEqual(['r']);
  });

  it('types messages and actions by the client\'s room map (compile time)', async () => {
    type Rooms = { jobs: { job: string; percent: number }; 'chat:*': { text: string } };
    const typed = createGatehouseHooks<Rooms>();
    const server = new FakeServer();
    const client = new GatehouseClient<Rooms>({ url: 'ws://test', token: () => 'token', socket: server.factory, renew: false });
    clients.push(client);
    await act(() => client.connect());
    server.store('chat:x', 'hello');
    const wrapper = ({ children }: { children?: ReactNode }) => <typed.GatehouseProvider client={client}>{children}</typed.GatehouseProvider>;
    const { result } = renderHook(
      () => {
        const chat = typed.useRoom('chat:x');
        const jobs = typed.useRoom('jobs');
        // @ts-expect-error: no pattern of the map matches
        typed.useRoom('other');
        return { chat, jobs };
      },
      { wrapper },
    );
    await waitFor(() => expect(result.current.chat.messages).toHaveLength(1));
    const [first] = result.current.chat.messages;
    const text: string | null = first.deleted ? first.data : first.data.text;
    expect(text).toBe('hello');
    const send = result.current.jobs.send;
    // @ts-expect-error: a job update is not a chat message
    void (() => send({ text: 'hi' }));
    void (() => send({ job: '42', percent: 50 }));
    const sameClient: GatehouseClient<Rooms> = renderHook(() => typed.useGatehouse(), { wrapper }).result.current;
    expect(sameClient).toBe(client);
  });
});
