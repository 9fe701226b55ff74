import { Resampler, pcmToFloat } from '../web/src/resample';

describe('Resampler (browser audio to 16 kHz)', () => {
  const sine = (rate: number, seconds: number, hz: number, offset = 0) =>
    Float32Array.from({ length: Math.round(rate * seconds) }, (_, i) => 0.5 * Math.sin((2 * Math.PI * hz * (i + offset)) / rate));

  it.each([48_000, 44_100, 16_000])('turns %d Hz into 16 kHz with the same duration and waveform, across chunk edges', (rate) => {
    const input = sine(rate, 1, 440);
    const resampler = new Resampler(rate);
    const chunks: Int16Array[] = [];
    for (let i = 0; i < input.length; i += 128) chunks.push(resampler.push(input.subarray(i, i + 128)));
    const out = Int16Array.from(chunks.flatMap((c) => [...c]));
    expect(Math.abs(out.length - 16_000)).toBeLessThanOrEqual(2);
    // Compare with the ideal 440 Hz sine at 16 kHz: interpolation error stays small.
    let worst = 0;
    for (let j = 0; j < out.length; j++) worst = Math.max(worst, Math.abs(out[j] / 32767 - 0.5 * Math.sin((2 * Math.PI * 440 * j) / 16_000)));
    expect(worst).toBeLessThan(0.01);
  });

  it('clips to the 16-bit range and converts back for playback', () => {
    const out = new Resampler(16_000).push(Float32Array.from([2, -2, 0, 0.5]));
    expect([...out]).toEqual([32767, -32768, 0]);
    const bytes = new Uint8Array(Int16Array.from([16384, -32768]).buffer);
    expect([...pcmToFloat(bytes)]).toEqual([0.5, -1]);
  });
});
