/**
 * The emulated CloudFront applies what a distribution applies: custom error responses to every behaviour (the API's
 * too), S3's 403 for a missing key behind origin access control, the default root object, allowed methods, and the
 * origin request headers (Host replaced or forwarded, X-Forwarded-For appended). Its viewer functions see the query
 * string as it arrived; the last suite runs Gatehouse's own socket-path function through it.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import WebSocket, { WebSocketServer } from 'ws';
import { socketFunctionCode } from '../../lib/edge';
import type { OriginRequest, OriginResponse } from '../../local/emulator/apigateway-http';
import { LocalEdge } from '../../local/emulator/cloudfront';
import type { Resource } from '../../local/emulator/template';
import { template } from './fixtures';

const ALL_VIEWER = '216adef6-5c7f-47e4-b989-5492eafa07d3';
const ALL_VIEWER_EXCEPT_HOST = 'b689b0a8-53d0-40ab-baf2-68738e2966ac';

function distribution(extra: Record<string, unknown> = {}): Record<string, Resource> {
  return {
    Bucket: { Type: 'AWS::S3::Bucket' },
    HttpApi: { Type: 'AWS::ApiGatewayV2::Api', Properties: { ProtocolType: 'HTTP' } },
    WsApi: { Type: 'AWS::ApiGatewayV2::Api', Properties: { ProtocolType: 'WEBSOCKET' } },
    Routes: {
      Type: 'AWS::CloudFront::Function',
      Properties: { FunctionCode: "function handler(event) { var r = event.request; if (r.uri.indexOf('/app/') === 0) r.uri = '/index.html'; return r; }" },
    },
    Headers: { Type: 'AWS::CloudFront::ResponseHeadersPolicy', Properties: { ResponseHeadersPolicyConfig: { SecurityHeadersConfig: { FrameOptions: { FrameOption: 'DENY' } } } } },
    Distribution: {
      Type: 'AWS::CloudFront::Distribution',
      Properties: {
        DistributionConfig: {
          DefaultRootObject: 'index.html',
          Origins: [
            { Id: 's3', DomainName: 'bucket.s3.eu-west-1.amazonaws.com', S3OriginConfig: {} },
            { Id: 'api', DomainName: { 'Fn::Join': ['', [{ Ref: 'HttpApi' }, '.execute-api.eu-west-1.amazonaws.com']] }, CustomOriginConfig: {} },
            { Id: 'ws', DomainName: { 'Fn::Join': ['', [{ Ref: 'WsApi' }, '.execute-api.eu-west-1.amazonaws.com']] }, CustomOriginConfig: {} },
          ],
          DefaultCacheBehavior: {
            TargetOriginId: 's3',
            ResponseHeadersPolicyId: { Ref: 'Headers' },
            FunctionAssociations: [{ EventType: 'viewer-request', FunctionARN: { 'Fn::GetAtt': ['Routes', 'FunctionARN'] } }],
          },
          CacheBehaviors: [
            { PathPattern: '/api/*', TargetOriginId: 'api', AllowedMethods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'PATCH', 'POST', 'DELETE'], OriginRequestPolicyId: ALL_VIEWER_EXCEPT_HOST },
            { PathPattern: '/ws', TargetOriginId: 'ws', AllowedMethods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'PATCH', 'POST', 'DELETE'], OriginRequestPolicyId: ALL_VIEWER },
          ],
          ...extra,
        },
      },
    },
  };
}

const ERROR_PAGES = { CustomErrorResponses: [{ ErrorCode: 403, ResponseCode: 200, ResponsePagePath: '/index.html' }] };
const bucket = mkdtempSync(path.join(tmpdir(), 'bucket-'));
writeFileSync(path.join(bucket, 'index.html'), '<!doctype html><title>app</title>');
writeFileSync(path.join(bucket, 'app.js'), 'console.log(1)');

/** The HTTP API origin: a refusal, and an echo of what it was sent. */
async function api(req: OriginRequest): Promise<OriginResponse> {
  if (req.url.startsWith('/api/refused')) return { status: 403, headers: { 'content-type': 'application/json' }, body: Buffer.from('{"error":"new_password_required"}') };
  return { status: 200, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ url: req.url, headers: req.headers })) };
}

const upgrades: IncomingMessage[] = [];
const wss = new WebSocketServer({ noServer: true });

