/**
 * The Gatehouse wire protocol: the one definition of every frame a client may send and every event the server
 * sends back. Lambda handlers, the client, the infrastructure (routes are generated from ACTIONS) and tests all
 * import it, so a field cannot mean one thing on one side and another on the other.
 *
 * Runs in Node and in browsers: no Node-only APIs here.
 */

/** Subprotocol a client offers (and the server echoes) to speak this protocol. */
export const SUBPROTOCOL = 'gatehouse.v1';
/** A browser cannot set headers on a WebSocket; it sends its token as this subprotocol entry: `bearer.<jwt>`. */
export const BEARER_SUBPROTOCOL_PREFIX = 'bearer.';

/** Actions, routed by API Gateway on `$request.body.action`. */
export const ACTIONS = ['join', 'leave', 'send', 'whoami', 'ping'] as const;
export type Action = (typeof ACTIONS)[number];

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

export type ClientMessage =
  | { action: 'join'; room: string; id?: string }
  | { action: 'leave'; room: string; id?: string }
  | { action: 'send'; room: string; data: Json; id?: string }
  | { action: 'whoami'; id?: string }
  | { action: 'ping'; id?: string };

export type ErrorCode =
  | 'malformed_json'
  | 'invalid_message'
  | 'unknown_action'
  | 'too_large'
  | 'forbidden'
  | 'not_member'
  | 'room_limit'
  | 'unauthorized'
  | 'internal';

export interface MessageEvent {
  type: 'message';
  room: string;
  messageId: string;
  sender: { userId: string };
  /** Server time, epoch milliseconds. */
  ts: number;
  data: Json;
}

export type ServerEvent =
  | { type: 'joined'; room: string; id?: string }
  | { type: 'left'; room: string; id?: string }
  | { type: 'sent'; room: string; messageId: string; id?: string }
  | MessageEvent
  | {
      type: 'whoami';
      userId: string;
      tenantId: string;
      groups: string[];
      connectionId: string;
      /** Epoch seconds at which the token this connection was opened with expires. */
      tokenExpiresAt: number;
      id?: string;
    }
  | { type: 'pong'; ts: number; id?: string }
  | ErrorEvent;

export interface ErrorEvent {
  type: 'error';
  code: ErrorCode;
  message: string;
  id?: string;
}

/** Size limits. API Gateway itself closes frames over 32 KB and messages over 128 KB. */
export interface Limits {
  /** Largest accepted client frame, in bytes (UTF-8). */
  maxFrameBytes: number;
  /** Largest accepted `data` of a `send`, serialized as JSON, in bytes. */
  maxDataBytes: number;
}

export const DEFAULT_LIMITS: Limits = { maxFrameBytes: 32 * 1024, maxDataBytes: 16 * 1024 };

/**
 * Room names: `<name>`, `user:<userId>` (that user only) or `admin:<name>` (admin group only). Names are short and
 * plain so they are safe inside keys and logs; other `x:` namespaces are reserved.
 */
export const ROOM_PATTERN = /^(?:user:|admin:)?[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** Client correlation ids, echoed on the reply. */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

export type ParseResult = { ok: true; message: ClientMessage } | { ok: false; error: ErrorEvent };

const FIELDS: Record<Action, readonly string[]> = {
  join: ['room'],
  leave: ['room'],
  send: ['room', 'data'],
  whoami: [],
  ping: [],
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
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return fail('malformed_json', 'Frame is not valid JSON.');
  }
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
  const allowed = FIELDS[action as Action];
  for (const key of Object.keys(frame)) {
    if (key !== 'action' && key !== 'id' && !allowed.includes(key)) {
      return fail('invalid_message', `Unexpected field "${key}" for action ${action}.`, id);
    }
  }
  if (allowed.includes('room')) {
    if (typeof frame.room !== 'string') return fail('invalid_message', 'Field "room" must be a string.', id);
    if (!ROOM_PATTERN.test(frame.room)) {
      return fail('invalid_message', 'Room must be 1-64 characters of [A-Za-z0-9_.-], optionally prefixed by user: or admin:.', id);
    }
  }
  if (allowed.includes('data')) {
    if (!('data' in frame) || frame.data === undefined) return fail('invalid_message', 'Field "data" is required.', id);
    if (byteLength(JSON.stringify(frame.data)) > limits.maxDataBytes) {
      return fail('too_large', `Field "data" exceeds ${limits.maxDataBytes} bytes.`, id);
    }
  }
  return { ok: true, message: frame as unknown as ClientMessage };
}
