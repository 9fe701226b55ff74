/**
 * The Gatehouse wire protocol: the one definition of every frame a client may send and every event the server
 * sends back. Lambda handlers, the client, the infrastructure (routes are generated from ACTIONS) and tests all
 * import it, so a field cannot mean one thing on one side and another on the other.
 *
 * Runs in Node and in browsers: no Node-only APIs here.
 */
import { DEFAULT_LIMITS, GROUP_DEFAULTS, MAX_JSON_DEPTH, type Limits } from './limits';

/** Subprotocol a client offers (and the server echoes) to speak this protocol. */
export const SUBPROTOCOL = 'gatehouse.v1';
/** A browser cannot set headers on a WebSocket; it sends its token as this subprotocol entry: `bearer.<jwt>`. */
export const BEARER_SUBPROTOCOL_PREFIX = 'bearer.';

/** Actions, routed by API Gateway on `$request.body.action`. */
export const ACTIONS = [
  'join',
  'join_rooms',
  'leave',
  'send',
  'history',
  'typing',
  'presence',
  'read',
  'unread',
  'receipts',
  'edit',
  'delete',
  'create',
  'invite',
  'remove',
  'whoami',
  'ping',
  'refresh',
  'logout',
] as const;
export type Action = (typeof ACTIONS)[number];

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

export type ClientMessage =
  /** `after`: the last sequence number seen in this room; the server replays what came after it. */
  | { action: 'join'; room: string; after?: number; id?: string }
  /**
   * Several joins in one frame (at most MAX_JOIN_ROOMS, no room twice): one function invocation and one reply
   * where a client would otherwise send one each, as after a reconnect. Each room is joined as `join` would.
   */
  | { action: 'join_rooms'; rooms: Array<{ room: string; after?: number }>; id?: string }
  | { action: 'leave'; room: string; id?: string }
  | { action: 'send'; room: string; data: Json; id?: string }
  /** Older messages of a joined room, newest page first: `before` is the cursor a previous page returned. */
  | { action: 'history'; room: string; before?: number; limit?: number; id?: string }
  /** "I am typing" in a joined room: passed on at most once per TYPING_THROTTLE_MS per user, never stored. */
  | { action: 'typing'; room: string; id?: string }
  /** Who is in a joined room now (the same snapshot a join returns). */
  | { action: 'presence'; room: string; id?: string }
  /** This user has read a joined room up to `seq` (a cursor: only ever moves forward). */
  | { action: 'read'; room: string; seq: number; id?: string }
  /** Unread counts of every room this user has joined in this tenant. */
  | { action: 'unread'; id?: string }
  /** Read cursors of a joined room's users ("seen by" is derived from them). */
  | { action: 'receipts'; room: string; id?: string }
  /** Replaces the content of a message of this user's in a joined room. */
  | { action: 'edit'; room: string; seq: number; data: Json; id?: string }
  /** Deletes a message (its author, or a tenant admin): the content is gone from storage. */
  | { action: 'delete'; room: string; seq: number; id?: string }
  /** Creates a private room (`private:<name>`) owned by this user, its first member. */
  | { action: 'create'; room: string; id?: string }
  /** Adds a user of the tenant to a private room (its owner or a tenant admin). */
  | { action: 'invite'; room: string; userId: string; id?: string }
  /** Removes a user from a private room (its owner, a tenant admin, or the user themself): their sockets leave at once. */
  | { action: 'remove'; room: string; userId: string; id?: string }
  | { action: 'whoami'; id?: string }
  | { action: 'ping'; id?: string }
  /** A fresh access token for the same user and tenant extends the connection; without one, the cookie session does. */
  | { action: 'refresh'; token?: string; id?: string }
  /** Signs this sign-in out (or every sign-in of the user) and closes its sockets; `refreshToken` is revoked too. */
  | { action: 'logout'; everywhere?: boolean; refreshToken?: string; id?: string };

export type ErrorCode =
  | 'malformed_json'
  | 'invalid_message'
  | 'unknown_action'
  | 'too_large'
  | 'forbidden'
  | 'not_member'
  | 'room_limit'
  | 'unauthorized'
  | 'rate_limited'
  | 'not_found'
  | 'conflict'
  | 'token_expired'
  | 'refresh_refused'
  | 'internal';

/**
 * A user of the tenant, named by the display name the server derived from the verified identity (never from the
 * client), or a backend service publishing through the event bus.
 */
