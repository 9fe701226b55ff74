/**
 * A local CloudFront distribution from the template: each request matches a cache behaviour by path pattern (in
 * order, else the default), runs the behaviour's viewer-request CloudFront Function from the template's own code,
 * and goes to the behaviour's origin the way CloudFront sends it, with what CloudFront is known to do on the way:
 *
 * - methods outside the behaviour's AllowedMethods are refused (403);
 * - the origin request carries `X-Forwarded-For` (the viewer's address appended) and `X-Amz-Cf-Id`, and `Host` is
 *   the origin's domain unless the origin request policy forwards the viewer's (AllViewer)
 *   (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/RequestAndResponseBehaviorCustomOrigin.html);
 * - the S3 origin behind origin access control answers a missing key with 403 AccessDenied (CloudFront may only
 *   GetObject, not ListBucket), and `/` is the default root object;
 * - the distribution's custom error responses apply to every behaviour: an origin's 403 or 404 from `/api/*` is
 *   replaced exactly as one from the bucket (CustomErrorResponses is a setting of the distribution, not of a
 *   behaviour: https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/GeneratingCustomErrorResponses.html);
 * - the behaviour's response headers policy (security headers) is added to what the viewer receives;
 * - the viewer function sees query string keys and values as they arrived, percent-encoded (the stricter reading
 *   of https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-event-structure.html, which
 *   does not say they are decoded), and the origin gets them back as they were.
 *
 * WebSocket handshakes are handed to the API Gateway or VPC origin after the same matching, viewer function and
 * header rewriting. Not emulated: caching, TLS, access logs, whether error responses apply to a refused WebSocket
 * upgrade (undocumented), geo restriction and WAF.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import * as vm from 'node:vm';
import type { OriginRequest, OriginResponse } from './apigateway-http';
import { referencedIds, resourcesOfType, type Template } from './template';

export type Upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => Promise<void>;
type OriginKind = 's3' | 'api' | 'http' | 'vpc';

interface Behaviour {
  pattern: RegExp;
  originId: string;
  methods: string[];
  /** Forward the viewer's Host (AllViewer) instead of the origin's domain. */
  viewerHost: boolean;
  viewerRequest?: (event: unknown) => unknown;
  responseHeaders: Record<string, string>;
}

interface Origin {
  kind: OriginKind;
  domain: string;
}

/** The S3 bucket's objects: files under `dir`, and objects that exist only at deploy time (config.json). */
export interface BucketContents {
  dir: string;
  objects?: Record<string, () => { body: string; contentType: string }>;
}

export interface LocalEdgeOptions {
  template: Template;
  /** Resolves intrinsics (the region in the CSP, origin domains) in the template's values. */
  resolve: (value: unknown) => unknown;
  origins: {
    s3: BucketContents;
    http: (request: OriginRequest) => Promise<OriginResponse>;
    api: Upgrade;
    vpc: Upgrade;
  };
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

/** Managed origin request policies that forward the viewer's Host header. */
const ALL_VIEWER = '216adef6-5c7f-47e4-b989-5492eafa07d3';

type CfQuery = Record<string, { value: string; multiValue?: Array<{ value: string }> }>;
/** A function may hand back `querystring` as a string (AWS's own examples do). */
type CfRequest = { method: string; uri: string; querystring: CfQuery | string; headers: Record<string, { value: string }> };
type CfResponse = { statusCode: number; statusDescription?: string; headers?: Record<string, { value: string }>; body?: { data: string } | string };

export class LocalEdge {
  private readonly behaviours: Behaviour[] = [];
  private readonly origins = new Map<string, Origin>();
  private readonly errorResponses = new Map<number, { responseCode: number; pagePath: string }>();
  private readonly defaultRootObject?: string;

