/**
 * The speech service under benchmark, in its own process so its memory is measured alone. `gatehouse`: the real
 * server and verifier with the local provider (voice detection on every frame, spoken answers), wrapped to send
 * each frame's first 8 bytes (the client's frame id) straight back, so a frame's relay through the service is
 * timed from the client. `bare`: the floor, a plain `ws` server that sends the same 8 bytes back and does nothing
 * else. Talks to the parent over IPC.
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { createLogger } from '../common/log';
import { createAuth } from '../common/auth';
import { speechConfig } from '../speech/config';
import type { SpeechProvider } from '../speech/provider';
import { LocalSpeechProvider } from '../speech/providers/local';
import { SpeechServer } from '../speech/server';
import { CLIENT_ID, USER_POOL_ID, accessClaims, makeKey, serveJwks, signToken } from '../test/support/jwt';

export const TAG_BYTES = 8;

/** The local provider, plus the frame tag echoed back the moment the frame reaches the provider. */
function tagging(inner: SpeechProvider): SpeechProvider {
  return {
    name: `${inner.name}+tag`,
    async open(session, events) {
      const provider = await inner.open(session, events);
      return {
        audio: (pcm) => {
          events.audio(pcm.subarray(0, TAG_BYTES));
          provider.audio(pcm);
        },
        close: () => provider.close(),
      };
    },
  };
}

async function start(mode: string): Promise<{ port: number; token: string; count: () => number; stop: () => Promise<void> }> {
  if (mode === 'bare') {
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
    await new Promise((resolve) => server.once('listening', resolve));
    server.on('connection', (ws) => ws.on('message', (data: Buffer, isBinary) => isBinary && ws.send(data.subarray(0, TAG_BYTES))));
    return {
      port: (server.address() as AddressInfo).port,
      token: '',
      count: () => server.clients.size,
      stop: () => new Promise((resolve) => server.close(() => resolve())),
    };
  }
  const key = makeKey('bench');
  const jwks = await serveJwks([key]);
  const config = speechConfig({ USER_POOL_ID, USER_POOL_CLIENT_ID: CLIENT_ID, JWKS_URI: jwks.url, SPEECH_PROVIDER: 'local', MAX_SESSIONS: '100000', MAX_SESSIONS_PER_USER: '100000', MAX_SESSIONS_PER_TENANT: '100000', MAX_STARTS_PER_MINUTE: '100000', PORT: '0' });
  const server = new SpeechServer(config, {
    provider: tagging(new LocalSpeechProvider()),
    auth: createAuth(config.auth),
    log: createLogger({}, { level: 'error' }),
  });
  return {
    port: await server.listen(0, '127.0.0.1'),
    token: signToken(key, accessClaims({ exp: Math.floor(Date.now() / 1000) + 3000 })),
    count: () => server.sessionCount,
    stop: async () => {
      await server.shutdown();
      await jwks.close();
    },
  };
}

async function main() {
  const server = await start(process.argv[2] ?? 'gatehouse');
  process.on('message', (msg: { type: string }) => {
    if (msg.type === 'memory') {
      global.gc?.();
      global.gc?.();
      const { rss, heapUsed, external } = process.memoryUsage();
      // heap: live JavaScript objects plus the buffers they hold outside the V8 heap (socket and audio buffers).
      process.send!({ type: 'memory', rss, heap: heapUsed + external, sessions: server.count() });
    }
    if (msg.type === 'stop') void server.stop().then(() => process.exit(0));
  });
  process.send!({ type: 'ready', port: server.port, token: server.token });
}

if (require.main === module) void main();
