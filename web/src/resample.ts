/**
 * Streaming resampler from the audio context's rate (44.1 or 48 kHz, whatever the browser picked) to the 16 kHz
 * the speech service takes, with linear interpolation; state carries across chunks so frame edges are seamless.
 * Pure code: the tests run it in Node.
 */
export class Resampler {
  private position = 0;
  private last = 0;

  constructor(
    private readonly from: number,
    private readonly to = 16_000,
  ) {}

  /** Float samples in [-1, 1] at `from` Hz -> 16-bit PCM at `to` Hz. */
  push(input: Float32Array): Int16Array {
    const step = this.from / this.to;
    const out: number[] = [];
    // `position` indexes this chunk; -1 is the last sample of the previous one. Interpolate while both neighbours
    // are known; the rest waits for the next chunk.
    while (this.position < input.length - 1) {
      const i = Math.floor(this.position);
      const a = i < 0 ? this.last : input[i];
      const v = a + (input[i + 1] - a) * (this.position - i);
      out.push(Math.max(-32768, Math.min(32767, Math.round(v * 32767))));
      this.position += step;
    }
    if (input.length > 0) {
      this.last = input[input.length - 1];
      this.position -= input.length;
    }
    return Int16Array.from(out);
  }
}

/** 16-bit PCM (little-endian bytes) -> floats, for playback. */
export function pcmToFloat(bytes: Uint8Array): Float32Array<ArrayBuffer> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(Math.floor(bytes.byteLength / 2));
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(i * 2, true) / 32768;
  return out;
}