  constructor(private readonly options: LocalEdgeOptions) {
    const { template } = options;
    const [distribution] = resourcesOfType(template, 'AWS::CloudFront::Distribution');
    if (!distribution) return;
    const config = distribution[1].Properties?.DistributionConfig ?? {};
    this.defaultRootObject = config.DefaultRootObject;
    const tryResolve = (value: unknown) => {
      try {
        return String(options.resolve(value));
      } catch {
        return 'origin.local';
      }
    };
    for (const o of (config.Origins ?? []) as Array<Record<string, any>>) {
      let kind: OriginKind = 's3';
      if (o.VpcOriginConfig) kind = 'vpc';
      else if (!o.S3OriginConfig) {
        const api = referencedIds(o.DomainName).map((id) => template.Resources[id]).find((r) => r?.Type === 'AWS::ApiGatewayV2::Api');
        kind = api?.Properties?.ProtocolType === 'HTTP' ? 'http' : api ? 'api' : 's3';
      }
      this.origins.set(o.Id, { kind, domain: tryResolve(o.DomainName) });
    }
    for (const e of (config.CustomErrorResponses ?? []) as Array<{ ErrorCode: number; ResponseCode?: number; ResponsePagePath?: string }>) {
      if (e.ResponsePagePath) this.errorResponses.set(Number(e.ErrorCode), { responseCode: Number(e.ResponseCode ?? e.ErrorCode), pagePath: e.ResponsePagePath });
    }
    const behaviour = (b: Record<string, any>, pattern: string): Behaviour => {
      const fnId = ((b.FunctionAssociations ?? []) as Array<{ EventType: string; FunctionARN: unknown }>)
        .filter((f) => f.EventType === 'viewer-request')
        .flatMap((f) => referencedIds(f.FunctionARN))[0];
      const code = fnId ? (template.Resources[fnId]?.Properties?.FunctionCode as string | undefined) : undefined;
      const policyId = referencedIds(b.ResponseHeadersPolicyId)[0];
      const security = policyId ? template.Resources[policyId]?.Properties?.ResponseHeadersPolicyConfig?.SecurityHeadersConfig : undefined;
      return {
        pattern: new RegExp(`^${pattern.split('*').map(escape).join('.*')}$`),
        originId: b.TargetOriginId,
        methods: b.AllowedMethods ?? ['GET', 'HEAD'],
        viewerHost: b.OriginRequestPolicyId === ALL_VIEWER,
        ...(code ? { viewerRequest: vm.runInNewContext(`${code}\n;handler`, {}, { timeout: 100 }) as (event: unknown) => unknown } : {}),
        responseHeaders: security ? securityHeaders(options.resolve(security) as SecurityHeaders) : {},
      };
    };
    for (const b of config.CacheBehaviors ?? []) this.behaviours.push(behaviour(b, String(b.PathPattern)));
    if (config.DefaultCacheBehavior) this.behaviours.push(behaviour(config.DefaultCacheBehavior, '*'));
  }

  private match(pathname: string): Behaviour | undefined {
    return this.behaviours.find((b) => b.pattern.test(pathname));
  }

