/**
 * The credential check of a WebSocket handshake, shared by every server that accepts Gatehouse sockets (the API
 * Gateway authorizer, the speech service) so a credential one of them refuses the other refuses too, for the same
 * reason.
 *
 * Where a handshake may carry its credential, first present wins:
 *   1. `Authorization: Bearer <access token>`  (non-browser clients)
 *   2. the subprotocol `bearer.<access token>` (browsers cannot set headers on a WebSocket)
 *   3. `?ticket=<one-time ticket>`             (browsers that must not hold a token in a URL)
 *   4. the `__Host-gatehouse` session cookie   (backend-for-frontend sign-in; tokens never reach the page)
 *   5. `?token=<access token>`                 (only when enabled: URLs end up in histories and logs)
 */
import { SESSION_COOKIE, hashSecret, signInOf, type CognitoSessions, type CredentialStore, type SessionRecord } from './credentials';
import { BEARER_SUBPROTOCOL_PREFIX } from './protocol';
import { resolveTenant, type DenyReason, type TokenVerifier } from './token';

export type Headers = Record<string, string | string[] | undefined> | null | undefined;
export type Query = Record<string, string | undefined> | null | undefined;

export type TokenSource = 'header' | 'subprotocol' | 'query' | 'ticket' | 'cookie';
export type HandshakeDenyReason =
  | DenyReason
  | 'query_token_disabled'
  | 'origin_required'
  | 'origin_not_allowed'
  | 'revoked'
  | 'ticket_invalid'
  | 'ticket_expired'
  | 'ticket_origin_mismatch'
  | 'session_invalid'
  | 'session_refresh_failed';

export type Extracted =
  | { found: true; source: 'header' | 'subprotocol' | 'query'; token: string }
  | { found: true; source: 'ticket'; ticket: string }
  | { found: true; source: 'cookie'; session: string }
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

/** The value of one cookie, or undefined; several cookies of that name are refused (cookie tossing). */
export function cookie(headers: Headers, name: string): string | undefined | null {
  const raw = header(headers, 'cookie');
  if (!raw) return undefined;
  const values = raw
    .split(/;\s*/)
    .map((pair) => pair.split('='))
    .filter(([k]) => k.trim() === name)
    .map(([, ...v]) => v.join('='));
  if (values.length > 1) return null;
  return values[0];
}

export function extractCredential(headers: Headers, query: Query, allowQueryToken: boolean): Extracted {
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
  if (query?.ticket !== undefined) return { found: true, source: 'ticket', ticket: query.ticket };
  const session = cookie(headers, SESSION_COOKIE);
  if (session === null) return { found: true, source: 'cookie', error: 'session_invalid' };
  if (session) return { found: true, source: 'cookie', session };
  if (query?.token !== undefined) {
    return allowQueryToken ? { found: true, source: 'query', token: query.token } : { found: true, source: 'query', error: 'query_token_disabled' };
  }
  return { found: false };
}

export interface HandshakeIdentity {
  userId: string;
  username: string;
  tenantId: string;
  groups: string[];
  /** Epoch seconds at which this connection's credential ends (token expiry; session expiry for cookies). */
  tokenExpiresAt: number;
  /** The sign-in this credential descends from: what a sign-out revokes. */
  signIn: string;
  /** Epoch seconds the credential was issued. */
  issuedAt: number;
  /** Hash of the session id, for cookie connections. */
  session?: string;
}

export type HandshakeResult =
  | { ok: true; source: TokenSource; identity: HandshakeIdentity }
  | { ok: false; source?: TokenSource; reason: HandshakeDenyReason };

export interface HandshakeOptions {
  verifier: TokenVerifier;
  allowQueryToken: boolean;
  tenantGroupPrefix: string;
  /** Exact page origins allowed to open sockets. Required for cookies; checked for any handshake that sends one. */
  allowedOrigins?: readonly string[];
  /** Tickets, sessions and revocations; without it only bearer tokens are accepted, unchecked for revocation. */
  credentials?: CredentialStore;
  /** Refreshes a cookie session's access token server-side. */
  sessions?: CognitoSessions;
  /** Refresh a session's access token when it has less than this left. @default 60 s */
  refreshMarginSeconds?: number;
  now?: () => number;
}

