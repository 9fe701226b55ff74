/**
 * The session HTTP API under /api (lambda/core/api.ts serves it, the web app and tests call it): routes, request
 * bodies, answers and error codes, written once.
 *
 * Runs in Node and in browsers.
 */
import type { HandshakeDenyReason, SignInErrorCode } from './auth';

export const SESSION_API_PREFIX = '/api';

/** Each route as `METHOD path`. */
export const SESSION_ROUTES = {
  login: { method: 'POST', path: '/api/login' },
  session: { method: 'GET', path: '/api/session' },
  logout: { method: 'POST', path: '/api/logout' },
  wsTicket: { method: 'POST', path: '/api/ws-ticket' },
} as const;

export type SessionRoute = keyof typeof SESSION_ROUTES;

/** A body's fields: each one's JSON type. Bodies are flat objects with exactly these fields. */
export interface BodySpec {
  readonly required?: Readonly<Record<string, 'string' | 'boolean'>>;
  readonly optional?: Readonly<Record<string, 'string' | 'boolean'>>;
}

export const SESSION_BODIES = {
  login: { required: { email: 'string', password: 'string' } },
  logout: { optional: { everywhere: 'boolean' } },
  wsTicket: { optional: { tenant: 'string' } },
} as const satisfies Partial<Record<SessionRoute, BodySpec>>;

/** Largest request body, in bytes. */
export const MAX_SESSION_BODY_BYTES = 4096;

export interface LoginRequest {
  email: string;
  password: string;
}
export interface LogoutRequest {
  /** End every sign-in of the user, not only this one. @default false */
  everywhere?: boolean;
}
export interface TicketRequest {
  /** The tenant the socket is for (a user of several tenants must name one). @default the user's only tenant */
  tenant?: string;
}

/** `GET /api/session` and `POST /api/login`: who is signed in. */
export interface SessionUser {
  signedIn: true;
  userId: string;
  email: string;
  groups: string[];
  tenants: string[];
  /** Epoch seconds at which the session ends. */
  expiresAt: number;
}
export interface SignedOut {
  signedIn: false;
}
/** `POST /api/ws-ticket`: a 30-second, single-use ticket to open a socket with. */
export interface TicketResponse {
  ticket: string;
  expiresAt: number;
}

/** Errors of the session API: its own, a sign-in's (login) and a handshake's (ws-ticket). */
export type SessionApiErrorCode =
  | SignInErrorCode
  | HandshakeDenyReason
  | 'invalid_request'
  | 'origin_required'
  | 'origin_not_allowed'
  | 'not_configured'
  | 'not_found';

export interface SessionApiError {
  error: SessionApiErrorCode;
  message: string;
}

const strings = (value: unknown): value is string[] => Array.isArray(value) && value.every((v) => typeof v === 'string');

/** A signed-in user exactly as the session API describes one; anything else (an HTML error page) is not a user. */
export function parseSessionUser(body: unknown): SessionUser | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { signedIn, userId, email, groups, tenants, expiresAt } = body as Record<string, unknown>;
  if (signedIn !== true || typeof userId !== 'string' || typeof email !== 'string' || !strings(groups) || !strings(tenants)) return undefined;
  return { signedIn, userId, email, groups, tenants, expiresAt: typeof expiresAt === 'number' ? expiresAt : 0 };
}
