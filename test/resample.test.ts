import { Resampler, pcmToFloat, resample } from '@gatehouse/client';

const sine = (rate: number, seconds: number, hz: number, amplitude = 0.5) =>
  Float32Array.from({ length: Math.round(rate * seconds) }, (_, i) => amplitude * Math.sin((2 * Math.PI * hz * i) / rate));

/** Pushes `input` in chunks of `size`, then flushes: what a stream of that many chunks turns into. */
function streamed(resampler: Resampler, input: Float32Array, size: number): Int16Array {
  const out: number[] = [];
  for (let i = 0; i < input.length; i += size) out.push(...resampler.push(input.subarray(i, i + size)));
  out.push(...resampler.flush());
  return Int16Array.from(out);
}

/** The largest difference from `expected` (floats), leaving out `margin` samples at each end. */
function worstError(out: Int16Array, expected: (j: number) => number, margin = 0): number {
  let worst = 0;
  for (let j = margin; j < out.length - margin; j++) worst = Math.max(worst, Math.abs(out[j] / 32768 - expected(j)));
  return worst;
}

describe('Resampler (browser audio and WAV files to the speech rate)', () => {
  it.each([48_000, 44_100, 22_050, 8_000, 16_000])('turns %d Hz into 16 kHz with the same duration and waveform, across chunk edges', (rate) => {
    const out = streamed(new Resampler(rate), sine(rate, 1, 440), 128);
    expect(Math.abs(out.length - 16_000)).toBeLessThanOrEqual(1);
    // Against the ideal 440 Hz sine at 16 kHz. Inside, the error is rounding; at the very ends, the tone's abrupt
    // start and stop are clicks that a band-limited signal smooths (still under 2 %).
    const ideal = (j: number) => 0.5 * Math.sin((2 * Math.PI * 440 * j) / 16_000);
    expect(worstError(out, ideal, 50)).toBeLessThan(0.001);
    expect(worstError(out, ideal)).toBeLessThan(0.02);
  });

  it('gives the same samples however the input is cut into chunks', () => {
    const input = sine(44_100, 0.5, 1000);
    const whole = resample(input, 44_100);
    expect(streamed(new Resampler(44_100), input, 1)).toEqual(whole);
    expect(streamed(new Resampler(44_100), input, 333)).toEqual(whole);
    // And a flushed resampler starts a new stream.
    const reused = new Resampler(44_100);
    streamed(reused, sine(44_100, 0.1, 300), 128);
    expect(streamed(reused, input, 128)).toEqual(whole);
  });

  it('filters out what 16 kHz cannot hold instead of folding it into the speech band', () => {
    // 12 kHz is above the 8 kHz Nyquist limit: interpolation alone would turn it into a 4 kHz tone.
    expect(worstError(resample(sine(48_000, 0.5, 12_000), 48_000), () => 0, 50)).toBeLessThan(0.001);
    expect(worstError(resample(sine(44_100, 0.5, 9_000), 44_100), () => 0, 50)).toBeLessThan(0.005);
    // While 7 kHz, inside the band, passes.
    const out = resample(sine(48_000, 0.5, 7_000), 48_000);
    expect(worstError(out, (j) => 0.5 * Math.sin((2 * Math.PI * 7_000 * j) / 16_000), 50)).toBeLessThan(0.01);
  });

  it('passes a constant through unchanged (away from the silence around it), and holds nothing back at equal rates', () => {
    const out = resample(new Float32Array(4410).fill(0.25), 44_100);
    expect(worstError(out, () => 0.25, 50)).toBeLessThan(0.0001);
    expect([...new Resampler(16_000).push(Float32Array.from([0.5, -0.25]))]).toEqual([16384, -8192]);
  });

  it('clips to the 16-bit range, and 16-bit samples round-trip exactly through pcmToFloat', () => {
    expect([...new Resampler(16_000).push(Float32Array.from([2, -2, 0, 0.5]))]).toEqual([32767, -32768, 0, 16384]);
    const pcm = Int16Array.from([16384, -32768, 32767, -1, 0]);
    const floats = pcmToFloat(new Uint8Array(pcm.buffer));
    expect([...floats.subarray(0, 2)]).toEqual([0.5, -1]);
    expect([...new Resampler(16_000).push(floats)]).toEqual([...pcm]);
  });

  it('refuses a rate that is not a positive integer', () => {
    expect(() => new Resampler(0)).toThrow('Sample rates must be positive integers (got 0 and 16000).');
  });
});
