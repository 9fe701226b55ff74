/**
 * Load through the local system, with the client that ships in packages/client, beside a bare `ws` server that
 * fans out the same traffic to the same sockets with no authentication, no Lambda, no DynamoDB and no API Gateway.
 *
 * Two runs. The ceiling: rooms whose senders send at a fixed rate (open loop: a send does not wait for the one
 * before it), raised step by step until the deliveries per second stop following the rate offered; each step has a
 * warm-up that is not measured, and ends once its messages have arrived, so one step's backlog is not the next
 * one's latency. The hold: 5,000 sockets opened, joined and held, a steady delivery rate well under the ceiling,
 * latency measured after a warm-up, and the numbers that must be zero: messages lost and sockets dropped.
 *
 * The local system runs as strict as AWS (every request signed and checked against IAM, one invocation per Lambda
 * execution environment, a cold start for each new one, at most 16 environments a function on this machine), so
 * the Lambda environments each run started (each a cold start) are reported too.
 */
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { createNodeClient, type GatehouseClient } from '@gatehouse/client/node';
import { ensureSynth } from '../local/synth';
import { startLocalSystem, type LocalSystem } from '../local/system';
import { num, ratio, sleep, stats, type Bench, type Stats } from './report';

/** What one message carries: the step it belongs to, its number in its room, when it was sent. */
type Stamp = {
  s: number;
  i: number;
  t: number;
};

/** Sockets in rooms, one sender in each (the room's first member). */
interface Layout {
  sockets: number;
  roomSize: number;
}

const roomsOf = (layout: Layout) => Math.ceil(layout.sockets / layout.roomSize);

/** What every socket of a run has received, step by step. */
class Deliveries {
  /** Per step: arrivals (socket × message) counted once, their latencies, duplicates, and the last arrival. */
  private readonly steps = new Map<number, { seen: Set<string>; latencies: number[]; duplicates: number; last: number }>();

  receive(socket: number, data: Stamp): void {
    if (typeof data?.s !== 'number') return;
    const now = performance.now();
    let step = this.steps.get(data.s);
    if (!step) this.steps.set(data.s, (step = { seen: new Set(), latencies: [], duplicates: 0, last: now }));
    const key = `${socket}:${data.i}`;
    if (step.seen.has(key)) {
      step.duplicates++;
      return;
    }
    step.seen.add(key);
    step.latencies.push(now - data.t);
    step.last = now;
  }

  count(step: number): number {
    return this.steps.get(step)?.seen.size ?? 0;
  }

  result(step: number): { received: number; latency: Stats; duplicates: number; last: number } {
    const s = this.steps.get(step);
    return { received: s?.seen.size ?? 0, latency: stats(s?.latencies ?? []), duplicates: s?.duplicates ?? 0, last: s?.last ?? 0 };
  }
}

/** A system under load: its sockets, and how a room's sender sends. */
interface Target {
  name: string;
  deliveries: Deliveries;
  /** Sends `data` into room `room`, not waiting for an answer; a refusal is counted, not thrown. */
  send(room: number, data: Stamp): void;
  refused(): number;
  held(): number;
  drops(): number;
  connectsPerSecond: number;
  /** Connect attempts that failed (each tried again, twice at most). */
  connectFailures: number;
  stop(): Promise<void>;
}

/**
 * Opens `count` connections, `batch` handshakes at a time; returns them, the connects per second and how many
 * attempts failed. A failed connect is tried again (twice at most), as a client would, and counted.
 */
async function openAll<T>(count: number, batch: number, open: (i: number) => Promise<T>, log: (line: string) => void): Promise<{ items: T[]; perSecond: number; failures: number }> {
  const items: T[] = [];
  let failures = 0;
  const withRetries = async (i: number): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await open(i);
      } catch (err) {
        failures++;
        if (attempt === 3) throw err;
        log(`  connect ${i} failed (${(err as Error).message}), trying again`);
      }
    }
  };
  const start = performance.now();
  for (let i = 0; i < count; i += batch) {
    items.push(...(await Promise.all(Array.from({ length: Math.min(batch, count - i) }, (_, k) => withRetries(i + k)))));
    if ((i / batch) % 20 === 19) log(`  ${items.length} open`);
  }
  return { items, perSecond: (count / (performance.now() - start)) * 1000, failures };
}

