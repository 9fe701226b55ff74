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
import { BEARER_SUBPROTOCOL_PREFIX, type HandshakeDenyReason, type RefreshDenyReason } from '../protocol';
import { resolveTenant, type TokenVerifier } from './token';

export type { HandshakeDenyReason, RefreshDenyReason } from '../protocol';

export type Headers = Record<string, string | string[] | undefined> | null | undefined;
export type Query = Record<string, string | undefined> | null | undefined;

export type TokenSource = 'header' | 'subprotocol' | 'query' | 'ticket' | 'cookie';

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

/** How many times a header was given (servers that keep repeats as arrays: Node's headersDistinct, API Gateway). */
function headerCount(headers: Headers, name: string): number {
  if (!headers) return 0;
  const wanted = name.toLowerCase();
  let count = 0;
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === wanted && value !== undefined) count += Array.isArray(value) ? value.length : 1;
  }
  return count;
}

export function extractCredential(headers: Headers, query: Query, allowQueryToken: boolean): Extracted {
  const authorization = header(headers, 'authorization');
  // Two credentials are no credential: whichever a server picked, another hop could have picked the other.
  if (headerCount(headers, 'authorization') > 1) return { found: true, source: 'header', error: 'malformed_token' };
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

/** Returns the session's access token, refreshed first when it has less than `margin` left (one winner under concurrency). */
async function sessionToken(hash: string, session: SessionRecord, options: HandshakeOptions, now: number, margin: number): Promise<string | undefined> {
  if (session.accessExpiresAt - now > margin) return session.accessToken;
  if (!options.sessions || !options.credentials) return undefined;
  // Cognito re-checks the user here: a disabled or deleted user's refresh token is refused.
  const fresh = await options.sessions.refresh(session.username, session.refreshToken);
  const stored = await options.credentials.replaceSessionTokens(hash, session.version, {
    accessToken: fresh.accessToken,
    accessExpiresAt: now + fresh.expiresIn,
  });
  if (stored) return fresh.accessToken;
  return (await options.credentials.getSession(hash))?.accessToken;
}

/**
 * A cookie session's current access token (refreshed server-side when it is about to expire), or why not. The
 * session must still exist: a sign-out deletes it.
 */
async function sessionCredential(
  hash: string,
  options: HandshakeOptions,
  now: number,
  margin: number,
): Promise<{ ok: true; token: string; record: SessionRecord } | { ok: false; reason: HandshakeDenyReason }> {
  if (!options.credentials) return { ok: false, reason: 'session_invalid' };
  const record = await options.credentials.getSession(hash);
  if (!record) return { ok: false, reason: 'session_invalid' };
  let token: string | undefined;
  try {
    token = await sessionToken(hash, record, options, now, margin);
  } catch {
    return { ok: false, reason: 'session_refresh_failed' };
  }
  return token ? { ok: true, token, record } : { ok: false, reason: 'session_refresh_failed' };
}

/**
 * The identity an access token speaks for, in `tenant` (requested, or the token's only one). A session-backed
 * credential descends from the session: its sign-in, and the session hash so that a sign-out through it ends it.
 * The credential ends when the access token does, for sessions too: renewing it means a refresh at Cognito, which
 * refuses a disabled or deleted user.
 */
async function identityOf(
  token: string,
  tenant: string | undefined,
  session: { hash: string; record: SessionRecord } | undefined,
  options: HandshakeOptions,
): Promise<{ ok: true; identity: HandshakeIdentity } | { ok: false; reason: HandshakeDenyReason }> {
  const verified = await options.verifier.verify(token);
  if (!verified.ok) return verified;
  const { claims } = verified;
  const resolved = resolveTenant(claims.groups, tenant, options.tenantGroupPrefix);
  if (!resolved.ok) return resolved;
  return {
    ok: true,
    identity: {
      userId: claims.sub,
      username: claims.username,
      tenantId: resolved.tenantId,
      groups: claims.groups,
      tokenExpiresAt: session ? Math.min(claims.exp, session.record.expiresAt) : claims.exp,
      signIn: session ? session.record.signIn : signInOf(claims),
      issuedAt: session ? session.record.issuedAt : claims.iat,
      ...(session ? { session: session.hash } : {}),
    },
  };
}

/** The revocation check every credential passes, at handshake, refresh and in the watch: strongly consistent. */
async function isRevoked(identity: HandshakeIdentity, options: HandshakeOptions): Promise<boolean> {
  return options.credentials ? (await options.credentials.revoked([identity]))[0] : false;
}

/**
 * Work a caller needs for an identity that passed every other check, run alongside the revocation read (an
 * independent read: the $connect authorizer looks up the display name here). Its outcome is the caller's, and is
 * thrown away when the handshake is denied; if it fails, the handshake goes on without it.
 */
export type Alongside = (identity: HandshakeIdentity) => Promise<void>;

export async function authenticateHandshake(headers: Headers, query: Query, options: HandshakeOptions, alongside?: Alongside): Promise<HandshakeResult> {
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
    // A ticket stands for the credential it was issued on, the session included (a sign-out through it ends that).
    const { userId, username, groups, signIn, issuedAt, tenantId, tokenExpiresAt, session } = ticket;
    identity = { userId, username, groups, signIn, issuedAt, tenantId, tokenExpiresAt, ...(session ? { session } : {}) };
  } else {
    let token: string;
    let session: { hash: string; record: SessionRecord } | undefined;
    if (extracted.source === 'cookie') {
      // A cookie rides along on any request the browser makes: only pages of our own origins may use it.
      if (!allowed) return deny('session_invalid');
      if (origin === undefined) return deny('origin_required');
      const hash = hashSecret(extracted.session);
      const credential = await sessionCredential(hash, options, now, options.refreshMarginSeconds ?? 60);
      if (!credential.ok) return deny(credential.reason);
      token = credential.token;
      session = { hash, record: credential.record };
    } else {
      token = (extracted as { token: string }).token;
    }
    const derived = await identityOf(token, query?.tenant, session, options);
    if (!derived.ok) return deny(derived.reason);
    identity = derived.identity;
  }
  // The caller's work cannot turn the decision into an error: its failure is its own (authorize: no name).
  const [revoked] = await Promise.all([isRevoked(identity, options), alongside?.(identity).catch(() => undefined)]);
  if (revoked) return deny('revoked');
  return { ok: true, source, identity };
}

