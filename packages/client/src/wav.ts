/**
 * Minimal WAV (RIFF, PCM 16-bit) reading and writing: enough to stream a recording to the speech service and save
 * what comes back. No resampling: the speech service takes 16 kHz mono and answers 24 kHz mono.
 */
export interface Pcm {
  sampleRate: number;
  channels: number;
  /** Little-endian 16-bit samples, interleaved. */
  data: Uint8Array;
}

export function parseWav(bytes: Uint8Array): Pcm {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (offset: number) => String.fromCharCode(...bytes.subarray(offset, offset + 4));
  if (bytes.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') throw new Error('Not a WAV file (no RIFF/WAVE header).');
  let offset = 12;
  let format: { audioFormat: number; channels: number; sampleRate: number; bits: number } | undefined;
  while (offset + 8 <= bytes.length) {
    const id = tag(offset);
    const size = view.getUint32(offset + 4, true);
    const body = offset + 8;
    if (id === 'fmt ') {
      format = {
        audioFormat: view.getUint16(body, true),
        channels: view.getUint16(body + 2, true),
        sampleRate: view.getUint32(body + 4, true),
        bits: view.getUint16(body + 14, true),
      };
    } else if (id === 'data') {
      if (!format) throw new Error('WAV data before its format chunk.');
      if (format.audioFormat !== 1 || format.bits !== 16) throw new Error(`Only 16-bit PCM WAV is supported (got format ${format.audioFormat}, ${format.bits} bits).`);
      return { sampleRate: format.sampleRate, channels: format.channels, data: bytes.subarray(body, Math.min(bytes.length, body + size)) };
    }
    offset = body + size + (size % 2);
  }
  throw new Error('WAV file has no data chunk.');
}

export function writeWav(pcm: Pcm): Uint8Array {
  const out = new Uint8Array(44 + pcm.data.length);
  const view = new DataView(out.buffer);
  const put = (offset: number, text: string) => [...text].forEach((c, i) => (out[offset + i] = c.charCodeAt(0)));
  put(0, 'RIFF');
  view.setUint32(4, 36 + pcm.data.length, true);
  put(8, 'WAVE');
  put(12, 'fmt ');
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true);
  view.setUint16(22, pcm.channels, true);
  view.setUint32(24, pcm.sampleRate, true);
  view.setUint32(28, pcm.sampleRate * pcm.channels * 2, true);
  view.setUint16(32, pcm.channels * 2, true);
  view.setUint16(34, 16, true);
  put(36, 'data');
  view.setUint32(40, pcm.data.length, true);
  out.set(pcm.data, 44);
  return out;
}