/** Returns the session's access token, refreshed first when it is about to expire (one winner under concurrency). */
async function sessionToken(hash: string, session: SessionRecord, options: HandshakeOptions, now: number): Promise<string | undefined> {
  if (session.accessExpiresAt - now > (options.refreshMarginSeconds ?? 60)) return session.accessToken;
  if (!options.sessions || !options.credentials) return undefined;
  const fresh = await options.sessions.refresh(session.username, session.refreshToken);
  const stored = await options.credentials.replaceSessionTokens(hash, session.version, {
    accessToken: fresh.accessToken,
    accessExpiresAt: now + fresh.expiresIn,
  });
  if (stored) return fresh.accessToken;
  return (await options.credentials.getSession(hash))?.accessToken;
}

export async function authenticateHandshake(headers: Headers, query: Query, options: HandshakeOptions): Promise<HandshakeResult> {
  const now = Math.floor((options.now ?? Date.now)() / 1000);
  const extracted = extractCredential(headers, query, options.allowQueryToken);
  if (!extracted.found) return { ok: false, reason: 'missing_token' };
  const { source } = extracted;
  const deny = (reason: HandshakeDenyReason): HandshakeResult => ({ ok: false, source, reason });
  if ('error' in extracted) return deny(extracted.error);

  const origin = header(headers, 'origin');
  const allowed = options.allowedOrigins;
  // Exact match only: "null", other schemes, ports and look-alike hosts are all different strings.
  if (origin !== undefined && allowed && !allowed.includes(origin)) return deny('origin_not_allowed');

  let identity: HandshakeIdentity;
  if (source === 'ticket') {
    if (!options.credentials || extracted.source !== 'ticket') return deny('ticket_invalid');
    const ticket = await options.credentials.consumeTicket(extracted.ticket);
    if (!ticket) return deny('ticket_invalid');
    if (ticket.expiresAt <= now) return deny('ticket_expired');
    if ((ticket.origin ?? undefined) !== origin) return deny('ticket_origin_mismatch');
    if (query?.tenant !== undefined && query.tenant !== ticket.tenantId) return deny('tenant_not_allowed');
    const { userId, username, groups, signIn, issuedAt, tenantId, tokenExpiresAt } = ticket;
    identity = { userId, username, groups, signIn, issuedAt, tenantId, tokenExpiresAt };
  } else {
    let token: string;
    let session: { hash: string; record: SessionRecord } | undefined;
    if (extracted.source === 'cookie') {
      // A cookie rides along on any request the browser makes: only pages of our own origins may use it.
      if (!allowed) return deny('session_invalid');
      if (origin === undefined) return deny('origin_required');
      if (!options.credentials) return deny('session_invalid');
      const hash = hashSecret(extracted.session);
      const record = await options.credentials.getSession(hash);
      if (!record) return deny('session_invalid');
      let fresh: string | undefined;
      try {
        fresh = await sessionToken(hash, record, options, now);
      } catch {
        return deny('session_refresh_failed');
      }
      if (!fresh) return deny('session_refresh_failed');
      token = fresh;
      session = { hash, record };
    } else {
      token = (extracted as { token: string }).token;
    }
    const verified = await options.verifier.verify(token);
    if (!verified.ok) return deny(verified.reason);
    const { claims } = verified;
    const tenant = resolveTenant(claims.groups, query?.tenant, options.tenantGroupPrefix);
    if (!tenant.ok) return deny(tenant.reason);
    identity = {
      userId: claims.sub,
      username: claims.username,
      tenantId: tenant.tenantId,
      groups: claims.groups,
      tokenExpiresAt: session ? session.record.expiresAt : claims.exp,
      signIn: session ? session.record.signIn : signInOf(claims),
      issuedAt: session ? session.record.issuedAt : claims.iat,
      ...(session ? { session: session.hash } : {}),
    };
  }
  if (options.credentials && (await options.credentials.revoked([identity]))[0]) return deny('revoked');
  return { ok: true, source, identity };
}
