/**
 * Handler configuration from the environment. The variable names are imported by the infrastructure that sets
 * them (lib/), so a rename cannot leave one side behind; a missing or malformed value fails the cold start with a
 * message that names it. Authentication settings are common to every runtime (common/auth.ts).
 */
import { AUTH_ENV, envNumber, envString } from '../../common/auth';
import type { Limits } from '../../common/protocol';

export const ENV = {
  ...AUTH_ENV,
  adminGroup: 'ADMIN_GROUP',
  connectionsUrl: 'CONNECTIONS_URL',
  maxConnectionSeconds: 'MAX_CONNECTION_SECONDS',
  maxFrameBytes: 'MAX_FRAME_BYTES',
  maxDataBytes: 'MAX_DATA_BYTES',
  maxRoomsPerConnection: 'MAX_ROOMS_PER_CONNECTION',
  broadcastConcurrency: 'BROADCAST_CONCURRENCY',
  historyRetentionSeconds: 'HISTORY_RETENTION_SECONDS',
  maxReplay: 'MAX_REPLAY',
  rateLimitPerSecond: 'RATE_LIMIT_PER_SECOND',
  rateLimitBurst: 'RATE_LIMIT_BURST',
  rateLimitStrikes: 'RATE_LIMIT_STRIKES',
  maxConnectionsPerUser: 'MAX_CONNECTIONS_PER_USER',
  logLevel: 'LOG_LEVEL',
} as const;

type Env = Record<string, string | undefined>;

export interface RealtimeConfig {
  tableName: string;
  /** The @connections endpoint, https://<api>.execute-api.<region>.amazonaws.com/<stage>. */
  connectionsUrl: string;
  /** API Gateway closes every connection after 2 hours; store items live as long, then TTL removes them. */
  maxConnectionSeconds: number;
  limits: Limits;
  maxRoomsPerConnection: number;
  broadcastConcurrency: number;
  /** How long delivered messages stay replayable for reconnecting clients. */
  historyRetentionSeconds: number;
  /** Most messages replayed on one resume; an older backlog is reported as a gap. */
  maxReplay: number;
  adminGroup: string;
  /** Per-connection token bucket: `rate` messages per second up to `burst`; `strikes` refusals before it refills disconnect. */
  rateLimit: { rate: number; burst: number; strikes: number };
  maxConnectionsPerUser: number;
}

export function realtimeConfig(env: Env): RealtimeConfig {
  return {
    tableName: envString(env, ENV.tableName),
    connectionsUrl: envString(env, ENV.connectionsUrl),
    maxConnectionSeconds: envNumber(env, ENV.maxConnectionSeconds, 2 * 60 * 60),
    limits: {
      maxFrameBytes: envNumber(env, ENV.maxFrameBytes, 32 * 1024),
      maxDataBytes: envNumber(env, ENV.maxDataBytes, 16 * 1024),
    },
    maxRoomsPerConnection: envNumber(env, ENV.maxRoomsPerConnection, 50),
    broadcastConcurrency: envNumber(env, ENV.broadcastConcurrency, 32),
    historyRetentionSeconds: envNumber(env, ENV.historyRetentionSeconds, 300),
    maxReplay: envNumber(env, ENV.maxReplay, 500),
    adminGroup: envString(env, ENV.adminGroup, 'admin'),
    rateLimit: {
      rate: envNumber(env, ENV.rateLimitPerSecond, 10),
      burst: envNumber(env, ENV.rateLimitBurst, 20),
      strikes: envNumber(env, ENV.rateLimitStrikes, 20),
    },
    maxConnectionsPerUser: envNumber(env, ENV.maxConnectionsPerUser, 10),
  };
}

export function logLevel(env: Env): 'debug' | 'info' | 'warn' | 'error' {
  const level = env[ENV.logLevel] ?? 'info';
  if (level !== 'debug' && level !== 'info' && level !== 'warn' && level !== 'error') {
    throw new Error(`${ENV.logLevel} must be debug, info, warn or error, got "${level}"`);
  }
  return level;
}
