/**
 * Who is on a connection. The authorizer puts it in the $connect context; API Gateway hands that context to every
 * later route of the same connection, so handlers know the caller without a read. The format lives here only.
 */
import type { HandshakeIdentity } from '../../common/handshake';

export type Identity = Omit<HandshakeIdentity, 'originJti'>;

/** Authorizer context values must be strings, numbers or booleans. */
export function toAuthorizerContext(identity: Identity, source: string): Record<string, string | number> {
  return {
    userId: identity.userId,
    username: identity.username,
    tenantId: identity.tenantId,
    groups: JSON.stringify(identity.groups),
    tokenExpiresAt: identity.tokenExpiresAt,
    source,
  };
}

/** Reads the context back (values may arrive as strings); undefined when it is absent or incomplete. */
export function fromAuthorizerContext(context: unknown): Identity | undefined {
  if (typeof context !== 'object' || context === null) return undefined;
  const c = context as Record<string, unknown>;
  const tokenExpiresAt = Number(c.tokenExpiresAt);
  if (typeof c.userId !== 'string' || typeof c.tenantId !== 'string' || !Number.isFinite(tokenExpiresAt)) {
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
  };
}
