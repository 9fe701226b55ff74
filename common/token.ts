/**
 * Verification of Cognito access tokens: the one module every runtime that accepts a token uses (the WebSocket
 * authorizer today, the speech service later). aws-jwt-verify checks signature, issuer, client id, token_use and
 * expiry; the guards in front of it refuse what the library lets through but no Cognito token ever carries.
 *
 * Node only (Buffer, fetch with a time-out).
 */
import { verify as verifySignature, type KeyObject } from 'node:crypto';
import { validateCognitoJwtFields } from 'aws-jwt-verify/cognito-verifier';
import {
  CognitoJwtInvalidClientIdError,
  CognitoJwtInvalidTokenUseError,
  FetchError,
  JwkInvalidKtyError,
  JwkInvalidUseError,
  JwksNotAvailableInCacheError,
  JwksValidationError,
  JwtExpiredError,
  JwtInvalidIssuerError,
  JwtInvalidSignatureAlgorithmError,
  JwtInvalidSignatureError,
  JwtNotBeforeError,
  JwtParseError,
  JwtWithoutValidKidError,
  KidNotFoundInJwksError,
  WaitPeriodNotYetEndedJwkError,
} from 'aws-jwt-verify/error';
import { SimpleJwksCache, assertIsSignatureJwk } from 'aws-jwt-verify/jwk';
import { validateJwtFields } from 'aws-jwt-verify/jwt';
import type { JwtHeader, JwtPayload } from 'aws-jwt-verify/jwt-model';
import { KeyObjectCache } from 'aws-jwt-verify/jwt-verifier';
import type { Fetcher } from 'aws-jwt-verify/https';
import { GROUP_DEFAULTS, tenantsOfGroups, type DenyReason } from '../protocol';

export type { DenyReason } from '../protocol';

export interface VerifierConfig {
  /** Cognito user pool id, `<region>_<id>`; the issuer and JWKS URL derive from it. */
  userPoolId: string;
  /** The app client(s) whose access tokens are accepted. */
  clientId: string | string[];
  /** The pool's access-token validity: a token claiming a longer life was not minted by this pool. */
  maxTokenLifetimeSeconds: number;
  /** Fetch the JWKS from here instead of Cognito (local emulator only; the issuer is still checked). */
  jwksUri?: string;
  /** Give up on a JWKS fetch after this long and deny: fail closed, and fast. */
  jwksTimeoutMs?: number;
  /** Tolerated clock difference for `iat`, seconds. */
  clockSkewSeconds?: number;
}


/** The claims Gatehouse uses from a verified access token. */
export interface AccessClaims {
  sub: string;
  username: string;
  groups: string[];
  exp: number;
  iat: number;
  jti?: string;
  originJti?: string;
}

export type VerifyResult = { ok: true; claims: AccessClaims } | { ok: false; reason: DenyReason };

export interface TokenVerifier {
  verify(token: string): Promise<VerifyResult>;
}

export const MAX_TOKEN_BYTES = 8 * 1024;
const SEGMENT = /^[A-Za-z0-9_-]+$/;

export class JwksUnavailableError extends Error {
  override name = 'JwksUnavailableError';
}

