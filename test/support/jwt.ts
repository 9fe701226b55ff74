/**
 * Test identity provider: RSA keys, a JWKS served on loopback, and a signer that can mint any token, valid or
 * hostile, in the shape Cognito issues.
 */
import { createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export const REGION = 'eu-west-1';
export const USER_POOL_ID = `${REGION}_TestPool1`;
export const CLIENT_ID = 'testclient1234567890abcdef';
export const ISSUER = `https://cognito-idp.${REGION}.amazonaws.com/${USER_POOL_ID}`;

export interface KeyPair {
  kid: string;
  privateKey: KeyObject;
  publicJwk: Record<string, unknown>;
  publicPem: string;
}

export function makeKey(kid: string): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    kid,
    privateKey,
    publicJwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' },
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** Claims of a Cognito access token for a user in the given groups, valid from now for 15 minutes. */
export function accessClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = now();
  return {
    sub: 'user-1111',
    'cognito:groups': ['tenant:acme'],
    iss: ISSUER,
    client_id: CLIENT_ID,
    origin_jti: 'origin-1',
    event_id: 'event-1',
    token_use: 'access',
    scope: 'aws.cognito.signin.user.admin',
    auth_time: iat,
    iat,
    exp: iat + 900,
    jti: 'jti-1',
    username: 'alice',
    ...overrides,
  };
}

/** RS256-signs header + payload with `key` (header fields can be overridden or removed with undefined). */
export function signToken(key: KeyPair, payload: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const h = Object.fromEntries(
    Object.entries({ kid: key.kid, alg: 'RS256', ...header }).filter(([, v]) => v !== undefined),
  );
  const body = Object.fromEntries(Object.entries(payload).filter(([, v]) => v !== undefined));
  const input = `${b64(h)}.${b64(body)}`;
  return `${input}.${sign('sha256', Buffer.from(input), key.privateKey).toString('base64url')}`;
}

/** The classic key-confusion forgery: HS256 with the RSA public key as the HMAC secret. */
export function hs256WithPublicKey(key: KeyPair, payload: Record<string, unknown>): string {
  const input = `${b64({ kid: key.kid, alg: 'HS256' })}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', key.publicPem).update(input).digest('base64url')}`;
}

export function unsigned(payload: Record<string, unknown>, alg = 'none', kid?: string): string {
  return `${b64({ alg, ...(kid ? { kid } : {}) })}.${b64(payload)}.`;
}

export interface JwksServer {
  url: string;
  fetches: number;
  keys: KeyPair[];
  close(): Promise<void>;
}

/** Serves `{keys: [...]}` and counts fetches (a verifier must cache). */
export async function serveJwks(keys: KeyPair[]): Promise<JwksServer> {
  const state: JwksServer = { url: '', fetches: 0, keys, close: async () => undefined };
  const server: Server = createServer((_req, res) => {
    state.fetches++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: state.keys.map((k) => k.publicJwk) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}

