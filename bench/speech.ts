/**
 * Speech relay benchmark: how many sessions one speech process holds while each streams real-time audio, the
 * round trip of a frame through the service (client -> server -> provider -> server -> client), and memory per
 * session. The provider echoes, so the figures are the service's own, independent of any model.
 *
 *   npm run bench:speech -- [--sessions 200] [--seconds 5]
 */
import { fork } from 'node:child_process';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

export interface SpeechBenchResult {
  sessions: number;
  held: number;
  frames: number;
  p50Ms: number;
  p99Ms: number;
  rssPerSessionKiB: number;
  heapPerSessionKiB: number;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

export async function benchSpeech(sessions: number, seconds: number): Promise<SpeechBenchResult> {
  const child = fork(path.join(__dirname, 'speech-server.ts'), [], {
    execArgv: ['--import', 'tsx', '--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  const next = <T>(type: string) => new Promise<T>((resolve) => child.on('message', (m: { type: string }) => m.type === type && resolve(m as T)));
  const { port, token } = await next<{ port: number; token: string }>('ready');
  child.send({ type: 'memory' });
  const base = await next<{ rss: number; heap: number }>('memory');

  const url = `ws://127.0.0.1:${port}/ws/speech`;
  const latencies: number[] = [];
  const sockets = await Promise.all(
    Array.from({ length: sessions }, () => {
      const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` }, perMessageDeflate: false });
      const sent = new Map<number, number>();
      ws.on('message', (data, isBinary) => {
        if (!isBinary) return;
        const id = (data as Buffer).readUInt32LE(0);
        const at = sent.get(id);
        if (at !== undefined) latencies.push(Number(process.hrtime.bigint() - BigInt(at)) / 1e6);
        sent.delete(id);
      });
      return new Promise<{ ws: WebSocket; sent: Map<number, number> }>((resolve, reject) => {
        ws.on('message', (data, isBinary) => {
          if (!isBinary && JSON.parse(data.toString()).type === 'started') resolve({ ws, sent });
        });
        ws.on('open', () => ws.send(JSON.stringify({ type: 'start' })));
        ws.on('error', reject);
      });
    }),
  );
  child.send({ type: 'memory' });
  const loaded = await next<{ rss: number; heap: number; sessions: number }>('memory');

  // Every session streams 100 ms frames (3,200 bytes at 16 kHz) in real time, staggered across the interval.
  let frameId = 0;
  const frame = Buffer.alloc(3200);
  const deadline = Date.now() + seconds * 1000;
  await Promise.all(
    sockets.map(async ({ ws, sent }, i) => {
      await new Promise((r) => setTimeout(r, (i * 100) / sessions));
      while (Date.now() < deadline && ws.readyState === WebSocket.OPEN) {
        const id = frameId++;
        frame.writeUInt32LE(id, 0);
        sent.set(id, Number(process.hrtime.bigint()));
        ws.send(frame);
        await new Promise((r) => setTimeout(r, 100));
      }
    }),
  );
  await new Promise((r) => setTimeout(r, 300));
  const held = sockets.filter(({ ws }) => ws.readyState === WebSocket.OPEN).length;
  for (const { ws } of sockets) ws.close(1000);
  child.send({ type: 'stop' });
  await new Promise((r) => child.on('exit', r));

  const sorted = latencies.sort((a, b) => a - b);
  return {
    sessions,
    held,
    frames: sorted.length,
    p50Ms: Number(percentile(sorted, 50).toFixed(2)),
    p99Ms: Number(percentile(sorted, 99).toFixed(2)),
    rssPerSessionKiB: Math.round((loaded.rss - base.rss) / sessions / 1024),
    heapPerSessionKiB: Math.round((loaded.heap - base.heap) / sessions / 1024),
  };
}

if (require.main === module) {
  const { values } = parseArgs({ options: { sessions: { type: 'string', default: '200' }, seconds: { type: 'string', default: '5' } } });
  benchSpeech(Number(values.sessions), Number(values.seconds)).then((r) => {
    process.stdout.write(
      `speech relay: ${r.held}/${r.sessions} sessions held, ${r.frames} frames, round trip p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, ` +
        `${r.rssPerSessionKiB} KiB RSS and ${r.heapPerSessionKiB} KiB heap per session\n`,
    );
  });
}
