/**
 * An API Gateway HTTP API emulator for the template's HTTP APIs (routes `METHOD /path`, Lambda proxy integrations,
 * payload format 2.0): a request becomes a version-2.0 event for the function's bundle, and the function's answer
 * (status, headers, cookies, body) becomes the response, as API Gateway builds it. A path no route matches is
 * answered 404 `{"message":"Not Found"}`, a failed integration 500 `{"message":"Internal Server Error"}`, as API
 * Gateway answers them (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html).
 */
import { randomUUID } from 'node:crypto';
import type { LocalFunction } from './lambda';
import { referencedIds, resourcesOfType, type Template } from './template';

/** An HTTP request as an origin receives it, and what it answers. */
export interface OriginRequest {
  method: string;
  /** Path and query. */
  url: string;
  headers: Record<string, string>;
  body: Buffer;
  sourceIp: string;
}

export interface OriginResponse {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
}

interface Route {
  method: string;
  path: string;
  functionName: string;
}

const json = (status: number, body: unknown): OriginResponse => ({ status, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(body)) });

export class LocalHttpApi {
  private readonly routes: Route[] = [];
  readonly apiIds: string[];

  constructor(
    template: Template,
    private readonly functions: Map<string, LocalFunction>,
    private readonly log: (event: string, fields: Record<string, unknown>) => void,
  ) {
    this.apiIds = resourcesOfType(template, 'AWS::ApiGatewayV2::Api')
      .filter(([, api]) => api.Properties?.ProtocolType === 'HTTP')
      .map(([id]) => id);
    for (const [, route] of resourcesOfType(template, 'AWS::ApiGatewayV2::Route')) {
      const p = route.Properties ?? {};
      if (!referencedIds(p.ApiId).some((id) => this.apiIds.includes(id))) continue;
      const [method, path] = String(p.RouteKey).split(' ');
      const integration = template.Resources[referencedIds(p.Target)[0]];
      const fn = referencedIds(integration?.Properties?.IntegrationUri).find((id) => template.Resources[id]?.Type === 'AWS::Lambda::Function');
      if (fn) this.routes.push({ method, path, functionName: fn });
    }
  }

  /** Answers a request as API Gateway would: the route's function, or 404 when no route matches. */
  async handle(request: OriginRequest): Promise<OriginResponse> {
    const url = new URL(request.url, 'http://localhost');
    const route = this.routes.find((r) => (r.method === request.method || r.method === 'ANY') && r.path === url.pathname);
    if (!route) return json(404, { message: 'Not Found' });
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) if (name.toLowerCase() !== 'cookie') headers[name.toLowerCase()] = value;
    const cookieHeader = Object.entries(request.headers).find(([k]) => k.toLowerCase() === 'cookie')?.[1];
    const cookies = cookieHeader?.split(/;\s*/).filter(Boolean);
    const now = Date.now();
    const event = {
      version: '2.0',
      routeKey: `${route.method} ${route.path}`,
      rawPath: url.pathname,
      rawQueryString: url.search.slice(1),
      ...(cookies?.length ? { cookies } : {}),
      headers,
      ...(url.search ? { queryStringParameters: Object.fromEntries(url.searchParams) } : {}),
      requestContext: {
        accountId: '000000000000',
        apiId: 'localhttpapi',
        domainName: headers.host ?? 'localhost',
        http: { method: request.method, path: url.pathname, protocol: 'HTTP/1.1', sourceIp: request.sourceIp, userAgent: headers['user-agent'] ?? '' },
        requestId: randomUUID(),
        routeKey: `${route.method} ${route.path}`,
        stage: '$default',
        time: new Date(now).toISOString(),
        timeEpoch: now,
      },
      ...(request.body.length ? { body: request.body.toString('utf8') } : {}),
      isBase64Encoded: false,
    };
    try {
      const fn = this.functions.get(route.functionName);
      if (!fn) throw new Error(`Function ${route.functionName} is not running`);
      const result = (await fn.invoke(event)) as { statusCode?: number; headers?: Record<string, string>; cookies?: string[]; body?: string; isBase64Encoded?: boolean } | string;
      if (typeof result === 'string' || result?.statusCode === undefined) {
        // Format 2.0 lets a function return just a body: API Gateway then answers 200 with JSON.
        return { status: 200, headers: { 'content-type': 'application/json' }, body: Buffer.from(typeof result === 'string' ? result : JSON.stringify(result)) };
      }
      return {
        status: result.statusCode,
        headers: { ...result.headers, ...(result.cookies?.length ? { 'set-cookie': result.cookies } : {}) },
        body: result.body === undefined ? Buffer.alloc(0) : Buffer.from(result.body, result.isBase64Encoded ? 'base64' : 'utf8'),
      };
    } catch (err) {
      this.log('http_integration_failed', { route: event.routeKey, error: (err as Error).message });
      return json(500, { message: 'Internal Server Error' });
    }
  }
}
