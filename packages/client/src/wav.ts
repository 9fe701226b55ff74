/**
 * WAV (RIFF) reading and writing: enough to stream any uncompressed recording to the speech service and save what
 * comes back. Reads integer PCM of 8, 16, 24 or 32 bits and IEEE float of 32 or 64 bits, plain or in the
 * WAVE_FORMAT_EXTENSIBLE wrapper, any rate and channel count; anything else is refused with an error that names the
 * format found. `speechInput` turns such a file into what the speech service takes (mono, 16-bit, its rate).
 */
import { SPEECH_INPUT_SAMPLE_RATE } from '../../../protocol';
import { resample } from './resample';

export interface Pcm {
  sampleRate: number;
  channels: number;
  /** Little-endian samples, interleaved: 16-bit, unless `bitsPerSample` says otherwise (writeWav). */
  data: Uint8Array;
  /** @default 16 */
  bitsPerSample?: number;
  /** @default 'pcm' */
  encoding?: WavEncoding;
}

export type WavEncoding = 'pcm' | 'float';

/** A decoded recording: one array per channel, samples in [-1, 1). */
export interface WavAudio {
  sampleRate: number;
  bitsPerSample: number;
  encoding: WavEncoding;
  channels: Float32Array[];
}

/** Format tags (RFC 2361) a WAV file may carry: the common ones by name, for the error that refuses them. */
const FORMAT_NAMES: Record<number, string> = {
  0x0002: 'Microsoft ADPCM',
  0x0006: 'A-law',
  0x0007: 'µ-law',
  0x0011: 'IMA ADPCM',
  0x0022: 'TrueSpeech',
  0x0031: 'GSM 6.10',
  0x0050: 'MPEG',
  0x0055: 'MP3',
  0x00ff: 'AAC',
  0x0161: 'Windows Media Audio',
  0x2000: 'AC-3',
  0xf1ac: 'FLAC',
};
const PCM = 0x0001;
const IEEE_FLOAT = 0x0003;
const EXTENSIBLE = 0xfffe;
const SUPPORTED_BITS: Record<WavEncoding, readonly number[]> = { pcm: [8, 16, 24, 32], float: [32, 64] };

const formatName = (tag: number) => `${FORMAT_NAMES[tag] ?? 'format'} (0x${tag.toString(16).padStart(4, '0')})`;

/** A file's audio format. */
export interface WavFormat {
  encoding: WavEncoding;
  channels: number;
  sampleRate: number;
  /** Bits each sample takes in the file (its container: a 24-bit sample may sit in 32). */
  bitsPerSample: number;
}

interface Format extends WavFormat {
  blockAlign: number;
}

/** The format chunk, checked: a malformed or unsupported one is an error naming what was found. */
function readFormat(view: DataView, body: number, size: number): Format {
  if (size < 16) throw new Error(`Malformed WAV: its format chunk has ${size} bytes, not at least 16.`);
  let tag = view.getUint16(body, true);
  const channels = view.getUint16(body + 2, true);
  const sampleRate = view.getUint32(body + 4, true);
  const blockAlign = view.getUint16(body + 12, true);
  const bitsPerSample = view.getUint16(body + 14, true);
  if (tag === EXTENSIBLE) {
    // The real format is the first two bytes of the sub-format GUID (…-0000-0010-8000-00aa00389b71).
    if (size < 40) throw new Error(`Malformed WAV: an extensible format chunk has ${size} bytes, not 40.`);
    tag = view.getUint16(body + 24, true);
  }
  if (tag !== PCM && tag !== IEEE_FLOAT) throw new Error(`Not a PCM WAV: it is ${formatName(tag)}; convert it to PCM (e.g. ffmpeg -i in.wav -c:a pcm_s16le out.wav).`);
  const encoding: WavEncoding = tag === PCM ? 'pcm' : 'float';
  if (!SUPPORTED_BITS[encoding].includes(bitsPerSample)) {
    throw new Error(`Unsupported WAV: ${encoding === 'pcm' ? 'PCM' : 'float'} of ${bitsPerSample} bits per sample (supported: ${SUPPORTED_BITS[encoding].join(', ')}).`);
  }
  if (channels === 0 || sampleRate === 0) throw new Error(`Malformed WAV: ${channels} channels at ${sampleRate} Hz.`);
  if (blockAlign !== (channels * bitsPerSample) / 8) {
    throw new Error(`Malformed WAV: ${blockAlign} bytes per frame for ${channels} channel${channels === 1 ? '' : 's'} of ${bitsPerSample} bits.`);
  }
  return { encoding, channels, sampleRate, bitsPerSample, blockAlign };
}

/** The format and the audio bytes (whole frames) of a WAV file. */
function readWav(bytes: Uint8Array): { format: Format; data: Uint8Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (offset: number) => String.fromCharCode(...bytes.subarray(offset, offset + 4));
  const riff = tag(0);
  if (riff === 'RIFX') throw new Error('Unsupported WAV: big-endian (RIFX).');
  if (riff === 'RF64') throw new Error('Unsupported WAV: RF64 (a WAV over 4 GB).');
  if (bytes.length < 12 || riff !== 'RIFF' || tag(8) !== 'WAVE') throw new Error('Not a WAV file (no RIFF/WAVE header).');
  let offset = 12;
  let format: Format | undefined;
  while (offset + 8 <= bytes.length) {
    const id = tag(offset);
    const size = view.getUint32(offset + 4, true);
    const body = offset + 8;
    if (id === 'fmt ') {
      if (body + size > bytes.length) throw new Error('Malformed WAV: its format chunk is cut off.');
      format = readFormat(view, body, size);
    } else if (id === 'data') {
      if (!format) throw new Error('Malformed WAV: audio data before its format chunk.');
      // A size past the end is a recording cut short, or a streaming writer's placeholder: read what is there.
      const end = Math.min(bytes.length, body + size);
      const data = bytes.subarray(body, body + Math.floor((end - body) / format.blockAlign) * format.blockAlign);
      if (data.length === 0) throw new Error('WAV file has no audio in its data chunk.');
      return { format, data };
    }
    offset = body + size + (size % 2);
  }
  throw new Error(format ? 'WAV file has no data chunk.' : 'Malformed WAV: no format chunk.');
}

