/**
 * Limits and defaults a client can see: written once, read by the handlers, the infrastructure that configures
 * them (lib/), the clients and the tests.
 *
 * Runs in Node and in browsers.
 */

/** Size limits. API Gateway itself closes frames over 32 KB and messages over 128 KB. */
export interface Limits {
  /** Largest accepted client frame, in bytes (UTF-8). */
  maxFrameBytes: number;
  /** Largest accepted `data` of a `send`, serialized as JSON, in bytes. */
  maxDataBytes: number;
  /** Deepest accepted nesting of arrays and objects in a frame (serializers recurse: depth is stack). @default 32 */
  maxDepth?: number;
}

export const MAX_JSON_DEPTH = 32;
export const DEFAULT_LIMITS: Limits = { maxFrameBytes: 32 * 1024, maxDataBytes: 16 * 1024, maxDepth: MAX_JSON_DEPTH };

/** The rate limits' defaults: frames per second and burst, per connection and per user; refusals before a close. */
export const DEFAULT_RATE_LIMIT = { rate: 10, burst: 20, strikes: 20, userRate: 20, userBurst: 40 } as const;

/** The user pool's group conventions: `tenant:<id>` puts a user in a tenant; `admin` may moderate its rooms. */
export const GROUP_DEFAULTS = { tenantGroupPrefix: 'tenant:', adminGroup: 'admin' } as const;

/**
 * The realtime service's defaults, read by its runtime configuration (lambda/core/config.ts) and by the construct
 * that sets them (lib/realtime-api.ts), so a deployment and a handler started without the variable agree.
 */
export const REALTIME_DEFAULTS = {
  /** API Gateway closes every WebSocket connection after 2 hours. */
  maxConnectionSeconds: 2 * 60 * 60,
  maxFrameBytes: DEFAULT_LIMITS.maxFrameBytes,
  maxDataBytes: DEFAULT_LIMITS.maxDataBytes,
  maxRoomsPerConnection: 50,
  maxConnectionsPerUser: 10,
  broadcastConcurrency: 32,
  /** How long a room's messages are kept (history pages and reconnect replay): days, as chat rooms need. */
  historyRetentionSeconds: 7 * 24 * 60 * 60,
  /** Most messages one resume replays; an older backlog is reported as a gap. */
  maxReplay: 500,
  /** Most bytes one join replays before it says `more`. */
  maxReplayBytes: 128 * 1024,
  adminGroup: GROUP_DEFAULTS.adminGroup,
  /** Rooms with more connections than this get no live presence or typing signals (see lambda/core/presence.ts). */
  signalMaxMembers: 250,
  /** Rooms with more connections than this get no live read receipts (ask with `receipts`): N readers x N sockets. */
  receiptSignalMaxMembers: 25,
  /**
   * Rooms of at most this many connections are posted to before `sent` answers (with the exact reach); bigger ones
   * are handed to the fan-out workers, and `sent` answers once the message is stored (lambda/core/fanout.ts).
   */
  inlineDeliveryMax: 100,
} as const;
