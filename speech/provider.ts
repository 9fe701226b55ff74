/**
 * What the speech service needs from a speech-to-speech model. The server owns the protocol to the browser; a
 * provider owns the protocol to the model. Two implementations: Amazon Nova Sonic on Bedrock, and a local one
 * that needs no AWS and exercises the same path.
 */
import type { Logger } from '../common/log';

export interface ProviderEvents {
  /** Assistant speech: PCM 16-bit little-endian, mono, 24 kHz. */
  audio(pcm: Buffer): void;
  transcript(role: 'user' | 'assistant', text: string, final: boolean): void;
  /** Barge-in: the user spoke over the assistant; queued playback must be dropped. */
  interrupted(): void;
  turnEnd(): void;
  /** The model session failed; the session ends (never the process). */
  error(err: Error): void;
}

export interface ProviderSession {
  /** User speech: PCM 16-bit little-endian, mono, 16 kHz, any frame size. */
  audio(pcm: Buffer): void;
  /** Ends the model session in the model's documented closing order. Safe to call twice. */
  close(): Promise<void>;
}

export interface SpeechProvider {
  readonly name: string;
  open(session: { sessionId: string; userId: string; log: Logger }, events: ProviderEvents): Promise<ProviderSession>;
}
