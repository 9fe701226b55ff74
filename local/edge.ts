/**
 * A local CloudFront: the distribution's behaviours from the template, each routed to its local origin (the web
 * app's files, the API Gateway emulator, the speech service), with the behaviour's viewer-request CloudFront
 * Function run from the template's own code. Browsers and tests use the same paths locally as behind CloudFront.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import * as vm from 'node:vm';
import { referencedIds, resourcesOfType, type Template } from './template';

export type Upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => Promise<void>;

interface Behaviour {
  pattern: RegExp;
  origin: 'static' | 'api' | 'http' | 'vpc';
  viewerRequest?: (event: unknown) => unknown;
}

export interface LocalEdgeOptions {
  template: Template;
  /** Handshakes for the API Gateway WebSocket origin (the emulator) and the VPC origin (the speech service). */
  api: Upgrade;
  vpc: Upgrade;
  /** Requests for the HTTP API origin (the session API); false when it has no such route. */
  http: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** The web app's files, and what /config.json answers. */
  staticDir: string;
  config: () => Record<string, unknown>;
  /** Resolves intrinsics (the region in the CSP, for one) in the template's values. */
  resolve: (value: unknown) => unknown;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.map': 'application/json',
};

type CfRequest = { method: string; uri: string; querystring: Record<string, { value: string }>; headers: Record<string, { value: string }> };
type CfResponse = { statusCode: number; statusDescription?: string; headers?: Record<string, { value: string }>; body?: { data: string } | string };

export class LocalEdge {
  private readonly behaviours: Behaviour[] = [];
  /** The default behaviour's response headers policy (CSP and friends), so the app runs under it locally too. */
  private readonly webHeaders: Record<string, string> = {};

  constructor(private readonly options: LocalEdgeOptions) {
    const { template } = options;
    const [distribution] = resourcesOfType(template, 'AWS::CloudFront::Distribution');
    if (!distribution) return;
    const config = distribution[1].Properties?.DistributionConfig ?? {};
    const origins = new Map<string, Behaviour['origin']>(
      (config.Origins ?? []).map((o: Record<string, unknown>) => {
        if (o.S3OriginConfig) return [o.Id, 'static'];
        if (o.VpcOriginConfig) return [o.Id, 'vpc'];
        const api = referencedIds(o.DomainName).map((id) => template.Resources[id]).find((r) => r?.Type === 'AWS::ApiGatewayV2::Api');
        if (!api) return [o.Id, 'static'];
        return [o.Id, api.Properties?.ProtocolType === 'HTTP' ? 'http' : 'api'];
      }),
    );
    const policyId = referencedIds(config.DefaultCacheBehavior?.ResponseHeadersPolicyId)[0];
    const security = policyId ? template.Resources[policyId]?.Properties?.ResponseHeadersPolicyConfig?.SecurityHeadersConfig : undefined;
    if (security) Object.assign(this.webHeaders, securityHeaders(options.resolve(security) as SecurityHeaders));
    for (const b of config.CacheBehaviors ?? []) {
      const fnId = (b.FunctionAssociations ?? []).filter((f: { EventType: string }) => f.EventType === 'viewer-request').flatMap((f: { FunctionARN: unknown }) => referencedIds(f.FunctionARN))[0];
      const code = fnId ? (template.Resources[fnId]?.Properties?.FunctionCode as string | undefined) : undefined;
      this.behaviours.push({
        pattern: new RegExp(`^${String(b.PathPattern).split('*').map(escape).join('.*')}$`),
        origin: origins.get(b.TargetOriginId) ?? 'static',
        ...(code ? { viewerRequest: vm.runInNewContext(`${code}\n;handler`, {}, { timeout: 100 }) as (event: unknown) => unknown } : {}),
      });
    }
  }

