/**
 * Message actions. Every frame costs the connection one token of its rate limit (garbage included), is validated
 * against the shared protocol, and is refused once the connection's credential has expired (except the actions
 * that renew or end it). A bad frame gets an error event and changes nothing. The reply is returned (API Gateway
 * sends it back on the same socket as the route response); room traffic goes out through the broadcast module.
 */
import { DeleteConnectionCommand, type ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import type { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import type { Auth } from '../../common/auth';
import { signInOf } from '../../common/credentials';
import type { Logger } from '../../common/log';
import { errorEvent, parseClientMessage, type ClientMessage, type ServerEvent } from '../../common/protocol';
import { resolveTenant } from '../../common/token';
import type { RealtimeConfig } from './config';
import { deliverToRoom, replayAfter } from './deliver';
import { signOut, signOutDeps } from './revoke';
import { roomRefusal } from './rooms';
import type { ConnectionStore, StoredConnection } from './store';

export interface MessageDeps {
  store: ConnectionStore;
  api: ApiGatewayManagementApiClient;
  config: RealtimeConfig;
  auth: Pick<Auth, 'verifier' | 'credentials' | 'sessions' | 'config'>;
  cognito?: CognitoIdentityProviderClient;
  log: Logger;
  now?: () => number;
  newId?: () => string;
}

export interface IncomingFrame {
  connectionId: string;
  body: string | null | undefined;
}

/** Actions still allowed on a connection whose credential expired: the ones that renew it or end it. */
const AFTER_EXPIRY = new Set(['refresh', 'logout', 'ping']);

export async function handleMessage(frame: IncomingFrame, deps: MessageDeps): Promise<ServerEvent> {
  const { store, config, log } = deps;
  const parsed = parseClientMessage(frame.body ?? '', config.limits);
  const id = parsed.ok ? parsed.message.id : parsed.error.id;
  try {
    const connection = await store.getConnection(frame.connectionId);
    if (!connection) return errorEvent('unauthorized', 'This connection is no longer registered; reconnect.', id);

    const rate = await store.takeToken(connection, config.rateLimit);
    if (!rate) return errorEvent('unauthorized', 'This connection is no longer registered; reconnect.', id);
    if (!rate.allowed) {
      log.warn('rate_limited', { category: 'audit', connectionId: frame.connectionId, userId: connection.userId, strikes: rate.strikes });
      if (rate.strikes >= config.rateLimit.strikes) {
        log.warn('rate_limit_disconnect', { category: 'audit', connectionId: frame.connectionId, userId: connection.userId });
        await deps.api.send(new DeleteConnectionCommand({ ConnectionId: frame.connectionId })).catch(() => undefined);
        return errorEvent('rate_limited', 'Too many messages: disconnected.', id);
      }
      return errorEvent('rate_limited', `Too many messages: at most ${config.rateLimit.rate} per second.`, id);
    }

    if (!parsed.ok) {
      log.info('message_rejected', { connectionId: frame.connectionId, code: parsed.error.code });
      return parsed.error;
    }
    const message = parsed.message;
    const now = (deps.now ?? Date.now)();
    if (connection.tokenExpiresAt * 1000 <= now && !AFTER_EXPIRY.has(message.action)) {
      return errorEvent('token_expired', 'The credential of this connection expired: send {"action":"refresh","token":...} or reconnect.', message.id);
    }
    return await act(message, connection, now, deps);
  } catch (err) {
    log.error('message_failed', { connectionId: frame.connectionId, action: parsed.ok ? parsed.message.action : undefined, error: err as Error });
    return errorEvent('internal', 'The request failed; try again.', id);
  }
}

const withId = <T extends ServerEvent>(event: T, id: string | undefined): T => (id === undefined ? event : { ...event, id });

async function act(message: ClientMessage, connection: StoredConnection, now: number, deps: MessageDeps): Promise<ServerEvent> {
  const { store, config, log } = deps;
  const { connectionId } = connection;
  switch (message.action) {
    case 'ping':
      return withId({ type: 'pong', ts: now }, message.id);

    case 'whoami':
      return withId(
        {
          type: 'whoami',
          userId: connection.userId,
          tenantId: connection.tenantId,
          groups: connection.groups,
          connectionId,
          tokenExpiresAt: connection.tokenExpiresAt,
        },
        message.id,
      );

    case 'join': {
      const refusal = roomRefusal(connection, message.room, config.adminGroup);
      if (refusal) {
        log.info('join_refused', { connectionId, userId: connection.userId, room: message.room });
        return errorEvent('forbidden', refusal, message.id);
      }
      const joined = await store.join(connection, message.room, config.maxRoomsPerConnection);
      if (joined === 'limit') return errorEvent('room_limit', `A connection may join at most ${config.maxRoomsPerConnection} rooms.`, message.id);
      if (joined === 'gone') return errorEvent('unauthorized', 'This connection is no longer registered; reconnect.', message.id);
      // Membership first, history second: whatever the replay misses arrives live (see deliver.ts).
      const resume = await replayAfter(connection.tenantId, message.room, connectionId, message.after, deps);
      if (resume.gap) log.info('resume_gap', { connectionId, room: message.room, ...resume.gap });
      return withId({ type: 'joined', room: message.room, ...resume }, message.id);
    }

    case 'leave':
      return (await store.leave(connection, message.room))
        ? withId({ type: 'left', room: message.room }, message.id)
        : errorEvent('not_member', `Not a member of ${message.room}.`, message.id);

    case 'send': {
      if (!connection.rooms.includes(message.room)) {
        return errorEvent('not_member', `Join ${message.room} before sending to it.`, message.id);
      }
      const { event, result } = await deliverToRoom(
        connection.tenantId,
        message.room,
        { sender: { userId: connection.userId }, data: message.data },
        deps,
        { protect: connectionId },
      );
      log.info('message_sent', { connectionId, tenantId: connection.tenantId, room: message.room, ...result });
      return withId({ type: 'sent', room: message.room, messageId: event.messageId, seq: event.seq }, message.id);
    }

    case 'refresh': {
      const refused = (reason: string) => {
        log.info('refresh_refused', { category: 'audit', connectionId, userId: connection.userId, reason });
        return errorEvent('refresh_refused', `Refresh refused: ${reason}.`, message.id);
      };
      const { credentials } = deps.auth;
      let renewed: { tokenExpiresAt: number; signIn: string; issuedAt: number };
      if (message.token !== undefined) {
        const verified = await deps.auth.verifier.verify(message.token);
        if (!verified.ok) return refused(verified.reason);
        const { claims } = verified;
        if (claims.sub !== connection.userId) return refused('different user');
        if (!resolveTenant(claims.groups, connection.tenantId, deps.auth.config.tenantGroupPrefix).ok) return refused('tenant_not_allowed');
        renewed = { tokenExpiresAt: claims.exp, signIn: signInOf(claims), issuedAt: claims.iat };
      } else {
        const session = connection.session && credentials ? await credentials.getSession(connection.session) : undefined;
        if (!session) return refused('no token, and no session');
        renewed = { tokenExpiresAt: session.expiresAt, signIn: session.signIn, issuedAt: session.issuedAt };
      }
      if (credentials && (await credentials.revoked([{ userId: connection.userId, ...renewed }]))[0]) return refused('revoked');
      if (!(await store.extendConnection(connectionId, renewed.tokenExpiresAt, renewed.signIn))) {
        return errorEvent('unauthorized', 'This connection is no longer registered; reconnect.', message.id);
      }
      log.info('refreshed', { category: 'audit', connectionId, userId: connection.userId, tokenExpiresAt: renewed.tokenExpiresAt });
      return withId({ type: 'refreshed', tokenExpiresAt: renewed.tokenExpiresAt }, message.id);
    }

    case 'logout': {
      const deps2 = signOutDeps(deps);
      if (!deps2) return errorEvent('internal', 'Sign-out is not configured.', message.id);
      const everywhere = message.everywhere ?? false;
      await signOut(
        {
          userId: connection.userId,
          username: connection.username,
          signIn: connection.signIn,
          ...(connection.session ? { session: connection.session } : {}),
          ...(message.refreshToken ? { refreshToken: message.refreshToken } : {}),
          everywhere,
        },
        deps2,
      );
      return withId({ type: 'signed_out', everywhere }, message.id);
    }
  }
}