  /** Runs the behaviour's viewer-request function; returns the (possibly rewritten) request or a response. */
  private viewer(behaviour: Behaviour, req: IncomingMessage): { request: CfRequest } | { response: CfResponse } {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const request: CfRequest = {
      method: req.method ?? 'GET',
      uri: url.pathname,
      querystring: rawQuery(req.url ?? '/'),
      headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, { value: [v].flat().join(',') }])),
    };
    if (!behaviour.viewerRequest) return { request };
    const result = behaviour.viewerRequest({ version: '1.0', context: { eventType: 'viewer-request' }, viewer: { ip: req.socket.remoteAddress }, request }) as CfRequest | CfResponse;
    return 'statusCode' in result ? { response: result } : { request: result };
  }

  /** The headers CloudFront sends the origin. */
  private originHeaders(behaviour: Behaviour, req: IncomingMessage): Record<string, string> {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = [v].flat().join(k === 'cookie' ? '; ' : ', ');
    const origin = this.origins.get(behaviour.originId);
    if (!behaviour.viewerHost) headers.host = origin?.domain ?? headers.host;
    headers['x-forwarded-for'] = [headers['x-forwarded-for'], req.socket.remoteAddress ?? '127.0.0.1'].filter(Boolean).join(', ');
    headers['x-amz-cf-id'] = randomBytes(42).toString('base64url');
    return headers;
  }

  /** Routes a WebSocket handshake by behaviour; false when no WebSocket behaviour matches. */
  async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<boolean> {
    const behaviour = this.match(new URL(req.url ?? '/', 'http://localhost').pathname);
    const kind = behaviour && this.origins.get(behaviour.originId)?.kind;
    if (!behaviour || (kind !== 'api' && kind !== 'vpc')) return false;
    const outcome = this.viewer(behaviour, req);
    if ('response' in outcome) {
      const { statusCode, statusDescription, body } = outcome.response;
      const text = typeof body === 'string' ? body : (body?.data ?? '');
      socket.end(
        `HTTP/1.1 ${statusCode} ${statusDescription ?? STATUS_CODES[statusCode]}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
      );
      return true;
    }
    const rewritten = this.originHeaders(behaviour, req);
    for (const name of Object.keys(req.headers)) delete req.headers[name];
    Object.assign(req.headers, rewritten);
    req.rawHeaders.splice(0, req.rawHeaders.length, ...Object.entries(rewritten).flat());
    const query = queryString(outcome.request.querystring);
    req.url = `${outcome.request.uri}${query ? `?${query}` : ''}`;
    await (kind === 'api' ? this.options.origins.api : this.options.origins.vpc)(req, socket, head);
    return true;
  }

  /** Answers an HTTP request as the distribution would; false when no behaviour matches (no distribution). */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const behaviour = this.match(new URL(req.url ?? '/', 'http://localhost').pathname);
    if (!behaviour) return false;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      this.respond(behaviour, req, Buffer.concat(chunks))
        .then(({ status, headers, body }) => {
          res.writeHead(status, { ...headers, ...behaviour.responseHeaders });
          res.end(req.method === 'HEAD' ? undefined : body);
        })
        .catch(() => {
          if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end('Bad Gateway');
        });
    });
    return true;
  }

  private async respond(behaviour: Behaviour, req: IncomingMessage, body: Buffer): Promise<OriginResponse> {
    const method = req.method ?? 'GET';
    if (!behaviour.methods.includes(method)) return text(403, 'This distribution is not configured to allow the HTTP request method that was used for this request.');
    const outcome = this.viewer(behaviour, req);
    if ('response' in outcome) {
      const { statusCode, headers = {}, body: payload } = outcome.response;
      return {
        status: statusCode,
        headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, v.value])),
        body: Buffer.from(typeof payload === 'string' ? payload : (payload?.data ?? '')),
      };
    }
    const query = queryString(outcome.request.querystring);
    let uri = outcome.request.uri;
    if (uri === '/' && this.defaultRootObject) uri = `/${this.defaultRootObject}`;
    const response = await this.fetchOrigin(behaviour, { method, url: `${uri}${query ? `?${query}` : ''}`, headers: this.originHeaders(behaviour, req), body, sourceIp: req.socket.remoteAddress ?? '127.0.0.1' });
    const custom = this.errorResponses.get(response.status);
    if (!custom) return response;
    // The error page is fetched like any other path: through the behaviour that matches it.
    const pageBehaviour = this.match(custom.pagePath) ?? behaviour;
    const page = await this.fetchOrigin(pageBehaviour, { method: 'GET', url: custom.pagePath, headers: this.originHeaders(pageBehaviour, req), body: Buffer.alloc(0), sourceIp: req.socket.remoteAddress ?? '127.0.0.1' });
    return { ...page, status: custom.responseCode };
  }

  private fetchOrigin(behaviour: Behaviour, request: OriginRequest): Promise<OriginResponse> {
    const kind = this.origins.get(behaviour.originId)?.kind ?? 's3';
    if (kind === 'http') return this.options.origins.http(request);
    if (kind === 's3') return Promise.resolve(this.s3(request));
    // A plain HTTP request to a WebSocket origin: refused, as API Gateway refuses a request that is no handshake.
    return Promise.resolve(text(403, 'Forbidden'));
  }

  /** S3 through origin access control: GetObject only, so a missing key is 403 AccessDenied. */
  private s3(request: OriginRequest): OriginResponse {
    const key = decodeURIComponent(new URL(request.url, 'http://localhost').pathname);
    if (request.method !== 'GET' && request.method !== 'HEAD') return s3Error(403, 'AccessDenied', 'Access Denied');
    const object = this.options.origins.s3.objects?.[key];
    if (object) {
      const { body, contentType } = object();
      return { status: 200, headers: { 'content-type': contentType, 'cache-control': 'no-store' }, body: Buffer.from(body) };
    }
    const root = path.resolve(this.options.origins.s3.dir);
    const file = path.resolve(root, `.${key}`);
    if (!file.startsWith(root + path.sep) || !existsSync(file) || statSync(file).isDirectory()) return s3Error(403, 'AccessDenied', 'Access Denied');
    return { status: 200, headers: { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' }, body: readFileSync(file) };
  }
}

/**
 * The query string as the function sees it: keys and values as they arrived, not percent-decoded (CloudFront's
 * event documentation does not say they are decoded, so the emulator assumes the stricter case: a function must
 * decode `?%74oken=` itself to see `token`). Split on `&` and the first `=`; a repeated key keeps its first value
 * in `value` and all of them in `multiValue`.
 */
function rawQuery(target: string): CfQuery {
  const search = target.split('#')[0].split('?').slice(1).join('?');
  const pairs = new Map<string, string[]>();
  for (const pair of search.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const [key, value] = eq === -1 ? [pair, ''] : [pair.slice(0, eq), pair.slice(eq + 1)];
    const values = pairs.get(key);
    if (values) values.push(value);
    else pairs.set(key, [value]);
  }
  // fromEntries defines own properties: a `__proto__` key stays a key.
  return Object.fromEntries(
    [...pairs].map(([key, values]) => [key, values.length > 1 ? { value: values[0], multiValue: values.map((value) => ({ value })) } : { value: values[0] }]),
  );
}

/** The origin's query string, rebuilt from the raw pieces (never re-encoded, so nothing is encoded twice). */
function queryString(query: CfQuery | string): string {
  if (typeof query === 'string') return query.replace(/^\?/, '');
  return Object.entries(query)
    .flatMap(([key, v]) => (v.multiValue ?? [v]).map((m) => `${key}=${m.value}`))
    .join('&');
}

const text = (status: number, message: string): OriginResponse => ({ status, headers: { 'content-type': 'text/plain' }, body: Buffer.from(message) });
const s3Error = (status: number, code: string, message: string): OriginResponse => ({
  status,
  headers: { 'content-type': 'application/xml' },
  body: Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`),
});

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
