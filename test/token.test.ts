import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createAccessTokenVerifier, isCanonicalSegment, resolveTenant, type DenyReason, type VerifierConfig } from '../common/token';
import {
  CLIENT_ID,
  ISSUER,
  USER_POOL_ID,
  accessClaims,
  hs256WithPublicKey,
  makeKey,
  serveJwks,
  signToken,
  unsigned,
  type JwksServer,
} from './support/jwt';

const key = makeKey('key-1');
const otherKey = makeKey('key-1'); // same kid, different key: a forged signature
const strangerKey = makeKey('key-unknown');
let jwks: JwksServer;

const config = (overrides: Partial<VerifierConfig> = {}): VerifierConfig => ({
  userPoolId: USER_POOL_ID,
  clientId: CLIENT_ID,
  maxTokenLifetimeSeconds: 3600,
  jwksUri: jwks.url,
  jwksTimeoutMs: 1000,
  ...overrides,
});

beforeAll(async () => {
  jwks = await serveJwks([key]);
});
afterAll(() => jwks.close());

const now = () => Math.floor(Date.now() / 1000);

/** Flips an unused low bit of the last base64url character: same bytes, non-canonical text. */
function nonCanonical(segment: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(segment[segment.length - 1]);
  return segment.slice(0, -1) + alphabet[last ^ 1];
}