interface StepResult {
  /** Deliveries per second offered: rooms × rate × members. */
  offered: number;
  /** Deliveries made, over the time from the first send to the last arrival. */
  achieved: number;
  latency: Stats;
  /** Deliveries that had not arrived 10 s after the step's last send. */
  missing: number;
  duplicates: number;
}

/**
 * One step: every room's sender sends `rate` messages a second for `seconds`, open loop (each at its planned time,
 * whatever became of the one before), then waits until everything has arrived (or 10 s have passed).
 */
async function step(target: Target, layout: Layout, id: number, rate: number, seconds: number): Promise<StepResult> {
  const rooms = roomsOf(layout);
  const interval = 1000 / rate;
  const start = performance.now();
  let sent = 0;
  await Promise.all(
    Array.from({ length: rooms }, async (_, r) => {
      // Senders start spread over one interval, so the rooms do not fire in lockstep.
      await sleep((r * interval) / rooms);
      for (let i = 0, next = performance.now(); next - start < seconds * 1000; i++, next += interval) {
        await sleep(Math.max(0, next - performance.now()));
        target.send(r, { s: id, i, t: performance.now() });
        sent++;
      }
    }),
  );
  const expected = sent * layout.roomSize;
  const deadline = performance.now() + 10_000;
  while (target.deliveries.count(id) < expected && performance.now() < deadline) await sleep(50);
  const result = target.deliveries.result(id);
  return {
    offered: rooms * rate * layout.roomSize,
    achieved: (result.received / Math.max(1, result.last - start)) * 1000,
    latency: result.latency,
    missing: expected - result.received,
    duplicates: result.duplicates,
  };
}

/** Gatehouse: the local system, the shipped client, the demo users' tokens in the Authorization header. */
async function gatehouse(layout: Layout, log: (line: string) => void): Promise<Target & { system: LocalSystem }> {
  const system = await startLocalSystem({
    log: () => undefined,
    // Many sockets per demo user, senders faster than a person, a room's member list re-read at every message: the
    // limits a deployment would set for this traffic (each of them has its own tests).
    functionEnv: {
      MAX_CONNECTIONS_PER_USER: String(layout.sockets),
      RATE_LIMIT_PER_SECOND: '1000',
      RATE_LIMIT_BURST: '2000',
      USER_RATE_LIMIT_PER_SECOND: '100000',
      USER_RATE_LIMIT_BURST: '200000',
    },
  });
  const clients: GatehouseClient[] = [];
  const deliveries = new Deliveries();
  let refused = 0;
  let drops = 0;
  try {
    const emails = system.users.filter((u) => u.tenants.length === 1 && u.tenants[0] === 'acme').map((u) => u.email);
    const tokens = await Promise.all(emails.map(async (email) => (await system.signIn(email)).accessToken));
    const { perSecond, failures } = await openAll(
      layout.sockets,
      50,
      async (i) => {
        const client = createNodeClient({ url: system.urls.realtime, token: () => tokens[i % tokens.length], renew: false });
        client.on('message', (m) => deliveries.receive(i, m.data as unknown as Stamp));
        try {
          await client.connect();
          await client.join(`load-${Math.floor(i / layout.roomSize)}`);
        } catch (err) {
          await client.close();
          throw err;
        }
        clients[i] = client; // by index: the first of each room's 50 is its sender
        client.on('state', ({ state }) => state !== 'open' && drops++);
      },
      log,
    );
    log(`gatehouse: ${layout.sockets} sockets open and joined (${num(perSecond)} connects/s)`);
    return {
      name: 'gatehouse',
      system,
      deliveries,
      connectsPerSecond: perSecond,
      connectFailures: failures,
      send: (r, data) => void clients[r * layout.roomSize].send(`load-${r}`, data).catch(() => refused++),
      refused: () => refused,
      held: () => clients.filter((c) => c.state === 'open').length,
      drops: () => drops,
      stop: async () => {
        await Promise.all(clients.map((c) => c.close()));
        await system.stop();
      },
    };
  } catch (err) {
    await Promise.all(clients.filter(Boolean).map((c) => c.close()));
    await system.stop();
    throw err;
  }
}