  /** Runs the behaviour's viewer-request function; returns the (possibly rewritten) request or a response. */
  private viewer(behaviour: Behaviour, req: IncomingMessage): { request: CfRequest } | { response: CfResponse } {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const request: CfRequest = {
      method: req.method ?? 'GET',
      uri: url.pathname,
      querystring: Object.fromEntries([...url.searchParams].map(([k, v]) => [k, { value: v }])),
      headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, { value: [v].flat().join(',') }])),
    };
    if (!behaviour.viewerRequest) return { request };
    const result = behaviour.viewerRequest({ version: '1.0', context: { eventType: 'viewer-request' }, viewer: { ip: req.socket.remoteAddress }, request }) as
      | CfRequest
      | CfResponse;
    return 'statusCode' in result ? { response: result } : { request: result };
  }

  private match(req: IncomingMessage): Behaviour | undefined {
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    return this.behaviours.find((b) => b.pattern.test(pathname));
  }

  /** Routes a WebSocket handshake by behaviour; false when no WebSocket behaviour matches. */
  async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<boolean> {
    const behaviour = this.match(req);
    if (!behaviour || (behaviour.origin !== 'api' && behaviour.origin !== 'vpc')) return false;
    const outcome = this.viewer(behaviour, req);
    if ('response' in outcome) {
      const { statusCode, statusDescription, body } = outcome.response;
      const text = typeof body === 'string' ? body : (body?.data ?? '');
      socket.end(
        `HTTP/1.1 ${statusCode} ${statusDescription ?? STATUS_CODES[statusCode]}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
      );
      return true;
    }
    const query = new URLSearchParams(Object.entries(outcome.request.querystring).map(([k, v]) => [k, v.value])).toString();
    req.url = `${outcome.request.uri}${query ? `?${query}` : ''}`;
    await (behaviour.origin === 'api' ? this.options.api : this.options.vpc)(req, socket, head);
    return true;
  }

  /**
   * HTTP requests: the session API behaviour goes to the HTTP API; everything else is the web app (files from the
   * static folder, /config.json, and index.html for client-side routes, as CloudFront's error responses do).
   */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const behaviour = this.match(req);
    if (behaviour?.origin === 'http') {
      const outcome = this.viewer(behaviour, req);
      if ('response' in outcome) {
        const { statusCode, body } = outcome.response;
        res.writeHead(statusCode, { 'content-type': 'text/plain' }).end(typeof body === 'string' ? body : (body?.data ?? ''));
        return true;
      }
      return this.options.http(req, res);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    if (behaviour) return false;
    if (pathname === '/config.json') {
      res.writeHead(200, { ...this.webHeaders, 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(this.options.config()));
      return true;
    }
    const root = path.resolve(this.options.staticDir);
    let file = path.resolve(root, `.${pathname}`);
    if (file !== root && !file.startsWith(root + path.sep)) return false;
    if (!existsSync(file) || statSync(file).isDirectory()) file = path.join(root, 'index.html');
    if (!existsSync(file)) return false;
    res.writeHead(200, { ...this.webHeaders, 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
    return true;
  }
}

interface SecurityHeaders {
  ContentSecurityPolicy?: { ContentSecurityPolicy: string };
  StrictTransportSecurity?: { AccessControlMaxAgeSec: number; IncludeSubdomains?: boolean; Preload?: boolean };
  ContentTypeOptions?: unknown;
  FrameOptions?: { FrameOption: string };
  ReferrerPolicy?: { ReferrerPolicy: string };
}

/** CloudFront's SecurityHeadersConfig as the response headers it adds. */
function securityHeaders(config: SecurityHeaders): Record<string, string> {
  const headers: Record<string, string> = {};
  if (config.ContentSecurityPolicy) headers['content-security-policy'] = config.ContentSecurityPolicy.ContentSecurityPolicy;
  const hsts = config.StrictTransportSecurity;
  if (hsts) headers['strict-transport-security'] = `max-age=${hsts.AccessControlMaxAgeSec}${hsts.IncludeSubdomains ? '; includeSubDomains' : ''}${hsts.Preload ? '; preload' : ''}`;
  if (config.ContentTypeOptions) headers['x-content-type-options'] = 'nosniff';
  if (config.FrameOptions) headers['x-frame-options'] = config.FrameOptions.FrameOption;
  if (config.ReferrerPolicy) headers['referrer-policy'] = config.ReferrerPolicy.ReferrerPolicy;
  return headers;
}

function escape(text: string): string {
  return text.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}
