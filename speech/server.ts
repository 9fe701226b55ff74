/**
 * The speech service: `GET /health` for the load balancer and a WebSocket endpoint at `/ws/speech` that relays
 * browser audio to a speech provider and the provider's audio and text back.
 *
 * The handshake is authenticated with the same module as the API's authorizer before any frame is read; a refused
 * client is closed with 1008 and a reason the browser can show. Sessions are pinged every 20 s and dropped when
 * silent for 30 s, end with 1008 when their token expires unless refreshed over the socket, are capped in frame size
 * and audio rate, and are counted against a per-task cap (1013 when full). On SIGTERM the server stops accepting,
 * closes every session with 1001 ("server restarting") so clients reconnect to another task, and returns.
 */
import { randomUUID } from 'node:crypto';
import { createServer, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { Auth } from '../common/auth';
import type { HandshakeIdentity } from '../common/handshake';
import type { Logger } from '../common/log';
import { SUBPROTOCOL } from '../common/protocol';
import { SPEECH_CLOSE, parseSpeechControl, type SpeechEvent } from '../common/speech-protocol';
import type { SpeechConfig } from './config';
import type { ProviderSession, SpeechProvider } from './provider';

export const SPEECH_PATH = '/ws/speech';

export interface SpeechServerDeps {
  provider: SpeechProvider;
  auth: Pick<Auth, 'handshake' | 'verifier' | 'credentials'>;
  log: Logger;
}

type ServerSettings = Pick<
  SpeechConfig,
  'maxSessions' | 'maxAudioBytesPerSecond' | 'maxFrameBytes' | 'pingIntervalMs' | 'peerTimeoutMs' | 'shutdownGraceMs' | 'revocationCheckMs'
>;

interface Session {
  id: string;
  ws: WebSocket;
  identity: HandshakeIdentity;
  expiresAt: number;
  provider?: ProviderSession;
  starting?: Promise<void>;
  lastSeen: number;
  openedAt: number;
  /** Audio token bucket, in bytes. */
  allowance: number;
  refilledAt: number;
  bytesIn: number;
  bytesOut: number;
  ping: NodeJS.Timeout;
  expiry?: NodeJS.Timeout;
}

function reject(socket: Duplex, status: number): void {
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

export class SpeechServer {
  readonly http: Server;
  private readonly sessions = new Map<string, Session>();
  private readonly wss: WebSocketServer;
  private shuttingDown = false;
  private readonly revocationWatch?: NodeJS.Timeout;

  constructor(
    private readonly settings: ServerSettings,
    private readonly deps: SpeechServerDeps,
  ) {
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: settings.maxFrameBytes,
      handleProtocols: (offered) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    this.http = createServer((req, res) => {
      if (req.method === 'GET' && req.url === '/health') {
        const status = this.shuttingDown ? 503 : 200;
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: this.shuttingDown ? 'draining' : 'ok', sessions: this.sessions.size }));
        return;
      }
      res.writeHead(404).end();
    });
    // Sign-outs elsewhere end sessions here too: one batched read for all live sessions, every few seconds.
    if (deps.auth.credentials) {
      const credentials = deps.auth.credentials;
      this.revocationWatch = setInterval(() => {
        const sessions = [...this.sessions.values()];
        if (sessions.length === 0) return;
        credentials
          .revoked(sessions.map((s) => s.identity))
          .then((revoked) =>
            sessions.forEach((s, i) => {
              if (!revoked[i]) return;
              deps.log.info('speech_revoked', { category: 'audit', sessionId: s.id, userId: s.identity.userId });
              s.ws.close(SPEECH_CLOSE.policy, 'signed out');
            }),
          )
          .catch((err: Error) => deps.log.warn('speech_revocation_check_failed', { error: err }));
      }, settings.revocationCheckMs);
      this.revocationWatch.unref();
    }
    this.http.on('upgrade', (req, socket, head) => {
      this.handleUpgrade(req, socket, head).catch((err: Error) => {
        deps.log.error('upgrade_failed', { error: err });
        socket.destroy();
      });
    });
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, resolve);
    });
    return (this.http.address() as AddressInfo).port;
  }

  async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== SPEECH_PATH) return reject(socket, 404);
    if (this.shuttingDown) return reject(socket, 503);
    // Authenticate before the upgrade completes: no frame of a refused client is ever read.
    const auth = await this.deps.auth.handshake(req.headers, Object.fromEntries(url.searchParams));
    if (socket.destroyed) return;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      // Browsers cannot read an HTTP status of a refused upgrade, but they do see a close code and reason.
      if (!auth.ok) {
        this.deps.log.info('speech_denied', { category: 'audit', reason: auth.reason, source: auth.source });
        ws.close(SPEECH_CLOSE.policy, `unauthorized: ${auth.reason}`);
        return;
      }
      if (this.shuttingDown) {
        ws.close(SPEECH_CLOSE.restarting, 'server restarting');
        return;
      }
      if (this.sessions.size >= this.settings.maxSessions) {
        this.deps.log.warn('speech_full', { userId: auth.identity.userId, sessions: this.sessions.size });
        ws.close(SPEECH_CLOSE.tryAgainLater, 'server full, try again');
        return;
      }
      this.open(ws, auth.identity);
    });
  }

  private send(session: Session, event: SpeechEvent): void {
    if (session.ws.readyState === WebSocket.OPEN) session.ws.send(JSON.stringify(event));
  }

  private open(ws: WebSocket, identity: HandshakeIdentity): void {
    const now = Date.now();
    const session: Session = {
      id: randomUUID(),
      ws,
      identity,
      expiresAt: identity.tokenExpiresAt,
      lastSeen: now,
      openedAt: now,
      allowance: this.settings.maxAudioBytesPerSecond,
      refilledAt: now,
      bytesIn: 0,
      bytesOut: 0,
      ping: setInterval(() => {
        if (Date.now() - session.lastSeen > this.settings.peerTimeoutMs) {
          this.deps.log.info('speech_peer_timeout', { sessionId: session.id, userId: identity.userId });
          ws.terminate();
        } else if (ws.readyState === WebSocket.OPEN) {
          ws.ping();
        }
      }, this.settings.pingIntervalMs),
    };
    this.sessions.set(session.id, session);
    this.armExpiry(session);
    const alive = () => (session.lastSeen = Date.now());
    ws.on('pong', alive);
    ws.on('message', (data: RawData, isBinary: boolean) => {
      alive();
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (isBinary) this.audio(session, bytes);
      else void this.control(session, bytes.toString('utf8'));
    });
    ws.on('close', (code: number) => void this.closed(session, code));
    ws.on('error', () => undefined); // e.g. 1009 for an oversize frame; 'close' follows
    this.deps.log.info('speech_session_opened', { sessionId: session.id, userId: identity.userId, tenantId: identity.tenantId });
    this.send(session, { type: 'ready', sessionId: session.id, expiresAt: session.expiresAt });
  }

  private armExpiry(session: Session): void {
    if (session.expiry) clearTimeout(session.expiry);
    const ms = session.expiresAt * 1000 - Date.now();
    session.expiry = setTimeout(() => {
      this.deps.log.info('speech_token_expired', { sessionId: session.id, userId: session.identity.userId });
      session.ws.close(SPEECH_CLOSE.policy, 'token expired');
    }, Math.max(0, ms));
  }

  private audio(session: Session, pcm: Buffer): void {
    const now = Date.now();
    const rate = this.settings.maxAudioBytesPerSecond;
    session.allowance = Math.min(rate, session.allowance + ((now - session.refilledAt) / 1000) * rate);
    session.refilledAt = now;
    session.allowance -= pcm.length;
    if (session.allowance < 0) {
      this.deps.log.warn('speech_rate_limited', { sessionId: session.id, userId: session.identity.userId });
      session.ws.close(SPEECH_CLOSE.policy, 'audio rate exceeded');
      return;
    }
    if (!session.provider) {
      if (!session.starting) this.send(session, { type: 'error', code: 'not_started', message: 'Send {"type":"start"} before audio.' });
      return;
    }
    session.bytesIn += pcm.length;
    session.provider.audio(pcm);
  }

  private async control(session: Session, raw: string): Promise<void> {
    const parsed = parseSpeechControl(raw);
    if (!parsed.ok) return this.send(session, { type: 'error', code: 'invalid_message', message: parsed.message });
    const control = parsed.control;
    switch (control.type) {
      case 'start':
        if (session.provider || session.starting) {
          return this.send(session, { type: 'error', code: 'already_started', message: 'The session is already started.' });
        }
        session.starting = this.start(session);
        await session.starting;
        session.starting = undefined;
        return;
      case 'stop': {
        const provider = session.provider;
        session.provider = undefined;
        await provider?.close();
        return this.send(session, { type: 'stopped', reason: 'client' });
      }
      case 'refresh': {
        const verified = await this.deps.auth.verifier.verify(control.token);
        if (!verified.ok || verified.claims.sub !== session.identity.userId) {
          const reason = verified.ok ? 'different user' : verified.reason;
          this.deps.log.info('speech_refresh_refused', { sessionId: session.id, reason });
          return this.send(session, { type: 'error', code: 'refresh_refused', message: `Token refused: ${reason}.` });
        }
        session.expiresAt = verified.claims.exp;
        this.armExpiry(session);
        this.deps.log.info('speech_refreshed', { sessionId: session.id, userId: session.identity.userId });
        return this.send(session, { type: 'refreshed', expiresAt: session.expiresAt });
      }
    }
  }

  private async start(session: Session): Promise<void> {
    const log = this.deps.log;
    try {
      session.provider = await this.deps.provider.open(
        { sessionId: session.id, userId: session.identity.userId, log },
        {
          audio: (pcm) => {
            session.bytesOut += pcm.length;
            if (session.ws.readyState === WebSocket.OPEN) session.ws.send(pcm, { binary: true });
          },
          transcript: (role, text, final) => this.send(session, { type: 'transcript', role, text, final }),
          interrupted: () => this.send(session, { type: 'interrupted' }),
          turnEnd: () => this.send(session, { type: 'turn_end' }),
          error: (err) => {
            // One model stream failed (throttling, a stream error): this session ends, the process carries on.
            log.error('speech_provider_error', { sessionId: session.id, error: err });
            this.send(session, { type: 'error', code: 'provider_error', message: 'The speech model failed; start again.' });
            session.ws.close(1011, 'speech model error');
          },
        },
      );
      if (session.ws.readyState !== WebSocket.OPEN) {
        await session.provider.close();
        return;
      }
      this.send(session, { type: 'started' });
    } catch (err) {
      log.error('speech_provider_open_failed', { sessionId: session.id, error: err as Error });
      this.send(session, { type: 'error', code: 'provider_error', message: 'The speech model could not be reached; try again.' });
    }
  }

  private async closed(session: Session, code: number): Promise<void> {
    clearInterval(session.ping);
    if (session.expiry) clearTimeout(session.expiry);
    this.sessions.delete(session.id);
    await session.starting;
    await session.provider?.close().catch(() => undefined);
    this.deps.log.info('speech_session_closed', {
      sessionId: session.id,
      userId: session.identity.userId,
      code,
      durationMs: Date.now() - session.openedAt,
      audioInBytes: session.bytesIn,
      audioOutBytes: session.bytesOut,
    });
  }

  /** SIGTERM: stop accepting, tell every client to reconnect elsewhere (1001), wait for sessions to end. */
  async shutdown(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    if (this.revocationWatch) clearInterval(this.revocationWatch);
    const listening = new Promise<void>((resolve) => this.http.close(() => resolve()));
    const sessions = [...this.sessions.values()];
    this.deps.log.info('speech_draining', { sessions: sessions.length });
    await Promise.race([
      Promise.all(
        sessions.map(
          (s) =>
            new Promise<void>((resolve) => {
              if (s.ws.readyState === WebSocket.CLOSED) return resolve();
              s.ws.once('close', () => resolve());
              s.ws.close(SPEECH_CLOSE.restarting, 'server restarting');
            }),
        ),
      ),
      new Promise((resolve) => setTimeout(resolve, this.settings.shutdownGraceMs).unref()),
    ]);
    for (const s of this.sessions.values()) s.ws.terminate();
    this.http.closeAllConnections();
    await listening;
  }
}
