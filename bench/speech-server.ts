/**
 * The speech service under benchmark, in its own process so its memory can be measured alone: the real server and
 * verifier, with an echo provider that relays every audio frame straight back (so a frame's round trip through
 * the service is measurable from the client). Talks to the parent over IPC.
 */
import { createLogger } from '../common/log';
import { createAuth } from '../common/auth';
import { speechConfig } from '../speech/config';
import type { SpeechProvider } from '../speech/provider';
import { SpeechServer } from '../speech/server';
import { CLIENT_ID, USER_POOL_ID, accessClaims, makeKey, serveJwks, signToken } from '../test/support/jwt';

const echo: SpeechProvider = {
  name: 'echo',
  async open(_session, events) {
    return { audio: (pcm) => events.audio(pcm), close: async () => undefined };
  },
};

async function main() {
  const key = makeKey('bench');
  const jwks = await serveJwks([key]);
  const config = speechConfig({
    USER_POOL_ID,
    USER_POOL_CLIENT_ID: CLIENT_ID,
    JWKS_URI: jwks.url,
    SPEECH_PROVIDER: 'local',
    MAX_SESSIONS: '100000',
    PORT: '0',
  });
  const server = new SpeechServer(config, { provider: echo, auth: createAuth(config.auth), log: createLogger({}, { level: 'error' }) });
  const port = await server.listen(0, '127.0.0.1');
  process.on('message', (msg: { type: string }) => {
    if (msg.type === 'memory') {
      global.gc?.();
      process.send!({ type: 'memory', rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed, sessions: server.sessionCount });
    }
    if (msg.type === 'stop') void server.shutdown().then(() => process.exit(0));
  });
  process.send!({ type: 'ready', port, token: signToken(key, accessClaims({ exp: Math.floor(Date.now() / 1000) + 3000 })) });
}

void main();
