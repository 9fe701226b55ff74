/**
 * Handler configuration from the environment. The variable names are imported by the infrastructure that sets
 * them (lib/), so a rename cannot leave one side behind; a missing or malformed value fails the cold start with a
 * message that names it. Authentication settings are common to every runtime (common/auth.ts).
 */
import { AUTH_ENV, envNumber, envString } from '../../common/auth';
import { DEFAULT_RATE_LIMIT, REALTIME_DEFAULTS as D, type Limits } from '../../protocol';

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
  userRateLimitPerSecond: 'USER_RATE_LIMIT_PER_SECOND',
  userRateLimitBurst: 'USER_RATE_LIMIT_BURST',
  maxReplayBytes: 'MAX_REPLAY_BYTES',
  maxConnectionsPerUser: 'MAX_CONNECTIONS_PER_USER',
  signalMaxMembers: 'SIGNAL_MAX_MEMBERS',
  receiptSignalMaxMembers: 'RECEIPT_SIGNAL_MAX_MEMBERS',
  inlineDeliveryMax: 'INLINE_DELIVERY_MAX',
  fanoutFunction: 'FANOUT_FUNCTION',
  logLevel: 'LOG_LEVEL',
} as const;

type Env = Record<string, string | undefined>;

export { DEFAULT_RATE_LIMIT };

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
  /** Most bytes replayed by one join; a longer replay stops there and says `more` (the client joins again). */
  maxReplayBytes: number;
  adminGroup: string;
  /**
   * Token buckets: per connection, `rate` frames per second up to `burst`; per user (all of the user's sockets
   * together), `userRate` up to `userBurst`; `strikes` refusals before both refill disconnect the socket.
   */
  rateLimit: { rate: number; burst: number; strikes: number; userRate: number; userBurst: number };
  maxConnectionsPerUser: number;
  /** Rooms with more connections than this get no presence or typing signals (one read of this many keys decides). */
  signalMaxMembers: number;
  /** Rooms with more connections than this get no live read receipts. */
  receiptSignalMaxMembers: number;
  /** Rooms of at most this many connections are delivered to before the sender's reply; bigger ones by the workers. */
  inlineDeliveryMax: number;
  /** The fan-out workers' function (its ARN). @default none: every room is delivered in the calling function */
  fanoutFunction?: string;
}

export function realtimeConfig(env: Env): RealtimeConfig {
  return {
    tableName: envString(env, ENV.tableName),
    connectionsUrl: envString(env, ENV.connectionsUrl),
    maxConnectionSeconds: envNumber(env, ENV.maxConnectionSeconds, D.maxConnectionSeconds),
    limits: {
      maxFrameBytes: envNumber(env, ENV.maxFrameBytes, D.maxFrameBytes),
      maxDataBytes: envNumber(env, ENV.maxDataBytes, D.maxDataBytes),
    },
    maxRoomsPerConnection: envNumber(env, ENV.maxRoomsPerConnection, D.maxRoomsPerConnection),
    broadcastConcurrency: envNumber(env, ENV.broadcastConcurrency, D.broadcastConcurrency),
    historyRetentionSeconds: envNumber(env, ENV.historyRetentionSeconds, D.historyRetentionSeconds),
    maxReplay: envNumber(env, ENV.maxReplay, D.maxReplay),
    maxReplayBytes: envNumber(env, ENV.maxReplayBytes, D.maxReplayBytes),
    adminGroup: envString(env, ENV.adminGroup, D.adminGroup),
    rateLimit: {
      rate: envNumber(env, ENV.rateLimitPerSecond, DEFAULT_RATE_LIMIT.rate),
      burst: envNumber(env, ENV.rateLimitBurst, DEFAULT_RATE_LIMIT.burst),
      strikes: envNumber(env, ENV.rateLimitStrikes, DEFAULT_RATE_LIMIT.strikes),
      userRate: envNumber(env, ENV.userRateLimitPerSecond, DEFAULT_RATE_LIMIT.userRate),
      userBurst: envNumber(env, ENV.userRateLimitBurst, DEFAULT_RATE_LIMIT.userBurst),
    },
    maxConnectionsPerUser: envNumber(env, ENV.maxConnectionsPerUser, D.maxConnectionsPerUser),
    signalMaxMembers: envNumber(env, ENV.signalMaxMembers, D.signalMaxMembers),
    receiptSignalMaxMembers: envNumber(env, ENV.receiptSignalMaxMembers, D.receiptSignalMaxMembers),
    inlineDeliveryMax: envNumber(env, ENV.inlineDeliveryMax, D.inlineDeliveryMax),
    ...(env[ENV.fanoutFunction] ? { fanoutFunction: env[ENV.fanoutFunction] } : {}),
  };
}

export function logLevel(env: Env): 'debug' | 'info' | 'warn' | 'error' {
  const level = env[ENV.logLevel] ?? 'info';
  if (level !== 'debug' && level !== 'info' && level !== 'warn' && level !== 'error') {
    throw new Error(`${ENV.logLevel} must be debug, info, warn or error, got "${level}"`);
  }
  return level;
}