export type Sender = { userId: string; name: string } | { service: string };

/** A user as others in a room see them. */
export interface Member {
  userId: string;
  name: string;
}

/** Typing indicators: passed on at most once per this long per user and room, and shown for TYPING_EXPIRY_MS. */
export const TYPING_THROTTLE_MS = 2000;
export const TYPING_EXPIRY_MS = 5000;
/** Most users a presence snapshot lists; a bigger room says `more` and gives its count of listed users only. */
export const PRESENCE_SNAPSHOT_MAX = 100;
/** History pages: at most this many messages (and HISTORY_PAGE_BYTES) per page. */
export const HISTORY_PAGE_MAX = 100;
export const HISTORY_PAGE_DEFAULT = 50;
export const HISTORY_PAGE_BYTES = 64 * 1024;

/** Who is in a room: one entry per user, however many sockets they have there. */
export interface PresenceSnapshot {
  users: Array<Member & { v: number }>;
  /** The room has more users than PRESENCE_SNAPSHOT_MAX: this is the first page only. */
  more?: true;
  /**
   * False in rooms too big for live presence and typing (more connections than the server's signal limit): the
   * snapshot is all there is; ask again (`presence`) to refresh it.
   */
  live: boolean;
}

export interface MessageEvent {
  type: 'message';
  room: string;
  /** Per-room sequence number: gap-free and increasing, so a client can order, de-duplicate and resume. */
  seq: number;
  messageId: string;
  sender: Sender;
  /** Server time, epoch milliseconds. */
  ts: number;
  /** What a published message is about (e.g. `job.progress`); absent on messages sent by users. */
  kind?: string;
  data: Json;
  /** In history: when the content was last edited (epoch ms). */
  edited?: number;
  /** In history: the message was deleted; `data` is null. */
  deleted?: true;
}

/** An edit, in the room's sequence (so it is ordered, stored and replayed like a message): apply it to `target`. */
export interface MessageUpdatedEvent {
  type: 'message.updated';
  room: string;
  seq: number;
  ts: number;
  target: number;
  data: Json;
  by: Member;
}

/** A deletion, in the room's sequence: drop `target`'s content. */
export interface MessageDeletedEvent {
  type: 'message.deleted';
  room: string;
  seq: number;
  ts: number;
  target: number;
  by: Member;
}

/** What a room's sequence holds: messages, and the edits and deletions of them. */
export type RoomEvent = MessageEvent | MessageUpdatedEvent | MessageDeletedEvent;
export const ROOM_EVENT_TYPES: ReadonlyArray<RoomEvent['type']> = ['message', 'message.updated', 'message.deleted'];

/** A user's read cursor: they have read the room up to `seq`. */
export interface ReadCursor extends Member {
  seq: number;
}

/** Rooms one `join_rooms` frame may name. */
export const MAX_JOIN_ROOMS = 10;

/** A failed join in a `join_rooms` reply: the error, and the room it is about. */
export type RoomErrorEvent = ErrorEvent & { room: string };

/** The reply to `join_rooms`: each room's outcome, in the order asked, as `join` would have answered it. */
export interface JoinedRoomsEvent {
  type: 'joined_rooms';
  results: Array<JoinedEvent | RoomErrorEvent>;
  id?: string;
}

export interface JoinedEvent {
  type: 'joined';
  room: string;
  /** The room's latest sequence number when the join completed. */
  seq: number;
  /** Messages replayed after `after` (sent before this reply). */
  replayed?: number;
  /** Messages after `after` that are older than the retention window and cannot be replayed: reload. */
  gap?: { from: number; to: number };
  /** The replay stopped at its size cap, at `seq`: join again with `after: seq` for the rest. */
  more?: true;
  /** Who is in the room, the joiner included. */
  presence: PresenceSnapshot;
  id?: string;
}

/** A page of a room's history, oldest first; messages show their current content. */
export interface HistoryEvent {
  type: 'history';
  room: string;
  messages: MessageEvent[];
  /** Pass as `before` for the next (older) page; absent when there is nothing older within the retention. */
  before?: number;
  id?: string;
}

/**
 * Presence changes, per user: `joined` when their first socket enters the room, `left` when their last one leaves
 * (or is found gone). `v` orders changes of one user: apply one only if its `v` is higher than the last seen.
 */
