/**
 * Speech relay: how many sessions one speech process holds while each streams real-time audio, the relay time of a
 * frame through the service (client -> server -> provider boundary -> server -> client), and memory per session,
 * with the local provider (voice detection on every frame, spoken answers streamed back). The floor: a bare `ws`
 * server that only sends each frame's tag back.
 *
 *   npm run bench -- --only speech [--full]
 */
import { fork } from 'node:child_process';
import * as path from 'node:path';
import WebSocket from 'ws';
import { SPEECH_INPUT_SAMPLE_RATE } from '../protocol';
import { syntheticSpeech } from '../speech/providers/local';
import { kib, num, ratio, sleep, stats, type Bench, type Stats } from './report';
import { TAG_BYTES } from './speech-server';

interface Outcome {
  sessions: number;
  held: number;
  frames: number;
  relay: Stats;
  answerBytes: number;
  rssPerSession: number;
  heapPerSession: number;
}

const FRAME_MS = 100;
const FRAME_BYTES = (SPEECH_INPUT_SAMPLE_RATE * FRAME_MS * 2) / 1000;
// What each session says, on a loop: 1.5 s of speech-like sound, then 1.5 s of silence (so the provider answers).
const CLIP = Buffer.concat([syntheticSpeech(1.5, SPEECH_INPUT_SAMPLE_RATE), Buffer.alloc(1.5 * SPEECH_INPUT_SAMPLE_RATE * 2)]);

