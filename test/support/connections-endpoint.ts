/**
 * A stand-in for API Gateway's @connections management endpoint, reached by the real
 * ApiGatewayManagementApiClient through its endpoint setting: POST delivers, unknown ids answer 410 Gone.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';

export interface ConnectionsEndpoint {
  url: string;
  client: ApiGatewayManagementApiClient;
  /** Connections that exist; posting to any other id answers 410. */
  live: Set<string>;
  received: Map<string, unknown[]>;
  /** Connections closed through DELETE @connections, in order. */
  deleted: string[];
  maxConcurrent: number;
  /** Delay before answering, to make concurrency observable. */
  delayMs: number;
  close(): Promise<void>;
}

export async function startConnectionsEndpoint(stage = 'live'): Promise<ConnectionsEndpoint> {
  let current = 0;
  const state = {
    live: new Set<string>(),
    received: new Map<string, unknown[]>(),
    deleted: [] as string[],
    maxConcurrent: 0,
    delayMs: 0,
  } as ConnectionsEndpoint;
  const server = createServer((req, res) => {
    const match = new RegExp(`^/${stage}/@connections/([^/?]+)$`).exec(req.url ?? '');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      current++;
      state.maxConcurrent = Math.max(state.maxConcurrent, current);
      if (state.delayMs) await new Promise((r) => setTimeout(r, state.delayMs));
      current--;
      const id = match ? decodeURIComponent(match[1]) : undefined;
      if (!id || (req.method !== 'POST' && req.method !== 'DELETE')) {
        res.writeHead(404).end();
        return;
      }
      if (!state.live.has(id)) {
        res.writeHead(410, { 'content-type': 'application/json', 'x-amzn-errortype': 'GoneException' });
        res.end(JSON.stringify({ message: 'Gone' }));
        return;
      }
      if (req.method === 'DELETE') {
        state.live.delete(id);
        state.deleted.push(id);
        res.writeHead(204).end();
        return;
      }
      const list = state.received.get(id) ?? [];
      list.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      state.received.set(id, list);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/${stage}`;
  state.client = new ApiGatewayManagementApiClient({
    endpoint: state.url,
    region: 'eu-west-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  state.close = () =>
    new Promise<void>((resolve) => {
      state.client.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}
