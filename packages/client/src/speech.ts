/**
 * A client of the speech service (`/ws/speech`), for browsers and Node: it opens the socket with the token in the
 * subprotocol (or the header, in Node), starts a conversation, streams PCM frames (16 kHz mono 16-bit) and
 * surfaces the service's events and the assistant's audio (24 kHz mono 16-bit).
 */
import { CLOSE, parseSpeechControl, type SpeechControl, type SpeechEvent } from '../../../protocol';
import { Emitter } from './emitter';
import { browserSocket, type SocketFactory, type SocketLike } from './client';

export interface SpeechClientEvents {
  event: SpeechEvent;
  audio: Uint8Array;
  close: { code: number; reason: string };
}

export class SpeechClient extends Emitter<SpeechClientEvents> {
  private socket?: SocketLike;

  constructor(private readonly options: { url: string; token: string; socket?: SocketFactory }) {
    super();
  }

  /** Opens the socket; resolves on the service's `ready` event, rejects with the close reason if refused. */
  connect(): Promise<Extract<SpeechEvent, { type: 'ready' }>> {
    const socket = (this.options.socket ?? browserSocket)(this.options.url, this.options.token);
    this.socket = socket;
    socket.binaryType = 'arraybuffer';
    return new Promise((resolve, reject) => {
      socket.onmessage = ({ data }) => {
        if (typeof data === 'string') {
          const event = JSON.parse(data) as SpeechEvent;
          this.emit('event', event);
          if (event.type === 'ready') resolve(event);
        } else {
          this.emit('audio', data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data as ArrayBufferLike));
        }
      };
      socket.onclose = ({ code, reason }) => {
        this.emit('close', { code, reason });
        reject(Object.assign(new Error(reason || `Speech connection closed (${code})`), { code }));
      };
      socket.onerror = () => undefined;
    });
  }

  private control(control: SpeechControl): void {
    // Validate locally with the service's own parser: a malformed control message never leaves the client.
    const raw = JSON.stringify(control);
    if (!parseSpeechControl(raw).ok) throw new Error(`Invalid control message ${raw}`);
    this.socket?.send(raw);
  }

  start(): void {
    this.control({ type: 'start' });
  }

  stop(): void {
    this.control({ type: 'stop' });
  }

  refresh(token: string): void {
    this.control({ type: 'refresh', token });
  }

  /** One frame of PCM 16-bit mono 16 kHz. */
  sendAudio(pcm: Uint8Array): void {
    this.socket?.send(pcm);
  }

  close(): void {
    this.socket?.close(CLOSE.normal.code, CLOSE.normal.reason);
  }
}