async function run(mode: 'gatehouse' | 'bare', sessions: number, seconds: number): Promise<Outcome> {
  const child = fork(path.join(__dirname, 'speech-server.ts'), [mode], {
    execArgv: ['--import', 'tsx', '--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  const next = <T>(type: string) => new Promise<T>((resolve) => child.on('message', (m: { type: string }) => m.type === type && resolve(m as T)));
  const { port, token } = await next<{ port: number; token: string }>('ready');
  child.send({ type: 'memory' });
  const base = await next<{ rss: number; heap: number }>('memory');

  const url = `ws://127.0.0.1:${port}/ws/speech`;
  const relay: number[] = [];
  let answerBytes = 0;
  const sockets = await Promise.all(
    Array.from({ length: sessions }, () => {
      const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` }, perMessageDeflate: false });
      const sent = new Map<number, number>();
      ws.on('message', (data: Buffer, isBinary) => {
        if (!isBinary) return;
        if (data.length !== TAG_BYTES) {
          answerBytes += data.length;
          return;
        }
        const at = sent.get(data.readUInt32LE(0));
        if (at !== undefined) relay.push(performance.now() - at);
        sent.delete(data.readUInt32LE(0));
      });
      return new Promise<{ ws: WebSocket; sent: Map<number, number> }>((resolve, reject) => {
        if (mode === 'gatehouse') {
          ws.on('message', (data, isBinary) => !isBinary && JSON.parse(data.toString()).type === 'started' && resolve({ ws, sent }));
          ws.on('open', () => ws.send(JSON.stringify({ type: 'start' })));
        } else {
          ws.on('open', () => resolve({ ws, sent }));
        }
        ws.on('error', reject);
      });
    }),
  );

  // Every session streams 100 ms frames in real time, staggered across the interval; the first 4 bytes carry an id.
  let frameId = 0;
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(
    sockets.map(async ({ ws, sent }, i) => {
      await sleep((i * FRAME_MS) / sessions);
      let offset = (i * FRAME_BYTES * 7) % CLIP.length;
      let due = performance.now();
      while (performance.now() < deadline && ws.readyState === WebSocket.OPEN) {
        const frame = Buffer.from(CLIP.subarray(offset, offset + FRAME_BYTES));
        offset = (offset + FRAME_BYTES) % CLIP.length;
        const id = frameId++;
        frame.writeUInt32LE(id, 0);
        sent.set(id, performance.now());
        ws.send(frame);
        due += FRAME_MS;
        await sleep(Math.max(0, due - performance.now()));
      }
    }),
  );
  // Memory under load: every session started and streaming, answers in flight.
  child.send({ type: 'memory' });
  const loaded = await next<{ rss: number; heap: number }>('memory');
  await sleep(300);
  const held = sockets.filter(({ ws }) => ws.readyState === WebSocket.OPEN).length;
  for (const { ws } of sockets) ws.close(1000);
  child.send({ type: 'stop' });
  await new Promise((resolve) => child.on('exit', resolve));
  return {
    sessions,
    held,
    frames: relay.length,
    relay: stats(relay),
    answerBytes,
    rssPerSession: (loaded.rss - base.rss) / sessions,
    heapPerSession: (loaded.heap - base.heap) / sessions,
  };
}

export const speechBench: Bench = async ({ full, log }) => {
  const sessions = full ? 1000 : 300;
  const seconds = full ? 30 : 10;
  const ours = await run('gatehouse', sessions, seconds);
  log(`speech service: ${ours.held}/${sessions} held, relay p50 ${num(ours.relay.p50, 2)} ms, p99 ${num(ours.relay.p99, 2)} ms`);
  const floor = await run('bare', sessions, seconds);
  log(`bare ws: relay p50 ${num(floor.relay.p50, 2)} ms, p99 ${num(floor.relay.p99, 2)} ms`);
  const row = (label: string, o: Outcome) => [
    label,
    `${o.held} / ${o.sessions}`,
    num(o.frames),
    num(o.relay.p50, 2),
    num(o.relay.p99, 2),
    kib(o.rssPerSession),
    kib(o.heapPerSession),
  ];
  return {
    id: 'speech',
    title: 'Speech relay',
    method: `${sessions.toLocaleString('en-US')} concurrent sessions against one speech-service process (its own process, so its memory is measured alone), each authenticated with a bearer token and started, then streaming 100 ms frames of 16 kHz PCM in real time for ${seconds} s: 1.5 s of speech-like sound and 1.5 s of silence on a loop, so the local provider detects utterances and streams spoken answers back (${num(ours.answerBytes / 2 ** 20, 1)} MiB of answer audio in this run). Each frame's first bytes carry an id, which the provider boundary sends straight back: the relay time is from the client's send to that echo's arrival, through the server's authentication state, rate limiting and provider plumbing, both ways. Memory is the process's growth from empty to the end of the streaming, every session live, after a GC: RSS, and the live JavaScript heap plus the buffers it holds outside V8. The floor is a bare \`ws\` server in the same kind of process that sends the id back and does nothing else.`,
    head: ['server', 'sessions held', 'frames timed', 'relay p50 (ms)', 'relay p99 (ms)', 'RSS per session', 'heap + buffers per session'],
    rows: [row('Gatehouse speech service (local provider)', ours), row('bare ws echo (floor)', floor)],
    headline: `${ours.held} of ${sessions} sessions held streaming real-time audio; frame relay p50 ${num(ours.relay.p50, 2)} ms / p99 ${num(ours.relay.p99, 2)} ms (${ratio(ours.relay.p50, floor.relay.p50)} / ${ratio(ours.relay.p99, floor.relay.p99)} the bare-ws floor), ${kib(ours.rssPerSession)} RSS per session (${ratio(ours.rssPerSession, floor.rssPerSession)} the floor's).`,
    notes: [
      'Per session, the service keeps the authenticated identity, a rate-limit bucket, a ping timer, an expiry timer and the provider session (here voice detection and answer streaming; with Nova Sonic, an HTTP/2 stream to Bedrock instead); the floor keeps only the socket. Client and server share the machine, so the relay times include both sides scheduling on two cores.',
      `Of the RSS per session, ${kib(ours.heapPerSession)} is live JavaScript heap and buffers; the rest is memory V8 and the allocator took while the sessions ran (sockets' I/O buffers, the provider's audio), which a process keeps for reuse, so RSS per session moves from run to run; the local provider alone renders each answer (up to 3 s of 24 kHz audio, 141 KiB) in memory before streaming it, which Nova Sonic's streamed output does not. Even at ${kib(ours.rssPerSession)}, memory is not what limits a task: the deployed cap is 50 sessions per task (\`maxSessionsPerTask\`; the service scales out on sessions, not memory), about ${num((50 * ours.rssPerSession) / 2 ** 20, 1)} MiB at that cap.`,
    ],
  };
};