export interface PresenceEvent {
  type: 'presence';
  room: string;
  change: 'joined' | 'left';
  user: Member;
  v: number;
}

/** Someone is typing in the room; show it for `expiresInMs` unless refreshed, and clear it when their message arrives. */
export interface TypingEvent {
  type: 'typing';
  room: string;
  user: Member;
  expiresInMs: number;
}

/** The reply to `typing`: `forwarded` is false when the throttle (or a big room) kept it back. */
export interface TypingAck {
  type: 'typing_ack';
  room: string;
  forwarded: boolean;
  id?: string;
}

/** Someone's read cursor moved (live in rooms small enough for signals; otherwise ask with `receipts`). */
export interface ReceiptEvent {
  type: 'receipt';
  room: string;
  cursor: ReadCursor;
}

export interface ReadAck {
  type: 'read_ack';
  room: string;
  /** The cursor as stored: the later of this and any earlier one. */
  seq: number;
  id?: string;
}

export interface UnreadEvent {
  type: 'unread';
  rooms: Array<{ room: string; unread: number; lastSeq: number; readSeq: number }>;
  id?: string;
}

export interface ReceiptsEvent {
  type: 'receipts';
  room: string;
  cursors: ReadCursor[];
  /** More users than PRESENCE_SNAPSHOT_MAX have cursors: the first ones only. */
  more?: true;
  id?: string;
}

/** The reply to `edit` and `delete`: the event that now sits in the room's sequence at `seq`. */
export interface ChangedEvent {
  type: 'changed';
  room: string;
  target: number;
  seq: number;
  id?: string;
}

/** The reply to `create`, `invite` and `remove`: the private room's members after the change. */
export interface RoomMembersEvent {
  type: 'room_members';
  room: string;
  owner: string;
  members: string[];
  id?: string;
}

/** This socket is out of a room it did not leave itself (removed from a private room); it gets nothing more of it. */
export interface RemovedEvent {
  type: 'removed';
  room: string;
}

/** The reply to `presence`. */
export interface PresenceReply extends PresenceSnapshot {
  type: 'presence_snapshot';
  room: string;
  id?: string;
}

export interface LeftEvent {
  type: 'left';
  room: string;
  id?: string;
}
export interface SentEvent {
  type: 'sent';
  room: string;
  messageId: string;
  seq: number;
  /** Sockets of other users it reached before this reply (0: stored, but nobody else is connected to the room). */
  delivered: number;
  /** A big room: delivery goes on after this reply (the message is stored and numbered; `delivered` is 0). */
  pending?: true;
  id?: string;
}
export interface WhoamiEvent {
  type: 'whoami';
  userId: string;
  /** The display name others see. */
  name: string;
  tenantId: string;
  groups: string[];
  connectionId: string;
  /** Epoch seconds at which the token this connection was opened with expires. */
  tokenExpiresAt: number;
  id?: string;
}
/**
 * How long a socket may go without a frame either way before the client pings it: API Gateway closes a connection
 * idle for 10 minutes; a hidden browser tab's timers can fire a minute late, and the ping needs its time too.
 */
export const HEARTBEAT_MS = 8 * 60 * 1000;

/**
 * The pong API Gateway itself answers a ping with: the response template of the `ping` route's mock integration
 * (no function runs, nothing is stored). It cannot echo the ping's `id`: a pong answers whichever ping came first.
 */
export const PONG_TEMPLATE = '{"type":"pong","ts":$context.requestTimeEpoch}';

export interface PongEvent {
  type: 'pong';
  ts: number;
  id?: string;
}
export interface RefreshedEvent {
  type: 'refreshed';
  tokenExpiresAt: number;
  id?: string;
}
/** This socket's sign-in ended (a sign-out here or elsewhere); the server closes it next. */
export interface SignedOutEvent {
  type: 'signed_out';
  everywhere: boolean;
  id?: string;
}

/** The reply each request gets (or an ErrorEvent): the client's `request` is typed by it. */
export interface Replies {
  join: JoinedEvent;
  join_rooms: JoinedRoomsEvent;
  leave: LeftEvent;
  send: SentEvent;
  history: HistoryEvent;
  typing: TypingAck;
  presence: PresenceReply;
  read: ReadAck;
  unread: UnreadEvent;
  receipts: ReceiptsEvent;
  edit: ChangedEvent;
  delete: ChangedEvent;
  create: RoomMembersEvent;
  invite: RoomMembersEvent;
  remove: RoomMembersEvent;
  whoami: WhoamiEvent;
  ping: PongEvent;
  refresh: RefreshedEvent;
  logout: SignedOutEvent;
}
export type RequestOf<A extends Action> = Extract<ClientMessage, { action: A }>;

