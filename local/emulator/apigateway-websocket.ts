/**
 * An API Gateway WebSocket API emulator, configured from the synthesized template (routes, route selection
 * expression, authorizer and identity sources, integrations, route responses) and invoking the functions' bundles.
 *
 * Reproduced where a client or a function can observe it, and as strict as API Gateway:
 * - the upgrade: authorizer Deny -> 403 and "Unauthorized" -> 401, a missing identity source -> 401 without calling
 *   the authorizer, an authorizer answer without `principalId` or `policyDocument`, with a context value that is not
 *   a string, number or boolean, or over the 8 KB "Lambda authorizer result size" quota -> 500, a $connect
 *   integration that fails -> 502, a non-2xx $connect response rejects the socket with its status, $connect response
 *   headers (the chosen subprotocol) reach the client;
 * - frames: binary frames close the connection with 1003 ("API Gateway WebSocket APIs don't currently support binary
 *   frames", websocket-api-develop-binary-media-types.html), 1009 for frames over 32 KB and messages over 128 KB
 *   (the quotas page), two-way routes send the integration's body back, "Internal server error" frames;
 * - the authorizer context reaches every route stringified ($context.authorizer.<key> is "the stringified value");
 * - `$disconnect` on close, best effort, with the header set API Gateway sends it (Host, X-Forwarded-For, x-api-key,
 *   x-restapi: no Authorization and no Cookie) and the close code and reason;
 * - the 10-minute idle timeout (reset by traffic in either direction) and the 2-hour maximum;
 * - the `@connections` management API: POST, GET, DELETE; 410 GoneException, 413 over 128 KB, 429
 *   LimitExceededException when the client's buffer is full; with an `iam`, SigV4 is required (403
 *   MissingAuthenticationTokenException, InvalidSignatureException...) and the caller needs
 *   `execute-api:ManageConnections` on `<api>/<stage>/<METHOD>/@connections/<id>`
 *   (apigateway-websocket-control-access-iam.html).
 *
 * Not API Gateway's, for local tools: `observe` reports what the gateway sees (sockets opening and closing, frames
 * in, @connections posts out) without interpreting it; a listener that throws is ignored.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { Iam } from './iam';
import type { LocalFunction } from './lambda';
import { verifySignature } from './sigv4';
import { referencedIds, resourcesOfType, type Template } from './template';

export interface GatewayOptions {
  template: Template;
  functions: Map<string, LocalFunction>;
  region: string;
  apiId: string;
  accountId: string;
  /** Close a connection that sent nothing for this long (API Gateway: 10 minutes). */
  idleTimeoutMs: number;
  /** Close every connection after this long (API Gateway: 2 hours). */
  maxConnectionMs: number;
  /** When false, closed connections vanish without $disconnect (to exercise stale-connection cleanup). */
  deliverDisconnect: boolean;
  log: (event: string, fields: Record<string, unknown>) => void;
  /** Require SigV4 and IAM on @connections. @default any caller is allowed */
  iam?: Iam;
  /** @connections POST answers 429 while the client has more than this many bytes unread. @default 1 MiB */
  clientBufferBytes?: number;
  /**
   * The account's throttle quota, which API Gateway applies per account and Region "across HTTP APIs, REST APIs,
   * WebSocket APIs, and WebSocket callback APIs" (the @connections requests): a token bucket of `burst` refilled at
   * `perSecond`; an @connections request beyond it is 429 LimitExceededException. @default 10,000 a second, a bucket
   * of 5,000 (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html)
   */
  accountRate?: { perSecond: number; burst: number };
  /** How long each @connections request takes to answer: Lambda's round trip to API Gateway, for benchmarks. @default 0 */
  connectionsLatencyMs?: number;
}

/** API Gateway's default throttle quota per account and Region (the limits page). */
export const ACCOUNT_RATE = { perSecond: 10_000, burst: 5_000 } as const;

export interface GatewayServerOptions {
  /** Drop a connection whose request headers are not complete after this long. @default 10 seconds */
  headersTimeoutMs?: number;
  /** Drop a connection whose whole request (headers and body) is not in after this long. @default 30 seconds */
  requestTimeoutMs?: number;
}

