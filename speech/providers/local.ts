/**
 * A speech provider that needs no AWS, for `npm start` and tests: it listens for utterances (energy-based voice
 * activity detection on the 16 kHz input) and answers each with generated speech-like audio at 24 kHz and a
 * transcript, streamed at twice real time. Speaking over its answer interrupts it, as Nova Sonic's barge-in does.
 */
import { SPEECH_INPUT_SAMPLE_RATE, SPEECH_OUTPUT_SAMPLE_RATE } from '../../protocol';
import type { ProviderEvents, ProviderSession, SpeechProvider } from '../provider';

export interface LocalProviderOptions {
  /** RMS (0..1) above which a frame counts as speech. @default 0.02 */
  threshold?: number;
  /** Silence that ends an utterance. @default 500 ms */
  endSilenceMs?: number;
  /** Shortest speech that counts as an utterance. @default 150 ms */
  minSpeechMs?: number;
  /** Audio chunk sent per tick. @default 100 ms of audio every 50 ms */
  chunkMs?: number;
}

function rms(pcm: Buffer): number {
  let sum = 0;
  const samples = Math.floor(pcm.length / 2);
  for (let i = 0; i < samples; i++) {
    const s = pcm.readInt16LE(i * 2) / 32768;
    sum += s * s;
  }
  return samples ? Math.sqrt(sum / samples) : 0;
}

/** Speech-like audio: voiced syllables (a pitch with harmonics under an envelope) separated by short pauses. */
export function syntheticSpeech(seconds: number, sampleRate = SPEECH_OUTPUT_SAMPLE_RATE): Buffer {
  const total = Math.round(seconds * sampleRate);
  const out = Buffer.alloc(total * 2);
  const syllable = Math.round(0.22 * sampleRate);
  const pause = Math.round(0.06 * sampleRate);
  for (let i = 0; i < total; i++) {
    const k = i % (syllable + pause);
    let v = 0;
    if (k < syllable) {
      const n = Math.floor(i / (syllable + pause));
      const pitch = 140 + 25 * Math.sin(n * 1.7);
      const env = Math.sin((Math.PI * k) / syllable);
      const t = i / sampleRate;
      v = env * (0.5 * Math.sin(2 * Math.PI * pitch * t) + 0.25 * Math.sin(4 * Math.PI * pitch * t) + 0.12 * Math.sin(6 * Math.PI * pitch * t));
    }
    out.writeInt16LE(Math.round(v * 0.6 * 32767), i * 2);
  }
  return out;
}

export class LocalSpeechProvider implements SpeechProvider {
  readonly name = 'local';
  constructor(private readonly options: LocalProviderOptions = {}) {}

  async open(_session: unknown, events: ProviderEvents): Promise<ProviderSession> {
    const threshold = this.options.threshold ?? 0.02;
    const endSilenceMs = this.options.endSilenceMs ?? 500;
    const minSpeechMs = this.options.minSpeechMs ?? 150;
    const chunkMs = this.options.chunkMs ?? 100;
    const msOf = (pcm: Buffer) => (pcm.length / 2 / SPEECH_INPUT_SAMPLE_RATE) * 1000;

    let speechMs = 0;
    let silenceMs = 0;
    let turns = 0;
    let speaking: NodeJS.Timeout | undefined;
    let closed = false;

    const stopSpeaking = () => {
      if (speaking) clearInterval(speaking);
      speaking = undefined;
    };
    const answer = (heardMs: number) => {
      turns++;
      const seconds = (heardMs / 1000).toFixed(1);
      events.transcript('user', `(${seconds} seconds of speech)`, true);
      const reply = `Turn ${turns}: I heard ${seconds} seconds of audio.`;
      events.transcript('assistant', reply, false);
      const audio = syntheticSpeech(Math.min(3, 0.8 + heardMs / 2000));
      const chunkBytes = Math.round((SPEECH_OUTPUT_SAMPLE_RATE * chunkMs) / 1000) * 2;
      let offset = 0;
      speaking = setInterval(() => {
        if (closed) return stopSpeaking();
        events.audio(audio.subarray(offset, offset + chunkBytes));
        offset += chunkBytes;
        if (offset >= audio.length) {
          stopSpeaking();
          events.transcript('assistant', reply, true);
          events.turnEnd();
        }
      }, chunkMs / 2);
    };

    return {
      audio(pcm: Buffer) {
        if (closed) return;
        const ms = msOf(pcm);
        if (rms(pcm) >= threshold) {
          if (speaking && speechMs + ms >= minSpeechMs) {
            stopSpeaking(); // barge-in
            events.interrupted();
          }
          speechMs += ms;
          silenceMs = 0;
        } else if (speechMs > 0) {
          silenceMs += ms;
          if (silenceMs >= endSilenceMs) {
            const heard = speechMs;
            speechMs = 0;
            silenceMs = 0;
            if (heard >= minSpeechMs && !speaking) answer(heard);
          }
        }
      },
      async close() {
        closed = true;
        stopSpeaking();
      },
    };
  }
}
