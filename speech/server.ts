/**
 * The speech service: `GET /health` for the load balancer and a WebSocket endpoint at `/ws/speech` that relays
 * browser audio to a speech provider and the provider's audio and text back.
 *
 * The handshake is authenticated with the same module as the API's authorizer before any frame is read; a refused
 * client is closed with 1008 and a reason the browser can show. A handshake must arrive within a few seconds.
 * Sessions are pinged every 20 s and dropped when silent for 30 s. They end with 1008 when their credential expires
 * unless renewed: by the client's `refresh` control, or server-side from a cookie session shortly before it
 * expires; and when their credential is revoked (checked every few seconds). They are capped in frame size, audio
 * rate, control-message rate and model streams (`start`s) per minute, and counted against per-task, per-user and
 * per-tenant caps (1013 when full). On SIGTERM the server stops accepting, closes every session with 1001 ("server
 * restarting") so clients reconnect to another task, and returns.
 */
import { randomUUID } from 'node:crypto';
import { createServer, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { Auth } from '../common/auth';
import type { HandshakeIdentity, RefreshResult } from '../common/handshake';
import type { Logger } from '../common/log';
import { SUBPROTOCOL } from '../protocol';
import { SPEECH_CLOSE, SPEECH_START_BUFFER_BYTES, SPEECH_START_BUFFER_MS, parseSpeechControl, type SpeechEvent } from '../protocol';
import { METRICS } from '../common/metrics';
import type { SpeechConfig } from './config';
import type { ProviderSession, SpeechProvider } from './provider';

export const SPEECH_PATH = '/ws/speech';

export interface SpeechServerDeps {
  provider: SpeechProvider;
  auth: Pick<Auth, 'handshake' | 'refresh' | 'revoked'>;
  log: Logger;
}

type ServerSettings = Pick<
  SpeechConfig,
  | 'maxSessions'
  | 'maxSessionsPerUser'
  | 'maxSessionsPerTenant'
  | 'maxStartsPerMinute'
  | 'maxStartsPerMinutePerSession'
  | 'maxControlMessagesPerSecond'
  | 'controlMessageBurst'
  | 'maxAudioBytesPerSecond'
  | 'maxFrameBytes'
  | 'pingIntervalMs'
  | 'peerTimeoutMs'
  | 'shutdownGraceMs'
  | 'revocationCheckMs'
  | 'headersTimeoutMs'
  | 'requestTimeoutMs'
  | 'connectionsCheckIntervalMs'
>;

/** A cookie session's identity is renewed this long before it expires (half the time left, when less). */
const RENEW_AHEAD_MS = 60_000;
/** Refusals of a server-side renewal that mean the user signed out (the others: the session just ended). */
const SIGNED_OUT: ReadonlySet<string> = new Set(['revoked', 'session_invalid']);

/** A token bucket: `burst` tokens, refilled at `perSecond`. */
class TokenBucket {
  private tokens: number;
  private refilledAt = Date.now();

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
  ) {
    this.tokens = burst;
  }

  private refill(): void {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.perSecond);
    this.refilledAt = now;
  }

  /** Milliseconds until `n` tokens are there (0: now). */
  waitMs(n = 1): number {
    this.refill();
    return this.tokens >= n ? 0 : Math.ceil(((n - this.tokens) / this.perSecond) * 1000);
  }

  take(n = 1): boolean {
    if (this.waitMs(n) > 0) return false;
    this.tokens -= n;
    return true;
  }

  /** Full again: no different from a new bucket, so it can be dropped. */
  get full(): boolean {
    this.refill();
    return this.tokens >= this.burst;
  }
}

interface Session {
  id: string;
  ws: WebSocket;
  identity: HandshakeIdentity;
  expiresAt: number;
  provider?: ProviderSession;
  starting?: Promise<void>;
  /** Audio received while the model stream opens, handed to it in order once open (at most SPEECH_START_BUFFER_BYTES). */
  early: Buffer[];
  earlyBytes: number;
  earlyDropped: boolean;
  lastSeen: number;
  openedAt: number;
  /** In bytes. */
  audioBudget: TokenBucket;
  controlBudget: TokenBucket;
  startBudget: TokenBucket;
  bytesIn: number;
  bytesOut: number;
  ping: NodeJS.Timeout;
  expiry?: NodeJS.Timeout;
  renewal?: NodeJS.Timeout;
}

