/**
 * WAV files as `gatehouse speak` reads them: any uncompressed encoding, rate and channel count decoded and turned
 * into the speech service's input (16 kHz mono 16-bit); compressed and malformed files refused, naming what they are.
 */
import { decodeWav, parseWav, speechInput, writeWav } from '@gatehouse/client/node';

/** Interleaves channels of floats into little-endian samples of `bits` (PCM) or float32/64. */
function encode(channels: Float32Array[], bits: number, encoding: 'pcm' | 'float' = 'pcm'): Uint8Array {
  const width = bits / 8;
  const out = new Uint8Array(channels[0].length * channels.length * width);
  const view = new DataView(out.buffer);
  channels[0].forEach((_, f) =>
    channels.forEach((channel, c) => {
      const o = (f * channels.length + c) * width;
      const v = channel[f];
      if (encoding === 'float') return bits === 32 ? view.setFloat32(o, v, true) : view.setFloat64(o, v, true);
      if (bits === 8) return view.setUint8(o, Math.round(v * 127) + 128);
      const int = Math.max(-(2 ** (bits - 1)), Math.min(2 ** (bits - 1) - 1, Math.round(v * 2 ** (bits - 1))));
      if (bits === 16) return view.setInt16(o, int, true);
      if (bits === 32) return view.setInt32(o, int, true);
      view.setUint8(o, int & 0xff);
      view.setUint8(o + 1, (int >> 8) & 0xff);
      view.setInt8(o + 2, int >> 16);
    }),
  );
  return out;
}

function wav(sampleRate: number, channels: Float32Array[], bits: number, encoding: 'pcm' | 'float' = 'pcm'): Uint8Array {
  return writeWav({ sampleRate, channels: channels.length, bitsPerSample: bits, encoding, data: encode(channels, bits, encoding) });
}

const sine = (rate: number, seconds: number, hz: number, amplitude = 0.5) =>
  Float32Array.from({ length: Math.round(rate * seconds) }, (_, i) => amplitude * Math.sin((2 * Math.PI * hz * i) / rate));

/** The speech input's samples as floats. */
const floats = (data: Uint8Array) => Array.from({ length: data.length / 2 }, (_, i) => new DataView(data.buffer, data.byteOffset).getInt16(i * 2, true) / 32768);

/** A copy of a WAV file with its format tag replaced (offset 20 of writeWav's header). */
function withFormatTag(bytes: Uint8Array, tag: number): Uint8Array {
  const copy = bytes.slice();
  new DataView(copy.buffer).setUint16(20, tag, true);
  return copy;
}