describe('access token verification', () => {
  it('accepts a Cognito access token for this pool and client, and returns its claims', async () => {
    const verifier = createAccessTokenVerifier(config());
    const result = await verifier.verify(signToken(key, accessClaims()));
    expect(result).toEqual({
      ok: true,
      claims: expect.objectContaining({ sub: 'user-1111', username: 'alice', groups: ['tenant:acme'], jti: 'jti-1' }),
    });
  });

  const cases: Array<[string, () => string, DenyReason]> = [
    ['a wrong issuer', () => signToken(key, accessClaims({ iss: `${ISSUER}x` })), 'wrong_issuer'],
    ['another pool of the same region', () => signToken(key, accessClaims({ iss: ISSUER.replace('TestPool1', 'OtherPool') })), 'wrong_issuer'],
    ['a wrong client', () => signToken(key, accessClaims({ client_id: 'someoneelse' })), 'wrong_client'],
    [
      'an ID token',
      () => signToken(key, accessClaims({ token_use: 'id', client_id: undefined, aud: CLIENT_ID, email: 'a@example.com' })),
      'wrong_token_use',
    ],
    ['an expired token', () => signToken(key, accessClaims({ iat: now() - 1000, exp: now() - 10 })), 'expired'],
    ['a token not yet valid (nbf)', () => signToken(key, accessClaims({ nbf: now() + 600 })), 'not_yet_valid'],
    ['a bad signature', () => signToken(otherKey, accessClaims()), 'bad_signature'],
    ['alg none', () => unsigned(accessClaims(), 'none', 'key-1'), 'bad_algorithm'],
    ['alg "None"', () => unsigned(accessClaims(), 'None', 'key-1'), 'bad_algorithm'],
    ['HS256 signed with the public key', () => hs256WithPublicKey(key, accessClaims()), 'bad_algorithm'],
    ['RS512', () => signToken(key, accessClaims(), { alg: 'RS512' }), 'bad_algorithm'],
    ['an unknown kid', () => signToken(strangerKey, accessClaims()), 'unknown_kid'],
    ['no kid', () => signToken(key, accessClaims(), { kid: undefined }), 'unknown_kid'],
    ['a token over 8 KiB', () => signToken(key, accessClaims({ pad: 'x'.repeat(9000) })), 'token_too_large'],
    ['a missing exp', () => signToken(key, accessClaims({ exp: undefined })), 'missing_claim'],
    ['a missing iat', () => signToken(key, accessClaims({ iat: undefined })), 'missing_claim'],
    ['a string exp', () => signToken(key, accessClaims({ exp: String(now() + 600) })), 'invalid_claim'],
    ['an iat in the future', () => signToken(key, accessClaims({ iat: now() + 300, exp: now() + 900 })), 'issued_in_future'],
    ['a lifetime beyond the pool', () => signToken(key, accessClaims({ exp: now() + 7200 })), 'lifetime_too_long'],
    ['a crit header', () => signToken(key, accessClaims(), { crit: ['exp'] }), 'crit_header'],
    ['an embedded jwk', () => signToken(key, accessClaims(), { jwk: key.publicJwk }), 'embedded_key'],
    ['a jku header', () => signToken(key, accessClaims(), { jku: 'https://evil.example/jwks.json' }), 'embedded_key'],
    ['a padded signature', () => `${signToken(key, accessClaims())}==`, 'non_canonical_encoding'],
    ['standard base64 characters', () => signToken(key, accessClaims()).replace(/-/g, '+').replace(/_/g, '/') + '+', 'non_canonical_encoding'],
    [
      'non-canonical trailing bits',
      () => {
        const [h, p, s] = signToken(key, accessClaims()).split('.');
        return `${h}.${p}.${nonCanonical(s)}`;
      },
      'non_canonical_encoding',
    ],
    ['two segments', () => signToken(key, accessClaims()).split('.').slice(0, 2).join('.'), 'malformed_token'],
    ['a non-JSON header', () => `bm90IGpzb24.${signToken(key, accessClaims()).split('.').slice(1).join('.')}`, 'malformed_token'],
    ['an empty string', () => '', 'missing_token'],
    // The claim types aws-jwt-verify's own parse requires, now checked on Gatehouse's one decoding.
    ['a kid that is not a string', () => signToken(key, accessClaims(), { kid: 7 }), 'malformed_token'],
    ['an aud that is a number', () => signToken(key, accessClaims({ aud: 42 })), 'malformed_token'],
    ['an aud list with a number', () => signToken(key, accessClaims({ aud: ['a', 1] })), 'malformed_token'],
    ['an nbf that is a string', () => signToken(key, accessClaims({ nbf: 'soon' })), 'malformed_token'],
    ['a scope that is a list', () => signToken(key, accessClaims({ scope: ['a'] })), 'malformed_token'],
    ['a jti that is a number', () => signToken(key, accessClaims({ jti: 5 })), 'malformed_token'],
  ];

  it.each(cases)('denies %s', async (_name, make, reason) => {
    const verifier = createAccessTokenVerifier(config());
    expect(await verifier.verify(make())).toEqual({ ok: false, reason });
  });

  it.each([
    ['a key for another algorithm', { alg: 'RS512' }, 'bad_algorithm'],
    ['an encryption key', { use: 'enc' }, 'jwks_unavailable'],
  ] as const)("refuses a token whose key in the pool's JWKS is %s", async (_name, change, reason) => {
    const own = await serveJwks([{ ...key, publicJwk: { ...key.publicJwk, ...change } }]);
    try {
      const verifier = createAccessTokenVerifier(config({ jwksUri: own.url }));
      expect(await verifier.verify(signToken(key, accessClaims()))).toEqual({ ok: false, reason });
    } finally {
      await own.close();
    }
  });

  it('keeps a token\'s __proto__ and constructor claims from reaching anything (as aws-jwt-verify does)', async () => {
    const verifier = createAccessTokenVerifier(config());
    // A payload with those keys (JSON.parse makes them own properties), signed: it verifies, and no prototype is touched.
    const payload = JSON.stringify(accessClaims()).replace(/^\{/, '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},');
    const token = signToken(key, JSON.parse(payload) as Record<string, unknown>);
    expect(Buffer.from(token.split('.')[1], 'base64url').toString()).toContain('"__proto__"');
    const result = await verifier.verify(token);
    expect(result.ok).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('decides canonical base64url exactly as decoding and re-encoding would, for every length and last character', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    for (let length = 1; length <= 9; length++) {
      for (const last of alphabet) {
        const segment = 'Q'.repeat(length - 1) + last;
        expect({ segment, canonical: isCanonicalSegment(segment) }).toEqual({ segment, canonical: Buffer.from(segment, 'base64url').toString('base64url') === segment });
      }
    }
    for (const odd of ['', 'a=', 'a+b', 'a/b', 'a.b', 'ab\n']) expect(isCanonicalSegment(odd)).toBe(false);
  });

  it('fetches the JWKS once and serves later verifications from the cache, even concurrent cold ones', async () => {
    const own = await serveJwks([key]);
    try {
      const verifier = createAccessTokenVerifier(config({ jwksUri: own.url }));
      const results = await Promise.all(Array.from({ length: 10 }, () => verifier.verify(signToken(key, accessClaims()))));
      for (let i = 0; i < 10; i++) results.push(await verifier.verify(signToken(key, accessClaims())));
      expect(results.every((r) => r.ok)).toBe(true);
      expect(own.fetches).toBe(1);
    } finally {
      await own.close();
    }
  });

  it('does not let a flood of unknown kids refetch the JWKS for each token', async () => {
    const own = await serveJwks([key]);
    try {
      const verifier = createAccessTokenVerifier(config({ jwksUri: own.url }));
      await verifier.verify(signToken(key, accessClaims()));
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => verifier.verify(signToken({ ...strangerKey, kid: `kid-${i}` }, accessClaims()))),
      );
      expect(results.every((r) => !r.ok && r.reason === 'unknown_kid')).toBe(true);
      expect(own.fetches).toBeLessThanOrEqual(2);
    } finally {
      await own.close();
    }
  });

  it('fails closed when the JWKS endpoint refuses connections', async () => {
    const verifier = createAccessTokenVerifier(config({ jwksUri: 'http://127.0.0.1:1/jwks.json' }));
    expect(await verifier.verify(signToken(key, accessClaims()))).toEqual({ ok: false, reason: 'jwks_unavailable' });
  });

  it('fails closed, within its time-out, when the JWKS endpoint hangs', async () => {
    const silent: Server = createServer(() => undefined); // accepts, never answers
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    try {
      const verifier = createAccessTokenVerifier(config({ jwksUri: `http://127.0.0.1:${port}/jwks.json`, jwksTimeoutMs: 300 }));
      const started = Date.now();
      expect(await verifier.verify(signToken(key, accessClaims()))).toEqual({ ok: false, reason: 'jwks_unavailable' });
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      silent.close();
    }
  });
});

describe('resolveTenant', () => {
  it('takes the only tenant group', () => {
    expect(resolveTenant(['admin', 'tenant:acme'], undefined)).toEqual({ ok: true, tenantId: 'acme' });
  });
  it('lets a member of several tenants choose one of them', () => {
    expect(resolveTenant(['tenant:acme', 'tenant:globex'], 'globex')).toEqual({ ok: true, tenantId: 'globex' });
  });
  it('requires the choice when there are several', () => {
    expect(resolveTenant(['tenant:acme', 'tenant:globex'], undefined)).toEqual({ ok: false, reason: 'tenant_required' });
  });
  it('refuses a tenant the user is not in', () => {
    expect(resolveTenant(['tenant:acme'], 'globex')).toEqual({ ok: false, reason: 'tenant_not_allowed' });
  });
  it('refuses a user with no tenant group', () => {
    expect(resolveTenant(['admin'], undefined)).toEqual({ ok: false, reason: 'no_tenant' });
  });
  it('ignores tenant groups whose id could break a key', () => {
    expect(resolveTenant(['tenant:a#b', 'tenant:'], undefined)).toEqual({ ok: false, reason: 'no_tenant' });
  });
});
