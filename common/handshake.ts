/**
 * Where a WebSocket handshake carries its credential. Shared by every server that accepts Gatehouse sockets (the
 * API Gateway authorizer, the speech service) so they agree on locations and their order.
 */
import { BEARER_SUBPROTOCOL_PREFIX } from './protocol';
import { resolveTenant, type DenyReason, type TokenVerifier } from './token';

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


export interface HandshakeIdentity {
  userId: string;
  username: string;
  tenantId: string;
  groups: string[];
  /** Epoch seconds. */
  tokenExpiresAt: number;
  /** Sign-in this token belongs to (Cognito `origin_jti`), when present. */
  originJti?: string;
}

export type HandshakeResult =
  | { ok: true; source: TokenSource; identity: HandshakeIdentity }
  | { ok: false; source?: TokenSource; reason: HandshakeDenyReason };

/**
 * The whole credential check of a handshake: find the token, verify it, derive the tenant from its groups (a
 * client may only choose among its own tenants with `?tenant=`). The API's authorizer and the speech service both
 * call this, so a token one of them refuses the other refuses too.
 */
export async function authenticateHandshake(
  headers: Headers,
  query: Query,
  options: { verifier: TokenVerifier; allowQueryToken: boolean; tenantGroupPrefix: string },
): Promise<HandshakeResult> {
  const extracted = extractToken(headers, query, options.allowQueryToken);
  if (!extracted.found) return { ok: false, reason: 'missing_token' };
  if ('error' in extracted) return { ok: false, source: extracted.source, reason: extracted.error };
  const verified = await options.verifier.verify(extracted.token);
  if (!verified.ok) return { ok: false, source: extracted.source, reason: verified.reason };
  const { claims } = verified;
  const tenant = resolveTenant(claims.groups, query?.tenant, options.tenantGroupPrefix);
  if (!tenant.ok) return { ok: false, source: extracted.source, reason: tenant.reason };
  return {
    ok: true,
    source: extracted.source,
    identity: {
      userId: claims.sub,
      username: claims.username,
      tenantId: tenant.tenantId,
      groups: claims.groups,
      tokenExpiresAt: claims.exp,
      ...(claims.originJti ? { originJti: claims.originJti } : {}),
    },
  };
}
