/**
 * Microphone capture (AudioWorklet, echo cancellation on) streamed as 100 ms frames of 16 kHz mono PCM, and
 * playback of the assistant's 24 kHz PCM in order, which an interruption can cut short at once.
 */
import { SPEECH_INPUT_SAMPLE_RATE, SPEECH_OUTPUT_SAMPLE_RATE } from '../../protocol';
import { Resampler, pcmToFloat } from '@gatehouse/client';

const FRAME_SAMPLES = SPEECH_INPUT_SAMPLE_RATE / 10;

export class Microphone {
  private constructor(
    private readonly context: AudioContext,
    private readonly stream: MediaStream,
  ) {}

  static async open(context: AudioContext, onFrame: (pcm: Uint8Array) => void): Promise<Microphone> {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
    await context.audioWorklet.addModule('/pcm-capture.js');
    const source = context.createMediaStreamSource(stream);
    const capture = new AudioWorkletNode(context, 'pcm-capture');
    const resampler = new Resampler(context.sampleRate);
    let pending = new Int16Array(0);
    capture.port.onmessage = ({ data }: MessageEvent<Float32Array>) => {
      const next = resampler.push(data);
      const joined = new Int16Array(pending.length + next.length);
      joined.set(pending);
      joined.set(next, pending.length);
      let offset = 0;
      for (; offset + FRAME_SAMPLES <= joined.length; offset += FRAME_SAMPLES) {
        onFrame(new Uint8Array(joined.slice(offset, offset + FRAME_SAMPLES).buffer));
      }
      pending = joined.slice(offset);
    };
    // A worklet only runs while connected to the graph: through a muted gain, so the user does not hear themselves.
    const mute = context.createGain();
    mute.gain.value = 0;
    source.connect(capture).connect(mute).connect(context.destination);
    return new Microphone(context, stream);
  }

  close(): void {
    for (const track of this.stream.getTracks()) track.stop();
  }

  get sampleRate(): number {
    return this.context.sampleRate;
  }
}

export class Player {
  private next = 0;
  private readonly playing = new Set<AudioBufferSourceNode>();

  constructor(private readonly context: AudioContext) {}

  enqueue(pcm: Uint8Array): void {
    const samples = pcmToFloat(pcm);
    if (samples.length === 0) return;
    const buffer = this.context.createBuffer(1, samples.length, SPEECH_OUTPUT_SAMPLE_RATE);
    buffer.copyToChannel(samples, 0);
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    this.next = Math.max(this.next, this.context.currentTime + 0.05);
    source.start(this.next);
    this.next += buffer.duration;
    this.playing.add(source);
    source.onended = () => this.playing.delete(source);
  }

  /** Barge-in: drop everything queued. */
  flush(): void {
    for (const source of this.playing) source.stop();
    this.playing.clear();
    this.next = 0;
  }

  get queued(): number {
    return this.playing.size;
  }
}