export type ServerEvent =
  | Replies[Action]
  | RoomEvent
  | PresenceEvent
  | TypingEvent
  | ReceiptEvent
  | RemovedEvent
  /** The credential of this socket expired; the server closes it next. Reconnect with a fresh one. */
  | { type: 'expired'; message: string }
  | ErrorEvent;

export interface ErrorEvent {
  type: 'error';
  code: ErrorCode;
  message: string;
  id?: string;
}


/**
 * The nesting depth of a JSON text, found without parsing it: one pass, no recursion, so a frame nested thousands
 * deep costs a scan of its bytes and no stack. Stops counting past `limit`.
 */
export function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      depth++;
      if (depth > max) max = depth;
      if (max > limit) return max;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/** The nesting depth of an already parsed value (iteratively; stops past `limit`). */
export function valueDepth(value: unknown, limit: number): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (d + 1 > max) max = d + 1;
    if (max > limit) return max;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

/** JSON.parse of untrusted text with its nesting bounded first; undefined when the text is not JSON. */
export function parseBoundedJson(text: string, maxDepth: number = MAX_JSON_DEPTH): { ok: true; value: unknown } | { ok: false; tooDeep: boolean } {
  if (jsonDepth(text, maxDepth) > maxDepth) return { ok: false, tooDeep: true };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, tooDeep: false };
  }
}

/**
 * Room names: `<name>`, or `<namespace>:<name>`. Gatehouse's namespaces: `user:<userId>` (that user only),
 * `admin:<name>` (the admin group only), `private:<name>` (its member list only); a deployment may name more, each
 * decided by its authorization hook (e.g. `run:<id>`). Any other namespace is refused. Names are short and plain
 * so they are safe inside keys and logs.
 */
/** A room namespace: 1-16 characters of [a-z0-9], a letter first. */
export const NAMESPACE_PATTERN = /^[a-z][a-z0-9]{0,15}$/;
export const ROOM_PATTERN = new RegExp(`^(?:${NAMESPACE_PATTERN.source.slice(1, -1)}:)?[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`);
/** The namespaces Gatehouse itself decides access to. */
export const BUILT_IN_NAMESPACES = ['user', 'admin', 'private'] as const;
/** The namespace of a room name (`run` of `run:42`), or undefined for a plain room. */
export const namespaceOf = (room: string): string | undefined => (room.includes(':') ? room.slice(0, room.indexOf(':')) : undefined);
/** User ids as Cognito issues them (`sub`), and as the local emulator does. */
export const USER_ID_PATTERN = /^[A-Za-z0-9_.@+-]{1,128}$/;
/** Client correlation ids, echoed on the reply. */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

export type ParseResult = { ok: true; message: ClientMessage } | { ok: false; error: ErrorEvent };

const FIELDS: Record<Action, { required: readonly string[]; optional: readonly string[] }> = {
  join: { required: ['room'], optional: ['after'] },
  join_rooms: { required: ['rooms'], optional: [] },
  leave: { required: ['room'], optional: [] },
  send: { required: ['room', 'data'], optional: [] },
  history: { required: ['room'], optional: ['before', 'limit'] },
  typing: { required: ['room'], optional: [] },
  presence: { required: ['room'], optional: [] },
  read: { required: ['room', 'seq'], optional: [] },
  unread: { required: [], optional: [] },
  receipts: { required: ['room'], optional: [] },
  edit: { required: ['room', 'seq', 'data'], optional: [] },
  delete: { required: ['room', 'seq'], optional: [] },
  create: { required: ['room'], optional: [] },
  invite: { required: ['room', 'userId'], optional: [] },
  remove: { required: ['room', 'userId'], optional: [] },
  whoami: { required: [], optional: [] },
  ping: { required: [], optional: [] },
  refresh: { required: [], optional: ['token'] },
  logout: { required: [], optional: ['everywhere', 'refreshToken'] },
};

const encoder = new TextEncoder();
export const byteLength = (text: string): number => encoder.encode(text).length;