describe('decoding', () => {
  const samples = [0, 0.5, -0.5, 0.25, -1];
  it.each([
    ['8-bit PCM (unsigned)', 8, 'pcm', 1 / 128],
    ['16-bit PCM', 16, 'pcm', 1 / 32768],
    ['24-bit PCM', 24, 'pcm', 1 / 8388608],
    ['32-bit PCM', 32, 'pcm', 1e-9],
    ['32-bit float', 32, 'float', 0],
    ['64-bit float', 64, 'float', 0],
  ] as const)('reads %s, channel by channel', (_name, bits, encoding, tolerance) => {
    const left = Float32Array.from(samples);
    const right = Float32Array.from(samples, (v) => -v / 2);
    const audio = decodeWav(wav(22_050, [left, right], bits, encoding));
    expect(audio).toMatchObject({ sampleRate: 22_050, bitsPerSample: bits, encoding });
    expect(audio.channels).toHaveLength(2);
    audio.channels[0].forEach((v, i) => expect(Math.abs(v - samples[i])).toBeLessThanOrEqual(tolerance + 1 / 128));
    audio.channels[1].forEach((v, i) => expect(Math.abs(v + samples[i] / 2)).toBeLessThanOrEqual(tolerance + 1 / 128));
  });

  it('reads 24-bit PCM exactly, sign included', () => {
    const ints = [0, 1, -1, 8388607, -8388608, 0x123456, -0x123456];
    const data = Uint8Array.from(ints.flatMap((v) => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff]));
    const audio = decodeWav(writeWav({ sampleRate: 8000, channels: 1, bitsPerSample: 24, data }));
    expect([...audio.channels[0]].map((v) => Math.round(v * 8388608))).toEqual(ints);
  });

  it('reads the WAVE_FORMAT_EXTENSIBLE wrapper by its sub-format', () => {
    // A 40-byte format chunk: tag 0xFFFE, then cbSize 22, valid bits, channel mask and the sub-format GUID (PCM).
    const data = encode([Float32Array.from([0.5, -0.5])], 24);
    const out = new Uint8Array(12 + 8 + 40 + 8 + data.length);
    const view = new DataView(out.buffer);
    const put = (o: number, text: string) => [...text].forEach((c, i) => (out[o + i] = c.charCodeAt(0)));
    put(0, 'RIFF');
    view.setUint32(4, out.length - 8, true);
    put(8, 'WAVE');
    put(12, 'fmt ');
    view.setUint32(16, 40, true);
    [0xfffe, 1].forEach((v, i) => view.setUint16(20 + i * 2, v, true));
    view.setUint32(24, 48_000, true);
    view.setUint32(28, 48_000 * 3, true);
    [3, 24, 22, 24].forEach((v, i) => view.setUint16(32 + i * 2, v, true));
    view.setUint32(40, 4, true); // front centre
    out.set([1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71], 44);
    put(60, 'data');
    view.setUint32(64, data.length, true);
    out.set(data, 68);
    expect(decodeWav(out)).toMatchObject({ sampleRate: 48_000, bitsPerSample: 24, encoding: 'pcm', channels: [Float32Array.from([0.5, -0.5])] });
    // The same wrapper around MP3 is still MP3.
    view.setUint16(44, 0x55, true);
    expect(() => decodeWav(out)).toThrow('Not a PCM WAV: it is MP3 (0x0055)');
  });

  it('reads the whole frames of a recording cut short, and skips chunks it does not know', () => {
    const full = wav(16_000, [Float32Array.from([0.25, 0.5, 0.75])], 16);
    expect(decodeWav(full.subarray(0, full.length - 1)).channels[0]).toEqual(Float32Array.from([0.25, 0.5]));
    const list = Uint8Array.from([...'LIST'].map((c) => c.charCodeAt(0)).concat([3, 0, 0, 0, 1, 2, 3, 0]));
    const withList = new Uint8Array([...full.subarray(0, 36), ...list, ...full.subarray(36)]);
    expect(decodeWav(withList).channels[0]).toEqual(Float32Array.from([0.25, 0.5, 0.75]));
  });
});

describe('refusals name what the file is', () => {
  const good = wav(16_000, [Float32Array.from([0.1, 0.2])], 16);
  it.each([
    ['an MP3 in a WAV', withFormatTag(good, 0x55), 'Not a PCM WAV: it is MP3 (0x0055); convert it to PCM (e.g. ffmpeg -i in.wav -c:a pcm_s16le out.wav).'],
    ['µ-law', withFormatTag(good, 7), 'Not a PCM WAV: it is µ-law (0x0007)'],
    ['IMA ADPCM', withFormatTag(good, 0x11), 'Not a PCM WAV: it is IMA ADPCM (0x0011)'],
    ['an unknown format', withFormatTag(good, 0x1234), 'Not a PCM WAV: it is format (0x1234)'],
    ['12-bit PCM', (() => { const b = good.slice(); new DataView(b.buffer).setUint16(34, 12, true); return b; })(), 'Unsupported WAV: PCM of 12 bits per sample (supported: 8, 16, 24, 32).'],
    ['16-bit float', (() => { const b = withFormatTag(good, 3); return b; })(), 'Unsupported WAV: float of 16 bits per sample (supported: 32, 64).'],
    ['a frame size that does not match', (() => { const b = good.slice(); new DataView(b.buffer).setUint16(32, 4, true); return b; })(), 'Malformed WAV: 4 bytes per frame for 1 channel of 16 bits.'],
    ['no channels', (() => { const b = good.slice(); new DataView(b.buffer).setUint16(22, 0, true); return b; })(), 'Malformed WAV: 0 channels at 16000 Hz.'],
    ['a short format chunk', (() => { const b = good.slice(); new DataView(b.buffer).setUint32(16, 8, true); return b; })(), 'Malformed WAV: its format chunk has 8 bytes, not at least 16.'],
    ['no data chunk', good.subarray(0, 36), 'WAV file has no data chunk.'],
    ['an empty data chunk', writeWav({ sampleRate: 16_000, channels: 1, data: new Uint8Array(0) }), 'WAV file has no audio in its data chunk.'],
    ['not a WAV at all', new TextEncoder().encode('ID3\u0004 an mp3 file, really'), 'Not a WAV file (no RIFF/WAVE header).'],
    ['a big-endian RIFX file', Uint8Array.from([...'RIFX'].map((c) => c.charCodeAt(0)).concat([...good.subarray(4)])), 'Unsupported WAV: big-endian (RIFX).'],
  ])('%s', (_name, bytes, message) => {
    expect(() => decodeWav(bytes)).toThrow(message);
    expect(() => speechInput(bytes)).toThrow(message);
  });

  it('parseWav (16-bit, bit-exact) says what it got instead', () => {
    expect(() => parseWav(wav(16_000, [Float32Array.from([0.1])], 24))).toThrow('Expected 16-bit PCM, got PCM of 24 bits (decodeWav reads any).');
  });
});