/**
 * The HTTP server in front of the gateway. Node holds a partial request for its default 60 s header timeout,
 * checked only every 30 s, so trickled handshakes (slowloris) could pin sockets for up to 90 s; API Gateway and
 * CloudFront front ends do not hold idle partial requests for a minute, so neither does the emulator. Checked
 * every second; an upgraded socket leaves the server's checks (the idle and maximum timers govern it).
 */
export function createGatewayServer(options: GatewayServerOptions = {}): Server {
  const headersTimeout = options.headersTimeoutMs ?? 10_000;
  return createServer({
    headersTimeout,
    // Node refuses a request timeout shorter than the header timeout.
    requestTimeout: Math.max(headersTimeout, options.requestTimeoutMs ?? 30_000),
    connectionsCheckingInterval: 1000,
  });
}

/** API Gateway's WebSocket quotas (apigateway-execution-service-websocket-limits-table.html). */
const MAX_FRAME_BYTES = 32 * 1024;
const MAX_MESSAGE_BYTES = 128 * 1024;
const MAX_AUTHORIZER_RESULT_BYTES = 8 * 1024;

interface Route {
  key: string;
  /** The Lambda function behind an AWS_PROXY integration. */
  functionName?: string;
  /** A MOCK integration: its request template, and its integration responses' keys and templates. */
  mock?: { request?: string; responses: Array<{ key: string; template?: string }> };
  twoWay: boolean;
  authorizer?: { functionName: string; identitySource: string[] };
}

/** The `$context` variables a mock's templates may use here (more would need the VTL engine API Gateway runs). */
const TEMPLATE_CONTEXT = ['requestTimeEpoch', 'connectionId', 'requestId', 'stage', 'routeKey', 'apiId', 'eventType', 'domainName'] as const;
/** One of them in a template (global: `replace` resets its lastIndex, so it can be shared). */
const CONTEXT_VARIABLE = new RegExp(`\\$context\\.(${TEMPLATE_CONTEXT.join('|')})\\b`, 'g');

/**
 * A mapping template of a MOCK integration: the `$context` variables above, substituted; anything else of VTL
 * (`$input`, `#set`, other variables) is refused when the template is loaded, so a template the emulator cannot
 * evaluate fails loudly instead of answering something API Gateway would not.
 */
