/**
 * Handler configuration from the environment. The variable names are imported by the infrastructure that sets
 * them (lib/realtime-api.ts), so a rename cannot leave one side behind; a missing or malformed value fails the
 * cold start with a message that names it.
 */
import type { VerifierConfig } from '../../common/token';
import type { Limits } from '../../common/protocol';

export const ENV = {
  userPoolId: 'USER_POOL_ID',
  clientId: 'USER_POOL_CLIENT_ID',
  maxTokenLifetimeSeconds: 'MAX_TOKEN_LIFETIME_SECONDS',
  jwksUri: 'JWKS_URI',
  jwksTimeoutMs: 'JWKS_TIMEOUT_MS',
  allowQueryToken: 'ALLOW_QUERY_TOKEN',
  tenantGroupPrefix: 'TENANT_GROUP_PREFIX',
  adminGroup: 'ADMIN_GROUP',
  tableName: 'TABLE_NAME',
  connectionsUrl: 'CONNECTIONS_URL',
  maxConnectionSeconds: 'MAX_CONNECTION_SECONDS',
  maxFrameBytes: 'MAX_FRAME_BYTES',
  maxDataBytes: 'MAX_DATA_BYTES',
  maxRoomsPerConnection: 'MAX_ROOMS_PER_CONNECTION',
  broadcastConcurrency: 'BROADCAST_CONCURRENCY',
  historyRetentionSeconds: 'HISTORY_RETENTION_SECONDS',
  maxReplay: 'MAX_REPLAY',
  logLevel: 'LOG_LEVEL',
} as const;

type Env = Record<string, string | undefined>;

function str(env: Env, name: string, fallback?: string): string {
  const value = env[name] ?? fallback;
  if (value === undefined || value === '') throw new Error(`Missing environment variable ${name}`);
  return value;
}

function int(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return value;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw !== 'true' && raw !== 'false') throw new Error(`${name} must be "true" or "false", got "${raw}"`);
  return raw === 'true';
}

export interface AuthorizerConfig {
  verifier: VerifierConfig;
  allowQueryToken: boolean;
  tenantGroupPrefix: string;
}

export function authorizerConfig(env: Env): AuthorizerConfig {
  const jwksUri = env[ENV.jwksUri];
  return {
    verifier: {
      userPoolId: str(env, ENV.userPoolId),
      clientId: str(env, ENV.clientId),
      maxTokenLifetimeSeconds: int(env, ENV.maxTokenLifetimeSeconds, 3600),
      jwksTimeoutMs: int(env, ENV.jwksTimeoutMs, 2000),
      ...(jwksUri ? { jwksUri } : {}),
    },
    allowQueryToken: bool(env, ENV.allowQueryToken, true),
    tenantGroupPrefix: str(env, ENV.tenantGroupPrefix, 'tenant:'),
  };
}

export interface RealtimeConfig {
  tableName: string;
  /** The @connections endpoint, https://<api>.execute-api.<region>.amazonaws.com/<stage>. */
  connectionsUrl: string;
  /** API Gateway closes every connection after 2 hours; store items live as long, then TTL removes them. */
  maxConnectionSeconds: number;
  limits: Limits;
  maxRoomsPerConnection: number;
  broadcastConcurrency: number;
  /** How long delivered messages stay replayable for clients that reconnect. */
  historyRetentionSeconds: number;
  /** Most messages replayed on one resume; an older backlog is reported as a gap. */
  maxReplay: number;
  adminGroup: string;
}

export function realtimeConfig(env: Env): RealtimeConfig {
  return {
    tableName: str(env, ENV.tableName),
    connectionsUrl: str(env, ENV.connectionsUrl),
    maxConnectionSeconds: int(env, ENV.maxConnectionSeconds, 2 * 60 * 60),
    limits: {
      maxFrameBytes: int(env, ENV.maxFrameBytes, 32 * 1024),
      maxDataBytes: int(env, ENV.maxDataBytes, 16 * 1024),
    },
    maxRoomsPerConnection: int(env, ENV.maxRoomsPerConnection, 50),
    broadcastConcurrency: int(env, ENV.broadcastConcurrency, 32),
    historyRetentionSeconds: int(env, ENV.historyRetentionSeconds, 300),
    maxReplay: int(env, ENV.maxReplay, 500),
    adminGroup: str(env, ENV.adminGroup, 'admin'),
  };
}

export function logLevel(env: Env): 'debug' | 'info' | 'warn' | 'error' {
  const level = env[ENV.logLevel] ?? 'info';
  if (level !== 'debug' && level !== 'info' && level !== 'warn' && level !== 'error') {
    throw new Error(`${ENV.logLevel} must be debug, info, warn or error, got "${level}"`);
  }
  return level;
}
