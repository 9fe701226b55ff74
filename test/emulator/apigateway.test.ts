/**
 * The emulated API Gateway WebSocket API refuses what API Gateway refuses: binary frames, authorizer answers it
 * would not accept, unsigned or unauthorized @connections calls; and it behaves as API Gateway does where a client
 * or function can tell: 502 for a failed $connect, $disconnect without the handshake's credentials, the idle timer,
 * 429 for a client that does not read; and its server drops handshakes that trickle in (slowloris).
 */
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { ApiGatewayManagementApiClient, DeleteConnectionCommand, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import WebSocket from 'ws';
import { createGatewayServer, WebSocketGateway } from '../../local/emulator/apigateway-websocket';
import { Iam, OPERATOR_CREDENTIALS } from '../../local/emulator/iam';
import { AccountConcurrency, LocalFunction } from '../../local/emulator/lambda';
import { Resolver, type Resource } from '../../local/emulator/template';
import { Assembly, eventually, lambdaFunction, role, template } from './fixtures';

const assembly = new Assembly();
const lines: string[] = [];

const AUTHORIZER = `
exports.handler = async (event) => {
  const test = event.headers['x-test'] ?? 'allow';
  const allow = { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: test === 'deny' ? 'Deny' : 'Allow', Resource: event.methodArn }] };
  if (test === 'unauthorized') throw new Error('Unauthorized');
  if (test === 'no-principal') return { policyDocument: allow };
  if (test === 'object-context') return { principalId: 'u1', policyDocument: allow, context: { nested: { a: 1 } } };
  if (test === 'big') return { principalId: 'u1', policyDocument: allow, context: { blob: 'x'.repeat(9000) } };
  return { principalId: 'u1', policyDocument: allow, context: { userId: 'u1', count: 3, admin: true } };
};`;
const CONNECT = `
exports.handler = async (event) => {
  if (event.headers['x-test'] === 'connect-throws') throw new Error('boom');
  console.log(JSON.stringify({ route: '$connect', headers: event.headers, authorizer: event.requestContext.authorizer }));
  return { statusCode: 200 };
};`;
const DISCONNECT = `exports.handler = async (event) => {
  console.log(JSON.stringify({ route: '$disconnect', headers: event.headers, code: event.requestContext.disconnectStatusCode }));
  return { statusCode: 200 };
};`;
const DEFAULT = `exports.handler = async (event) => ({ statusCode: 200, body: JSON.stringify({ echo: event.body, connectionId: event.requestContext.connectionId }) });`;

const integration = (fn: string): Resource => ({
  Type: 'AWS::ApiGatewayV2::Integration',
  Properties: { ApiId: { Ref: 'Api' }, IntegrationType: 'AWS_PROXY', IntegrationUri: { 'Fn::Join': ['', ['arn:aws:apigateway:lambda:path/functions/', { 'Fn::GetAtt': [fn, 'Arn'] }, '/invocations']] } },
});
const route = (key: string, integrationId: string, extra: Record<string, unknown> = {}): Resource => ({
  Type: 'AWS::ApiGatewayV2::Route',
  Properties: { ApiId: { Ref: 'Api' }, RouteKey: key, Target: { 'Fn::Join': ['', ['integrations/', { Ref: integrationId }]] }, ...extra },
});
const SOURCES = { AuthFn: AUTHORIZER, ConnectFn: CONNECT, DisconnectFn: DISCONNECT, DefaultFn: DEFAULT };
const resources: Record<string, Resource> = {
  ...Object.fromEntries(Object.entries(SOURCES).map(([id, source]) => [id, lambdaFunction(assembly, source)])),
  Api: { Type: 'AWS::ApiGatewayV2::Api', Properties: { ProtocolType: 'WEBSOCKET', RouteSelectionExpression: '$request.body.action' } },
  Stage: { Type: 'AWS::ApiGatewayV2::Stage', Properties: { ApiId: { Ref: 'Api' }, StageName: 'live' } },
  Authorizer: {
    Type: 'AWS::ApiGatewayV2::Authorizer',
    Properties: { ApiId: { Ref: 'Api' }, AuthorizerType: 'REQUEST', AuthorizerUri: { 'Fn::Join': ['', ['arn:', { 'Fn::GetAtt': ['AuthFn', 'Arn'] }]] } },
  },
  ConnectIntegration: integration('ConnectFn'),
  DisconnectIntegration: integration('DisconnectFn'),
  DefaultIntegration: integration('DefaultFn'),
  ConnectRoute: route('$connect', 'ConnectIntegration', { AuthorizationType: 'CUSTOM', AuthorizerId: { Ref: 'Authorizer' } }),
  DisconnectRoute: route('$disconnect', 'DisconnectIntegration'),
  DefaultRoute: route('$default', 'DefaultIntegration', { RouteResponseSelectionExpression: '$default' }),
  // A route no function runs: a MOCK integration answering from its templates.
  PingIntegration: { Type: 'AWS::ApiGatewayV2::Integration', Properties: { ApiId: { Ref: 'Api' }, IntegrationType: 'MOCK', RequestTemplates: { $default: '{"statusCode": 200}' }, TemplateSelectionExpression: '\\$default' } },
  PingResponse: {
    Type: 'AWS::ApiGatewayV2::IntegrationResponse',
    Properties: { ApiId: { Ref: 'Api' }, IntegrationId: { Ref: 'PingIntegration' }, IntegrationResponseKey: '$default', ResponseTemplates: { $default: '{"type":"pong","ts":$context.requestTimeEpoch,"connection":"$context.connectionId"}' } },
  },
  PingRoute: route('ping', 'PingIntegration', { RouteResponseSelectionExpression: '$default' }),
  BrokenIntegration: { Type: 'AWS::ApiGatewayV2::Integration', Properties: { ApiId: { Ref: 'Api' }, IntegrationType: 'MOCK', RequestTemplates: { $default: '{"ok": true}' } } },
  BrokenRoute: route('broken', 'BrokenIntegration', { RouteResponseSelectionExpression: '$default' }),
  Poster: role([{ Effect: 'Allow', Action: 'execute-api:ManageConnections', Resource: 'arn:aws:execute-api:eu-west-1:000000000000:localapi/live/POST/@connections/*' }]),
  Bystander: role([{ Effect: 'Allow', Action: 'dynamodb:GetItem', Resource: '*' }]),
};
const iam = new Iam({ template: template(resources), resolver: new Resolver({}, {}), accountId: '000000000000' });

let server: Server;
let gateway: WebSocketGateway;
let url: string;
let endpoint: string;
const functions = new Map<string, LocalFunction>();

/** The gateway every test here runs: the template's routes over the bundled functions, IAM on. */
const gatewayOptions = () => ({
    template: template(resources),
    functions,
    region: 'eu-west-1',
    apiId: 'localapi',
    accountId: '000000000000',
    idleTimeoutMs: 600,
    maxConnectionMs: 60_000,
    deliverDisconnect: true,
    log: () => undefined,
    iam,
});

beforeAll(async () => {
  const account = new AccountConcurrency();
  for (const [id, source] of Object.entries(SOURCES)) {
    const code = assembly.bundle(source);
    functions.set(id, new LocalFunction({ name: id, dir: `${assembly.dir}/asset.${code.S3Key.replace('.zip', '')}`, handler: 'index.handler', env: {}, timeoutMs: 3000 }, (_s, line) => lines.push(line), account));
  }
  gateway = new WebSocketGateway({ ...gatewayOptions(), clientBufferBytes: 64 * 1024 });
  server = createServer((req, res) => {
    if (!gateway.handleRequest(req, res)) res.writeHead(404).end();
  });
  server.on('upgrade', (req, socket, head) => void gateway.handleUpgrade(req, socket, head));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  url = `ws://${origin}/live`;
  endpoint = `http://${origin}/live`;
});
afterAll(async () => {
  await gateway?.close();
  await new Promise((resolve) => server.close(resolve));
  await Promise.all([...functions.values()].map((f) => f.stop()));
});

/** The status of the handshake (101 when accepted) and the socket. */
function open(headers: Record<string, string> = {}, target = url) {
  return new Promise<{ status: number; ws?: WebSocket }>((resolve) => {
    const ws = new WebSocket(target, { headers });
    ws.on('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0 }));
    ws.on('open', () => resolve({ status: 101, ws }));
    ws.on('error', () => undefined);
  });
}
const closed = (ws: WebSocket) => new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
const logged = (route: string) => lines.map((l) => JSON.parse(l) as { route: string; headers: Record<string, string>; code?: number; authorizer?: Record<string, string> }).filter((l) => l.route === route);
async function connectionId(ws: WebSocket): Promise<string> {
  const reply = new Promise<string>((resolve) => ws.once('message', (data) => resolve(JSON.parse(String(data)).connectionId)));
  ws.send('hello');
  return reply;
}
const client = (credentials = iam.credentialsOf('Poster')) => new ApiGatewayManagementApiClient({ endpoint, region: 'eu-west-1', credentials, maxAttempts: 1 });

describe('the handshake', () => {
  it('accepts a valid authorizer answer and hands its context to the route stringified, beside the principal', async () => {
    const { status, ws } = await open();
    expect(status).toBe(101);
    expect(logged('$connect').at(-1)?.authorizer).toEqual({ principalId: 'u1', userId: 'u1', count: '3', admin: 'true' });
    ws!.close();
  });

  it.each([
    ['no principalId', 'no-principal'],
    ['a context value that is an object', 'object-context'],
    ['a result over the 8 KB quota', 'big'],
  ])('answers 500 when the authorizer returns %s', async (_name, test) => {
    expect((await open({ 'x-test': test })).status).toBe(500);
  });

  it('answers 403 for Deny and 401 for "Unauthorized"', async () => {
    expect((await open({ 'x-test': 'deny' })).status).toBe(403);
    expect((await open({ 'x-test': 'unauthorized' })).status).toBe(401);
  });

  it('answers 502 when the $connect integration fails', async () => {
    expect((await open({ 'x-test': 'connect-throws' })).status).toBe(502);
  });

  it('adds the forwarding headers API Gateway adds before $connect sees the request', async () => {
    const { ws } = await open();
    expect(logged('$connect').at(-1)?.headers).toMatchObject({ 'X-Forwarded-For': '127.0.0.1', 'X-Forwarded-Proto': 'https', 'X-Forwarded-Port': '443', 'X-Amzn-Trace-Id': expect.stringMatching(/^Root=1-/) });
    ws!.close();
  });
});

describe('frames and the connection', () => {
  it('closes the connection with 1003 on a binary frame (API Gateway supports text frames only)', async () => {
    const { ws } = await open();
    const code = closed(ws!);
    ws!.send(Buffer.from([1, 2, 3]), { binary: true });
    expect(await code).toBe(1003);
  });

  it('sends $disconnect with API Gateway\'s own headers: no Authorization, no Cookie, and the close code', async () => {
    const { ws } = await open({ Authorization: 'Bearer secret-token', Cookie: 'session=secret' });
    ws!.close(4321);
    await eventually(() => logged('$disconnect').some((l) => l.code === 4321), 3000, '$disconnect');
    const headers = logged('$disconnect').find((l) => l.code === 4321)!.headers;
    expect(Object.keys(headers).sort()).toEqual(['Host', 'X-Forwarded-For', 'x-api-key', 'x-restapi']);
    expect(JSON.stringify(headers)).not.toMatch(/secret/);
  });

  it('resets the idle timer on traffic in either direction: @connections posts keep a silent client open', async () => {
    const { ws } = await open();
    const id = await connectionId(ws!);
    let alive = true;
    ws!.on('close', () => (alive = false));
    for (let i = 0; i < 8; i++) {
      await client().send(new PostToConnectionCommand({ ConnectionId: id, Data: new TextEncoder().encode('tick') }));
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(alive).toBe(true); // 1.6 s, well past the 0.6 s idle timeout
    expect(await closed(ws!)).toBe(1001); // and once nothing moves, it idles out
  });
});

describe('MOCK integrations', () => {
  it('answers a route from its templates, with the $context variables filled in and no function run', async () => {
    const { ws } = await open();
    const id = await connectionId(ws!);
    const before = lines.length;
    const reply = new Promise<string>((resolve) => ws!.once('message', (data) => resolve(String(data))));
    const sent = Date.now();
    ws!.send(JSON.stringify({ action: 'ping' }));
    const pong = JSON.parse(await reply) as { type: string; ts: number; connection: string };
    expect(pong).toEqual({ type: 'pong', ts: expect.any(Number), connection: id });
    expect(Math.abs(pong.ts - sent)).toBeLessThan(5000);
    expect(lines.length).toBe(before); // no function ran (every function here logs)
    ws!.close();
  });

  it('fails a MOCK route whose request template names no statusCode as an integration failure', async () => {
    const { ws } = await open();
    await connectionId(ws!);
    const reply = new Promise<string>((resolve) => ws!.once('message', (data) => resolve(String(data))));
    ws!.send(JSON.stringify({ action: 'broken' }));
    expect(JSON.parse(await reply)).toMatchObject({ message: 'Internal server error' });
    ws!.close();
  });

  it('refuses, when it loads the template, a mapping template it cannot evaluate', () => {
    const withInput = { ...resources, PingResponse: { ...resources.PingResponse, Properties: { ...resources.PingResponse.Properties, ResponseTemplates: { $default: '{"echo": $input.body}' } } } };
    expect(() => new WebSocketGateway({ template: template(withInput), functions, region: 'eu-west-1', apiId: 'localapi', accountId: '000000000000', idleTimeoutMs: 600, maxConnectionMs: 60_000, deliverDisconnect: true, log: () => undefined })).toThrow(
      /PingResponse: a mapping template the emulator cannot evaluate/,
    );
  });
});

describe("@connections under the account's throttle quota", () => {
  it('answers 429 LimitExceededException beyond the bucket, refills at the rate, and answers after the modelled latency', async () => {
    // API Gateway's quota is 10,000 a second with a bucket of 5,000, across the account; here 2 a second, a bucket of 3.
    const small = new WebSocketGateway({ ...gatewayOptions(), accountRate: { perSecond: 2, burst: 3 }, connectionsLatencyMs: 150 });
    const own = createServer((req, res) => {
      if (!small.handleRequest(req, res)) res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => own.listen(0, '127.0.0.1', resolve));
    const api = new ApiGatewayManagementApiClient({ endpoint: `http://127.0.0.1:${(own.address() as AddressInfo).port}/live`, region: 'eu-west-1', credentials: iam.credentialsOf('Poster'), maxAttempts: 1 });
    const post = () => api.send(new PostToConnectionCommand({ ConnectionId: 'nobody', Data: new Uint8Array([1]) })).then(() => 200, (err: { $metadata?: { httpStatusCode?: number }; name?: string }) => `${err.$metadata?.httpStatusCode} ${err.name}`);
    try {
      const started = Date.now();
      const answers = await Promise.all(Array.from({ length: 5 }, post));
      expect(Date.now() - started).toBeGreaterThanOrEqual(150);
      expect(answers.sort()).toEqual(['410 GoneException', '410 GoneException', '410 GoneException', '429 LimitExceededException', '429 LimitExceededException']);
      await new Promise((r) => setTimeout(r, 600)); // a second's worth of refill, more or less: one token
      expect(await post()).toBe('410 GoneException');
    } finally {
      api.destroy();
      await small.close();
      await new Promise((resolve) => own.close(resolve));
    }
  });
});

describe('@connections', () => {
  it('refuses an unsigned request (403 MissingAuthenticationTokenException) and an unknown key', async () => {
    const { ws } = await open();
    const id = await connectionId(ws!);
    const unsigned = await fetch(`${endpoint}/@connections/${encodeURIComponent(id)}`, { method: 'POST', body: 'x' });
    expect(unsigned.status).toBe(403);
    expect(unsigned.headers.get('x-amzn-errortype')).toBe('MissingAuthenticationTokenException');
    await expect(client({ accessKeyId: 'AKIAUNKNOWN', secretAccessKey: 'x' }).send(new PostToConnectionCommand({ ConnectionId: id, Data: new Uint8Array([1]) }))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 403 },
    });
    ws!.close();
  });

  it('allows exactly what the caller\'s role grants: POST for the poster, nothing for a bystander, and not DELETE', async () => {
    const { ws } = await open();
    const id = await connectionId(ws!);
    const received = new Promise<string>((resolve) => ws!.once('message', (data) => resolve(String(data))));
    await client().send(new PostToConnectionCommand({ ConnectionId: id, Data: new TextEncoder().encode('allowed') }));
    expect(await received).toBe('allowed');
    const denied = client(iam.credentialsOf('Bystander')).send(new PostToConnectionCommand({ ConnectionId: id, Data: new Uint8Array([1]) }));
    await expect(denied).rejects.toMatchObject({ $metadata: { httpStatusCode: 403 }, message: expect.stringContaining('execute-api:ManageConnections') });
    await expect(client().send(new DeleteConnectionCommand({ ConnectionId: id }))).rejects.toMatchObject({ $metadata: { httpStatusCode: 403 } });
    // The operator (the developer's own credentials) may do anything.
    await client(OPERATOR_CREDENTIALS).send(new DeleteConnectionCommand({ ConnectionId: id }));
    expect(await closed(ws!)).toBe(1000);
  });

  it('answers 429 LimitExceededException while the client is not reading (its buffer is full)', async () => {
    const { ws } = await open();
    const id = await connectionId(ws!);
    (ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const chunk = new TextEncoder().encode('x'.repeat(100 * 1024));
    let status = 200;
    for (let i = 0; i < 300 && status === 200; i++) {
      status = await client()
        .send(new PostToConnectionCommand({ ConnectionId: id, Data: chunk }))
        .then(() => 200, (err: { $metadata?: { httpStatusCode?: number }; name: string }) => (err.name === 'LimitExceededException' ? 429 : (err.$metadata?.httpStatusCode ?? 0)));
    }
    expect(status).toBe(429);
    ws!.terminate();
  });

  it('answers 413 PayloadTooLargeException over the 128 KB message quota, and closes a client frame over 32 KB with 1009', async () => {
    const { ws } = await open();
    const id = await connectionId(ws!);
    await expect(client().send(new PostToConnectionCommand({ ConnectionId: id, Data: new Uint8Array(128 * 1024 + 1) }))).rejects.toMatchObject({
      name: 'PayloadTooLargeException',
      $metadata: { httpStatusCode: 413 },
    });
    const code = closed(ws!);
    ws!.send('x'.repeat(32 * 1024 + 1));
    expect(await code).toBe(1009);
  });

  it('answers 410 GoneException for a connection that is gone', async () => {
    await expect(client().send(new PostToConnectionCommand({ ConnectionId: 'nobody', Data: new Uint8Array([1]) }))).rejects.toMatchObject({ name: 'GoneException' });
  });
});

describe('the server', () => {
  it('drops 300 trickling partial handshakes within its header timeout while a real client connects meanwhile', async () => {
    const slow = createGatewayServer({ headersTimeoutMs: 1000 });
    slow.on('upgrade', (req, socket, head) => void gateway.handleUpgrade(req, socket, head));
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    const { port } = slow.address() as AddressInfo;
    const sockets: Socket[] = [];
    const timers: NodeJS.Timeout[] = [];
    try {
      // A request line, then one header a byte every 200 ms: never complete.
      const trickling = Promise.all(
        Array.from(
          { length: 300 },
          () =>
            new Promise<number>((resolve) => {
              const socket = connect(port, '127.0.0.1', () => {
                const start = Date.now();
                socket.write('GET /live HTTP/1.1\r\nHost: localhost\r\nX-Slow: ');
                timers.push(setInterval(() => socket.writable && socket.write('a'), 200));
                socket.once('close', () => resolve(Date.now() - start));
              });
              socket.on('error', () => undefined);
              sockets.push(socket);
            }),
        ),
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      const { status, ws } = await open({}, `ws://127.0.0.1:${port}/live`);
      expect(status).toBe(101);
      ws!.close();
      const held = await trickling;
      // Checked every second: dropped between 1 and 2 s, well before Node's default 60 s (checked every 30 s).
      expect(Math.min(...held)).toBeGreaterThanOrEqual(900);
      expect(Math.max(...held)).toBeLessThan(4000);
    } finally {
      timers.forEach(clearInterval);
      sockets.forEach((s) => s.destroy());
      await new Promise((resolve) => slow.close(resolve));
    }
  });
});