/** One attempt, bounded in time, any URI scheme (the local emulator serves http). */
export function timeoutFetcher(timeoutMs: number, jwksUri?: string): Fetcher {
  return {
    async fetch(uri: string): Promise<ArrayBuffer> {
      let response: Response;
      try {
        response = await fetch(jwksUri ?? uri, { signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
      } catch (err) {
        throw new JwksUnavailableError(`JWKS fetch failed: ${(err as Error).name}`);
      }
      if (!response.ok) throw new JwksUnavailableError(`JWKS fetch answered ${response.status}`);
      return response.arrayBuffer();
    },
  };
}

/** The value of each base64url character, -1 for anything else. */
const B64URL = new Int8Array(128).fill(-1);
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.split('').forEach((c, i) => (B64URL[c.charCodeAt(0)] = i));

/**
 * Whether a segment is canonical base64url: its alphabet, no padding, a possible length, and zero bits where the
 * last character has more than the bytes need (such stray bits decode, but the text is not the one encoding of its
 * bytes: a second spelling of the same token). Decided from the length and the last character, without re-encoding.
 */
export function isCanonicalSegment(segment: string): boolean {
  if (!SEGMENT.test(segment)) return false;
  const rest = segment.length % 4;
  if (rest === 1) return false;
  if (rest === 0) return true;
  const last = B64URL[segment.charCodeAt(segment.length - 1)];
  return (last & (rest === 2 ? 0x0f : 0x03)) === 0;
}

function decodeSegment(segment: string): Record<string, unknown> | DenyReason {
  if (!isCanonicalSegment(segment)) return 'non_canonical_encoding';
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : 'malformed_token';
  } catch {
    return 'malformed_token';
  }
}

/** The issuer Cognito puts in every token of a pool (the region is the pool id's prefix). */
export function cognitoIssuer(userPoolId: string): string {
  return `https://cognito-idp.${userPoolId.split('_')[0]}.amazonaws.com/${userPoolId}`;
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isString = (v: unknown): v is string => typeof v === 'string';

/** A token decoded once, the guards passed: what aws-jwt-verify's checks take (its `DecomposedJwt`). */
export interface DecodedToken {
  header: JwtHeader;
  payload: JwtPayload;
  headerB64: string;
  payloadB64: string;
  signatureB64: string;
}

/**
 * Decodes a token once and applies every structural guard, before any key is looked at (so a token cannot make the
 * verifier fetch a JWKS unless it is shaped like one of the pool's): sizes, canonical encoding, no `crit`, no key of
 * its own (`jwk`, `jku`, `x5u`, `x5c`), RS256 only, this pool's issuer, the claims every access token has, no
 * issue time in the future and no lifetime longer than the pool's. Then the claim types aws-jwt-verify requires
 * (`decomposeUnverifiedJwt`), so that its checks can run on this decoding instead of parsing the token again.
 */
export function decodeToken(token: string, config: VerifierConfig, nowSeconds: number): DecodedToken | DenyReason {
  if (token.length === 0) return 'missing_token';
  if (token.length > MAX_TOKEN_BYTES) return 'token_too_large';
  const parts = token.split('.');
  if (parts.length !== 3) return 'malformed_token';
  const [headerB64, payloadB64, signatureB64] = parts;
  const header = decodeSegment(headerB64);
  if (typeof header === 'string') return header;
  if ('crit' in header) return 'crit_header';
  // Keys come only from the pool's JWKS; a token naming its own key (or where to fetch one) is an attack.
  if ('jwk' in header || 'jku' in header || 'x5u' in header || 'x5c' in header) return 'embedded_key';
  // Cognito signs with RS256 only: this refuses "none", HS256 key confusion and algorithm swaps up front.
  if (header.alg !== 'RS256') return 'bad_algorithm';
  const payload = decodeSegment(payloadB64);
  if (typeof payload === 'string') return payload;
  if (payload.iss !== cognitoIssuer(config.userPoolId)) return 'wrong_issuer';
  if (!isCanonicalSegment(signatureB64)) return 'non_canonical_encoding';
  if (payload.exp === undefined || payload.iat === undefined || typeof payload.sub !== 'string' || payload.sub === '') return 'missing_claim';
  if (!isInt(payload.exp) || !isInt(payload.iat)) return 'invalid_claim';
  const skew = config.clockSkewSeconds ?? 30;
  if (payload.iat > nowSeconds + skew) return 'issued_in_future';
  if (payload.exp - payload.iat > config.maxTokenLifetimeSeconds) return 'lifetime_too_long';
  // What aws-jwt-verify's own parse refuses (JwtParseError), in its order.
  if (header.kid !== undefined && !isString(header.kid)) return 'malformed_token';
  const { aud, nbf, scope, jti } = payload;
  if (aud !== undefined && !isString(aud) && !(Array.isArray(aud) && aud.every(isString))) return 'malformed_token';
  if (nbf !== undefined && !(typeof nbf === 'number' && Number.isFinite(nbf))) return 'malformed_token';
  if ((scope !== undefined && !isString(scope)) || (jti !== undefined && !isString(jti))) return 'malformed_token';
  // As aws-jwt-verify's safe parse does: nothing downstream may meet a `__proto__` or `constructor` of the token's.
  for (const part of [header, payload] as Array<Record<string, unknown>>) {
    delete part['__proto__'];
    delete part['constructor'];
  }
  return { header: header as JwtHeader, payload: payload as JwtPayload, headerB64, payloadB64, signatureB64 };
}

function reasonFor(err: unknown): DenyReason {
  if (err instanceof JwksUnavailableError || err instanceof FetchError) return 'jwks_unavailable';
  if (err instanceof JwtExpiredError) return 'expired';
  if (err instanceof JwtNotBeforeError) return 'not_yet_valid';
  if (err instanceof JwtInvalidIssuerError) return 'wrong_issuer';
  if (err instanceof CognitoJwtInvalidClientIdError) return 'wrong_client';
  if (err instanceof CognitoJwtInvalidTokenUseError) return 'wrong_token_use';
  if (err instanceof JwtInvalidSignatureAlgorithmError) return 'bad_algorithm';
  if (err instanceof JwtInvalidSignatureError) return 'bad_signature';
  if (
    err instanceof KidNotFoundInJwksError ||
    err instanceof JwtWithoutValidKidError ||
    err instanceof WaitPeriodNotYetEndedJwkError ||
    err instanceof JwksNotAvailableInCacheError
  ) {
    return 'unknown_kid';
  }
  if (err instanceof JwksValidationError || err instanceof JwkInvalidUseError || err instanceof JwkInvalidKtyError) {
    return 'jwks_unavailable';
  }
  if (err instanceof JwtParseError) return 'malformed_token';
  return 'invalid_token';
}

/**
 * Builds a verifier. Create it once per process (module scope in a Lambda): the JWKS it fetches is cached for
 * every later invocation of the container, and concurrent fetches are shared.
 *
 * The checks are aws-jwt-verify's own, run on the one decoding above instead of a second parse: its JWKS cache picks
 * the key (`SimpleJwksCache.getJwk`: kid lookup, a refetch for an unknown kid, the penalty box), its key cache turns
 * it into a public key, its `assertIsSignatureJwk` and algorithm match check the key, Node verifies the RS256
 * signature (what aws-jwt-verify's Node build calls), and its `validateJwtFields` and `validateCognitoJwtFields`
 * check expiry, not-before, issuer, token use and client id.
 */
export function createAccessTokenVerifier(
  config: VerifierConfig,
  options: { now?: () => number } = {},
): TokenVerifier {
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  const issuer = cognitoIssuer(config.userPoolId);
  const jwksUri = `${issuer}/.well-known/jwks.json`;
  const jwks = new SimpleJwksCache({ fetcher: timeoutFetcher(config.jwksTimeoutMs ?? 2000, config.jwksUri) });
  const keys = new KeyObjectCache();
  const clientId = Array.isArray(config.clientId) ? config.clientId : [config.clientId];
  return {
    async verify(token: string): Promise<VerifyResult> {
      const decoded = decodeToken(token, config, now());
      if (typeof decoded === 'string') return { ok: false, reason: decoded };
      const { header, payload } = decoded;
      try {
        const jwk = await jwks.getJwk(jwksUri, decoded);
        assertIsSignatureJwk(jwk);
        if (jwk.alg !== undefined && jwk.alg !== header.alg) return { ok: false, reason: 'bad_algorithm' };
        const key = keys.transformJwkToKeyObjectSync(jwk, 'RS256', issuer) as KeyObject;
        const signed = Buffer.from(token.slice(0, decoded.headerB64.length + decoded.payloadB64.length + 1));
        if (!verifySignature('sha256', signed, key, Buffer.from(decoded.signatureB64, 'base64url'))) return { ok: false, reason: 'bad_signature' };
        validateJwtFields(payload, { issuer, audience: null });
        validateCognitoJwtFields(payload, { tokenUse: 'access', clientId });
      } catch (err) {
        return { ok: false, reason: reasonFor(err) };
      }
      const groups = payload['cognito:groups'];
      const originJti = payload.origin_jti;
      return {
        ok: true,
        claims: {
          sub: payload.sub!,
          username: typeof payload.username === 'string' ? payload.username : payload.sub!,
          groups: Array.isArray(groups) ? groups.filter((g): g is string => typeof g === 'string') : [],
          exp: payload.exp!,
          iat: payload.iat!,
          ...(typeof payload.jti === 'string' ? { jti: payload.jti } : {}),
          ...(typeof originJti === 'string' ? { originJti } : {}),
        },
      };
    },
  };
}

export type TenantResult =
  | { ok: true; tenantId: string }
  | { ok: false; reason: 'no_tenant' | 'tenant_not_allowed' | 'tenant_required' };

/**
 * The tenant of a connection comes from the verified token's groups (`tenant:<id>`), never from the client. A
 * client may only choose among its own tenants, and must choose when it has several.
 */
export function resolveTenant(groups: string[], requested: string | undefined, prefix: string = GROUP_DEFAULTS.tenantGroupPrefix): TenantResult {
  const tenants = tenantsOfGroups(groups, prefix);
  if (tenants.length === 0) return { ok: false, reason: 'no_tenant' };
  if (requested !== undefined) {
    return tenants.includes(requested) ? { ok: true, tenantId: requested } : { ok: false, reason: 'tenant_not_allowed' };
  }
  return tenants.length === 1 ? { ok: true, tenantId: tenants[0] } : { ok: false, reason: 'tenant_required' };
}
