/**
 * `@gatehouse/client/node`: everything in `@gatehouse/client`, plus sockets from `ws` (the token in the
 * Authorization header, or, to behave exactly like a browser, in the subprotocol list), password sign-in with
 * refresh, and WAV helpers.
 */
import WebSocket from 'ws';
import { BEARER_SUBPROTOCOL_PREFIX, SUBPROTOCOL } from '../../../protocol';
import { GatehouseClient, type ClientOptions, type DefaultRooms, type SocketFactory, type SocketLike } from './client';
import type { RoomMap } from './rooms';

export type Transport = 'header' | 'subprotocol';

export function nodeSocket(transport: Transport = 'header'): SocketFactory {
  return (url, token) =>
    (transport === 'header'
      ? new WebSocket(url, { headers: { Authorization: `Bearer ${token}` }, perMessageDeflate: false })
      : new WebSocket(url, [SUBPROTOCOL, `${BEARER_SUBPROTOCOL_PREFIX}${token}`], { perMessageDeflate: false })) as unknown as SocketLike;
}

export function createNodeClient<Rooms extends RoomMap = DefaultRooms>(options: Omit<ClientOptions, 'socket'> & { transport?: Transport }): GatehouseClient<Rooms> {
  const { transport, ...rest } = options;
  return new GatehouseClient<Rooms>({ ...rest, socket: nodeSocket(transport) });
}

export * from './index';
export * from './auth';
export * from './wav';