/** The sample at `offset` as a float in [-1, 1). */
function sampleReader(view: DataView, { encoding, bitsPerSample }: Format): (offset: number) => number {
  if (encoding === 'float') return bitsPerSample === 32 ? (o) => view.getFloat32(o, true) : (o) => view.getFloat64(o, true);
  switch (bitsPerSample) {
    case 8:
      return (o) => (view.getUint8(o) - 128) / 128; // 8-bit WAV is unsigned
    case 16:
      return (o) => view.getInt16(o, true) / 32768;
    case 24:
      return (o) => ((view.getInt8(o + 2) << 16) | (view.getUint8(o + 1) << 8) | view.getUint8(o)) / 8388608;
    default:
      return (o) => view.getInt32(o, true) / 2147483648;
  }
}

/** A 16-bit PCM WAV file, its samples as they are (bit-exact): what the speech service answers is saved as one. */
export function parseWav(bytes: Uint8Array): Pcm {
  const { format, data } = readWav(bytes);
  if (format.encoding !== 'pcm' || format.bitsPerSample !== 16) {
    throw new Error(`Expected 16-bit PCM, got ${format.encoding === 'pcm' ? 'PCM' : 'float'} of ${format.bitsPerSample} bits (decodeWav reads any).`);
  }
  return { sampleRate: format.sampleRate, channels: format.channels, data };
}

/** Any supported WAV file, as floats per channel. */
export function decodeWav(bytes: Uint8Array): WavAudio {
  const { format, data } = readWav(bytes);
  return decode(format, data);
}

function decode(format: Format, data: Uint8Array): WavAudio {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const read = sampleReader(view, format);
  const frames = data.length / format.blockAlign;
  const width = format.bitsPerSample / 8;
  const channels = Array.from({ length: format.channels }, (_, c) => {
    const samples = new Float32Array(frames);
    for (let f = 0; f < frames; f++) samples[f] = read(f * format.blockAlign + c * width);
    return samples;
  });
  return { sampleRate: format.sampleRate, bitsPerSample: format.bitsPerSample, encoding: format.encoding, channels };
}

export interface SpeechInput extends Pcm {
  /** What the file held. */
  source: WavFormat;
  /** False when the file was in the service's format already (and its samples pass unchanged). */
  converted: boolean;
}

/** A WAV file as the speech service takes it: mono (channels averaged), 16-bit, at `sampleRate`. */
export function speechInput(bytes: Uint8Array, sampleRate = SPEECH_INPUT_SAMPLE_RATE): SpeechInput {
  const { format, data } = readWav(bytes);
  const source: WavFormat = { encoding: format.encoding, channels: format.channels, sampleRate: format.sampleRate, bitsPerSample: format.bitsPerSample };
  if (format.encoding === 'pcm' && format.bitsPerSample === 16 && format.channels === 1 && format.sampleRate === sampleRate) {
    return { sampleRate, channels: 1, data, source, converted: false };
  }
  const audio = decode(format, data);
  const mono = new Float32Array(audio.channels[0].length);
  for (const channel of audio.channels) for (let i = 0; i < mono.length; i++) mono[i] += channel[i] / audio.channels.length;
  const pcm = resample(mono, audio.sampleRate, sampleRate);
  const out = new Uint8Array(pcm.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < pcm.length; i++) view.setInt16(i * 2, pcm[i], true);
  return { sampleRate, channels: 1, data: out, source, converted: true };
}

/** A WAV file of `pcm.data` as it is (16-bit PCM unless `bitsPerSample`/`encoding` say otherwise). */
export function writeWav(pcm: Pcm): Uint8Array {
  const bits = pcm.bitsPerSample ?? 16;
  const blockAlign = (pcm.channels * bits) / 8;
  // RIFF chunks are padded to an even length (odd-sized data: 8 or 24 bits, an odd number of frames).
  const pad = pcm.data.length % 2;
  const out = new Uint8Array(44 + pcm.data.length + pad);
  const view = new DataView(out.buffer);
  const put = (offset: number, text: string) => [...text].forEach((c, i) => (out[offset + i] = c.charCodeAt(0)));
  put(0, 'RIFF');
  view.setUint32(4, 36 + pcm.data.length + pad, true);
  put(8, 'WAVE');
  put(12, 'fmt ');
  view.setUint32(16, 16, true);
  view.setUint16(20, pcm.encoding === 'float' ? IEEE_FLOAT : PCM, true);
  view.setUint16(22, pcm.channels, true);
  view.setUint32(24, pcm.sampleRate, true);
  view.setUint32(28, pcm.sampleRate * blockAlign, true);
  view.setUint16(32, blockAlign, true);
  view.setUint16(34, bits, true);
  put(36, 'data');
  view.setUint32(40, pcm.data.length, true);
  out.set(pcm.data, 44);
  return out;
}
