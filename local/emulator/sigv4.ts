/**
 * Verifies AWS Signature Version 4 on requests that reach the emulator's service endpoints, as AWS does before it
 * looks at anything else: an unsigned request, an unknown key, a signature that does not match the request, a
 * credential scoped to another region or service, or a signing time more than five minutes off are all refused.
 *
 * Follows "Create a signed AWS API request" (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html):
 * canonical request (method, URI with each path segment encoded again, sorted query, signed headers, payload hash),
 * string to sign, and the HMAC chain of date, region, service and "aws4_request". Header-based signatures only:
 * the AWS SDK signs that way, and presigned URLs are not something the emulated services are called with.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** What the verifier needs of a request: the bytes as they arrived. */
export interface RawRequest {
  method: string;
  /** Path and query exactly as sent (`req.url`). */
  url: string;
  /** `req.rawHeaders`: names and values in arrival order. */
  rawHeaders: string[];
  body: Buffer;
}

export type SignatureFailure =
  | 'missing_authentication'
  | 'incomplete_signature'
  | 'unknown_access_key'
  | 'signature_mismatch'
  | 'signature_expired'
  | 'wrong_region'
  | 'wrong_service';

export type Verified = { ok: true; accessKeyId: string } | { ok: false; reason: SignatureFailure; message: string };

/** SigV4 allows the signing time to be at most this far from the server's clock. */
export const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

const ALGORITHM = 'AWS4-HMAC-SHA256';

/** RFC 3986 encoding as SigV4 defines it: everything but A-Z a-z 0-9 - _ . ~ is percent-encoded, upper-case hex. */
export function uriEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

function decode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, '%20'));
  } catch {
    return text;
  }
}

const signingKeys = new Map<string, Buffer>();

/** The signing key: HMAC chain over date, region, service and "aws4_request" (the same for a day: cached). */
export function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  const cacheKey = [secret, date, region, service].join('\n');
  let key = signingKeys.get(cacheKey);
  if (!key) {
    if (signingKeys.size > 1000) signingKeys.clear();
    signingKeys.set(cacheKey, (key = hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request')));
  }
  return key;
}

function canonicalRequest(request: RawRequest, signedHeaders: string[], payloadHash: string): string {
  const [rawPath, rawQuery = ''] = request.url.split('?', 2);
  // Non-S3 services: each segment of the (already encoded) path is encoded once more.
  const uri = rawPath.split('/').map((segment) => uriEncode(segment)).join('/') || '/';
  const query = rawQuery
    .split('&')
    .filter(Boolean)
    .map((pair) => {
      const [k, v = ''] = pair.split('=', 2);
      return [uriEncode(decode(k)), uriEncode(decode(v))] as const;
    })
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const values = new Map<string, string[]>();
  for (let i = 0; i < request.rawHeaders.length; i += 2) {
    const name = request.rawHeaders[i].toLowerCase();
    values.set(name, [...(values.get(name) ?? []), request.rawHeaders[i + 1].trim().replace(/\s+/g, ' ')]);
  }
  const headers = signedHeaders.map((name) => `${name}:${(values.get(name) ?? []).join(',')}\n`).join('');
  return [request.method, uri, query, headers, signedHeaders.join(';'), payloadHash].join('\n');
}

export interface VerifyOptions {
  /** The service this endpoint is (`execute-api`, `events`, `dynamodb`, ...). */
  service: string;
  region: string;
  /** The secret of an access key id, or undefined when the key is unknown. */
  secretOf: (accessKeyId: string) => string | undefined;
  /** @default Date.now */
  now?: () => number;
}

export function verifySignature(request: RawRequest, options: VerifyOptions): Verified {
  const header = (name: string) => {
    for (let i = 0; i < request.rawHeaders.length; i += 2) if (request.rawHeaders[i].toLowerCase() === name) return request.rawHeaders[i + 1];
    return undefined;
  };
  const authorization = header('authorization');
  if (!authorization) return { ok: false, reason: 'missing_authentication', message: 'Missing Authentication Token' };
  const match = /^AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/.exec(authorization.trim());
  const amzDate = header('x-amz-date');
  if (!match || !amzDate || !/^\d{8}T\d{6}Z$/.test(amzDate)) {
    return { ok: false, reason: 'incomplete_signature', message: `Authorization header requires 'Credential', 'Signature', 'SignedHeaders' and an 'X-Amz-Date' header (${ALGORITHM}).` };
  }
  const [, credential, signedList, signature] = match;
  const [accessKeyId, date, region, service, terminator] = credential.split('/');
  if (!accessKeyId || !date || !region || !service || terminator !== 'aws4_request' || date !== amzDate.slice(0, 8)) {
    return { ok: false, reason: 'incomplete_signature', message: `Credential must have the form <key>/<date>/<region>/<service>/aws4_request, got ${credential}` };
  }
  const signedHeaders = signedList.split(';');
  if (!signedHeaders.includes('host')) return { ok: false, reason: 'incomplete_signature', message: "'Host' must be a signed header." };
  const secret = options.secretOf(accessKeyId);
  if (secret === undefined) return { ok: false, reason: 'unknown_access_key', message: 'The security token included in the request is invalid.' };
  if (region !== options.region) return { ok: false, reason: 'wrong_region', message: `Credential should be scoped to a valid region, not '${region}'.` };
  if (service !== options.service) return { ok: false, reason: 'wrong_service', message: `Credential should be scoped to correct service: '${options.service}'.` };

  const signedAt = Date.UTC(+amzDate.slice(0, 4), +amzDate.slice(4, 6) - 1, +amzDate.slice(6, 8), +amzDate.slice(9, 11), +amzDate.slice(11, 13), +amzDate.slice(13, 15));
  const now = (options.now ?? Date.now)();
  if (Math.abs(now - signedAt) > MAX_CLOCK_SKEW_MS) {
    return { ok: false, reason: 'signature_expired', message: `Signature expired: ${amzDate} is now earlier or later than 5 minutes from the server's time.` };
  }

  const bodyHash = sha256(request.body);
  const claimed = header('x-amz-content-sha256');
  // An unsigned payload is S3's alone; the services emulated here sign the body.
  if (claimed !== undefined && claimed !== bodyHash) {
    return { ok: false, reason: 'signature_mismatch', message: 'The provided x-amz-content-sha256 header does not match what was computed.' };
  }
  const canonical = canonicalRequest(request, signedHeaders, claimed ?? bodyHash);
  const stringToSign = [ALGORITHM, amzDate, `${date}/${region}/${service}/aws4_request`, sha256(canonical)].join('\n');
  const expected = createHmac('sha256', signingKey(secret, date, region, service)).update(stringToSign).digest();
  if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) {
    return {
      ok: false,
      reason: 'signature_mismatch',
      message: 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
    };
  }
  return { ok: true, accessKeyId };
}
