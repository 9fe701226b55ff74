/**
 * Authentication configuration and wiring, the same for every runtime that accepts Gatehouse credentials (the
 * authorizer, the message handler, the session API, the speech service): one set of environment variables, one
 * way to build the verifier, the credential store and the server-side Cognito client.
 */
import { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { CognitoSessions, CredentialStore, TICKET_TTL_SECONDS } from './credentials';
import { documentClient } from './dynamo-client';
import {
  authenticateHandshake,
  refreshIdentity,
  revokedAmong,
  type Alongside,
  type HandshakeIdentity,
  type HandshakeOptions,
  type HandshakeResult,
  type Headers,
  type Query,
  type RefreshResult,
} from './handshake';
import { createAccessTokenVerifier, type TokenVerifier, type VerifierConfig } from './token';
import { GROUP_DEFAULTS } from '../protocol';

export const AUTH_ENV = {
  userPoolId: 'USER_POOL_ID',
  clientId: 'USER_POOL_CLIENT_ID',
  maxTokenLifetimeSeconds: 'MAX_TOKEN_LIFETIME_SECONDS',
  jwksUri: 'JWKS_URI',
  jwksTimeoutMs: 'JWKS_TIMEOUT_MS',
  allowQueryToken: 'ALLOW_QUERY_TOKEN',
  tenantGroupPrefix: 'TENANT_GROUP_PREFIX',
  allowedOrigins: 'ALLOWED_ORIGINS',
  sessionClientId: 'SESSION_CLIENT_ID',
  sessionLifetimeSeconds: 'SESSION_LIFETIME_SECONDS',
  tableName: 'TABLE_NAME',
  ticketTtlSeconds: 'TICKET_TTL_SECONDS',
} as const;

export interface AuthConfig {
  verifier: VerifierConfig & { clientId: string[] };
  allowQueryToken: boolean;
  tenantGroupPrefix: string;
  /** Exact page origins that may open sockets and call the session API; empty: no browser page is allowed. */
  allowedOrigins: string[];
  /** The confidential app client of cookie sessions (absent: cookie sessions are off). */
  sessionClientId?: string;
  /** How long a cookie session lasts (the refresh token's validity). */
  sessionLifetimeSeconds: number;
  /** The table holding tickets, sessions and revocations (absent: bearer tokens only, no revocation checks). */
  tableName?: string;
  /** How long a one-time WebSocket ticket is valid. */
  ticketTtlSeconds: number;
}

type Env = Record<string, string | undefined>;

export function envString(env: Env, name: string, fallback?: string): string {
  const value = env[name] || fallback;
  if (!value) throw new Error(`Missing environment variable ${name}`);
  return value;
}

export function envNumber(env: Env, name: string, fallback: number, options: { allowZero?: boolean } = {}): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || (value === 0 && !options.allowZero)) {
    throw new Error(`${name} must be a positive number, got "${raw}"`);
  }
  return value;
}

export function envBool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw !== 'true' && raw !== 'false') throw new Error(`${name} must be "true" or "false", got "${raw}"`);
  return raw === 'true';
}

export function authConfig(env: Env, defaults: { allowQueryToken: boolean }): AuthConfig {
  const jwksUri = env[AUTH_ENV.jwksUri];
  const sessionClientId = env[AUTH_ENV.sessionClientId];
  const tableName = env[AUTH_ENV.tableName];
  return {
    verifier: {
      userPoolId: envString(env, AUTH_ENV.userPoolId),
      // The web app's client, and the session API's (whose tokens never leave the server).
      clientId: [envString(env, AUTH_ENV.clientId), ...(sessionClientId ? [sessionClientId] : [])],
      maxTokenLifetimeSeconds: envNumber(env, AUTH_ENV.maxTokenLifetimeSeconds, 3600),
      jwksTimeoutMs: envNumber(env, AUTH_ENV.jwksTimeoutMs, 2000),
      ...(jwksUri ? { jwksUri } : {}),
    },
    allowQueryToken: envBool(env, AUTH_ENV.allowQueryToken, defaults.allowQueryToken),
    tenantGroupPrefix: env[AUTH_ENV.tenantGroupPrefix] || GROUP_DEFAULTS.tenantGroupPrefix,
    allowedOrigins: (env[AUTH_ENV.allowedOrigins] ?? '').split(',').map((o) => o.trim()).filter(Boolean),
    ...(sessionClientId ? { sessionClientId } : {}),
    sessionLifetimeSeconds: envNumber(env, AUTH_ENV.sessionLifetimeSeconds, 12 * 3600),
    ...(tableName ? { tableName } : {}),
    ticketTtlSeconds: envNumber(env, AUTH_ENV.ticketTtlSeconds, TICKET_TTL_SECONDS),
  };
}

export interface Auth {
  config: AuthConfig;
  verifier: TokenVerifier;
  credentials?: CredentialStore;
  sessions?: CognitoSessions;
  /** The full handshake check with this runtime's settings (`alongside`: see handshake.ts). */
  handshake(headers: Headers, query: Query, alongside?: Alongside): Promise<HandshakeResult>;
  /** Renews an open socket's credential (a new token, or its cookie session): the one refresh policy. */
  refresh(current: HandshakeIdentity, token: string | undefined): Promise<RefreshResult>;
  /** Which of these open sockets' credentials were revoked since (the watch of long-lived sockets). */
  revoked(identities: HandshakeIdentity[]): Promise<boolean[]>;
}

/**
 * Builds the verifier (JWKS cached for the life of the process), the credential store and the server-side Cognito
 * client. Region, credentials and endpoints come from the environment (the local system points them at stand-ins).
 */
export function createAuth(
  config: AuthConfig,
  clients: { db?: DynamoDBDocumentClient; cognito?: CognitoIdentityProviderClient; sessions?: CognitoSessions } = {},
): Auth {
  const verifier = createAccessTokenVerifier(config.verifier);
  const db = config.tableName ? (clients.db ?? documentClient()) : undefined;
  const credentials = db && config.tableName ? new CredentialStore(db, config.tableName) : undefined;
  const sessions = clients.sessions ?? (config.sessionClientId
    ? new CognitoSessions(clients.cognito ?? new CognitoIdentityProviderClient({}), config.verifier.userPoolId, config.sessionClientId)
    : undefined);
  const options: HandshakeOptions = {
    verifier,
    allowQueryToken: config.allowQueryToken,
    tenantGroupPrefix: config.tenantGroupPrefix,
    allowedOrigins: config.allowedOrigins,
    ...(credentials ? { credentials } : {}),
    ...(sessions ? { sessions } : {}),
  };
  return {
    config,
    verifier,
    ...(credentials ? { credentials } : {}),
    ...(sessions ? { sessions } : {}),
    handshake: (headers, query, alongside) => authenticateHandshake(headers, query, options, alongside),
    refresh: (current, token) => refreshIdentity(current, token, options),
    revoked: (identities) => revokedAmong(identities, options),
  };
}