function checkTemplate(template: string, where: string): string {
  const rest = template.replace(CONTEXT_VARIABLE, '');
  if (/[$#]/.test(rest)) throw new Error(`${where}: a mapping template the emulator cannot evaluate (only $context.${TEMPLATE_CONTEXT.join(', $context.')}): ${template}`);
  return template;
}

function renderTemplate(template: string, context: Record<string, unknown>): string {
  return template.replace(CONTEXT_VARIABLE, (_m, name: string) => String(context[name] ?? ''));
}

interface Connection {
  id: string;
  socket: WebSocket;
  connectedAt: number;
  lastActiveAt: number;
  sourceIp: string;
  userAgent: string;
  headers: Record<string, string>;
  multiValueHeaders: Record<string, string[]>;
  query: Record<string, string>;
  authorizer: Record<string, unknown>;
  idle: NodeJS.Timeout;
  maxAge: NodeJS.Timeout;
  /** Set when the gateway itself dropped the connection without telling $disconnect. */
  silent?: boolean;
}

/** What the gateway saw, as `observe` reports it. `at` is epoch milliseconds; `bytes` the UTF-8 size. */
export type GatewayEvent =
  | { kind: 'open'; connectionId: string; at: number }
  | { kind: 'close'; connectionId: string; at: number; code: number }
  /** A text frame from the client, before route selection (frames the gateway refuses are not reported). */
  | { kind: 'message'; connectionId: string; at: number; bytes: number }
  /** An @connections POST delivered to the client's socket. */
  | { kind: 'post'; connectionId: string; at: number; bytes: number; data: string };

type ProxyResult = { statusCode?: number; headers?: Record<string, string>; body?: string } | undefined;

export class WebSocketGateway {
  readonly stage: string;
  private readonly routes = new Map<string, Route>();
  private readonly selection: string[];
  private readonly connections = new Map<string, Connection>();
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_MESSAGE_BYTES,
    perMessageDeflate: false,
    handleProtocols: (_offered, req) => (req as IncomingMessage & { chosenProtocol?: string }).chosenProtocol ?? false,
  });
  private domainName = 'localhost';
  /** Invocations in progress, so that shutdown waits for them (a $disconnect still writing to the store). */
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly observers = new Set<(event: GatewayEvent) => void>();
  /** The account's throttle bucket: tokens left, and when it was last refilled. */
  private readonly bucket: { tokens: number; at: number };

  constructor(private readonly options: GatewayOptions) {
    this.bucket = { tokens: (options.accountRate ?? ACCOUNT_RATE).burst, at: Date.now() };
    const { template } = options;
    const websocketApis = resourcesOfType(template, 'AWS::ApiGatewayV2::Api').filter(([, a]) => a.Properties?.ProtocolType === 'WEBSOCKET');
    if (websocketApis.length !== 1) throw new Error(`Expected one WebSocket API in the template, found ${websocketApis.length}`);
    const [apiId, api] = websocketApis[0];
    const expression = String(api.Properties?.RouteSelectionExpression ?? '$request.body.action');
    if (!expression.startsWith('$request.body.')) throw new Error(`Unsupported route selection expression ${expression}`);
    this.selection = expression.slice('$request.body.'.length).split('.');
    const stage = resourcesOfType(template, 'AWS::ApiGatewayV2::Stage').find(([, s]) => referencedIds(s.Properties?.ApiId).includes(apiId));
    this.stage = String(stage?.[1].Properties?.StageName ?? '$default');

    const functionOf = (logicalId: string, kind: string): string => {
      const resource = template.Resources[logicalId];
      const uri = kind === 'integration' ? resource?.Properties?.IntegrationUri : resource?.Properties?.AuthorizerUri;
      const fn = referencedIds(uri).find((id) => template.Resources[id]?.Type === 'AWS::Lambda::Function');
      if (!fn) throw new Error(`The ${kind} ${logicalId} does not point at a Lambda function in the template`);
      return fn;
    };
    /** A MOCK integration's templates: the request template (`$default`), and its integration responses. */
    const mockOf = (integrationId: string): Route['mock'] => {
      const p = template.Resources[integrationId]?.Properties ?? {};
      const pick = (templates: Record<string, string> | undefined) => templates?.$default ?? Object.values(templates ?? {})[0];
      const request = pick(p.RequestTemplates as Record<string, string> | undefined);
      const responses = resourcesOfType(template, 'AWS::ApiGatewayV2::IntegrationResponse')
        .filter(([, r]) => referencedIds(r.Properties?.IntegrationId).includes(integrationId))
        .map(([id, r]) => {
          const response = pick(r.Properties?.ResponseTemplates as Record<string, string> | undefined);
          return { key: String(r.Properties?.IntegrationResponseKey), ...(response !== undefined ? { template: checkTemplate(response, id) } : {}) };
        });
      return { ...(request !== undefined ? { request: checkTemplate(request, integrationId) } : {}), responses };
    };
    for (const [, route] of resourcesOfType(template, 'AWS::ApiGatewayV2::Route')) {
      const p = route.Properties ?? {};
      if (!referencedIds(p.ApiId).includes(apiId)) continue;
      const integrationId = referencedIds(p.Target)[0];
      const authorizerId = p.AuthorizationType === 'CUSTOM' ? referencedIds(p.AuthorizerId)[0] : undefined;
      const mock = template.Resources[integrationId]?.Properties?.IntegrationType === 'MOCK';
      if (mock && (p.RouteKey === '$connect' || p.RouteKey === '$disconnect')) throw new Error(`The emulator runs ${p.RouteKey} through a Lambda integration only`);
      this.routes.set(p.RouteKey, {
        key: p.RouteKey,
        ...(mock ? { mock: mockOf(integrationId) } : { functionName: functionOf(integrationId, 'integration') }),
        twoWay: p.RouteResponseSelectionExpression !== undefined,
        ...(authorizerId
          ? {
              authorizer: {
                functionName: functionOf(authorizerId, 'authorizer'),
                identitySource: (template.Resources[authorizerId].Properties?.IdentitySource as string[] | undefined) ?? [],
              },
            }
          : {}),
      });
    }
    if (!this.routes.has('$connect')) throw new Error('The WebSocket API has no $connect route');
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Whether the gateway holds an open socket for this connection (a stale store item has none). */
  isOpen(connectionId: string): boolean {
    return this.connections.get(connectionId)?.socket.readyState === WebSocket.OPEN;
  }

  /** Calls `listener` with everything the gateway sees from now on; returns a function that stops it. */
  observe(listener: (event: GatewayEvent) => void): () => void {
    this.observers.add(listener);
    return () => this.observers.delete(listener);
  }

  private report(event: GatewayEvent): void {
    for (const listener of this.observers) {
      try {
        listener(event);
      } catch {
        // an observer's failure is its own
      }
    }
  }

  private invoke(functionName: string, event: unknown): Promise<unknown> {
    const fn = this.options.functions.get(functionName);
    if (!fn) return Promise.reject(new Error(`Function ${functionName} is not running`));
    const call = fn.invoke(event);
    const tracked = call.catch(() => undefined);
    this.inFlight.add(tracked);
    void tracked.finally(() => this.inFlight.delete(tracked));
    return call;
  }

  private requestContext(conn: Pick<Connection, 'id' | 'connectedAt' | 'sourceIp' | 'userAgent'>, routeKey: string, eventType: string) {
    const now = Date.now();
    return {
      routeKey,
      eventType,
      extendedRequestId: randomUUID(),
      requestTime: new Date(now).toUTCString(),
      messageDirection: 'IN',
      stage: this.stage,
      connectedAt: conn.connectedAt,
      requestTimeEpoch: now,
      identity: { sourceIp: conn.sourceIp, userAgent: conn.userAgent },
      requestId: randomUUID(),
      domainName: this.domainName,
      connectionId: conn.id,
      apiId: this.options.apiId,
    };
  }

  /** Handles the HTTP upgrade of a client connecting to `/<stage>`. */
  async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname.replace(/\/$/, '') !== `/${this.stage}`) return reject(socket, 404, 'Not Found');
    this.domainName = req.headers.host ?? this.domainName;
    const headers: Record<string, string> = {};
    const multiValueHeaders: Record<string, string[]> = {};
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const [name, value] = [req.rawHeaders[i], req.rawHeaders[i + 1]];
      headers[name] = headers[name] === undefined ? value : `${headers[name]},${value}`;
      (multiValueHeaders[name] ??= []).push(value);
    }
    const query = Object.fromEntries(url.searchParams);
    const now = Date.now();
    const conn = {
      id: randomBytes(10).toString('base64'),
      connectedAt: now,
      sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
      userAgent: headers['User-Agent'] ?? headers['user-agent'] ?? '',
    };
    const connectRoute = this.routes.get('$connect')!;
    let authorizer: Record<string, unknown> = {};

    if (connectRoute.authorizer) {
      const missing = connectRoute.authorizer.identitySource.some((source) => {
        const [, kind, name] = /^route\.request\.(header|querystring)\.(.+)$/.exec(source) ?? [];
        if (kind === 'header') return !Object.keys(headers).some((h) => h.toLowerCase() === name.toLowerCase() && headers[h]);
        if (kind === 'querystring') return !query[name];
        return false;
      });
      if (missing) return reject(socket, 401, 'Unauthorized');
      const methodArn = `arn:aws:execute-api:${this.options.region}:${this.options.accountId}:${this.options.apiId}/${this.stage}/$connect`;
      let result: { principalId?: string; policyDocument?: { Statement?: unknown[] }; context?: Record<string, unknown> };
      try {
        result = (await this.invoke(connectRoute.authorizer.functionName, {
          type: 'REQUEST',
          methodArn,
          headers,
          multiValueHeaders,
          queryStringParameters: query,
          multiValueQueryStringParameters: Object.fromEntries(Object.entries(query).map(([k, v]) => [k, [v]])),
          stageVariables: {},
          requestContext: this.requestContext(conn, '$connect', 'CONNECT'),
        })) as typeof result;
      } catch (err) {
        const unauthorized = (err as Error).message === 'Unauthorized';
        this.options.log('authorizer_failed', { connectionId: conn.id, unauthorized, error: unauthorized ? undefined : (err as Error).message });
        return reject(socket, unauthorized ? 401 : 500, unauthorized ? 'Unauthorized' : 'Internal server error');
      }
      const invalid = invalidAuthorizerResult(result);
      if (invalid) {
        this.options.log('authorizer_invalid_result', { connectionId: conn.id, error: invalid });
        return reject(socket, 500, 'Internal server error');
      }
      if (!allows(result.policyDocument, methodArn)) return reject(socket, 403, 'Forbidden');
      // API Gateway hands the context to every later route as strings, with the principal id beside it.
      authorizer = {
        principalId: result.principalId,
        ...Object.fromEntries(Object.entries(result.context ?? {}).map(([k, v]) => [k, String(v)])),
      };
    }

    // What API Gateway adds to the request before the integration sees it.
    const forwardedFor = [headers['X-Forwarded-For'] ?? headers['x-forwarded-for'], conn.sourceIp].filter(Boolean).join(', ');
    for (const [name, value] of [
      ['X-Forwarded-For', forwardedFor],
      ['X-Forwarded-Port', '443'],
      ['X-Forwarded-Proto', 'https'],
      ['X-Amzn-Trace-Id', `Root=1-${Math.floor(now / 1000).toString(16)}-${randomBytes(12).toString('hex')}`],
    ] as const) {
      for (const key of Object.keys(headers).filter((k) => k.toLowerCase() === name.toLowerCase())) {
        delete headers[key];
        delete multiValueHeaders[key];
      }
      headers[name] = value;
      multiValueHeaders[name] = [value];
    }
    let response: ProxyResult;
    try {
      response = (await this.invoke(connectRoute.functionName!, {
        headers,
        multiValueHeaders,
        queryStringParameters: query,
        multiValueQueryStringParameters: Object.fromEntries(Object.entries(query).map(([k, v]) => [k, [v]])),
        requestContext: { ...this.requestContext(conn, '$connect', 'CONNECT'), authorizer },
        isBase64Encoded: false,
      })) as ProxyResult;
    } catch (err) {
      // A failed (thrown, timed-out, throttled) $connect integration reaches the client as 502.
      this.options.log('connect_failed', { connectionId: conn.id, error: (err as Error).message });
      return reject(socket, 502, 'Internal server error');
    }
    const status = response?.statusCode ?? 200;
    if (status < 200 || status > 299) return reject(socket, status, response?.body ?? STATUS_CODES[status] ?? 'Error');

    const chosen = Object.entries(response?.headers ?? {}).find(([k]) => k.toLowerCase() === 'sec-websocket-protocol')?.[1];
    (req as IncomingMessage & { chosenProtocol?: string }).chosenProtocol = chosen;
    if (socket.destroyed) {
      void this.disconnect({ ...conn, headers, multiValueHeaders, query, authorizer } as Connection, 1006, 'Going away');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.open(ws, { ...conn, headers, multiValueHeaders, query, authorizer }));
  }

  private open(socket: WebSocket, base: Omit<Connection, 'socket' | 'lastActiveAt' | 'idle' | 'maxAge'>): void {
    const conn: Connection = {
      ...base,
      socket,
      lastActiveAt: Date.now(),
      idle: setTimeout(() => socket.close(1001, 'Going away'), this.options.idleTimeoutMs),
      maxAge: setTimeout(() => socket.close(1001, 'Going away'), this.options.maxConnectionMs),
    };
    this.connections.set(conn.id, conn);
    this.report({ kind: 'open', connectionId: conn.id, at: conn.lastActiveAt });
    socket.on('message', (data: RawData, isBinary: boolean) => void this.message(conn, data, isBinary));
    socket.on('close', (code: number, reason: Buffer) => {
      clearTimeout(conn.idle);
      clearTimeout(conn.maxAge);
      this.connections.delete(conn.id);
      this.report({ kind: 'close', connectionId: conn.id, at: Date.now(), code });
      if (this.options.deliverDisconnect && !conn.silent) void this.disconnect(conn, code, reason.toString());
    });
    socket.on('error', () => undefined); // 1009 and protocol errors close the socket; 'close' follows
  }

  private async disconnect(conn: Connection, code: number, reason: string): Promise<void> {
    const route = this.routes.get('$disconnect');
    if (!route) return;
    // $disconnect does not replay the handshake: API Gateway sends only these (no Authorization, no Cookie).
    const headers: Record<string, string> = {
      Host: this.domainName,
      'x-api-key': '',
      'X-Forwarded-For': conn.sourceIp,
      'x-restapi': randomBytes(16).toString('hex'),
    };
    try {
      await this.invoke(route.functionName!, {
        headers,
        multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
        requestContext: {
          ...this.requestContext(conn, '$disconnect', 'DISCONNECT'),
          authorizer: conn.authorizer,
          disconnectStatusCode: code,
          disconnectReason: reason,
        },
        isBase64Encoded: false,
      });
    } catch (err) {
      this.options.log('disconnect_failed', { connectionId: conn.id, error: (err as Error).message });
    }
  }

  /**
   * A MOCK integration, as API Gateway runs one: the request template's output names the status code, which picks
   * the integration response (its key `$default`, or a `/regex/` over the code); a two-way route sends that
   * response's template back. No function runs. A template without a status code is an integration failure.
   */
  private answerMock(conn: Connection, route: Route, context: ReturnType<WebSocketGateway['requestContext']>): void {
    const fail = (why: string) => {
      this.options.log('integration_failed', { connectionId: conn.id, route: route.key, error: why });
      if (conn.socket.readyState === WebSocket.OPEN) conn.socket.send(JSON.stringify({ message: 'Internal server error', connectionId: conn.id, requestId: context.requestId }));
    };
    let statusCode: unknown;
    try {
      statusCode = (JSON.parse(renderTemplate(route.mock!.request ?? '', context)) as { statusCode?: unknown }).statusCode;
    } catch {
      return fail('the MOCK request template is not JSON');
    }
    if (typeof statusCode !== 'number') return fail('the MOCK request template names no statusCode');
    const responses = route.mock!.responses;
    const matched =
      responses.find((r) => r.key.startsWith('/') && r.key.endsWith('/') && new RegExp(`^(?:${r.key.slice(1, -1)})$`).test(String(statusCode))) ??
      responses.find((r) => r.key === '$default');
    if (route.twoWay && matched?.template !== undefined && conn.socket.readyState === WebSocket.OPEN) conn.socket.send(renderTemplate(matched.template, context));
  }

  /** Traffic in either direction keeps a connection from idling out. */
  private active(conn: Connection): void {
    conn.lastActiveAt = Date.now();
    conn.idle.refresh();
  }

  /** The route a text frame selects (binary frames never get here: they close the connection). */
  private selectRoute(body: string): Route | undefined {
    try {
      let value: unknown = JSON.parse(body);
      for (const key of this.selection) value = (value as Record<string, unknown> | null)?.[key];
      if (typeof value === 'string' && !value.startsWith('$') && this.routes.has(value)) return this.routes.get(value);
    } catch {
      // not JSON: $default
    }
    return this.routes.get('$default');
  }

  private async message(conn: Connection, data: RawData, isBinary: boolean): Promise<void> {
    const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    if (isBinary) {
      conn.socket.close(1003, 'Binary frames are not supported');
      return;
    }
    // ws assembles fragments; clients send each message as one frame, so message size is frame size here.
    if (bytes.length > MAX_FRAME_BYTES) {
      conn.socket.close(1009, 'Message too big');
      return;
    }
    this.active(conn);
    this.report({ kind: 'message', connectionId: conn.id, at: conn.lastActiveAt, bytes: bytes.length });
    const body = bytes.toString('utf8');
    const route = this.selectRoute(body);
    const context = this.requestContext(conn, route?.key ?? '$default', 'MESSAGE');
    if (!route) {
      conn.socket.send(JSON.stringify({ message: 'Forbidden', connectionId: conn.id, requestId: context.requestId }));
      return;
    }
    if (route.mock) return this.answerMock(conn, route, context);
    try {
      const result = (await this.invoke(route.functionName!, {
        requestContext: { ...context, messageId: randomBytes(8).toString('base64'), authorizer: conn.authorizer },
        body,
        isBase64Encoded: false,
      })) as ProxyResult;
      if (route.twoWay && typeof result?.body === 'string' && conn.socket.readyState === WebSocket.OPEN) {
        conn.socket.send(result.body);
      }
    } catch (err) {
      this.options.log('integration_failed', { connectionId: conn.id, route: route.key, error: (err as Error).message });
      if (conn.socket.readyState === WebSocket.OPEN) {
        conn.socket.send(JSON.stringify({ message: 'Internal server error', connectionId: conn.id, requestId: context.requestId }));
      }
    }
  }

  /** The @connections management API under `/<stage>/@connections/<id>`; returns false for other paths. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const match = new RegExp(`^/${escapeRegExp(this.stage)}/@connections/([^/?]+)$`).exec(req.url ?? '');
    if (!match) return false;
    let id: string;
    try {
      id = decodeURIComponent(match[1]);
    } catch {
      awsError(res, 400, 'BadRequestException', 'Invalid connection id');
      req.resume();
      return true;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_MESSAGE_BYTES) chunks.push(chunk);
    });
    req.on('end', () => {
      const latency = this.options.connectionsLatencyMs ?? 0;
      if (latency > 0) setTimeout(() => this.answerConnections(req, res, id, chunks, size), latency);
      else this.answerConnections(req, res, id, chunks, size);
    });
    return true;
  }

  /** Takes one request from the account's throttle bucket; false when it is empty (429). */
  private withinAccountRate(): boolean {
    const { perSecond, burst } = this.options.accountRate ?? ACCOUNT_RATE;
    const now = Date.now();
    this.bucket.tokens = Math.min(burst, this.bucket.tokens + ((now - this.bucket.at) / 1000) * perSecond);
    this.bucket.at = now;
    if (this.bucket.tokens < 1) return false;
    this.bucket.tokens -= 1;
    return true;
  }

  private answerConnections(req: IncomingMessage, res: ServerResponse, id: string, chunks: Buffer[], size: number): void {
    if (!this.withinAccountRate()) return awsError(res, 429, 'LimitExceededException', 'Rate exceeded');
    if (req.method === 'POST' && size > MAX_MESSAGE_BYTES) return awsError(res, 413, 'PayloadTooLargeException', 'Payload too large');
    const { iam } = this.options;
    if (iam) {
      const verified = verifySignature({ method: req.method ?? 'GET', url: req.url ?? '/', rawHeaders: req.rawHeaders, body: Buffer.concat(chunks) }, {
        service: 'execute-api',
        region: this.options.region,
        secretOf: iam.secretOf,
      });
      if (!verified.ok) {
        const type = { missing_authentication: 'MissingAuthenticationTokenException', unknown_access_key: 'UnrecognizedClientException' }[verified.reason as string] ?? 'InvalidSignatureException';
        return awsError(res, 403, type, verified.message);
      }
      const resource = `arn:aws:execute-api:${this.options.region}:${this.options.accountId}:${this.options.apiId}/${this.stage}/${req.method}/@connections/${id}`;
      const decision = iam.authorize(verified.accessKeyId, 'execute-api:ManageConnections', resource);
      if (!decision.allowed) {
        return awsError(res, 403, 'AccessDeniedException', iam.denialMessage(decision.principal, 'execute-api:ManageConnections', resource, decision.explicit));
      }
    }
    const conn = this.connections.get(id);
    if (!conn || conn.socket.readyState !== WebSocket.OPEN) return awsError(res, 410, 'GoneException', `Connection ${id} is gone`);
    switch (req.method) {
      case 'POST': {
        // "the WebSocket client side buffer is full" (LimitExceededException): the client is not reading.
        if (conn.socket.bufferedAmount > (this.options.clientBufferBytes ?? 1024 * 1024)) {
          return awsError(res, 429, 'LimitExceededException', 'The WebSocket client side buffer is full.');
        }
        const data = Buffer.concat(chunks).toString('utf8');
        conn.socket.send(data);
        this.active(conn);
        this.report({ kind: 'post', connectionId: id, at: conn.lastActiveAt, bytes: size, data });
        res.writeHead(200).end();
        return;
      }
      case 'GET':
        res.writeHead(200, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            connectedAt: new Date(conn.connectedAt).toISOString(),
            lastActiveAt: new Date(conn.lastActiveAt).toISOString(),
            identity: { sourceIp: conn.sourceIp, userAgent: conn.userAgent },
          }),
        );
        return;
      case 'DELETE':
        conn.socket.close(1000, 'Connection closed by the server');
        res.writeHead(204).end();
        return;
      default:
        awsError(res, 405, 'MethodNotAllowedException', 'Method not allowed');
    }
  }

  /** Test hook: the socket dies and API Gateway forgets it, but no $disconnect is ever delivered. */
  drop(connectionId: string): boolean {
    const conn = this.connections.get(connectionId);
    if (!conn) return false;
    conn.silent = true;
    conn.socket.terminate();
    return true;
  }

  /** Closes every connection (1001), delivering $disconnect, as a deployment teardown would. */
  async close(): Promise<void> {
    const closing = [...this.connections.values()].map(
      (conn) =>
        new Promise<void>((resolve) => {
          conn.socket.once('close', () => resolve());
          conn.socket.close(1001, 'Going away');
          setTimeout(() => {
            conn.socket.terminate();
            resolve();
          }, 1000).unref();
        }),
    );
    await Promise.all(closing);
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
    this.wss.close();
  }
}

