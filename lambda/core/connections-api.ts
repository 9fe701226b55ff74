/**
 * API Gateway's `@connections` management API (POST a frame, DELETE a connection), without the AWS SDK's
 * per-command pipeline: the fan-out posts one frame to every member of a room, and the SDK's middleware stack
 * (serializer, endpoint resolution, retry strategy, signer, deserializer) costs several times the CPU of the request
 * itself (`npm run bench -- --only posts`). This is one signed HTTPS request on a keep-alive agent.
 *
 * The request is the SDK's own: the same method, path (the connection id percent-encoded as the SDK's
 * `PostToConnectionCommand` encodes it), headers and Signature Version 4, which `test/connections-api.test.ts`
 * proves by signing the same request here and with the SDK's signer (`@smithy/signature-v4`) and comparing. It
 * follows "Create a signed AWS API request"
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html) and "Use @connections commands in
 * your backend service" (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html).
 *
 * Errors are ConnectionsApiError with the status and the error type API Gateway names: 410 GoneException (the
 * socket is gone), 429 LimitExceededException (the client's buffer is full, or the account's rate is exceeded),
 * 403 (the role may not manage connections). 429 and 5xx are retried here with jittered exponential backoff;
 * what is still refused is the caller's to count.
 */
import { createHash, createHmac } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface ConnectionsApi {
  /** Sends `data` to the connection's socket. */
  post(connectionId: string, data: string): Promise<void>;
  /** Closes the connection (API Gateway then delivers `$disconnect`). */
  remove(connectionId: string): Promise<void>;
}

export class ConnectionsApiError extends Error {
  override name = 'ConnectionsApiError';
  constructor(
    /** HTTP status: 410 gone, 429 throttled or the client's buffer full, 403 not allowed, 0 no answer. */
    readonly status: number,
    /** API Gateway's error type (`x-amzn-errortype`), e.g. GoneException; or the network error's code. */
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

/** The socket is gone (it closed without `$disconnect` reaching the store yet): its state can go. */
export const isGone = (err: unknown): boolean => err instanceof ConnectionsApiError && err.status === 410;

/** Throttled (the account's @connections rate) or the client is not reading: a later attempt may succeed. */
export const isThrottled = (err: unknown): boolean => err instanceof ConnectionsApiError && err.status === 429;

/** The poster's retry and time-out defaults (each overridable in ConnectionsApiOptions). */
export const POST_DEFAULTS = { maxAttempts: 4, baseDelayMs: 50, timeoutMs: 5_000, maxDelayMs: 1_000 } as const;

/** The longest one post can take with the defaults: every attempt timing out, and the longest backoff before each retry. */
export const WORST_CASE_POST_MS =
  POST_DEFAULTS.maxAttempts * POST_DEFAULTS.timeoutMs +
  Array.from({ length: POST_DEFAULTS.maxAttempts - 1 }, (_, i) => Math.min(POST_DEFAULTS.maxDelayMs, POST_DEFAULTS.baseDelayMs * 2 ** i)).reduce((a, b) => a + b, 0);

export interface ConnectionsApiOptions {
  /** The stage's callback URL, `https://<api>.execute-api.<region>.amazonaws.com/<stage>`. */
  endpoint: string;
  region: string;
  /** Read per request: Lambda's environment credentials, or a test's. */
  credentials: () => Credentials;
  /** Attempts for a 429, a 5xx or a network error (the first included). @default 4 */
  maxAttempts?: number;
  /** Backoff before the second attempt; doubled each time, full jitter, at most 1 s. @default 50 ms */
  baseDelayMs?: number;
  /** A request without an answer this long fails (and is retried). @default 5000 */
  timeoutMs?: number;
  /** Sockets kept open to the endpoint, the fan-out's concurrency at most. @default 64 */
  maxSockets?: number;
  /** @default Date.now */
  now?: () => number;
  /** @default setTimeout */
  sleep?: (ms: number) => Promise<void>;
  /** @default Math.random */
  random?: () => number;
}

const SERVICE = 'execute-api';
const ALGORITHM = 'AWS4-HMAC-SHA256';
const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

/** RFC 3986 encoding as SigV4 (and the SDK's path serializer) does it: only A-Z a-z 0-9 - _ . ~ stay as they are. */
export const uriEncode = (value: string): string =>
  encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** `20261207T024912Z` and `20261207` for a time (computed once a second: every post of that second shares it). */
let lastDate: { second: number; long: string; short: string } | undefined;
function amzDate(ms: number): { long: string; short: string } {
  const second = Math.floor(ms / 1000);
  if (lastDate?.second !== second) {
    const iso = new Date(second * 1000).toISOString(); // 2026-12-07T02:49:12.000Z
    const long = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
    lastDate = { second, long, short: long.slice(0, 8) };
  }
  return lastDate;
}

/** A header value as SigV4 canonicalizes it: trimmed, inner runs of spaces as one (most values have none). */
const canonicalValue = (value: string) => (/^\S*$/.test(value) ? value : value.trim().replace(/\s+/g, ' '));

export interface SignableRequest {
  method: string;
  /** The path as sent (already percent-encoded). */
  path: string;
  /** Lower-case names; `host` included. */
  headers: Record<string, string>;
  body: string;
}

/**
 * Adds `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` (with a session) and `authorization` to
 * `request`'s headers, as the SDK's signer does: Signature Version 4 for API Gateway's execute-api, every header
 * signed. A day's signing key is cached.
 */
export function createSigner(region: string) {
  let cached: { secret: string; date: string; key: Buffer } | undefined;
  const keyFor = (secret: string, date: string) => {
    if (cached?.secret !== secret || cached.date !== date) cached = { secret, date, key: hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), SERVICE), 'aws4_request') };
    return cached.key;
  };
  return (request: SignableRequest, credentials: Credentials, nowMs: number): Record<string, string> => {
    const { long, short } = amzDate(nowMs);
    const payloadHash = request.body === '' ? EMPTY_SHA256 : sha256(request.body);
    const headers: Record<string, string> = { ...request.headers, 'x-amz-date': long, 'x-amz-content-sha256': payloadHash };
    if (credentials.sessionToken) headers['x-amz-security-token'] = credentials.sessionToken;
    // Names are lower-case already (SignableRequest), so sorting them is SigV4's order.
    const names = Object.keys(headers).sort();
    let canonicalHeaders = '';
    for (const n of names) canonicalHeaders += `${n}:${canonicalValue(headers[n])}\n`;
    const signedHeaders = names.join(';');
    // Non-S3 services: each path segment, already encoded, is encoded once more.
    const canonicalPath = request.path.split('/').map(uriEncode).join('/');
    const canonical = [request.method, canonicalPath, '', canonicalHeaders, signedHeaders, payloadHash].join('\n');
    const scope = `${short}/${region}/${SERVICE}/aws4_request`;
    const stringToSign = [ALGORITHM, long, scope, sha256(canonical)].join('\n');
    const signature = createHmac('sha256', keyFor(credentials.secretAccessKey, short)).update(stringToSign).digest('hex');
    return { ...headers, authorization: `${ALGORITHM} Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}` };
  };
}

