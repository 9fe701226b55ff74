/**
 * The lean @connections client (lambda/core/connections-api.ts) sends the request the AWS SDK's
 * PostToConnectionCommand and DeleteConnectionCommand send, signed as the SDK's own signer signs it: the same
 * method, path, body and content type captured from both on one server, and the same signature from
 * `@smithy/signature-v4` for the same request, credentials and time. Then its behaviour on API Gateway's answers:
 * 410 is gone, 429 and 5xx are retried with backoff (a 429 that clears is no loss), 403 is not retried, a request
 * with no answer times out and is retried.
 */
import { createHash, createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiGatewayManagementApiClient, DeleteConnectionCommand, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { SignatureV4 } from '@smithy/signature-v4';
import { ConnectionsApiError, createConnectionsApi, createSigner, environmentCredentials, isGone, isThrottled } from '../lambda/core/connections-api';
import { verifySignature } from '../local/emulator/sigv4';

const REGION = 'eu-west-1';
const CREDENTIALS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', sessionToken: 'session-token-example' };
/** Connection ids as API Gateway makes them (base64: `+`, `/`, `=`), and worse. */
const IDS = ['ygphS8gJpO07bg==', '1Jq1laOF+c/rPg==', 'a b~c*(!)', 'ünïcode'];

/** The SDK signer's hash: node:crypto behind the interface @smithy/signature-v4 expects. */
const bytes = (data: string | ArrayBuffer | ArrayBufferView) =>
  typeof data === 'string' ? Buffer.from(data) : ArrayBuffer.isView(data) ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.from(data);
class NodeSha256 {
  private readonly hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView) {
    this.hash.update(bytes(data));
  }
  async digest() {
    return new Uint8Array(this.hash.digest());
  }
  reset() {}
}

interface Captured {
  method: string;
  url: string;
  headers: Record<string, string>;
  rawHeaders: string[];
  body: Buffer;
}

/** A server that records every request and answers what `answer` says (200 by default). */
async function captureServer(answer: (req: Captured, n: number) => { status: number; type?: string; hang?: boolean } = () => ({ status: 200 })) {
  const requests: Captured[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const captured = { method: req.method!, url: req.url!, headers: req.headers as Record<string, string>, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks) };
      requests.push(captured);
      const { status, type, hang } = answer(captured, requests.length);
      if (hang) return;
      res.writeHead(status, type ? { 'x-amzn-errortype': type, 'content-type': 'application/json' } : {}).end(type ? JSON.stringify({ message: type }) : undefined);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/live`;
  return {
    url,
    requests,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const noSleep = () => Promise.resolve();

describe('the same request as the SDK', () => {
  it('signs every request as @smithy/signature-v4 does (ids that need encoding, bodies, with and without a session token)', async () => {
    const sign = createSigner(REGION);
    const at = Date.UTC(2026, 11, 7, 2, 49, 12);
    for (const id of IDS) {
      for (const body of ['', '{"type":"message","data":{"text":"hello"}}', '{"text":"ünïcode ✓"}']) {
        for (const credentials of [CREDENTIALS, { accessKeyId: CREDENTIALS.accessKeyId, secretAccessKey: CREDENTIALS.secretAccessKey }]) {
          const path = `/live/@connections/${encodeURIComponent(id).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;
          const headers = { host: 'abc123.execute-api.eu-west-1.amazonaws.com', 'content-type': 'application/octet-stream', 'content-length': String(Buffer.byteLength(body)) };
          const ours = sign({ method: 'POST', path, headers, body }, credentials, at);
          const sdk = await new SignatureV4({ service: 'execute-api', region: REGION, credentials, sha256: NodeSha256 }).sign(
            { method: 'POST', protocol: 'https:', hostname: headers.host, path, query: {}, headers: { ...headers, 'x-amz-content-sha256': ours['x-amz-content-sha256'] }, body },
            { signingDate: new Date(at) },
          );
          expect({ id, body, authorization: ours.authorization }).toEqual({ id, body, authorization: sdk.headers.authorization });
          expect(ours['x-amz-date']).toBe(sdk.headers['x-amz-date']);
        }
      }
    }
  });

  it('sends the method, path, body and content type the SDK sends, and the SDK request re-signed here gives its own signature', async () => {
    const server = await captureServer();
    const sdk = new ApiGatewayManagementApiClient({ endpoint: server.url, region: REGION, credentials: CREDENTIALS });
    const lean = createConnectionsApi({ endpoint: server.url, region: REGION, credentials: () => CREDENTIALS });
    try {
      for (const id of IDS) {
        const data = `{"to":${JSON.stringify(id)}}`;
        await sdk.send(new PostToConnectionCommand({ ConnectionId: id, Data: new TextEncoder().encode(data) }));
        await lean.post(id, data);
        await sdk.send(new DeleteConnectionCommand({ ConnectionId: id }));
        await lean.remove(id);
      }
      const pairs = [];
      for (let i = 0; i < server.requests.length; i += 2) pairs.push([server.requests[i], server.requests[i + 1]]);
      const sign = createSigner(REGION);
      for (const [fromSdk, fromLean] of pairs) {
        const shape = (r: Captured) => ({ method: r.method, url: r.url, body: r.body.toString('utf8'), contentType: r.headers['content-type'], token: r.headers['x-amz-security-token'] });
        expect(shape(fromLean)).toEqual(shape(fromSdk));
        // Both verify as AWS verifies (the emulator's independent SigV4 check).
        for (const r of [fromSdk, fromLean]) {
          expect(verifySignature({ method: r.method, url: r.url, rawHeaders: r.rawHeaders, body: r.body }, { service: 'execute-api', region: REGION, secretOf: () => CREDENTIALS.secretAccessKey })).toEqual({ ok: true, accessKeyId: CREDENTIALS.accessKeyId });
        }
        // The SDK's request, its signed headers given to this signer at its time: the very same signature.
        const signed = /SignedHeaders=([^,]+)/.exec(fromSdk.headers.authorization)![1].split(';');
        const own = new Set(['x-amz-date', 'x-amz-content-sha256', 'x-amz-security-token']);
        const headers = Object.fromEntries(signed.filter((h) => !own.has(h)).map((h) => [h, fromSdk.headers[h]]));
        const d = fromSdk.headers['x-amz-date'];
        const at = Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8), +d.slice(9, 11), +d.slice(11, 13), +d.slice(13, 15));
        expect(sign({ method: fromSdk.method, path: fromSdk.url, headers, body: fromSdk.body.toString('utf8') }, CREDENTIALS, at).authorization).toBe(fromSdk.headers.authorization);
      }
      expect(pairs).toHaveLength(IDS.length * 2);
    } finally {
      sdk.destroy();
      await server.close();
    }
  });
});

