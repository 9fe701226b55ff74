/**
 * An API Gateway HTTP API emulator for the template's HTTP APIs (routes `METHOD /path`, Lambda proxy integrations,
 * payload format 2.0): requests become version-2.0 events for the function's bundle, responses (status, headers,
 * cookies, body) go back to the client as API Gateway would send them.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LocalFunction } from './lambda';
import { referencedIds, resourcesOfType, type Template } from './template';

interface Route {
  method: string;
  path: string;
  functionName: string;
}

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

  /** Answers a request for one of the routes; false when none matches. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = this.routes.find((r) => (r.method === req.method || r.method === 'ANY') && r.path === url.pathname);
    if (!route) return false;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void this.invoke(route, req, url, Buffer.concat(chunks), res));
    return true;
  }

  private async invoke(route: Route, req: IncomingMessage, url: URL, body: Buffer, res: ServerResponse): Promise<void> {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (name === 'cookie' || value === undefined) continue;
      headers[name] = Array.isArray(value) ? value.join(',') : value;
    }
    const cookies = req.headers.cookie?.split(/;\s*/).filter(Boolean);
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
        domainName: req.headers.host ?? 'localhost',
        http: { method: req.method, path: url.pathname, protocol: 'HTTP/1.1', sourceIp: req.socket.remoteAddress ?? '127.0.0.1', userAgent: req.headers['user-agent'] ?? '' },
        requestId: randomUUID(),
        routeKey: `${route.method} ${route.path}`,
        stage: '$default',
        time: new Date(now).toISOString(),
        timeEpoch: now,
      },
      ...(body.length ? { body: body.toString('utf8') } : {}),
      isBase64Encoded: false,
    };
    try {
      const fn = this.functions.get(route.functionName);
      if (!fn) throw new Error(`Function ${route.functionName} is not running`);
      const result = (await fn.invoke(event)) as { statusCode?: number; headers?: Record<string, string>; cookies?: string[]; body?: string; isBase64Encoded?: boolean } | string;
      if (typeof result === 'string' || result?.statusCode === undefined) {
        // Format 2.0 lets a function return just a body: API Gateway then answers 200 with JSON.
        res.writeHead(200, { 'content-type': 'application/json' }).end(typeof result === 'string' ? result : JSON.stringify(result));
        return;
      }
      res.writeHead(result.statusCode, { ...result.headers, ...(result.cookies?.length ? { 'set-cookie': result.cookies } : {}) });
      res.end(result.body === undefined ? undefined : Buffer.from(result.body, result.isBase64Encoded ? 'base64' : 'utf8'));
    } catch (err) {
      this.log('http_integration_failed', { route: event.routeKey, error: (err as Error).message });
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'Internal Server Error' }));
    }
  }
}