/** The credentials Lambda gives a function in its environment (its execution role's, for the container's life). */
export const environmentCredentials = (env: Record<string, string | undefined> = process.env) => (): Credentials => {
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_SESSION_TOKEN: sessionToken } = env;
  if (!accessKeyId || !secretAccessKey) throw new Error('No AWS credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).');
  return { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
};

const RETRYABLE_NETWORK = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNREFUSED', 'EAI_AGAIN', 'timeout']);
const retryable = (err: ConnectionsApiError) => err.status === 429 || err.status >= 500 || (err.status === 0 && RETRYABLE_NETWORK.has(err.type));

export function createConnectionsApi(options: ConnectionsApiOptions): ConnectionsApi {
  const url = new URL(options.endpoint.replace(/\/+$/, ''));
  const secure = url.protocol === 'https:';
  const agent = secure ? new HttpsAgent({ keepAlive: true, maxSockets: options.maxSockets ?? 64 }) : new HttpAgent({ keepAlive: true, maxSockets: options.maxSockets ?? 64 });
  const send = secure ? httpsRequest : httpRequest;
  const sign = createSigner(options.region);
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const random = options.random ?? Math.random;
  const maxAttempts = options.maxAttempts ?? POST_DEFAULTS.maxAttempts;
  const baseDelayMs = options.baseDelayMs ?? POST_DEFAULTS.baseDelayMs;
  const timeoutMs = options.timeoutMs ?? POST_DEFAULTS.timeoutMs;

  const once = (method: 'POST' | 'DELETE', connectionId: string, body: string) =>
    new Promise<void>((resolve, reject) => {
      const path = `${url.pathname}/@connections/${uriEncode(connectionId)}`;
      const headers = sign(
        { method, path, headers: { host: url.host, ...(method === 'POST' ? { 'content-type': 'application/octet-stream', 'content-length': String(Buffer.byteLength(body)) } : {}) }, body },
        options.credentials(),
        now(),
      );
      const req = send({ host: url.hostname, port: url.port || undefined, method, path, headers, agent, timeout: timeoutMs }, (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          // Nothing to read in a success: drain it, so the socket goes back to the agent.
          res.once('end', resolve).resume();
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let message = text;
          try {
            const parsed = JSON.parse(text) as { message?: string; Message?: string };
            message = parsed.message ?? parsed.Message ?? text;
          } catch {
            // not JSON: the text is the message
          }
          const type = String(res.headers['x-amzn-errortype'] ?? '').split(':')[0] || `HTTP${status}`;
          reject(new ConnectionsApiError(status, type, `${method} @connections answered ${status} ${type}: ${message}`.trim()));
        });
        res.on('error', (err: NodeJS.ErrnoException) => reject(new ConnectionsApiError(0, err.code ?? 'ECONNRESET', err.message)));
      });
      req.on('timeout', () => req.destroy(new ConnectionsApiError(0, 'timeout', `${method} @connections had no answer in ${timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => reject(err instanceof ConnectionsApiError ? err : new ConnectionsApiError(0, err.code ?? 'ENETWORK', err.message)));
      req.end(body);
    });

  const call = async (method: 'POST' | 'DELETE', connectionId: string, body: string) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await once(method, connectionId, body);
      } catch (err) {
        if (!(err instanceof ConnectionsApiError) || !retryable(err) || attempt >= maxAttempts) throw err;
        await sleep(Math.floor(random() * Math.min(POST_DEFAULTS.maxDelayMs, baseDelayMs * 2 ** (attempt - 1))));
      }
    }
  };

  return {
    post: (connectionId, data) => call('POST', connectionId, data),
    remove: (connectionId) => call('DELETE', connectionId, ''),
  };
}