/** Why an authorizer's answer is not one API Gateway accepts, or undefined when it is. */
function invalidAuthorizerResult(result: unknown): string | undefined {
  if (typeof result !== 'object' || result === null) return 'the authorizer returned no object';
  const r = result as { principalId?: unknown; policyDocument?: unknown; context?: unknown };
  if (typeof r.principalId !== 'string' || r.principalId === '') return 'principalId is required';
  if (typeof r.policyDocument !== 'object' || r.policyDocument === null) return 'policyDocument is required';
  if (r.context !== undefined) {
    if (typeof r.context !== 'object' || r.context === null || Array.isArray(r.context)) return 'context must be a map';
    for (const [key, value] of Object.entries(r.context)) {
      if (!['string', 'number', 'boolean'].includes(typeof value)) return `context value ${key} is not a string, number or boolean`;
    }
  }
  if (Buffer.byteLength(JSON.stringify(result)) > MAX_AUTHORIZER_RESULT_BYTES) return 'the result is over 8 KB';
  return undefined;
}

function allows(policy: { Statement?: unknown[] } | undefined, methodArn: string): boolean {
  const statements = (policy?.Statement ?? []) as Array<{ Effect?: string; Action?: string | string[]; Resource?: string | string[] }>;
  const matches = (s: (typeof statements)[number]) =>
    [s.Resource ?? []].flat().some((r) => new RegExp(`^${r.split('*').map(escapeRegExp).join('.*')}$`).test(methodArn)) &&
    [s.Action ?? []].flat().some((a) => a === 'execute-api:Invoke' || a === 'execute-api:*' || a === '*');
  if (statements.some((s) => s.Effect === 'Deny' && matches(s))) return false;
  return statements.some((s) => s.Effect === 'Allow' && matches(s));
}

function reject(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ message });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function awsError(res: ServerResponse, status: number, type: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-ErrorType': type }).end(JSON.stringify({ message }));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