export type RefreshResult = { ok: true; identity: HandshakeIdentity } | { ok: false; reason: RefreshDenyReason };

/** A session-backed refresh renews the access token at Cognito once it has less than this left. */
export const SESSION_RENEW_AHEAD_SECONDS = 300;

const sameGroups = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');

/**
 * Renews the credential of an open socket: the one refresh policy of every server that accepts Gatehouse sockets
 * (the realtime API's `refresh` action, the speech service's `refresh` control and its server-side session renewal).
 *
 * With a token: the token is verified and must be the same user's, in the socket's tenant. Without one: the socket's
 * cookie session renews it (a refresh at Cognito, which refuses a disabled or deleted user). Either way the whole
 * identity is derived anew and must grant what the socket holds: a token whose groups differ is refused
 * (`identity_changed`: reconnect, and the handshake derives the new rights), so no refresh ever extends rights the
 * new credential no longer grants. Last, the new credential must not be revoked.
 */
export async function refreshIdentity(current: HandshakeIdentity, token: string | undefined, options: HandshakeOptions): Promise<RefreshResult> {
  const now = Math.floor((options.now ?? Date.now)() / 1000);
  let derived: Awaited<ReturnType<typeof identityOf>>;
  if (token !== undefined) {
    derived = await identityOf(token, current.tenantId, undefined, options);
  } else if (current.session) {
    const credential = await sessionCredential(current.session, options, now, SESSION_RENEW_AHEAD_SECONDS);
    if (!credential.ok) return credential;
    derived = await identityOf(credential.token, current.tenantId, { hash: current.session, record: credential.record }, options);
  } else {
    return { ok: false, reason: 'no_credential' };
  }
  if (!derived.ok) return derived;
  const { identity } = derived;
  if (identity.userId !== current.userId) return { ok: false, reason: 'different_user' };
  if (!sameGroups(identity.groups, current.groups)) return { ok: false, reason: 'identity_changed' };
  if (await isRevoked(identity, options)) return { ok: false, reason: 'revoked' };
  return { ok: true, identity: { ...identity, username: current.username } };
}

/** Which of these open sockets' credentials are revoked now (the watch of long-lived sockets; one batched read). */
export async function revokedAmong(identities: HandshakeIdentity[], options: Pick<HandshakeOptions, 'credentials'>): Promise<boolean[]> {
  return options.credentials ? options.credentials.revoked(identities) : identities.map(() => false);
}
