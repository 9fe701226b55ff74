/**
 * The speech WebSocket protocol (`/ws/speech`), shared by the speech service, the web app and tests.
 *
 * The browser sends only binary audio frames (PCM, 16-bit little-endian, mono, 16 kHz) and three control
 * messages. Everything the model sees besides the user's voice (system prompt, voice, tools, inference settings,
 * knowledge base) is server configuration: no client-written model event is ever forwarded.
 *
 * Runs in Node and in browsers.
 */
import { CLOSE } from './close-codes';
import { parseBoundedJson } from './realtime';

export const SPEECH_INPUT_SAMPLE_RATE = 16_000;
export const SPEECH_OUTPUT_SAMPLE_RATE = 24_000;

/**
 * Audio sent after `start` and before `started` (while the model stream opens) is kept, in order, up to this much,
 * and handed to the model once it listens: a client may start talking as soon as it sends `start`. Beyond it the
 * rest is dropped with one `not_started` error.
 */
export const SPEECH_START_BUFFER_MS = 2_000;
export const SPEECH_START_BUFFER_BYTES = (SPEECH_INPUT_SAMPLE_RATE * 2 * SPEECH_START_BUFFER_MS) / 1000;

export type SpeechControl = { type: 'start' } | { type: 'stop' } | { type: 'refresh'; token: string };

export type SpeechEvent =
  /** Authenticated; `expiresAt` (epoch seconds) is when the token ends the session unless refreshed. */
  | { type: 'ready'; sessionId: string; expiresAt: number }
  | { type: 'started' }
  | { type: 'transcript'; role: 'user' | 'assistant'; text: string; final: boolean }
  /** The user spoke over the assistant: drop any audio still queued for playback. */
  | { type: 'interrupted' }
  | { type: 'turn_end' }
  | { type: 'refreshed'; expiresAt: number }
  | { type: 'stopped'; reason: string }
  | { type: 'error'; code: SpeechErrorCode; message: string };

export type SpeechErrorCode = 'invalid_message' | 'not_started' | 'already_started' | 'refresh_refused' | 'provider_error' | 'rate_limited';

/** The speech socket's closes, from the one catalog (close-codes.ts): credential problems are `policy`. */
export const SPEECH_CLOSE = {
  normal: CLOSE.normal.code,
  restarting: CLOSE.goingAway.code,
  policy: CLOSE.policy.code,
  tooBig: CLOSE.tooBig.code,
  internal: CLOSE.internal.code,
  tryAgainLater: CLOSE.tryAgainLater.code,
} as const;

export function parseSpeechControl(raw: string): { ok: true; control: SpeechControl } | { ok: false; message: string } {
  const parsed = parseBoundedJson(raw, 4);
  if (!parsed.ok) return { ok: false, message: parsed.tooDeep ? 'Control messages are flat JSON objects.' : 'Control messages are JSON.' };
  const value = parsed.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, message: 'Control messages are JSON objects.' };
  const v = value as Record<string, unknown>;
  const keys = Object.keys(v).sort().join(',');
  if ((v.type === 'start' || v.type === 'stop') && keys === 'type') return { ok: true, control: { type: v.type } };
  if (v.type === 'refresh' && keys === 'token,type' && typeof v.token === 'string' && v.token.length > 0) {
    return { ok: true, control: { type: 'refresh', token: v.token } };
  }
  return { ok: false, message: 'Expected {"type":"start"}, {"type":"stop"} or {"type":"refresh","token":"..."}.' };
}