export function errorEvent(code: ErrorCode, message: string, id?: string): ErrorEvent {
  return id === undefined ? { type: 'error', code, message } : { type: 'error', code, message, id };
}

/**
 * Validates one client frame. Strict: unknown fields, wrong types and oversize values are refused, so nothing a
 * handler acts on has been guessed at.
 */
export function parseClientMessage(raw: string, limits: Limits = DEFAULT_LIMITS): ParseResult {
  const fail = (code: ErrorCode, message: string, id?: string): ParseResult => ({
    ok: false,
    error: errorEvent(code, message, id),
  });

  if (byteLength(raw) > limits.maxFrameBytes) {
    return fail('too_large', `Frame exceeds ${limits.maxFrameBytes} bytes.`);
  }
  const maxDepth = limits.maxDepth ?? MAX_JSON_DEPTH;
  const parsed = parseBoundedJson(raw, maxDepth);
  if (!parsed.ok) {
    return parsed.tooDeep
      ? fail('invalid_message', `Frame nests deeper than ${maxDepth} levels.`)
      : fail('malformed_json', 'Frame is not valid JSON.');
  }
  const value = parsed.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail('invalid_message', 'Frame must be a JSON object.');
  }
  const frame = value as Record<string, unknown>;
  // Echo the correlation id only when it is well-formed; a bad one is itself an error.
  let id: string | undefined;
  if ('id' in frame) {
    if (typeof frame.id !== 'string' || !REQUEST_ID_PATTERN.test(frame.id)) {
      return fail('invalid_message', 'Field "id" must be 1-64 characters of [A-Za-z0-9_.:-].');
    }
    id = frame.id;
  }
  const action = frame.action;
  if (typeof action !== 'string') return fail('invalid_message', 'Field "action" is required.', id);
  if (!(ACTIONS as readonly string[]).includes(action)) {
    return fail('unknown_action', `Unknown action; expected one of ${ACTIONS.join(', ')}.`, id);
  }
  const { required, optional } = FIELDS[action as Action];
  for (const key of Object.keys(frame)) {
    if (key !== 'action' && key !== 'id' && !required.includes(key) && !optional.includes(key)) {
      return fail('invalid_message', `Unexpected field "${key}" for action ${action}.`, id);
    }
  }
  if (required.includes('room')) {
    const problem = roomProblem(frame.room);
    if (problem) return fail('invalid_message', problem, id);
  }
  if (required.includes('data')) {
    if (!('data' in frame) || frame.data === undefined) return fail('invalid_message', 'Field "data" is required.', id);
    if (byteLength(JSON.stringify(frame.data)) > limits.maxDataBytes) {
      return fail('too_large', `Field "data" exceeds ${limits.maxDataBytes} bytes.`, id);
    }
  }
  if (required.includes('rooms')) {
    const problem = roomsProblem(frame.rooms);
    if (problem) return fail('invalid_message', problem, id);
  }
  if ('after' in frame && !(Number.isSafeInteger(frame.after) && (frame.after as number) >= 0)) {
    return fail('invalid_message', 'Field "after" must be a non-negative integer sequence number.', id);
  }
  if (required.includes('seq') && !(Number.isSafeInteger(frame.seq) && (frame.seq as number) >= 1)) {
    return fail('invalid_message', 'Field "seq" must be a positive integer sequence number.', id);
  }
  if (required.includes('userId') && !(typeof frame.userId === 'string' && USER_ID_PATTERN.test(frame.userId))) {
    return fail('invalid_message', 'Field "userId" must be a user id (1-128 characters of [A-Za-z0-9_.@+-]).', id);
  }
  if ('before' in frame && !(Number.isSafeInteger(frame.before) && (frame.before as number) >= 1)) {
    return fail('invalid_message', 'Field "before" must be a positive integer sequence number.', id);
  }
  if ('limit' in frame && !(Number.isSafeInteger(frame.limit) && (frame.limit as number) >= 1 && (frame.limit as number) <= HISTORY_PAGE_MAX)) {
    return fail('invalid_message', `Field "limit" must be an integer from 1 to ${HISTORY_PAGE_MAX}.`, id);
  }
  for (const field of ['token', 'refreshToken'] as const) {
    if (field in frame && (typeof frame[field] !== 'string' || (frame[field] as string).length === 0 || (frame[field] as string).length > 16_384)) {
      return fail('invalid_message', `Field "${field}" must be a non-empty string.`, id);
    }
  }
  if ('everywhere' in frame && typeof frame.everywhere !== 'boolean') {
    return fail('invalid_message', 'Field "everywhere" must be true or false.', id);
  }
  return { ok: true, message: frame as unknown as ClientMessage };
}

