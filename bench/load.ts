/**
 * Load held through the local system, with the client that ships in packages/client: authenticated sockets opened
 * (connects per second), held for the run, rooms fanning out messages at a steady rate, latency from send to
 * receipt, and the two numbers that must be zero: messages lost and sockets dropped. The alternative is the floor:
 * a bare `ws` server that fans out the same traffic to the same sockets with no authentication, no Lambda, no
 * DynamoDB and no API Gateway.
 */
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { createNodeClient, type GatehouseClient } from '@gatehouse/client/node';
import { ensureSynth } from '../local/synth';
import { startLocalSystem } from '../local/system';
import { num, ratio, sleep, stats, type Bench, type Stats } from './report';

interface Plan {
  sockets: number;
  roomSize: number;
  /** Messages per second each room's sender sends. */
  perRoomRate: number;
  seconds: number;
}

interface Outcome {
  connectsPerSecond: number;
  held: number;
  sent: number;
  deliveries: number;
  deliveriesPerSecond: number;
  latency: Stats;
  lost: number;
  duplicated: number;
  drops: number;
}

const rooms = (plan: Plan) => Math.ceil(plan.sockets / plan.roomSize);

/** Opens `count` connections, `batch` handshakes at a time; returns them and the connects per second. */
async function openAll<T>(count: number, batch: number, open: (i: number) => Promise<T>): Promise<{ items: T[]; perSecond: number }> {
  const items: T[] = [];
  const start = performance.now();
  for (let i = 0; i < count; i += batch) {
    items.push(...(await Promise.all(Array.from({ length: Math.min(batch, count - i) }, (_, k) => open(i + k)))));
  }
  return { items, perSecond: (count / (performance.now() - start)) * 1000 };
}

/**
 * Drives one room sender per room at the planned rate for the planned time; `send` sends `{i, t}` into room r.
 * Returns how many messages each room got.
 */
async function drive(plan: Plan, send: (room: number, data: { i: number; t: number }) => Promise<unknown>): Promise<number[]> {
  const sent = Array.from({ length: rooms(plan) }, () => 0);
  const deadline = performance.now() + plan.seconds * 1000;
  const interval = 1000 / plan.perRoomRate;
  await Promise.all(
    sent.map(async (_, r) => {
      // Senders start spread over one interval, so the rooms do not fire in lockstep.
      await sleep((r * interval) / sent.length);
      let next = performance.now();
      while (performance.now() < deadline) {
        await send(r, { i: sent[r]++, t: performance.now() });
        next += interval;
        await sleep(Math.max(0, next - performance.now()));
      }
    }),
  );
  return sent;
}

/** Per socket: which message numbers of its room arrived (for loss and duplicates) and their latencies. */
class Receiver {
  readonly seen = new Set<number>();
  duplicates = 0;
  constructor(
    readonly room: number,
    private readonly latencies: number[],
  ) {}
  receive(data: { i: number; t: number }): void {
    if (this.seen.has(data.i)) this.duplicates++;
    this.seen.add(data.i);
    this.latencies.push(performance.now() - data.t);
  }
}

function outcome(plan: Plan, connectsPerSecond: number, held: number, sentPerRoom: number[], receivers: Receiver[], latencies: number[], drops: number): Outcome {
  const sent = sentPerRoom.reduce((a, b) => a + b, 0);
  const deliveries = receivers.reduce((a, r) => a + r.seen.size, 0);
  const expected = receivers.reduce((a, r) => a + sentPerRoom[r.room], 0);
  return {
    connectsPerSecond,
    held,
    sent,
    deliveries,
    deliveriesPerSecond: deliveries / plan.seconds,
    latency: stats(latencies),
    lost: expected - deliveries,
    duplicated: receivers.reduce((a, r) => a + r.duplicates, 0),
    drops,
  };
}

async function gatehouse(plan: Plan, log: (line: string) => void): Promise<Outcome> {
  const system = await startLocalSystem({
    log: () => undefined,
    // Many sockets per demo user, and senders faster than a person: the limits a deployment would set per user.
    functionEnv: {
      MAX_CONNECTIONS_PER_USER: String(plan.sockets),
      RATE_LIMIT_PER_SECOND: String(plan.perRoomRate * 4),
      // A handful of demo users stand for many people here: their shared budget is that of all the senders.
      USER_RATE_LIMIT_PER_SECOND: String(plan.perRoomRate * plan.sockets),
      USER_RATE_LIMIT_BURST: String(plan.perRoomRate * plan.sockets * 2),
    },
  });
  const clients: GatehouseClient[] = [];
  try {
    const emails = system.users.filter((u) => u.tenants.length === 1 && u.tenants[0] === 'acme').map((u) => u.email);
    const tokens = await Promise.all(emails.map(async (email) => (await system.signIn(email)).accessToken));
    const latencies: number[] = [];
    let drops = 0;
    let measuring = false;
    const { items: receivers, perSecond } = await openAll(plan.sockets, 50, async (i) => {
      const client = createNodeClient({ url: system.urls.realtime, token: () => tokens[i % tokens.length], renew: false });
      clients.push(client);
      const receiver = new Receiver(Math.floor(i / plan.roomSize), latencies);
      client.on('message', (m) => measuring && receiver.receive(m.data as { i: number; t: number }));
      client.on('state', ({ state }) => measuring && state !== 'open' && drops++);
      await client.connect();
      await client.join(`load-${receiver.room}`);
      return receiver;
    });
    log(`gatehouse: ${plan.sockets} sockets open and joined (${num(perSecond)} connects/s)`);
    measuring = true;
    const sentPerRoom = await drive(plan, (r, data) => clients[r * plan.roomSize].send(`load-${r}`, data));
    await sleep(1000); // the last messages in flight
    measuring = false;
    const held = clients.filter((c) => c.state === 'open').length;
    return outcome(plan, perSecond, held, sentPerRoom, receivers, latencies, drops);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await system.stop();
  }
}

