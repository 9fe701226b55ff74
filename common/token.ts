/**
 * Verification of Cognito access tokens: the one module every runtime that accepts a token uses (the WebSocket
 * authorizer today, the speech service later). aws-jwt-verify checks signature, issuer, client id, token_use and
 * expiry; the guards in front of it refuse what the library lets through but no Cognito token ever carries.
 *
 * Node only (Buffer, fetch with a time-out).
 */
import { CognitoJwtVerifier } from 'aws-jwt-verify';
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
import { SimpleJwksCache } from 'aws-jwt-verify/jwk';
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

function decodeSegment(segment: string): Record<string, unknown> | DenyReason {
  if (!SEGMENT.test(segment)) return 'non_canonical_encoding';
  const bytes = Buffer.from(segment, 'base64url');
  // Non-canonical base64url (stray trailing bits, impossible lengths) decodes, but does not re-encode to itself.
  if (bytes.toString('base64url') !== segment) return 'non_canonical_encoding';
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
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

/** Structural checks that need no key: cheap, and they run before any JWKS fetch a token could trigger. */
export function precheck(token: string, config: VerifierConfig, nowSeconds: number): DenyReason | undefined {
  if (token.length === 0) return 'missing_token';
  if (token.length > MAX_TOKEN_BYTES) return 'token_too_large';
  const parts = token.split('.');
  if (parts.length !== 3) return 'malformed_token';
  const header = decodeSegment(parts[0]);
  if (typeof header === 'string') return header;
  if ('crit' in header) return 'crit_header';
  // Keys come only from the pool's JWKS; a token naming its own key (or where to fetch one) is an attack.
  if ('jwk' in header || 'jku' in header || 'x5u' in header || 'x5c' in header) return 'embedded_key';
  // Cognito signs with RS256 only: this refuses "none", HS256 key confusion and algorithm swaps up front.
  if (header.alg !== 'RS256') return 'bad_algorithm';
  const payload = decodeSegment(parts[1]);
  if (typeof payload === 'string') return payload;
  if (payload.iss !== cognitoIssuer(config.userPoolId)) return 'wrong_issuer';
  if (!SEGMENT.test(parts[2]) || Buffer.from(parts[2], 'base64url').toString('base64url') !== parts[2]) {
    return 'non_canonical_encoding';
  }
  if (payload.exp === undefined || payload.iat === undefined || typeof payload.sub !== 'string' || payload.sub === '') return 'missing_claim';
  if (!isInt(payload.exp) || !isInt(payload.iat)) return 'invalid_claim';
  const skew = config.clockSkewSeconds ?? 30;
  if (payload.iat > nowSeconds + skew) return 'issued_in_future';
  if (payload.exp - payload.iat > config.maxTokenLifetimeSeconds) return 'lifetime_too_long';
  return undefined;
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
 */
export function createAccessTokenVerifier(
  config: VerifierConfig,
  options: { now?: () => number } = {},
): TokenVerifier {
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  const verifier = CognitoJwtVerifier.create(
    { userPoolId: config.userPoolId, clientId: config.clientId, tokenUse: 'access' },
    { jwksCache: new SimpleJwksCache({ fetcher: timeoutFetcher(config.jwksTimeoutMs ?? 2000, config.jwksUri) }) },
  );
  return {
    async verify(token: string): Promise<VerifyResult> {
      const pre = precheck(token, config, now());
      if (pre) return { ok: false, reason: pre };
      try {
        const payload = await verifier.verify(token);
        const groups = payload['cognito:groups'];
        const originJti = payload.origin_jti;
        return {
          ok: true,
          claims: {
            sub: payload.sub,
            username: typeof payload.username === 'string' ? payload.username : payload.sub,
            groups: Array.isArray(groups) ? groups.filter((g): g is string => typeof g === 'string') : [],
            exp: payload.exp,
            iat: payload.iat,
            ...(typeof payload.jti === 'string' ? { jti: payload.jti } : {}),
            ...(typeof originJti === 'string' ? { originJti } : {}),
          },
        };
      } catch (err) {
        return { ok: false, reason: reasonFor(err) };
      }
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