function roomProblem(room: unknown): string | undefined {
  if (typeof room !== 'string') return 'Field "room" must be a string.';
  if (!ROOM_PATTERN.test(room)) {
    return 'Room must be 1-64 characters of [A-Za-z0-9_.-], optionally prefixed by a namespace such as user:, admin: or private:.';
  }
  return undefined;
}

/** What is wrong with the `rooms` of a `join_rooms` frame, if anything. */
function roomsProblem(rooms: unknown): string | undefined {
  if (!Array.isArray(rooms) || rooms.length === 0 || rooms.length > MAX_JOIN_ROOMS) return `Field "rooms" must list 1 to ${MAX_JOIN_ROOMS} rooms.`;
  const seen = new Set<string>();
  for (const entry of rooms) {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return 'Each of "rooms" must be {"room", "after"?}.';
    const keys = Object.keys(entry as object);
    if (keys.some((k) => k !== 'room' && k !== 'after')) return 'Each of "rooms" must be {"room", "after"?}.';
    const { room, after } = entry as { room?: unknown; after?: unknown };
    const problem = roomProblem(room);
    if (problem) return problem;
    if (seen.has(room as string)) return `Field "rooms" names ${String(room)} twice.`;
    seen.add(room as string);
    if (after !== undefined && !(Number.isSafeInteger(after) && (after as number) >= 0)) return 'Field "after" must be a non-negative integer sequence number.';
  }
  return undefined;
}

/** Tenant ids are plain so they can sit inside keys (`#` separated) and logs. */
export const TENANT_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The tenants a user's groups make them a member of: `<prefix><id>` groups whose id is a valid tenant id. The
 * handshake, the session API, the web app and the CLI all read memberships here, so none lists a tenant another
 * would refuse.
 */
export function tenantsOfGroups(groups: readonly unknown[], prefix: string = GROUP_DEFAULTS.tenantGroupPrefix): string[] {
  return groups
    .filter((g): g is string => typeof g === 'string' && g.startsWith(prefix))
    .map((g) => g.slice(prefix.length))
    .filter((t) => TENANT_ID_PATTERN.test(t));
}
/** What a published message is about, e.g. `job.progress`. */
export const KIND_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

/** EventBridge detail-type of server-side publishing; the bus rule matches on it. */
export const PUBLISH_DETAIL_TYPE = 'Gatehouse Publish';

/** What a backend service publishes: delivered to `room` of `tenantId` only. */
export interface PublishRequest {
  tenantId: string;
  room: string;
  type: string;
  payload: Json;
}

export function parsePublishRequest(
  detail: unknown,
  limits: Pick<Limits, 'maxDataBytes'> = DEFAULT_LIMITS,
): { ok: true; request: PublishRequest } | { ok: false; error: string } {
  if (typeof detail !== 'object' || detail === null || Array.isArray(detail)) {
    return { ok: false, error: 'detail must be a JSON object' };
  }
  const d = detail as Record<string, unknown>;
  const unexpected = Object.keys(d).find((k) => !['tenantId', 'room', 'type', 'payload'].includes(k));
  if (unexpected) return { ok: false, error: `unexpected field "${unexpected}"` };
  if (typeof d.tenantId !== 'string' || !TENANT_ID_PATTERN.test(d.tenantId)) {
    return { ok: false, error: 'tenantId must be 1-64 characters of [A-Za-z0-9_-]' };
  }
  const problem = roomProblem(d.room);
  if (problem) return { ok: false, error: problem };
  if (typeof d.type !== 'string' || !KIND_PATTERN.test(d.type)) {
    return { ok: false, error: 'type must be 1-64 characters of [A-Za-z0-9_.:-]' };
  }
  if (d.payload === undefined) return { ok: false, error: 'payload is required' };
  if (valueDepth(d.payload, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) return { ok: false, error: `payload nests deeper than ${MAX_JSON_DEPTH} levels` };
  if (byteLength(JSON.stringify(d.payload)) > limits.maxDataBytes) {
    return { ok: false, error: `payload exceeds ${limits.maxDataBytes} bytes` };
  }
  return { ok: true, request: d as unknown as PublishRequest };
}