/**
 * Every value of every header, so that a repeated credential is refused (req.headers keeps the first Authorization
 * only, where API Gateway refuses the handshake). Read from rawHeaders: req.headersDistinct is computed with the
 * header count as received, so it drops headers when a proxy in this process rewrites them (the local edge does).
 */
function distinctHeaders(req: IncomingMessage): Record<string, string[]> {
  const headers = Object.create(null) as Record<string, string[]>;
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) (headers[req.rawHeaders[i].toLowerCase()] ??= []).push(req.rawHeaders[i + 1]);
  return headers;
}

function reject(socket: Duplex, status: number): void {
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

export class SpeechServer {
  readonly http: Server;
  private readonly sessions = new Map<string, Session>();
  /** Per user, across their sessions; outlives them (a reconnect must not refill it) until full again. */
  private readonly userStartBudgets = new Map<string, TokenBucket>();
  private readonly wss: WebSocketServer;
  private shuttingDown = false;
  private readonly revocationWatch: NodeJS.Timeout;
  private checkingRevocations = false;

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
    // Node's defaults hold a handshake that trickles in byte by byte for up to 90 s (60 s, checked every 30 s).
    const timeouts = {
      headersTimeout: settings.headersTimeoutMs,
      requestTimeout: settings.requestTimeoutMs,
      connectionsCheckingInterval: settings.connectionsCheckIntervalMs,
    };
    this.http = createServer(timeouts, (req, res) => {
      if (req.method === 'GET' && req.url === '/health') {
        const status = this.shuttingDown ? 503 : 200;
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: this.shuttingDown ? 'draining' : 'ok', sessions: this.sessions.size }));
        return;
      }
      res.writeHead(404).end();
    });
    this.revocationWatch = setInterval(() => void this.checkRevocations(), settings.revocationCheckMs);
    this.revocationWatch.unref();
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
    const auth = await this.deps.auth.handshake(distinctHeaders(req), Object.fromEntries(url.searchParams));
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
      // Counted and inserted in this one synchronous callback: concurrent handshakes cannot all pass the caps.
      const full = this.capacityRefusal(auth.identity);
      if (full) {
        this.deps.log.warn('speech_full', { userId: auth.identity.userId, tenantId: auth.identity.tenantId, sessions: this.sessions.size, reason: full });
        ws.close(SPEECH_CLOSE.tryAgainLater, full);
        return;
      }
      this.open(ws, auth.identity);
    });
  }

  private capacityRefusal(identity: HandshakeIdentity): string | undefined {
    if (this.sessions.size >= this.settings.maxSessions) return 'server full, try again';
    let user = 0;
    let tenant = 0;
    for (const s of this.sessions.values()) {
      if (s.identity.userId === identity.userId) user++;
      if (s.identity.tenantId === identity.tenantId) tenant++;
    }
    if (user >= this.settings.maxSessionsPerUser) return 'too many sessions for this user';
    if (tenant >= this.settings.maxSessionsPerTenant) return 'too many sessions for this tenant';
    return undefined;
  }

  /** Sign-outs elsewhere end sessions here too: one batched read for all live sessions, one round at a time. */
  private async checkRevocations(): Promise<void> {
    if (this.checkingRevocations || this.sessions.size === 0) return;
    this.checkingRevocations = true;
    const checked = [...this.sessions.values()].map((session) => ({ session, identity: session.identity }));
    try {
      // A read that hangs must not stop every later round: give up on it, and the next round reads again.
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('revocation check timed out')), this.settings.revocationCheckMs * 2);
      });
      const revoked = await Promise.race([this.deps.auth.revoked(checked.map((c) => c.identity)), timeout]).finally(() => clearTimeout(timer));
      checked.forEach(({ session, identity }, i) => {
        // A session refreshed meanwhile holds another credential: the next round checks that one.
        if (!revoked[i] || session.identity !== identity) return;
        this.deps.log.info('speech_revoked', { category: 'audit', sessionId: session.id, userId: identity.userId, signIn: identity.signIn });
        session.ws.close(SPEECH_CLOSE.policy, 'signed out');
      });
    } catch (err) {
      this.deps.log.warn('speech_revocation_check_failed', { error: err as Error });
    } finally {
      this.checkingRevocations = false;
    }
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
      early: [],
      earlyBytes: 0,
      earlyDropped: false,
      lastSeen: now,
      openedAt: now,
      audioBudget: new TokenBucket(this.settings.maxAudioBytesPerSecond, this.settings.maxAudioBytesPerSecond),
      controlBudget: new TokenBucket(this.settings.controlMessageBurst, this.settings.maxControlMessagesPerSecond),
      startBudget: new TokenBucket(this.settings.maxStartsPerMinutePerSession, this.settings.maxStartsPerMinutePerSession / 60),
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
    this.armExpiry(session, identity.session !== undefined);
    const alive = () => (session.lastSeen = Date.now());
    ws.on('pong', alive);
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (ws.readyState !== WebSocket.OPEN) return; // closing: what is still in flight is not acted on
      alive();
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (isBinary) return this.audio(session, bytes);
      // Each control may cost a token verification and a table read.
      if (!session.controlBudget.take()) {
        this.deps.log.warn('speech_control_flood', { sessionId: session.id, userId: session.identity.userId });
        return ws.close(SPEECH_CLOSE.policy, 'too many control messages');
      }
      void this.control(session, bytes.toString('utf8'));
    });
    ws.on('close', (code: number) => void this.closed(session, code));
    ws.on('error', () => undefined); // e.g. 1009 for an oversize frame; 'close' follows
    this.deps.log.info('speech_session_opened', { sessionId: session.id, userId: identity.userId, tenantId: identity.tenantId });
    this.send(session, { type: 'ready', sessionId: session.id, expiresAt: session.expiresAt });
  }

  /** Ends the session when its credential does; with `renew`, first tries to renew it from its cookie session. */
  private armExpiry(session: Session, renew: boolean): void {
    clearTimeout(session.expiry);
    clearTimeout(session.renewal);
    const ms = Math.max(0, session.expiresAt * 1000 - Date.now());
    const fromSession = session.identity.session !== undefined;
    session.expiry = setTimeout(() => {
      this.deps.log.info('speech_token_expired', { sessionId: session.id, userId: session.identity.userId });
      session.ws.close(SPEECH_CLOSE.policy, fromSession ? 'session ended' : 'token expired');
    }, ms);
    if (renew && fromSession) session.renewal = setTimeout(() => void this.renewFromSession(session), ms - Math.min(RENEW_AHEAD_MS, ms / 2));
  }

  /** Swaps in a renewed credential: the session now stands for it (revocation watch, expiry, next refresh). */
  private renewed(session: Session, identity: HandshakeIdentity): void {
    if (session.ws.readyState !== WebSocket.OPEN) return;
    // A renewal that gains no time (the cookie session itself ends) is not tried again: the session just ends.
    const extended = identity.tokenExpiresAt > session.expiresAt;
    session.identity = identity;
    session.expiresAt = identity.tokenExpiresAt;
    this.armExpiry(session, extended);
    this.deps.log.info('speech_refreshed', { sessionId: session.id, userId: identity.userId, expiresAt: identity.tokenExpiresAt });
    this.send(session, { type: 'refreshed', expiresAt: session.expiresAt });
  }

  private async refresh(session: Session, token: string | undefined): Promise<RefreshResult | { ok: false; reason: 'check_failed' }> {
    try {
      return await this.deps.auth.refresh(session.identity, token);
    } catch (err) {
      this.deps.log.warn('speech_refresh_failed', { sessionId: session.id, error: err as Error });
      return { ok: false, reason: 'check_failed' };
    }
  }

  private async renewFromSession(session: Session): Promise<void> {
    const result = await this.refresh(session, undefined);
    if (result.ok) return this.renewed(session, result.identity);
    if (session.ws.readyState !== WebSocket.OPEN) return;
    this.deps.log.info('speech_renewal_refused', { category: 'audit', sessionId: session.id, userId: session.identity.userId, reason: result.reason });
    session.ws.close(SPEECH_CLOSE.policy, SIGNED_OUT.has(result.reason) ? 'signed out' : 'session ended');
  }

  /** 0 when this session and its user may open another model stream (and both are charged), else the wait in ms. */
  private chargeStart(session: Session): number {
    const userId = session.identity.userId;
    let user = this.userStartBudgets.get(userId);
    if (!user) this.userStartBudgets.set(userId, (user = new TokenBucket(this.settings.maxStartsPerMinute, this.settings.maxStartsPerMinute / 60)));
    const wait = Math.max(session.startBudget.waitMs(), user.waitMs());
    if (wait > 0) return wait;
    session.startBudget.take();
    user.take();
    return 0;
  }

  private audio(session: Session, pcm: Buffer): void {
    if (!session.audioBudget.take(pcm.length)) {
      this.deps.log.warn('speech_rate_limited', { sessionId: session.id, userId: session.identity.userId });
      session.ws.close(SPEECH_CLOSE.policy, 'audio rate exceeded');
      return;
    }
    if (!session.provider) {
      if (!session.starting) return this.send(session, { type: 'error', code: 'not_started', message: 'Send {"type":"start"} before audio.' });
      // The model stream is opening: keep what the user already said instead of losing its first words.
      if (session.earlyBytes + pcm.length <= SPEECH_START_BUFFER_BYTES) {
        session.early.push(pcm);
        session.earlyBytes += pcm.length;
      } else if (!session.earlyDropped) {
        session.earlyDropped = true;
        this.send(session, { type: 'error', code: 'not_started', message: `The model is not listening yet; audio beyond the first ${SPEECH_START_BUFFER_MS / 1000} s was dropped. Wait for "started".` });
      }
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
      case 'start': {
        if (session.provider || session.starting) {
          return this.send(session, { type: 'error', code: 'already_started', message: 'The session is already started.' });
        }
        // Every start opens a model stream, which is billed: a few a minute is plenty for a conversation.
        const wait = this.chargeStart(session);
        if (wait > 0) {
          this.deps.log.warn('speech_starts_limited', { sessionId: session.id, userId: session.identity.userId });
          return this.send(session, { type: 'error', code: 'rate_limited', message: `Too many starts; try again in ${Math.ceil(wait / 1000)} s.` });
        }
        session.starting = this.start(session);
        await session.starting;
        session.starting = undefined;
        return;
      }
      case 'stop': {
        // A stop that overtakes a stream still opening ends that stream too, instead of leaving it running.
        await session.starting;
        const provider = session.provider;
        session.provider = undefined;
        await provider?.close();
        return this.send(session, { type: 'stopped', reason: 'client' });
      }
      case 'refresh': {
        // The one refresh policy (shared with the realtime API): same user, tenant and groups, and not revoked.
        const result = await this.refresh(session, control.token);
        if (result.ok) return this.renewed(session, result.identity);
        this.deps.log.info('speech_refresh_refused', { category: 'audit', sessionId: session.id, userId: session.identity.userId, reason: result.reason });
        return this.send(session, { type: 'error', code: 'refresh_refused', message: `Token refused: ${result.reason}.` });
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
            log.metrics({ [METRICS.speechErrorCloses]: 1 });
            session.ws.close(SPEECH_CLOSE.internal, 'speech model error');
          },
        },
      );
      if (session.ws.readyState !== WebSocket.OPEN) {
        await session.provider.close();
        return;
      }
      this.send(session, { type: 'started' });
      log.metrics({ [METRICS.speechSessions]: 1 });
      // Synchronously, so that no frame arriving now overtakes the ones kept while the stream opened.
      const provider = session.provider;
      for (const pcm of session.early) {
        session.bytesIn += pcm.length;
        provider.audio(pcm);
      }
    } catch (err) {
      log.error('speech_provider_open_failed', { sessionId: session.id, error: err as Error });
      this.send(session, { type: 'error', code: 'provider_error', message: 'The speech model could not be reached; try again.' });
    } finally {
      session.early = [];
      session.earlyBytes = 0;
      session.earlyDropped = false;
    }
  }

  private async closed(session: Session, code: number): Promise<void> {
    clearInterval(session.ping);
    clearTimeout(session.expiry);
    clearTimeout(session.renewal);
    this.sessions.delete(session.id);
    for (const [userId, budget] of this.userStartBudgets) if (budget.full) this.userStartBudgets.delete(userId);
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
    clearInterval(this.revocationWatch);
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