describe('speechInput: what the speech service takes', () => {
  it('passes a 16 kHz mono 16-bit file through unchanged', () => {
    const bytes = wav(16_000, [sine(16_000, 0.1, 440)], 16);
    const input = speechInput(bytes);
    expect(input).toMatchObject({ sampleRate: 16_000, channels: 1, converted: false, source: { sampleRate: 16_000, channels: 1, bitsPerSample: 16, encoding: 'pcm' } });
    expect(input.data).toEqual(parseWav(bytes).data);
  });

  it.each([
    ['22,050 Hz stereo 24-bit', 22_050, 2, 24, 'pcm'],
    ['44.1 kHz mono 16-bit', 44_100, 1, 16, 'pcm'],
    ['48 kHz stereo float', 48_000, 2, 32, 'float'],
    ['8 kHz mono 8-bit', 8_000, 1, 8, 'pcm'],
  ] as const)('turns %s into 16 kHz mono 16-bit, same length and waveform', (_name, rate, channelCount, bits, encoding) => {
    const tone = sine(rate, 0.5, 300);
    const input = speechInput(wav(rate, Array.from({ length: channelCount }, () => tone), bits, encoding));
    expect(input).toMatchObject({ sampleRate: 16_000, channels: 1, converted: true, source: { sampleRate: rate, channels: channelCount, bitsPerSample: bits, encoding } });
    const out = floats(input.data);
    expect(Math.abs(out.length - 8000)).toBeLessThanOrEqual(1);
    const worst = out.slice(100, -100).reduce((w, v, i) => Math.max(w, Math.abs(v - 0.5 * Math.sin((2 * Math.PI * 300 * (i + 100)) / 16_000))), 0);
    expect(worst).toBeLessThan(bits === 8 ? 0.02 : 0.002);
  });

  it('mixes channels down by averaging them', () => {
    const tone = sine(16_000, 0.1, 440, 0.8);
    const out = floats(speechInput(wav(16_000, [tone, new Float32Array(tone.length)], 16)).data);
    expect(out.reduce((w, v, j) => Math.max(w, Math.abs(v - tone[j] / 2)), 0)).toBeLessThanOrEqual(1 / 32768);
  });
});

describe('writeWav', () => {
  it('pads odd-sized data to an even chunk, as RIFF requires, and reads back what it wrote', () => {
    const bytes = wav(22_050, [Float32Array.from([0.5])], 24);
    expect(bytes.length).toBe(44 + 4);
    expect(new DataView(bytes.buffer).getUint32(4, true)).toBe(bytes.length - 8);
    expect(Math.round(decodeWav(bytes).channels[0][0] * 8388608)).toBe(4194304);
  });
});
