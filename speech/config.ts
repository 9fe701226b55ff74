/**
 * Speech service configuration from the environment (the ECS task definition sets it; the local system sets the
 * same names). Everything the model sees besides the user's voice is configured here, never by the client.
 */
import { AUTH_ENV, authConfig, type AuthConfig } from '../common/auth';

export const SPEECH_ENV = {
  ...AUTH_ENV,
  port: 'PORT',
  provider: 'SPEECH_PROVIDER',
  modelId: 'MODEL_ID',
  bedrockRegion: 'BEDROCK_REGION',
  voiceId: 'VOICE_ID',
  systemPrompt: 'SYSTEM_PROMPT',
  knowledgeBaseId: 'KNOWLEDGE_BASE_ID',
  maxSessions: 'MAX_SESSIONS',
  maxSessionsPerUser: 'MAX_SESSIONS_PER_USER',
  maxSessionsPerTenant: 'MAX_SESSIONS_PER_TENANT',
  maxStartsPerMinute: 'MAX_STARTS_PER_MINUTE',
  maxStartsPerMinutePerSession: 'MAX_STARTS_PER_MINUTE_PER_SESSION',
  maxControlMessagesPerSecond: 'MAX_CONTROL_MESSAGES_PER_SECOND',
  controlMessageBurst: 'CONTROL_MESSAGE_BURST',
  headersTimeoutMs: 'HEADERS_TIMEOUT_MS',
  requestTimeoutMs: 'REQUEST_TIMEOUT_MS',
  connectionsCheckIntervalMs: 'CONNECTIONS_CHECK_INTERVAL_MS',
  maxAudioBytesPerSecond: 'MAX_AUDIO_BYTES_PER_SECOND',
  pingIntervalMs: 'PING_INTERVAL_MS',
  peerTimeoutMs: 'PEER_TIMEOUT_MS',
  renewAfterSeconds: 'SESSION_RENEW_AFTER_SECONDS',
  shutdownGraceMs: 'SHUTDOWN_GRACE_MS',
  metricsIntervalMs: 'METRICS_INTERVAL_MS',
  revocationCheckMs: 'REVOCATION_CHECK_MS',
  logLevel: 'LOG_LEVEL',
} as const;

export const DEFAULT_MODEL_ID = 'amazon.nova-2-sonic-v1:0';
export const DEFAULT_SYSTEM_PROMPT =
  'You are a friendly assistant. The user and you will engage in a spoken dialog exchanging the transcripts of a ' +
  'natural real-time conversation. Keep your responses short, generally two or three sentences.';

export interface SpeechConfig {
  port: number;
  /** Authentication: the same settings (and code) as the API's authorizer; `?token=` is off unless enabled. */
  auth: AuthConfig;
  provider: 'bedrock' | 'local';
  modelId: string;
  bedrockRegion?: string;
  voiceId: string;
  systemPrompt: string;
  knowledgeBaseId?: string;
  /** Sessions one task holds; more are refused with close 1013 so the client retries (another task). */
  maxSessions: number;
  /** Sessions one user holds in one task (1013 beyond): one account cannot take a task's capacity. */
  maxSessionsPerUser: number;
  /** Sessions one tenant holds in one task (1013 beyond). */
  maxSessionsPerTenant: number;
  /** Model streams (`start`s) one user may open per minute in one task, as a token bucket of this burst. */
  maxStartsPerMinute: number;
  /** The same, for each session on its own (a user's sessions also share the per-user bucket). */
  maxStartsPerMinutePerSession: number;
  /** Control (text) frames per session per second, refilling a bucket of `controlMessageBurst`; beyond: 1008. */
  maxControlMessagesPerSecond: number;
  controlMessageBurst: number;
  /** How long a connection may take to send its request headers (a handshake) before it is dropped. */
  headersTimeoutMs: number;
  /** How long it may take to send a whole request; at least `headersTimeoutMs`. */
  requestTimeoutMs: number;
  /** How often the two time-outs above are enforced (Node checks periodically, 30 s by default). */
  connectionsCheckIntervalMs: number;
  /** Per connection; 16 kHz 16-bit mono is 32,000 B/s, so the default allows 1.5x real time. */
  maxAudioBytesPerSecond: number;
  /** Largest accepted frame. */
  maxFrameBytes: number;
  pingIntervalMs: number;
  peerTimeoutMs: number;
  /** Hand a conversation over to a new model stream after this long (Nova Sonic streams end at 8 minutes). */
  renewAfterSeconds: number;
  /** After SIGTERM, how long closing sessions may take before the process exits. */
  shutdownGraceMs: number;
  metricsIntervalMs: number;
  /** How often live sessions are checked against sign-outs (a signed-out session closes within this). */
  revocationCheckMs: number;
}