async function serve(resources: Record<string, Resource>): Promise<{ url: string; server: Server }> {
  const edge = new LocalEdge({
    template: template(resources),
    resolve: (value) => JSON.stringify(value).includes('HttpApi') ? 'httpapi.execute-api.eu-west-1.amazonaws.com' : JSON.stringify(value).includes('WsApi') ? 'wsapi.execute-api.eu-west-1.amazonaws.com' : value,
    origins: {
      s3: { dir: bucket },
      http: api,
      api: async (req, socket, head) => {
        upgrades.push(req);
        wss.handleUpgrade(req, socket, head, (ws) => ws.close());
      },
      vpc: async (_req, socket) => void socket.destroy(),
    },
  });
  const server = createServer((req, res) => {
    if (!edge.handleRequest(req, res)) res.writeHead(404).end();
  });
  server.on('upgrade', (req, socket, head) => void edge.handleUpgrade(req, socket, head));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

function get(url: string, options: { method?: string; headers?: Record<string, string> } = {}) {
  return new Promise<{ status: number; headers: IncomingMessage['headers']; body: string }>((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('custom error responses', () => {
  let served: { url: string; server: Server };
  beforeAll(async () => (served = await serve(distribution(ERROR_PAGES))));
  afterAll(() => new Promise((r) => served.server.close(r)));

  it("apply to every behaviour: the API's 403 becomes the app's index.html with status 200", async () => {
    const answer = await get(`${served.url}/api/refused`, { method: 'POST' });
    expect(answer.status).toBe(200);
    expect(answer.body).toContain('<title>app</title>');
  });

  it("replace S3's 403 for a missing key the same way (how the single-page fallback used to be done)", async () => {
    const answer = await get(`${served.url}/no/such/file.js`);
    expect(answer.status).toBe(200);
    expect(answer.body).toContain('<title>app</title>');
  });
});

describe('a distribution without error responses', () => {
  let served: { url: string; server: Server };
  beforeAll(async () => (served = await serve(distribution())));
  afterAll(() => new Promise((r) => served.server.close(r)));

  it("passes the origin's own status and body through", async () => {
    const answer = await get(`${served.url}/api/refused`, { method: 'POST' });
    expect(answer).toMatchObject({ status: 403, body: '{"error":"new_password_required"}' });
  });

  it('answers a missing key with S3\'s 403 AccessDenied (origin access control grants GetObject, not ListBucket)', async () => {
    const answer = await get(`${served.url}/missing.js`);
    expect(answer.status).toBe(403);
    expect(answer.body).toContain('<Code>AccessDenied</Code>');
  });

  it('serves the default root object for /, files as they are, and runs the viewer function of the default behaviour', async () => {
    expect((await get(`${served.url}/`)).body).toContain('<title>app</title>');
    expect((await get(`${served.url}/app.js`)).body).toBe('console.log(1)');
    expect((await get(`${served.url}/app/rooms/general`)).body).toContain('<title>app</title>');
  });

  it("adds the behaviour's response headers policy", async () => {
    expect((await get(`${served.url}/app.js`)).headers['x-frame-options']).toBe('DENY');
  });

  it('refuses methods the behaviour does not allow (403)', async () => {
    expect((await get(`${served.url}/app.js`, { method: 'POST' })).status).toBe(403);
    expect((await get(`${served.url}/api/echo`, { method: 'DELETE' })).status).toBe(200);
  });

  it("sends the origin its own domain as Host (AllViewerExceptHostHeader), X-Forwarded-For with the viewer appended, and X-Amz-Cf-Id", async () => {
    const echo = JSON.parse((await get(`${served.url}/api/echo?x=1`, { headers: { 'x-forwarded-for': '203.0.113.7', 'x-custom': 'kept' } })).body) as {
      url: string;
      headers: Record<string, string>;
    };
    expect(echo.url).toBe('/api/echo?x=1');
    expect(echo.headers).toMatchObject({ host: 'httpapi.execute-api.eu-west-1.amazonaws.com', 'x-forwarded-for': '203.0.113.7, 127.0.0.1', 'x-custom': 'kept' });
    expect(echo.headers['x-amz-cf-id']).toMatch(/^[A-Za-z0-9_-]{40,}$/);
  });

  it('forwards a WebSocket handshake with the viewer\'s Host under AllViewer, and X-Forwarded-For', async () => {
    const ws = new WebSocket(`${served.url.replace('http', 'ws')}/ws`);
    await new Promise((resolve) => ws.once('close', resolve).once('error', resolve));
    const req = upgrades.at(-1)!;
    expect(req.headers.host).toBe(new URL(served.url).host);
    expect(req.headers['x-forwarded-for']).toBe('127.0.0.1');
  });
});

/** A handshake's status: 101 when the origin accepted it. */
function handshake(url: string) {
  return new Promise<number>((resolve) => {
    const ws = new WebSocket(url);
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => resolve(101));
    ws.on('error', () => undefined);
  });
}

/** Echoes the query string its viewer function was given on /api/keys. */
const KEYS = "function handler(event) { var r = event.request; if (r.uri === '/api/keys') return { statusCode: 200, body: JSON.stringify(r.querystring) }; return r; }";
// /api/* echoes its query string; /ws runs the realtime path's function as lib/edge.ts deploys it.
const WITH_FUNCTIONS: Record<string, Resource> = {
  ...distribution({
    CacheBehaviors: [
      {
        PathPattern: '/api/*',
        TargetOriginId: 'api',
        OriginRequestPolicyId: ALL_VIEWER_EXCEPT_HOST,
        FunctionAssociations: [{ EventType: 'viewer-request', FunctionARN: { 'Fn::GetAtt': ['ApiFn', 'FunctionARN'] } }],
      },
      {
        PathPattern: '/ws',
        TargetOriginId: 'ws',
        OriginRequestPolicyId: ALL_VIEWER,
        FunctionAssociations: [{ EventType: 'viewer-request', FunctionARN: { 'Fn::GetAtt': ['WsFn', 'FunctionARN'] } }],
      },
    ],
  }),
  ApiFn: { Type: 'AWS::CloudFront::Function', Properties: { FunctionCode: KEYS } },
  WsFn: { Type: 'AWS::CloudFront::Function', Properties: { FunctionCode: socketFunctionCode("  request.uri = '/live';") } },
};

describe('the query string', () => {
  let served: { url: string; server: Server };
  beforeAll(async () => (served = await serve(WITH_FUNCTIONS)));
  afterAll(() => new Promise((r) => served.server.close(r)));

  it('reaches the viewer function as it arrived: keys and values not percent-decoded, split on & and the first =', async () => {
    const answer = await get(`${served.url}/api/keys?%74oken=x&to%6Ben=y%3Dz&q=a=b&a=1&a=2&flag`);
    expect(JSON.parse(answer.body)).toEqual({
      '%74oken': { value: 'x' },
      'to%6Ben': { value: 'y%3Dz' },
      q: { value: 'a=b' },
      a: { value: '1', multiValue: [{ value: '1' }, { value: '2' }] },
      flag: { value: '' },
    });
  });

  it('reaches the origin rebuilt from the raw pieces, never encoded twice', async () => {
    const echo = JSON.parse((await get(`${served.url}/api/echo?%74oken=x&q=a%20b%2Bc&a=1&a=2`)).body) as { url: string };
    expect(echo.url).toBe('/api/echo?%74oken=x&q=a%20b%2Bc&a=1&a=2');
  });
});

describe("Gatehouse's socket-path function at the emulated edge", () => {
  let served: { url: string; server: Server };
  beforeAll(async () => (served = await serve(WITH_FUNCTIONS)));
  afterAll(() => new Promise((r) => served.server.close(r)));

  it.each([
    ['?token=x', 'token=x'],
    ['a percent-encoded key, ?%74oken=x', '%74oken=x'],
    ['?to%6Ben=x', 'to%6Ben=x'],
    ['an empty token, ?token=', 'token='],
    ['a key that does not decode', '%E0%A4%A=x'],
  ])('answers 400 to %s on the socket path', async (_name, query) => {
    expect(await handshake(`${served.url.replace('http', 'ws')}/ws?${query}`)).toBe(400);
  });

  it('forwards other keys to the stage as they arrived', async () => {
    expect(await handshake(`${served.url.replace('http', 'ws')}/ws?tenant=acme&x=%74oken`)).toBe(101);
    expect(upgrades.at(-1)!.url).toBe('/live?tenant=acme&x=%74oken');
  });
});
