/**
 * $connect and $disconnect: record the authorized connection, and remove it with every membership it holds.
 */
import type { Auth } from '../../common/auth';
import type { Logger } from '../../common/log';
import { SUBPROTOCOL } from '../../protocol';
import { offeredSubprotocols } from '../../common/handshake';
import type { RealtimeConfig } from './config';
import { fromAuthorizerContext } from './identity';
import { departConnection, type SignalDeps } from './presence';
import { fallbackName } from './profiles';
import type { ConnectionStore } from './store';

export interface ConnectionDeps {
  store: ConnectionStore;
  /** The revocation check, run again once the connection is on record (see connect). */
  auth: Pick<Auth, 'revoked'>;
  config: Pick<RealtimeConfig, 'maxConnectionSeconds' | 'maxConnectionsPerUser'>;
  log: Logger;
  now?: () => number;
}

export interface ConnectEvent {
  connectionId: string;
  headers?: Record<string, string | undefined> | null;
  authorizer?: unknown;
}

export interface ConnectResponse {
  statusCode: number;
  headers?: Record<string, string>;
  body?: string;
}

export async function connect(event: ConnectEvent, deps: ConnectionDeps): Promise<ConnectResponse> {
  const identity = fromAuthorizerContext(event.authorizer);
  if (!identity) {
    // Only reachable if the route were deployed without its authorizer: refuse rather than record an anonymous socket.
    deps.log.error('connect_without_identity', { connectionId: event.connectionId });
    return { statusCode: 403, body: 'Forbidden' };
  }
  const offered = offeredSubprotocols(event.headers);
  if (offered.length > 0 && !offered.includes(SUBPROTOCOL)) {
    deps.log.info('connect_refused', { connectionId: event.connectionId, reason: 'unsupported_subprotocol' });
    return { statusCode: 400, body: `Unsupported subprotocol; offer ${SUBPROTOCOL}.` };
  }
  const now = (deps.now ?? Date.now)();
  const expiresAt = Math.floor(now / 1000) + deps.config.maxConnectionSeconds;
  // The record first, then the slot: the slot is a condition on one item, so concurrent connects of one user
  // cannot exceed the cap, and a slot whose connection has no record can only be a leftover (see the store).
  // The authorizer looked the name up alongside its revocation read (authorize.ts): nothing to read here.
  const name = identity.name ?? fallbackName(identity.username);
  await deps.store.putConnection({ connectionId: event.connectionId, ...identity, name, connectedAt: now, expiresAt });
  if (!(await deps.store.registerUserConnection(identity.userId, event.connectionId, expiresAt, deps.config.maxConnectionsPerUser))) {
    await deps.store.deleteConnection(event.connectionId);
    deps.log.warn('connect_refused', { category: 'audit', connectionId: event.connectionId, userId: identity.userId, reason: 'too_many_connections' });
    return { statusCode: 429, body: `At most ${deps.config.maxConnectionsPerUser} connections per user.` };
  }
  // A sign-out may have run between the authorizer's check and now. It writes its revocation before it reads the
  // user's connections, and this check reads the revocation after the slot is taken: whatever the interleaving,
  // either this check sees the revocation, or the sign-out sees this connection (and closes it).
  let revoked: boolean;
  try {
    revoked = (await deps.auth.revoked([identity]))[0];
  } catch (err) {
    // Not known to be allowed: refuse, and give the slot back (API Gateway answers the client 500).
    await deps.store.deleteConnection(event.connectionId);
    throw err;
  }
  if (revoked) {
    await deps.store.deleteConnection(event.connectionId);
    deps.log.info('connect_refused', { category: 'audit', connectionId: event.connectionId, userId: identity.userId, reason: 'revoked' });
    return { statusCode: 403, body: 'Forbidden' };
  }
  deps.log.info('connected', {
    category: 'audit',
    connectionId: event.connectionId,
    userId: identity.userId,
    tenantId: identity.tenantId,
    source: identity.source,
  });
  // A browser that offered subprotocols fails the handshake unless the server picks one of them.
  return offered.length > 0 ? { statusCode: 200, headers: { 'Sec-WebSocket-Protocol': SUBPROTOCOL } } : { statusCode: 200 };
}

export async function disconnect(
  event: { connectionId: string; authorizer?: unknown; statusCode?: number; reason?: string },
  deps: SignalDeps,
): Promise<{ statusCode: number }> {
  // Deleted with its memberships, and each room where this was the user's last socket hears that they left.
  const removed = await departConnection(event.connectionId, deps);
  deps.log.info('disconnected', {
    category: 'audit',
    connectionId: event.connectionId,
    userId: fromAuthorizerContext(event.authorizer)?.userId,
    closeCode: event.statusCode,
    closeReason: event.reason,
    itemsRemoved: removed,
  });
  return { statusCode: 200 };
}
