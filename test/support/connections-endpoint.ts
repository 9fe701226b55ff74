/**
 * A stand-in for API Gateway's @connections management endpoint, reached by the functions' own client
 * (lambda/core/connections-api.ts) through its endpoint setting: a request must carry a valid SigV4 signature
 * (403 otherwise, as AWS answers), POST delivers, unknown ids answer 410 Gone.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createConnectionsApi, type ConnectionsApi } from '../../lambda/core/connections-api';
import { verifySignature } from '../../local/emulator/sigv4';

const CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

export interface ConnectionsEndpoint {
  url: string;
  client: ConnectionsApi;
  /** Connections that exist; posting to any other id answers 410. */
  live: Set<string>;
  received: Map<string, unknown[]>;
  /** Connections closed through DELETE @connections, in order. */
  deleted: string[];
  maxConcurrent: number;
  /** Delay before answering, to make concurrency observable. */
  delayMs: number;
  /** Connections whose next posts answer 429 (LimitExceededException), this many times each. */
  throttle: Map<string, number>;
  /** POSTs answered, 429s included. */
  posts: number;
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
    throttle: new Map<string, number>(),
    posts: 0,
  } as ConnectionsEndpoint;
  const server = createServer((req, res) => {
    const match = new RegExp(`^/${stage}/@connections/([^/?]+)$`).exec(req.url ?? '');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const signed = verifySignature({ method: req.method ?? 'GET', url: req.url ?? '/', rawHeaders: req.rawHeaders, body: Buffer.concat(chunks) }, {
        service: 'execute-api',
        region: 'eu-west-1',
        secretOf: (key) => (key === CREDENTIALS.accessKeyId ? CREDENTIALS.secretAccessKey : undefined),
      });
      if (!signed.ok) {
        res.writeHead(403, { 'content-type': 'application/json', 'x-amzn-errortype': 'InvalidSignatureException' }).end(JSON.stringify({ message: signed.message }));
        return;
      }
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
      if (req.method === 'POST') state.posts++;
      const throttled = state.throttle.get(id) ?? 0;
      if (req.method === 'POST' && throttled > 0) {
        state.throttle.set(id, throttled - 1);
        res.writeHead(429, { 'content-type': 'application/json', 'x-amzn-errortype': 'LimitExceededException' }).end(JSON.stringify({ message: 'Rate exceeded' }));
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
  state.client = createConnectionsApi({ endpoint: state.url, region: 'eu-west-1', credentials: () => CREDENTIALS });
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}
