/**
 * Who is on a connection. The authorizer puts it in the $connect context (with the display name it looked up) and
 * the connect handler stores it with the connection; later routes read the stored record (it also carries what
 * changes: a refreshed expiry, the rate limiter's state). The context format lives here only.
 */
import type { HandshakeIdentity, TokenSource } from '../../common/handshake';
import { MAX_NAME } from './profiles';

/** A display name's longest form in UTF-16 units: MAX_NAME code points of up to two units each. */
const MAX_NAME_UNITS = 2 * MAX_NAME;

export type Identity = HandshakeIdentity;

/** Authorizer context values must be strings, numbers or booleans. */
export function toAuthorizerContext(identity: Identity, source: TokenSource, name?: string): Record<string, string | number> {
  return {
    ...(name !== undefined ? { name } : {}),
    userId: identity.userId,
    username: identity.username,
    tenantId: identity.tenantId,
    groups: JSON.stringify(identity.groups),
    tokenExpiresAt: identity.tokenExpiresAt,
    signIn: identity.signIn,
    issuedAt: identity.issuedAt,
    ...(identity.session ? { session: identity.session } : {}),
    source,
  };
}

/** Reads the context back (values may arrive as strings); undefined when it is absent or incomplete. */
export function fromAuthorizerContext(context: unknown): (Identity & { source: TokenSource; name?: string }) | undefined {
  if (typeof context !== 'object' || context === null) return undefined;
  const c = context as Record<string, unknown>;
  const tokenExpiresAt = Number(c.tokenExpiresAt);
  const issuedAt = Number(c.issuedAt);
  if (typeof c.userId !== 'string' || typeof c.tenantId !== 'string' || typeof c.signIn !== 'string' || !Number.isFinite(tokenExpiresAt) || !Number.isFinite(issuedAt)) {
    return undefined;
  }
  let groups: unknown;
  try {
    groups = JSON.parse(String(c.groups ?? '[]'));
  } catch {
    return undefined;
  }
  if (!Array.isArray(groups) || !groups.every((g) => typeof g === 'string')) return undefined;
  return {
    userId: c.userId,
    username: typeof c.username === 'string' ? c.username : c.userId,
    tenantId: c.tenantId,
    groups,
    tokenExpiresAt,
    signIn: c.signIn,
    issuedAt,
    ...(typeof c.session === 'string' ? { session: c.session } : {}),
    source: (typeof c.source === 'string' ? c.source : 'header') as TokenSource,
    // Cleaned and capped by the authorizer (profiles.ts); anything else is not a name it gave.
    ...(typeof c.name === 'string' && c.name.length > 0 && c.name.length <= MAX_NAME_UNITS ? { name: c.name } : {}),
  };
}
