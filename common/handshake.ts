/**
 * Where a WebSocket handshake carries its credential. Shared by every server that accepts Gatehouse sockets (the
 * API Gateway authorizer, the speech service) so they agree on locations and their order.
 */
import { BEARER_SUBPROTOCOL_PREFIX } from './protocol';
import type { DenyReason } from './token';

export type Headers = Record<string, string | string[] | undefined> | null | undefined;
export type Query = Record<string, string | undefined> | null | undefined;

export type TokenSource = 'header' | 'subprotocol' | 'query';
export type HandshakeDenyReason = DenyReason | 'query_token_disabled';

export type Extracted =
  | { found: true; source: TokenSource; token: string }
  | { found: true; source: TokenSource; error: HandshakeDenyReason }
  | { found: false };

export function header(headers: Headers, name: string): string | undefined {
  if (!headers) return undefined;
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    // Node joins repeated headers into arrays; a credential header must appear once.
    if (key.toLowerCase() === wanted) return Array.isArray(value) ? value.join(', ') : value;
  }
  return undefined;
}

/** The subprotocols a client offered, in order. */
export function offeredSubprotocols(headers: Headers): string[] {
  const raw = header(headers, 'sec-websocket-protocol');
  return raw ? raw.split(',').map((p) => p.trim()).filter((p) => p.length > 0) : [];
}

/**
 * Token locations, first present wins: `Authorization: Bearer`, the `bearer.<jwt>` subprotocol (browsers cannot
 * set headers on a WebSocket), then `?token=` (only when enabled: URLs end up in histories and proxy logs).
 */
export function extractToken(
  headers: Headers,
  query: Query,
  allowQueryToken: boolean,
): Extracted {
  const authorization = header(headers, 'authorization');
  if (authorization !== undefined) {
    const match = /^Bearer +([^\s]+)$/i.exec(authorization.trim());
    return match ? { found: true, source: 'header', token: match[1] } : { found: true, source: 'header', error: 'malformed_token' };
  }
  const bearer = offeredSubprotocols(headers).filter((p) => p.startsWith(BEARER_SUBPROTOCOL_PREFIX));
  if (bearer.length > 0) {
    return bearer.length === 1
      ? { found: true, source: 'subprotocol', token: bearer[0].slice(BEARER_SUBPROTOCOL_PREFIX.length) }
      : { found: true, source: 'subprotocol', error: 'malformed_token' };
  }
  const queryToken = query?.token;
  if (queryToken !== undefined) {
    return allowQueryToken
      ? { found: true, source: 'query', token: queryToken }
      : { found: true, source: 'query', error: 'query_token_disabled' };
  }
  return { found: false };
}