describe("API Gateway's answers", () => {
  it('reports 410 as gone, without retrying', async () => {
    const server = await captureServer(() => ({ status: 410, type: 'GoneException' }));
    const api = createConnectionsApi({ endpoint: server.url, region: REGION, credentials: () => CREDENTIALS, sleep: noSleep });
    try {
      const err = await api.post('x', '{}').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectionsApiError);
      expect(isGone(err)).toBe(true);
      expect(err).toMatchObject({ status: 410, type: 'GoneException' });
      expect(server.requests).toHaveLength(1);
    } finally {
      await server.close();
    }
  });

  it('retries 429 and 5xx with growing, jittered delays, so a throttle that clears is no loss', async () => {
    const server = await captureServer((_r, n) => (n === 1 ? { status: 429, type: 'LimitExceededException' } : n === 2 ? { status: 500, type: 'InternalServerErrorException' } : { status: 200 }));
    const delays: number[] = [];
    const api = createConnectionsApi({ endpoint: server.url, region: REGION, credentials: () => CREDENTIALS, baseDelayMs: 100, random: () => 0.99, sleep: async (ms) => void delays.push(ms) });
    try {
      await api.post('x', '{"n":1}');
      expect(server.requests.map((r) => r.body.toString())).toEqual(['{"n":1}', '{"n":1}', '{"n":1}']);
      expect(delays).toEqual([99, 198]);
    } finally {
      await server.close();
    }
  });

  it('gives up on a throttle after maxAttempts and says it was throttled; a 403 is not retried', async () => {
    const server = await captureServer((r) => (r.url.endsWith('/denied') ? { status: 403, type: 'AccessDeniedException' } : { status: 429, type: 'LimitExceededException' }));
    const api = createConnectionsApi({ endpoint: server.url, region: REGION, credentials: () => CREDENTIALS, maxAttempts: 3, sleep: noSleep });
    try {
      const throttled = await api.post('busy', '{}').catch((e: unknown) => e);
      expect(isThrottled(throttled)).toBe(true);
      expect(server.requests).toHaveLength(3);
      const denied = await api.post('denied', '{}').catch((e: unknown) => e);
      expect(denied).toMatchObject({ status: 403, type: 'AccessDeniedException' });
      expect(server.requests).toHaveLength(4);
    } finally {
      await server.close();
    }
  });

  it('fails a request with no answer after timeoutMs, and retries it', async () => {
    const server = await captureServer((_r, n) => (n === 1 ? { status: 200, hang: true } : { status: 200 }));
    const api = createConnectionsApi({ endpoint: server.url, region: REGION, credentials: () => CREDENTIALS, timeoutMs: 200, sleep: noSleep });
    try {
      const started = Date.now();
      await api.post('x', '{}');
      expect(server.requests).toHaveLength(2);
      expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    } finally {
      await server.close();
    }
  });

  it("reads the function's credentials from its environment, and says which variables are missing", () => {
    expect(environmentCredentials({ AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 'SK', AWS_SESSION_TOKEN: 'ST' })()).toEqual({ accessKeyId: 'AK', secretAccessKey: 'SK', sessionToken: 'ST' });
    expect(environmentCredentials({ AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 'SK' })()).toEqual({ accessKeyId: 'AK', secretAccessKey: 'SK' });
    expect(() => environmentCredentials({ AWS_ACCESS_KEY_ID: 'AK' })()).toThrow('No AWS credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).');
  });
});
