/**
 * Streaming sample-rate conversion to the speech service's input rate: the browser's microphone (44.1 or 48 kHz,
 * whatever the audio context picked) and the CLI's WAV files (any rate) both go through it.
 *
 * A band-limited (windowed-sinc) interpolator: every output sample is a weighted sum of the input samples around its
 * position, with a low-pass at the lower of the two Nyquist frequencies, so downsampling does not fold the band
 * above 8 kHz back into speech (plain interpolation does) and upsampling does not add images. State carries across
 * chunks, so chunk edges are seamless and the output does not depend on how the input was cut; an output sample is
 * ready once the samples it needs (half a window, under 2 ms, ahead) have arrived, and `flush()` ends the stream.
 *
 * Pure code, browser-safe: the web app and the tests run the same one.
 */
import { SPEECH_INPUT_SAMPLE_RATE } from '../../../protocol';

/**
 * The low-pass: a sinc under a Kaiser window (beta 5.65: 60 dB of stopband) 28 zero crossings to a side, cut off at
 * 94 % of the lower Nyquist frequency. Into 16 kHz that passes up to about 7 kHz flat and stops what would fold back
 * from above 8 kHz; the length is what so narrow a transition costs.
 */
const ZERO_CROSSINGS = 28;
const ROLLOFF = 0.94;
const KAISER_BETA = 5.65;
/** Kernel table entries per zero crossing; between them the kernel is interpolated linearly. */
const TABLE_RESOLUTION = 256;
/** Rate pairs with at most this many distinct output phases keep each phase's weights (44.1 kHz -> 16 kHz has 160). */
const MAX_CACHED_PHASES = 2048;

/** Modified Bessel function of the first kind, order 0 (its series converges fast for the window's arguments). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  for (let k = 1; term > 1e-12 * sum; k++) {
    term *= (x / (2 * k)) ** 2;
    sum += term;
  }
  return sum;
}

/** The kernel from its centre to its last zero crossing, u in zero crossings. */
const KERNEL = Float64Array.from({ length: ZERO_CROSSINGS * TABLE_RESOLUTION + 2 }, (_, i) => {
  const u = i / TABLE_RESOLUTION;
  if (u >= ZERO_CROSSINGS) return 0;
  const x = u / ZERO_CROSSINGS;
  const window = besselI0(KAISER_BETA * Math.sqrt(1 - x * x)) / besselI0(KAISER_BETA);
  return u === 0 ? 1 : (window * Math.sin(Math.PI * u)) / (Math.PI * u);
});

