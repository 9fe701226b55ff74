/**
 * Message actions. Every frame is validated against the shared protocol first; a bad frame gets an error event
 * and changes nothing. The reply is returned (API Gateway sends it back on the same socket as the route
 * response); room traffic goes out through the broadcast module.
 */
import type { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import type { Logger } from '../../common/log';
import { errorEvent, parseClientMessage, type ClientMessage, type ServerEvent } from '../../common/protocol';
import type { RealtimeConfig } from './config';
import { deliverToRoom, replayAfter } from './deliver';
import { fromAuthorizerContext, type Identity } from './identity';
import { roomRefusal } from './rooms';
import type { ConnectionStore } from './store';

export interface MessageDeps {
  store: ConnectionStore;
  api: ApiGatewayManagementApiClient;
  config: RealtimeConfig;
  log: Logger;
  now?: () => number;
  newId?: () => string;
}

export interface IncomingFrame {
  connectionId: string;
  body: string | null | undefined;
  /** The $connect authorizer context, as API Gateway passes it to every route. */
  authorizer?: unknown;
}

async function identityOf(frame: IncomingFrame, store: ConnectionStore): Promise<Identity | undefined> {
  // The context is always there behind API Gateway; the stored record is the fallback, not the path.
  return fromAuthorizerContext(frame.authorizer) ?? (await store.getConnection(frame.connectionId));
}

export async function handleMessage(frame: IncomingFrame, deps: MessageDeps): Promise<ServerEvent> {
  const parsed = parseClientMessage(frame.body ?? '', deps.config.limits);
  if (!parsed.ok) {
    deps.log.info('message_rejected', { connectionId: frame.connectionId, code: parsed.error.code });
    return parsed.error;
  }
  const message = parsed.message;
  try {
    const identity = await identityOf(frame, deps.store);
    if (!identity) return errorEvent('unauthorized', 'This connection is no longer registered; reconnect.', message.id);
    return await act(message, identity, frame.connectionId, deps);
  } catch (err) {
    deps.log.error('message_failed', { connectionId: frame.connectionId, action: message.action, error: err });
    return errorEvent('internal', 'The request failed; try again.', message.id);
  }
}

const withId = <T extends ServerEvent>(event: T, id: string | undefined): T => (id === undefined ? event : { ...event, id });

async function act(message: ClientMessage, identity: Identity, connectionId: string, deps: MessageDeps): Promise<ServerEvent> {
  const { store, config, log } = deps;
  const now = (deps.now ?? Date.now)();
  switch (message.action) {
    case 'ping':
      return withId({ type: 'pong', ts: now }, message.id);

    case 'whoami':
      return withId(
        {
          type: 'whoami',
          userId: identity.userId,
          tenantId: identity.tenantId,
          groups: identity.groups,
          connectionId,
          tokenExpiresAt: identity.tokenExpiresAt,
        },
        message.id,
      );

    case 'join': {
      const refusal = roomRefusal(identity, message.room, config.adminGroup);
      if (refusal) {
        log.info('join_refused', { connectionId, userId: identity.userId, room: message.room });
        return errorEvent('forbidden', refusal, message.id);
      }
      if (!(await store.isMember(connectionId, message.room))) {
        if ((await store.countRooms(connectionId)) >= config.maxRoomsPerConnection) {
          return errorEvent('room_limit', `A connection may join at most ${config.maxRoomsPerConnection} rooms.`, message.id);
        }
      }
      // The connection cannot outlive API Gateway's maximum from now, so neither need its membership.
      await store.join(
        { connectionId, tenantId: identity.tenantId, expiresAt: Math.floor(now / 1000) + config.maxConnectionSeconds },
        message.room,
      );
      // Membership first, history second: whatever the replay misses arrives live (see deliver.ts).
      const resume = await replayAfter(identity.tenantId, message.room, connectionId, message.after, deps);
      if (resume.gap) log.info('resume_gap', { connectionId, room: message.room, ...resume.gap });
      return withId({ type: 'joined', room: message.room, ...resume }, message.id);
    }

    case 'leave':
      return (await store.leave(connectionId, message.room))
        ? withId({ type: 'left', room: message.room }, message.id)
        : errorEvent('not_member', `Not a member of ${message.room}.`, message.id);

    case 'send': {
      if (!(await store.isMember(connectionId, message.room))) {
        return errorEvent('not_member', `Join ${message.room} before sending to it.`, message.id);
      }
      const { event, result } = await deliverToRoom(
        identity.tenantId,
        message.room,
        { sender: { userId: identity.userId }, data: message.data },
        deps,
        { protect: connectionId },
      );
      log.info('message_sent', { connectionId, tenantId: identity.tenantId, room: message.room, ...result });
      return withId({ type: 'sent', room: message.room, messageId: event.messageId, seq: event.seq }, message.id);
    }
  }
}