/** The floor: the same sockets and traffic on a bare ws server that only fans out. */
async function bare(plan: Plan, log: (line: string) => void): Promise<Outcome> {
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
  try {
    const latencies: number[] = [];
    let drops = 0;
    let measuring = false;
    const { items: receivers, perSecond } = await openAll(plan.sockets, 50, async (i) => {
      const receiver = new Receiver(Math.floor(i / plan.roomSize), latencies);
      const ws = new WebSocket(`${url}/?room=${receiver.room}`, { perMessageDeflate: false });
      sockets.push(ws);
      ws.on('message', (raw) => measuring && receiver.receive(JSON.parse(raw.toString())));
      ws.on('close', () => measuring && drops++);
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      return receiver;
    });
    log(`bare ws: ${plan.sockets} sockets open (${num(perSecond)} connects/s)`);
    measuring = true;
    const sentPerRoom = await drive(plan, async (r, data) => sockets[r * plan.roomSize].send(JSON.stringify(data)));
    await sleep(1000);
    measuring = false;
    const held = sockets.filter((s) => s.readyState === WebSocket.OPEN).length;
    return outcome(plan, perSecond, held, sentPerRoom, receivers, latencies, drops);
  } finally {
    for (const ws of sockets) ws.terminate();
    await new Promise((resolve) => server.close(resolve));
  }
}

export const loadBench: Bench = async ({ full, log }) => {
  const plan: Plan = full ? { sockets: 2000, roomSize: 50, perRoomRate: 2, seconds: 60 } : { sockets: 500, roomSize: 50, perRoomRate: 2, seconds: 20 };
  ensureSynth('Gatehouse');
  const ours = await gatehouse(plan, log);
  const floor = await bare(plan, log);
  if (ours.lost || ours.duplicated || ours.drops) log(`WARNING: ${ours.lost} lost, ${ours.duplicated} duplicated, ${ours.drops} dropped`);
  const row = (label: string, o: Outcome) => [
    label,
    num(o.connectsPerSecond),
    `${o.held} / ${plan.sockets}`,
    num(o.deliveriesPerSecond),
    num(o.latency.p50, 1),
    num(o.latency.p99, 1),
    `${o.lost} / ${o.duplicated}`,
    String(o.drops),
  ];
  return {
    id: 'load',
    title: 'Load held through the local system',
    method: `${plan.sockets.toLocaleString('en-US')} sockets opened with the shipped client (\`createNodeClient\`, access tokens of the acme demo users in the Authorization header, through the local CloudFront path \`/ws/realtime\`), 50 handshakes at a time; each joins one of ${rooms(plan)} rooms of ${plan.roomSize}. Then for ${plan.seconds} s the first member of every room sends ${plan.perRoomRate} messages per second (the \`send\` action, answered by the message Lambda, which fans out through \`@connections\`), and every member records what it receives: latency from send to receipt, loss (each message must reach every member of its room exactly once, after the client's gap repair) and any socket that leaves the \`open\` state. The alternative is the floor for the same sockets and traffic: a bare \`ws\` server in the same process that relays each message to its room with no authentication, Lambda, DynamoDB or API Gateway.`,
    head: ['system', 'connects / s', 'sockets held', 'deliveries / s', 'latency p50 (ms)', 'latency p99 (ms)', 'lost / duplicated', 'unexpected drops'],
    rows: [row('Gatehouse (local system)', ours), row('bare ws fan-out (floor)', floor)],
    headline: `${ours.held.toLocaleString('en-US')} of ${plan.sockets.toLocaleString('en-US')} sockets held, ${num(ours.deliveriesPerSecond)} deliveries/s at p50 ${num(ours.latency.p50, 1)} ms / p99 ${num(ours.latency.p99, 1)} ms (${ratio(ours.latency.p50, floor.latency.p50)} / ${ratio(ours.latency.p99, floor.latency.p99)} the bare-ws floor), ${ours.lost} lost, ${ours.duplicated} duplicated, ${ours.drops} dropped; ${num(ours.connectsPerSecond)} connects/s (${ratio(ours.connectsPerSecond, floor.connectsPerSecond)} the floor's).`,
    notes: [
      `Each Gatehouse connect is a JWT verification and a revocation lookup (authorizer), the connection's record and its slot in the user's connections (connect: a write and a conditional update), and a join (message Lambda: a conditional update, a write, a read); the floor does a TCP and WebSocket handshake only, hence the ratio. Each Gatehouse delivery is a sequence number, a history write, a strongly consistent Query of the room and one \`@connections\` POST per member; the floor writes to an in-memory socket.`,
      `The local system is as strict as AWS: every DynamoDB, \`@connections\` and EventBridge call is SigV4-signed and checked against the role's IAM policies, each Lambda environment runs one invocation at a time (a burst starts new environments, each loading its bundle: a cold start), and writes reach the index a moment later. That work shares this machine's cores with everything else, so it shows in these latencies and connects per second as it would not on AWS, where each piece is a fleet of its own.`,
      'Everything runs on this machine: the clients, the API Gateway emulator, the Lambda workers and dynalite share its cores, so the absolute figures are a floor for what the deployed system does, where each of those is a separate fleet.',
    ],
  };
};