type Env = Record<string, string | undefined>;

function num(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
}

export function speechConfig(env: Env): SpeechConfig {
  const provider = env[SPEECH_ENV.provider] ?? 'bedrock';
  if (provider !== 'bedrock' && provider !== 'local') throw new Error(`${SPEECH_ENV.provider} must be bedrock or local, got "${provider}"`);
  const knowledgeBaseId = env[SPEECH_ENV.knowledgeBaseId];
  const bedrockRegion = env[SPEECH_ENV.bedrockRegion] ?? env.AWS_REGION;
  const maxStartsPerMinute = num(env, SPEECH_ENV.maxStartsPerMinute, 10);
  const headersTimeoutMs = num(env, SPEECH_ENV.headersTimeoutMs, 5_000);
  const requestTimeoutMs = num(env, SPEECH_ENV.requestTimeoutMs, Math.max(10_000, headersTimeoutMs));
  // Node refuses a headers time-out longer than the request time-out.
  if (requestTimeoutMs < headersTimeoutMs) throw new Error(`${SPEECH_ENV.requestTimeoutMs} must be at least ${SPEECH_ENV.headersTimeoutMs}`);
  return {
    // 0 asks the operating system for a free port (tests, the local system).
    port: env[SPEECH_ENV.port] === '0' ? 0 : num(env, SPEECH_ENV.port, 8080),
    auth: authConfig(env, { allowQueryToken: false }),
    provider,
    modelId: env[SPEECH_ENV.modelId] || DEFAULT_MODEL_ID,
    ...(bedrockRegion ? { bedrockRegion } : {}),
    voiceId: env[SPEECH_ENV.voiceId] || 'matthew',
    systemPrompt: env[SPEECH_ENV.systemPrompt] || DEFAULT_SYSTEM_PROMPT,
    ...(knowledgeBaseId ? { knowledgeBaseId } : {}),
    maxSessions: num(env, SPEECH_ENV.maxSessions, 50),
    maxSessionsPerUser: num(env, SPEECH_ENV.maxSessionsPerUser, 3),
    maxSessionsPerTenant: num(env, SPEECH_ENV.maxSessionsPerTenant, 20),
    maxStartsPerMinute,
    maxStartsPerMinutePerSession: num(env, SPEECH_ENV.maxStartsPerMinutePerSession, maxStartsPerMinute),
    maxControlMessagesPerSecond: num(env, SPEECH_ENV.maxControlMessagesPerSecond, 10),
    controlMessageBurst: num(env, SPEECH_ENV.controlMessageBurst, 20),
    headersTimeoutMs,
    requestTimeoutMs,
    connectionsCheckIntervalMs: num(env, SPEECH_ENV.connectionsCheckIntervalMs, 1_000),
    maxAudioBytesPerSecond: num(env, SPEECH_ENV.maxAudioBytesPerSecond, 48_000),
    maxFrameBytes: 32 * 1024,
    pingIntervalMs: num(env, SPEECH_ENV.pingIntervalMs, 20_000),
    peerTimeoutMs: num(env, SPEECH_ENV.peerTimeoutMs, 30_000),
    renewAfterSeconds: num(env, SPEECH_ENV.renewAfterSeconds, 7 * 60),
    shutdownGraceMs: num(env, SPEECH_ENV.shutdownGraceMs, 10_000),
    metricsIntervalMs: num(env, SPEECH_ENV.metricsIntervalMs, 60_000),
    revocationCheckMs: num(env, SPEECH_ENV.revocationCheckMs, 2_000),
  };
}