function kernel(u: number): number {
  const at = Math.abs(u) * TABLE_RESOLUTION;
  const i = Math.floor(at);
  return i >= KERNEL.length - 1 ? 0 : KERNEL[i] + (KERNEL[i + 1] - KERNEL[i]) * (at - i);
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** A float sample in [-1, 1] as 16-bit PCM (the inverse of `pcmToFloat`, so 16-bit audio round-trips exactly). */
const toInt16 = (v: number) => Math.max(-32768, Math.min(32767, Math.round(v * 32768)));

/** The input samples one output sample weighs: from `first` (relative to the sample at or before it) on. */
interface Taps {
  first: number;
  /** Normalized to sum to 1, so a constant passes unchanged (the edges' silence included). */
  weights: Float64Array;
}

export class Resampler {
  /** The low-pass cut-off relative to the input's Nyquist frequency. */
  private readonly scale: number;
  /** How far, in input samples, an output sample reaches on each side. */
  private readonly reach: number;
  /** Output positions fall on `to / gcd` distinct fractions of an input sample: their taps, when that is few. */
  private readonly cache?: Array<Taps | undefined>;
  private readonly unit: number;
  /** Input samples from absolute index `base` on; older ones are no longer needed, those before 0 are silence. */
  private history = new Float32Array(0);
  private base = 0;
  private received = 0;
  private produced = 0;

  constructor(
    private readonly from: number,
    private readonly to = SPEECH_INPUT_SAMPLE_RATE,
  ) {
    if (!Number.isInteger(from) || !Number.isInteger(to) || from <= 0 || to <= 0) {
      throw new RangeError(`Sample rates must be positive integers (got ${from} and ${to}).`);
    }
    this.scale = Math.min(1, to / from) * ROLLOFF;
    this.reach = ZERO_CROSSINGS / this.scale;
    this.unit = gcd(from, to);
    if (to / this.unit <= MAX_CACHED_PHASES) this.cache = new Array<Taps | undefined>(to / this.unit);
  }

  /** Float samples in [-1, 1] at `from` Hz -> 16-bit PCM at `to` Hz, as far as the input so far allows. */
  push(input: Float32Array): Int16Array {
    if (this.from === this.to) return Int16Array.from(input, toInt16);
    const joined = new Float32Array(this.history.length + input.length);
    joined.set(this.history);
    joined.set(input, this.history.length);
    this.history = joined;
    this.received += input.length;
    return this.drain(false);
  }

  /** The rest of the stream, as if silence followed; the resampler then starts a new stream. */
  flush(): Int16Array {
    const rest = this.drain(true);
    this.history = new Float32Array(0);
    this.base = this.received = this.produced = 0;
    return rest;
  }

  private drain(end: boolean): Int16Array {
    const out: number[] = [];
    for (;;) {
      // Output j sits at input position j * from / to: in integers, sample `at` plus phase / to (no drift).
      const phase = (this.produced * this.from) % this.to;
      const at = (this.produced * this.from - phase) / this.to;
      const taps = this.taps(phase);
      if (end ? at + phase / this.to >= this.received : at + taps.first + taps.weights.length > this.received) break;
      let sum = 0;
      for (let i = 0, k = at + taps.first - this.base; i < taps.weights.length; i++, k++) {
        // Before the first sample and after the last (at the end) is silence.
        if (k >= 0 && k < this.history.length) sum += taps.weights[i] * this.history[k];
      }
      out.push(toInt16(sum));
      this.produced++;
    }
    // Keep what the next output sample still needs.
    const phase = (this.produced * this.from) % this.to;
    const next = (this.produced * this.from - phase) / this.to + this.taps(phase).first;
    const keep = Math.max(this.base, Math.min(next, this.received));
    this.history = this.history.subarray(keep - this.base);
    this.base = keep;
    return Int16Array.from(out);
  }

  private taps(phase: number): Taps {
    const cached = this.cache?.[phase / this.unit];
    if (cached) return cached;
    const fraction = phase / this.to;
    const first = Math.floor(fraction - this.reach) + 1;
    const last = Math.ceil(fraction + this.reach) - 1;
    const weights = Float64Array.from({ length: last - first + 1 }, (_, i) => kernel((fraction - first - i) * this.scale));
    const total = weights.reduce((a, b) => a + b, 0);
    for (let i = 0; i < weights.length; i++) weights[i] /= total;
    const taps = { first, weights };
    if (this.cache) this.cache[phase / this.unit] = taps;
    return taps;
  }
}

/** A whole recording at once: `from` Hz floats -> `to` Hz 16-bit PCM. */
export function resample(input: Float32Array, from: number, to = SPEECH_INPUT_SAMPLE_RATE): Int16Array {
  const resampler = new Resampler(from, to);
  const head = resampler.push(input);
  const tail = resampler.flush();
  const out = new Int16Array(head.length + tail.length);
  out.set(head);
  out.set(tail, head.length);
  return out;
}

/** 16-bit PCM (little-endian bytes) -> floats, for playback and resampling. */
export function pcmToFloat(bytes: Uint8Array): Float32Array<ArrayBuffer> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(Math.floor(bytes.byteLength / 2));
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(i * 2, true) / 32768;
  return out;
}
