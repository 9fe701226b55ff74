/**
 * Speech service configuration from the environment (the ECS task definition sets it; the local system sets the
 * same names). Everything the model sees besides the user's voice is configured here, never by the client.
 */
import type { VerifierConfig } from '../common/token';

export const SPEECH_ENV = {
  port: 'PORT',
  userPoolId: 'USER_POOL_ID',
  clientId: 'USER_POOL_CLIENT_ID',
  maxTokenLifetimeSeconds: 'MAX_TOKEN_LIFETIME_SECONDS',
  jwksUri: 'JWKS_URI',
  tenantGroupPrefix: 'TENANT_GROUP_PREFIX',
  allowQueryToken: 'ALLOW_QUERY_TOKEN',
  provider: 'SPEECH_PROVIDER',
  modelId: 'MODEL_ID',
  bedrockRegion: 'BEDROCK_REGION',
  voiceId: 'VOICE_ID',
  systemPrompt: 'SYSTEM_PROMPT',
  knowledgeBaseId: 'KNOWLEDGE_BASE_ID',
  maxSessions: 'MAX_SESSIONS',
  maxAudioBytesPerSecond: 'MAX_AUDIO_BYTES_PER_SECOND',
  pingIntervalMs: 'PING_INTERVAL_MS',
  peerTimeoutMs: 'PEER_TIMEOUT_MS',
  renewAfterSeconds: 'SESSION_RENEW_AFTER_SECONDS',
  shutdownGraceMs: 'SHUTDOWN_GRACE_MS',
  metricsIntervalMs: 'METRICS_INTERVAL_MS',
  logLevel: 'LOG_LEVEL',
} as const;

export const DEFAULT_MODEL_ID = 'amazon.nova-2-sonic-v1:0';
export const DEFAULT_SYSTEM_PROMPT =
  'You are a friendly assistant. The user and you will engage in a spoken dialog exchanging the transcripts of a ' +
  'natural real-time conversation. Keep your responses short, generally two or three sentences.';

export interface SpeechConfig {
  port: number;
  verifier: VerifierConfig;
  tenantGroupPrefix: string;
  allowQueryToken: boolean;
  provider: 'bedrock' | 'local';
  modelId: string;
  bedrockRegion?: string;
  voiceId: string;
  systemPrompt: string;
  knowledgeBaseId?: string;
  /** Sessions one task holds; more are refused with close 1013 so the client retries (another task). */
  maxSessions: number;
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
}

type Env = Record<string, string | undefined>;

function num(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
}

function required(env: Env, name: string): string {
  const value = env[name];
  if (!value) throw new Error(`Missing environment variable ${name}`);
  return value;
}

export function speechConfig(env: Env): SpeechConfig {
  const provider = env[SPEECH_ENV.provider] ?? 'bedrock';
  if (provider !== 'bedrock' && provider !== 'local') throw new Error(`${SPEECH_ENV.provider} must be bedrock or local, got "${provider}"`);
  const jwksUri = env[SPEECH_ENV.jwksUri];
  const knowledgeBaseId = env[SPEECH_ENV.knowledgeBaseId];
  const bedrockRegion = env[SPEECH_ENV.bedrockRegion] ?? env.AWS_REGION;
  return {
    // 0 asks the operating system for a free port (tests, the local system).
    port: env[SPEECH_ENV.port] === '0' ? 0 : num(env, SPEECH_ENV.port, 8080),
    verifier: {
      userPoolId: required(env, SPEECH_ENV.userPoolId),
      clientId: required(env, SPEECH_ENV.clientId),
      maxTokenLifetimeSeconds: num(env, SPEECH_ENV.maxTokenLifetimeSeconds, 3600),
      ...(jwksUri ? { jwksUri } : {}),
    },
    tenantGroupPrefix: env[SPEECH_ENV.tenantGroupPrefix] || 'tenant:',
    allowQueryToken: env[SPEECH_ENV.allowQueryToken] === 'true',
    provider,
    modelId: env[SPEECH_ENV.modelId] || DEFAULT_MODEL_ID,
    ...(bedrockRegion ? { bedrockRegion } : {}),
    voiceId: env[SPEECH_ENV.voiceId] || 'matthew',
    systemPrompt: env[SPEECH_ENV.systemPrompt] || DEFAULT_SYSTEM_PROMPT,
    ...(knowledgeBaseId ? { knowledgeBaseId } : {}),
    maxSessions: num(env, SPEECH_ENV.maxSessions, 50),
    maxAudioBytesPerSecond: num(env, SPEECH_ENV.maxAudioBytesPerSecond, 48_000),
    maxFrameBytes: 32 * 1024,
    pingIntervalMs: num(env, SPEECH_ENV.pingIntervalMs, 20_000),
    peerTimeoutMs: num(env, SPEECH_ENV.peerTimeoutMs, 30_000),
    renewAfterSeconds: num(env, SPEECH_ENV.renewAfterSeconds, 7 * 60),
    shutdownGraceMs: num(env, SPEECH_ENV.shutdownGraceMs, 10_000),
    metricsIntervalMs: num(env, SPEECH_ENV.metricsIntervalMs, 60_000),
  };
}