/** The floor: the same sockets and traffic on a bare ws server that only fans out. */
async function bare(layout: Layout, log: (line: string) => void): Promise<Target> {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  await new Promise((resolve) => server.once('listening', resolve));
  const members = new Map<number, Set<WebSocket>>();
  server.on('connection', (ws, req) => {
    const room = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('room'));
    const set = members.get(room) ?? new Set();
    set.add(ws);
    members.set(room, set);
    ws.on('message', (raw) => {
      for (const peer of set) peer.send(raw.toString());
    });
  });
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const sockets: WebSocket[] = [];
  const deliveries = new Deliveries();
  let drops = 0;
  const { perSecond, failures } = await openAll(
    layout.sockets,
    50,
    async (i) => {
      const ws = new WebSocket(`${url}/?room=${Math.floor(i / layout.roomSize)}`, { perMessageDeflate: false });
      ws.on('message', (raw) => deliveries.receive(i, JSON.parse(raw.toString()) as Stamp));
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject)).catch((err: unknown) => {
        ws.terminate();
        throw err;
      });
      sockets[i] = ws;
      ws.on('close', () => drops++);
    },
    log,
  );
  log(`bare ws: ${layout.sockets} sockets open (${num(perSecond)} connects/s)`);
  return {
    name: 'bare ws',
    deliveries,
    connectsPerSecond: perSecond,
    connectFailures: failures,
    send: (r, data) => sockets[r * layout.roomSize].send(JSON.stringify(data)),
    refused: () => 0,
    held: () => sockets.filter((s) => s.readyState === WebSocket.OPEN).length,
    drops: () => drops,
    stop: async () => {
      for (const ws of sockets) ws.terminate();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Lambda environments each function used (at most 16 at once here) and cold starts, as the emulator counted them. */
function lambdaUse(system: LocalSystem): string {
  const used = [...system.aws.functions.values()]
    .map((fn) => ({ name: fn.spec.name.replace(/^Gatehouse-?/, '').replace(/[0-9A-F]{8}$/, ''), ...fn.stats }))
    .filter((fn) => fn.coldStarts > 0)
    .sort((a, b) => b.coldStarts - a.coldStarts);
  return used.map((fn) => `${fn.name} ${fn.coldStarts}`).join(', ');
}

interface Ramp {
  steps: StepResult[];
  ceiling: number;
  /** The last step whose deliveries kept up with the rate offered (at least 95% of it, nothing missing). */
  knee?: StepResult;
}

/** Steps up the rate until the deliveries stop following it (or the rates run out). */
async function ramp(target: Target, layout: Layout, rates: number[], seconds: { warm: number; measured: number }, log: (line: string) => void): Promise<Ramp> {
  const steps: StepResult[] = [];
  for (const [k, rate] of rates.entries()) {
    await step(target, layout, 1000 + k, rate, seconds.warm); // warm-up: new environments, JIT; not measured
    const result = await step(target, layout, k, rate, seconds.measured);
    steps.push(result);
    log(`${target.name}: offered ${num(result.offered)}/s, achieved ${num(result.achieved)}/s, p50 ${num(result.latency.p50, 1)} ms, p99 ${num(result.latency.p99, 1)} ms, ${result.missing} missing`);
    if (result.achieved < 0.8 * result.offered) break; // saturated: the next step would only queue more
  }
  const kept = steps.filter((s) => s.achieved >= 0.95 * s.offered && s.missing === 0);
  return { steps, ceiling: Math.max(...steps.map((s) => s.achieved)), ...(kept.length > 0 ? { knee: kept[kept.length - 1] } : {}) };
}

export const loadBench: Bench = async ({ full, log }) => {
  ensureSynth('Gatehouse');
  // The ceiling: 10 rooms of 50, each sender at 1, 2, 4... messages a second (500, 1,000, 2,000... deliveries/s).
  const small: Layout = { sockets: 500, roomSize: 50 };
  const rates = [1, 2, 4, 8, 16, 32, 64];
  const rampSeconds = full ? { warm: 5, measured: 20 } : { warm: 3, measured: 8 };
  // The hold: 5,000 sockets in 100 rooms of 50, each sender at one message every 5 s (1,000 deliveries/s).
  const big: Layout = { sockets: 5000, roomSize: 50 };
  const hold = { rate: 0.2, warm: full ? 20 : 10, measured: full ? 120 : 30 };

  const runRamp = async (start: (l: Layout, log: (line: string) => void) => Promise<Target>) => {
    const target = await start(small, log);
    try {
      const result = await ramp(target, small, rates, rampSeconds, log);
      return { ...result, connectFailures: target.connectFailures, lambda: 'system' in target ? lambdaUse((target as Target & { system: LocalSystem }).system) : '' };
    } finally {
      await target.stop();
    }
  };
  const runHold = async (start: (l: Layout, log: (line: string) => void) => Promise<Target>) => {
    const target = await start(big, log);
    try {
      await step(target, big, 2000, hold.rate, hold.warm);
      const result = await step(target, big, 2001, hold.rate, hold.measured);
      log(`${target.name}: held ${target.held()} of ${big.sockets}, ${num(result.achieved)} deliveries/s, p99 ${num(result.latency.p99, 1)} ms`);
      return {
        ...result,
        connectsPerSecond: target.connectsPerSecond,
        held: target.held(),
        drops: target.drops(), // from the first open to the end, warm-up included
        refused: target.refused(),
        connectFailures: target.connectFailures,
        lambda: 'system' in target ? lambdaUse((target as Target & { system: LocalSystem }).system) : '',
      };
    } finally {
      await target.stop();
    }
  };

  const oursRamp = await runRamp(gatehouse);
  const floorRamp = await runRamp(bare);
  const oursHold = await runHold(gatehouse);
  const floorHold = await runHold(bare);

  // Every step either side ran: the floor goes on past Gatehouse's saturation.
  const rampRows = Array.from({ length: Math.max(oursRamp.steps.length, floorRamp.steps.length) }, (_, k) => {
    const [s, f] = [oursRamp.steps[k], floorRamp.steps[k]];
    const latency = (r: StepResult) => `${num(r.latency.p50, 1)} / ${num(r.latency.p99, 1)}`;
    return [
      num((s ?? f).offered),
      s ? num(s.achieved) : '(saturated)',
      s ? latency(s) : '',
      s ? String(s.missing) : '',
      f ? num(f.achieved) : '(saturated)',
      f ? latency(f) : '',
    ];
  });
  const holdRow = (label: string, o: Awaited<ReturnType<typeof runHold>>) => [
    label,
    num(o.connectsPerSecond),
    `${o.held.toLocaleString('en-US')} / ${big.sockets.toLocaleString('en-US')}`,
    num(o.achieved),
    num(o.latency.p50, 1),
    num(o.latency.p99, 1),
    `${o.missing} / ${o.duplicates}`,
    String(o.drops),
  ];
  const knee = oursRamp.knee;
  const floorLast = floorRamp.steps[floorRamp.steps.length - 1];
  /** The floor still kept up at its last step: its ceiling is higher than any rate tried. */
  const floorKeptUp = floorRamp.steps.length === rates.length && floorLast.achieved >= 0.8 * floorLast.offered;
  const top = oursRamp.steps[oursRamp.steps.length - 1];
  return {
    id: 'load',
    title: 'Load held through the local system',
    method: `Sockets opened with the shipped client (\`createNodeClient\`, access tokens of the acme demo users in the Authorization header, through the local CloudFront path \`/ws/realtime\`), 50 handshakes at a time, each joining one room of 50; the first member of each room sends (the \`send\` action, answered by the message Lambda, which fans out through \`@connections\`) and every member records what it receives. Open loop: each send leaves at its planned time, whatever became of the one before. **Ceiling:** ${small.sockets} sockets in ${roomsOf(small)} rooms; the senders' rate doubles from ${rates[0]} a second (${num(roomsOf(small) * rates[0] * small.roomSize)} deliveries/s offered) until the deliveries stop following it (under 80% of the rate offered); each step is ${rampSeconds.warm} s of warm-up (not measured) and ${rampSeconds.measured} s measured, and ends once its messages have arrived (or 10 s have passed), so its backlog is not the next step's latency; achieved is the deliveries over the time from the first send to the last arrival. **Hold:** ${big.sockets.toLocaleString('en-US')} sockets in ${roomsOf(big)} rooms, each sender at one message every ${1 / hold.rate} s (${num(roomsOf(big) * hold.rate * big.roomSize)} deliveries/s), ${hold.warm} s of warm-up, then ${hold.measured} s measured. The alternative is the floor for the same sockets and traffic: a bare \`ws\` server in the same process that relays each message to its room with no authentication, Lambda, DynamoDB or API Gateway.`,
    head: ['deliveries/s offered', 'Gatehouse: achieved', 'p50 / p99 (ms)', 'missing', 'bare ws: achieved', 'p50 / p99 (ms)'],
    rows: rampRows,
    tables: [
      {
        caption: `Hold: ${big.sockets.toLocaleString('en-US')} sockets, ${hold.measured} s measured after ${hold.warm} s of warm-up.`,
        head: ['system', 'connects / s', 'sockets held', 'deliveries / s', 'p50 (ms)', 'p99 (ms)', 'lost / duplicated', 'dropped'],
        rows: [holdRow('Gatehouse (local system)', oursHold), holdRow('bare ws fan-out (floor)', floorHold)],
      },
    ],
    headline: `the local system makes up to ${num(oursRamp.ceiling)} deliveries a second on this machine${knee ? ` (keeping up to ${num(knee.offered)}/s offered at p99 ${num(knee.latency.p99, 1)} ms)` : ''}, the bare-ws floor ${num(floorRamp.ceiling)}/s${floorKeptUp ? ' or more (the steps ran out first)' : ''}; ${oursHold.held.toLocaleString('en-US')} of ${big.sockets.toLocaleString('en-US')} sockets held at ${num(oursHold.achieved)} deliveries/s, p50 ${num(oursHold.latency.p50, 1)} ms / p99 ${num(oursHold.latency.p99, 1)} ms (${ratio(oursHold.latency.p99, floorHold.latency.p99)} the floor's p99), ${oursHold.missing} lost, ${oursHold.duplicates} duplicated, ${oursHold.drops} dropped; ${num(oursHold.connectsPerSecond)} connects/s.`,
    notes: [
      `The ramp stopped at ${num(top.offered)} deliveries/s offered: ${num(top.achieved)} achieved${top.missing > 0 ? `, ${top.missing} not arrived within 10 s of the last send` : ''}. What bounds it here is this machine's two cores, shared by the clients, the API Gateway emulator, every Lambda environment (a worker thread each) and DynamoDB; in AWS each of those is a fleet, and the bounds are API Gateway's 10,000 posts a second and the functions' concurrency (see the big-room benchmark).`,
      `The hold runs at the rate of the ceiling run's second step (20 messages a second into rooms of 50) with ten times the sockets, and its latency is higher (p50 ${num(oursHold.latency.p50, 1)} ms against ${num(oursRamp.steps[1]?.latency.p50 ?? NaN, 1)} ms); the sockets' clients, the API Gateway emulator and the DynamoDB engine share one event loop here, with ten times the connections' state (not broken down further). The hold shows that 5,000 sockets stay up and lose nothing; as everywhere here, its latencies are this machine's, not AWS's.`,
      `Lambda, as the emulator ran it (one invocation per environment, a cold start for each new one, up to 16 a function here): environments started, each with its cold start, in the ceiling run ${oursRamp.lambda}; in the hold ${oursHold.lambda}.${oursHold.refused > 0 ? ` Sends refused in the hold: ${oursHold.refused}.` : ''} Failed connect attempts (each socket tried again, twice at most, as a client would): ${oursRamp.connectFailures} opening ${small.sockets} sockets for the ceiling run, ${oursHold.connectFailures} opening ${big.sockets.toLocaleString('en-US')} for the hold; the floor ${floorRamp.connectFailures} and ${floorHold.connectFailures}.`,
      `Each Gatehouse connect is a JWT verification, a revocation read and a name lookup at once (authorizer), the connection's record, its slot in the user's connections and a revocation read ($connect), and a join (message Lambda); the floor does a TCP and WebSocket handshake only, hence the ratio. Each Gatehouse delivery is a sequence number, a history write, a strongly consistent Query of the room and one \`@connections\` POST per member, every request SigV4-signed and checked against the function's IAM policy; the floor writes to an in-memory socket.`,
    ],
  };
};
