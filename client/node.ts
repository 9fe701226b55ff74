/**
 * The Gatehouse client in Node: sockets from `ws`, with the token in the Authorization header (servers and CLIs can
 * set headers) or, to behave exactly like a browser, in the subprotocol list.
 */
import WebSocket from 'ws';
import { BEARER_SUBPROTOCOL_PREFIX, SUBPROTOCOL } from '../protocol';
import { GatehouseClient, type ClientOptions, type SocketFactory, type SocketLike } from './index';

export type Transport = 'header' | 'subprotocol';

export function nodeSocket(transport: Transport = 'header'): SocketFactory {
  return (url, token) =>
    (transport === 'header'
      ? new WebSocket(url, { headers: { Authorization: `Bearer ${token}` }, perMessageDeflate: false })
      : new WebSocket(url, [SUBPROTOCOL, `${BEARER_SUBPROTOCOL_PREFIX}${token}`], { perMessageDeflate: false })) as unknown as SocketLike;
}

export function createNodeClient(options: Omit<ClientOptions, 'socket'> & { transport?: Transport }): GatehouseClient {
  const { transport, ...rest } = options;
  return new GatehouseClient({ ...rest, socket: nodeSocket(transport) });
}

export * from './index';
