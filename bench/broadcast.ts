/**
 * Broadcast cost: DynamoDB items read and time to deliver one message to a room of real sockets in a store of
 * 100,000 connections, Gatehouse's fan-out (a Query of the room's own partition) against a Scan-based broadcaster
 * (the approach of the AWS `simple-websockets-chat-app` sample), through the local system.
 *
 * Both run the same delivery core the fan-out Lambda runs (deliverToRoom: sequence number, history, bounded
 * concurrent posts to the local API Gateway); the Scan broadcaster only swaps how the room's members are read.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, DynamoDBDocumentClient, GetCommand, PutCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { createNodeClient, type GatehouseClient } from '@gatehouse/client/node';
import { createLogger } from '../common/log';
import { TABLE, keys } from '../common/table-schema';
import { realtimeConfig, type RealtimeConfig } from '../lambda/core/config';
import { createConnectionsApi } from '../lambda/core/connections-api';
import { deliverToRoom, type DeliverDeps } from '../lambda/core/deliver';
import { ConnectionStore } from '../lambda/core/store';
import { ensureSynth } from '../local/synth';
import { startLocalSystem, type LocalSystem } from '../local/system';
import { median, num, ratio, sleep, type Bench } from './report';

const TENANT = 'acme';
/** Tenants of the seeded population: acme and 99 others, about 1,000 connections each at 100,000. */
const TENANTS = 100;
/** Rooms every tenant has besides the benchmark rooms. */
const PROJECT_ROOMS = Array.from({ length: 20 }, (_, i) => `project-${i}`);
const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };
const BATCH = 25;
const WRITERS = 4;
const DELIVERY_TIMEOUT_MS = 60_000;

const benchRoom = (size: number) => `general-${size}`;

/** The read side of a broadcast, as DynamoDB answered it. */
interface Reads {
  requests: number;
  /** ScannedCount summed: every item DynamoDB read, before any filter. */
  items: number;
  /** ConsumedCapacity summed (only while `capacity` is on). */
  rcu: number;
  writes: number;
}

/**
 * A document client whose every response is counted (a middleware on the client both benchmarked stores share).
 * With `capacity` on, reads also ask for ConsumedCapacity: dynalite then sizes every item it reads, which slows
 * it down, so that is done in an untimed run.
 */
function meteredClient(system: LocalSystem) {
  const reads: Reads = { requests: 0, items: 0, rcu: 0, writes: 0 };
  const meter = { capacity: false };
  const client = new DynamoDBClient({ endpoint: system.urls.dynamodb, region: system.region, credentials: LOCAL_CREDENTIALS });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const isRead = /^(Query|Scan|GetItem|BatchGetItem)Command$/.test(context.commandName ?? '');
      const input = meter.capacity && isRead ? { ...(args.input as object), ReturnConsumedCapacity: 'TOTAL' } : args.input;
      const result = await next({ ...args, input });
      const output = result.output as { Count?: number; ScannedCount?: number; Item?: unknown; ConsumedCapacity?: { CapacityUnits?: number } };
      if (isRead) {
        reads.requests++;
        reads.items += output.ScannedCount ?? output.Count ?? (output.Item ? 1 : 0);
        reads.rcu += output.ConsumedCapacity?.CapacityUnits ?? 0;
      } else {
        reads.writes++;
      }
      return result;
    },
    { step: 'initialize', name: 'broadcastBenchMeter' },
  );
  const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  return {
    doc,
    meter,
    take(): Reads {
      const taken = { ...reads };
      Object.assign(reads, { requests: 0, items: 0, rcu: 0, writes: 0 });
      return taken;
    },
  };
}

/**
 * The Scan-based broadcaster: the store with one method replaced, so deliverToRoom (counter, history, posts) is
 * identical and only the read differs. Like the AWS sample it Scans the whole table for connection ids; unlike the
 * sample it follows LastEvaluatedKey (a single Scan stops at 1 MB) and filters to the room and to live items,
 * which Gatehouse's Query also does.
 */
class ScanningStore extends ConnectionStore {
  constructor(
    private readonly scanDb: DynamoDBDocumentClient,
    tableName: string,
  ) {
    super(scanDb, tableName);
  }

  override async *roomMembers(tenantId: string, room: string): AsyncGenerator<string[]> {
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.scanDb.send(
        new ScanCommand({
          TableName: this.tableName,
          FilterExpression: '#pk = :room AND #ttl > :now',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey, '#ttl': TABLE.ttlAttribute, '#id': 'connectionId' },
          ExpressionAttributeValues: { ':room': keys.roomPartition(tenantId, room), ':now': Math.floor(Date.now() / 1000) },
          ProjectionExpression: '#id',
          ExclusiveStartKey: startKey,
        }),
      );
      const ids = (page.Items ?? []).map((item) => item.connectionId as string);
      if (ids.length > 0) yield ids;
      startKey = page.LastEvaluatedKey;
    } while (startKey);
  }
}

/** A small deterministic PRNG (mulberry32): the same population on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Connections `from`..`to`-1 of the seeded population with their memberships. The items are written by the
 * store's own putConnection and join into a recorder instead of DynamoDB, so they have exactly the shapes the
 * Lambdas write (room members, rooms on the connection, the expiry bucket, TTL). Each tenant's connections sit in 0, 1, 1 or 2 of its rooms (one on
 * average); other tenants also have rooms named like the benchmark rooms, so the read must keep to the tenant.
 */
async function* population(
  tableName: string,
  config: Pick<RealtimeConfig, 'maxConnectionSeconds'>,
  from: number,
  to: number,
  benchRooms: string[],
): AsyncGenerator<Record<string, unknown>> {
  const recorded: Record<string, unknown>[] = [];
  // Puts are recorded as they are; a join's update of the connection's rooms is applied to the recorded item.
  const recorder = new ConnectionStore(
    {
      send: async (command: PutCommand | UpdateCommand | GetCommand) => {
        // A join re-reads its connection (for a concurrent renewal, which a seeded population has none of).
        if (command instanceof GetCommand) return { Item: undefined };
        if (command instanceof PutCommand) return void recorded.push(command.input.Item!);
        const { Key, ExpressionAttributeValues } = command.input;
        const item = recorded.find((i) => i.pk === Key?.pk && i.sk === Key?.sk);
        if (item) item.rooms = new Set([...((item.rooms as Set<string>) ?? []), ...(ExpressionAttributeValues?.[':room'] as Set<string>)]);
        return {};
      },
    } as unknown as DynamoDBDocumentClient,
    tableName,
  );
  const random = prng(from + 1);
  const nowMs = Date.now();
  for (let k = from; k < to; k++) {
    const t = k % TENANTS;
    const tenantId = t === 0 ? TENANT : `tenant-${t}`;
    const connectedAt = nowMs - Math.floor(random() * 3_600_000);
    const connection = {
      // API Gateway's connection id format (as the local gateway makes them).
      connectionId: randomBytes(10).toString('base64'),
      userId: randomUUID(),
      username: `user${k}@${tenantId}.example`,
      tenantId,
      groups: [`tenant:${tenantId}`],
      // Past the end of the run, so the sweeper (every minute) leaves the population alone.
      tokenExpiresAt: Math.floor(nowMs / 1000) + 3600 + Math.floor(random() * 3600),
      signIn: randomUUID(),
      issuedAt: Math.floor(connectedAt / 1000),
      source: 'header' as const,
      connectedAt,
      expiresAt: Math.floor(connectedAt / 1000) + config.maxConnectionSeconds,
    };
    await recorder.putConnection(connection);
    const rooms = tenantId === TENANT ? PROJECT_ROOMS : [...benchRooms, ...PROJECT_ROOMS];
    const count = [0, 1, 1, 2][Math.floor(random() * 4)];
    for (const room of new Set(Array.from({ length: count }, () => rooms[Math.floor(random() * rooms.length)]))) {
      await recorder.join(connection, room, PROJECT_ROOMS.length + benchRooms.length);
    }
    yield* recorded.splice(0);
  }
}

/** BatchWrites of 25, a few in flight, retrying unprocessed items. Returns the number of items written. */
async function seed(db: DynamoDBDocumentClient, tableName: string, items: AsyncGenerator<Record<string, unknown>>, progress: (n: number) => void): Promise<number> {
  let written = 0;
  const writer = async () => {
    for (;;) {
      const batch: Record<string, unknown>[] = [];
      while (batch.length < BATCH) {
        const next = await items.next();
        if (next.done) break;
        batch.push(next.value);
      }
      if (batch.length === 0) return;
      let requests = batch.map((Item) => ({ PutRequest: { Item } }));
      for (let attempt = 0; requests.length > 0; attempt++) {
        if (attempt > 8) throw new Error(`BatchWrite left ${requests.length} items unprocessed`);
        if (attempt > 0) await sleep(25 * 2 ** attempt);
        const result = await db.send(new BatchWriteCommand({ RequestItems: { [tableName]: requests } }));
        requests = (result.UnprocessedItems?.[tableName] ?? []) as typeof requests;
      }
      const before = written;
      written += batch.length;
      if (Math.floor(written / 50_000) > Math.floor(before / 50_000)) progress(written);
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, writer));
  return written;
}

/** A real socket of the room, with every message event it received (raw, before the client's de-duplication). */
interface Member {
  client: GatehouseClient;
  rooms: Set<string>;
  /** messageId -> raw `message` events received. */
  raw: Map<string, number>;
  /** messageId -> the client's own `message` events (in order, exactly once). */
  delivered: Map<string, number>;
}

interface Run {
  ms: number;
  reads: Reads;
}

const speed = (gatehouse: Run, scan: Run) =>
  gatehouse.ms <= scan.ms ? `${ratio(scan.ms, gatehouse.ms)} faster` : `${ratio(gatehouse.ms, scan.ms)} slower`;

export const broadcastBench: Bench = async ({ full, log }) => {
  const started = performance.now();
  // Quick: the case. Full: rooms of 10 and 1,000 as well (Query cost follows the room), and a store of
  // 250,000 (Scan cost follows the table).
  const scenarios = full
    ? [
        { room: 10, store: 100_000 },
        { room: 100, store: 100_000 },
        { room: 1000, store: 100_000 },
        { room: 100, store: 250_000 },
      ]
    : [{ room: 100, store: 100_000 }];
  const repeats = full ? 5 : 3;
  const roomSizes = [...new Set(scenarios.map((s) => s.room))].sort((a, b) => a - b);
  const sockets = roomSizes[roomSizes.length - 1];
  let peakRss = 0;
  const sampleRss = () => (peakRss = Math.max(peakRss, process.memoryUsage().rss));

  ensureSynth('Gatehouse');
  const users = ['alice@acme.test', 'bob@acme.test', 'dana@acme.test', 'erin@both.test'];
  const perUserCap = Math.ceil(sockets / users.length) + 10;
  const system = await startLocalSystem({ log: () => undefined, functionEnv: { MAX_CONNECTIONS_PER_USER: String(perUserCap) } });
  const members: Member[] = [];
  try {
    const fanout = [...system.functions.values()].find((f) => f.name.startsWith('PublishingFanout'));
    if (!fanout) throw new Error('No PublishingFanout function in the template');
    // The fan-out Lambda's own configuration (table, concurrency, history retention) as the template sets it.
    const config = realtimeConfig(fanout.env);
    const metered = meteredClient(system);
    const api = createConnectionsApi({ endpoint: system.urls.connections, region: system.region, credentials: () => LOCAL_CREDENTIALS });
    const stores = {
      gatehouse: new ConnectionStore(metered.doc, config.tableName),
      scan: new ScanningStore(metered.doc, config.tableName),
    };

    // Who is waiting for which message: resolved when its last recipient has it.
    const waiting = new Map<string, { left: number; done: (at: number) => void }>();
    function onReceived(messageId: string) {
      const wait = waiting.get(messageId);
      if (wait && --wait.left === 0) {
        waiting.delete(messageId);
        wait.done(performance.now());
      }
    }

    // The room: real sockets of the demo users of acme, opened with the shipped client; socket i is in every
    // benchmark room larger than i.
    const t0 = performance.now();
    const tokens = await Promise.all(users.map(async (email) => (await system.signIn(email)).accessToken));
    let opened = 0;
    const open = async () => {
      while (opened < sockets) {
        const i = opened++;
        const client = createNodeClient({ url: `${system.urls.websocket}?tenant=${TENANT}`, token: () => tokens[i % users.length], reconnect: false, renew: false });
        const member: Member = { client, rooms: new Set(roomSizes.filter((size) => i < size).map(benchRoom)), raw: new Map(), delivered: new Map() };
        client.on('event', (event) => {
          if (event.type === 'message') {
            member.raw.set(event.messageId, (member.raw.get(event.messageId) ?? 0) + 1);
            onReceived(event.messageId);
          }
        });
        client.on('message', (message) => member.delivered.set(message.messageId, (member.delivered.get(message.messageId) ?? 0) + 1));
        members.push(member);
        await client.connect();
        for (const room of member.rooms) await client.join(room);
      }
    };
    await Promise.all(Array.from({ length: 8 }, open));
    log(`${sockets} sockets joined in ${num((performance.now() - t0) / 1000, 1)} s`);

    const sent: Array<{ messageId: string; room: string }> = [];
    const deps = (store: ConnectionStore, messageId: string): DeliverDeps => ({
      store,
      api,
      config,
      log: createLogger({ component: 'broadcast-bench' }, { level: 'warn', write: log }),
      newId: () => messageId,
    });

    /** One broadcast to the room; the time runs from the call until the last socket has the message. */
    const deliver = async (kind: keyof typeof stores, size: number): Promise<Run> => {
      const room = benchRoom(size);
      const messageId = randomUUID();
      const recipients = members.filter((m) => m.rooms.has(room)).length;
      const arrived = new Promise<number>((resolve) => {
        const timer = setTimeout(() => resolve(NaN), DELIVERY_TIMEOUT_MS);
        waiting.set(messageId, {
          left: recipients,
          done: (at) => {
            clearTimeout(timer);
            resolve(at);
          },
        });
      });
      sent.push({ messageId, room });
      metered.take();
      const start = performance.now();
      const delivery = deliverToRoom(TENANT, room, { sender: { service: 'bench' }, kind: 'bench', data: { kind } }, deps(stores[kind], messageId));
      const [end, { result }] = await Promise.all([arrived, delivery]);
      const reads = metered.take();
      if (Number.isNaN(end) || result.delivered !== recipients || result.gone + result.failed > 0) {
        throw new Error(
          `${kind}: ${recipients - (waiting.get(messageId)?.left ?? 0)} of ${recipients} sockets received the message ` +
            `(posted ${result.delivered}, gone ${result.gone}, failed ${result.failed})`,
        );
      }
      sampleRss();
      return { ms: end - start, reads };
    };

    const rows: string[][] = [];
    const results: Array<{ room: number; store: number; gatehouse: Run; scan: Run }> = [];
    let seeded = 0;
    const benchRooms = roomSizes.map(benchRoom);
    for (const { room, store } of scenarios) {
      if (seeded + sockets < store) {
        const t1 = performance.now();
        const items = await seed(system.dynamo.doc, config.tableName, population(config.tableName, config, seeded, store - sockets, benchRooms), (n) => {
          sampleRss();
          log(`seeding: ${num(n, 0)} items, ${num((performance.now() - t1) / 1000, 1)} s, RSS ${num(process.memoryUsage().rss / 2 ** 20)} MiB`);
        });
        seeded = store - sockets;
        log(`seeded up to ${num(store, 0)} connections: ${num(items, 0)} items written in ${num((performance.now() - t1) / 1000, 1)} s`);
      }

      // An untimed run of each for the capacity units (and to warm both paths), then interleaved timed runs.
      metered.meter.capacity = true;
      const capacity = { gatehouse: (await deliver('gatehouse', room)).reads, scan: (await deliver('scan', room)).reads };
      metered.meter.capacity = false;
      const runs: Record<keyof typeof stores, Run[]> = { gatehouse: [], scan: [] };
      for (let i = 0; i < repeats; i++) {
        const order = i % 2 === 0 ? (['gatehouse', 'scan'] as const) : (['scan', 'gatehouse'] as const);
        for (const kind of order) runs[kind].push(await deliver(kind, room));
      }
      const summary = (kind: keyof typeof stores): Run => ({
        ms: median(runs[kind].map((r) => r.ms)),
        reads: {
          requests: median(runs[kind].map((r) => r.reads.requests)),
          items: median(runs[kind].map((r) => r.reads.items)),
          rcu: capacity[kind].rcu,
          writes: median(runs[kind].map((r) => r.reads.writes)),
        },
      });
      const result = { room, store, gatehouse: summary('gatehouse'), scan: summary('scan') };
      results.push(result);
      log(
        `room of ${room} in ${num(store, 0)}: Gatehouse ${num(result.gatehouse.reads.items, 0)} items, ${num(result.gatehouse.ms)} ms; ` +
          `Scan ${num(result.scan.reads.items, 0)} items, ${num(result.scan.ms)} ms`,
      );

      const label = `${num(room, 0)} in ${num(store, 0)}`;
      const { gatehouse: g, scan: s } = result;
      const cells = (r: Run) => [num(r.reads.items, 0), num(r.reads.requests, 0), `${num(r.reads.rcu, r.reads.rcu >= 100 ? 0 : 1)} RCU`, `${num(r.ms)} ms`];
      rows.push([label, "Gatehouse: Query of the room's partition", ...cells(g), `${ratio(s.reads.items, g.reads.items)} fewer items, ${speed(g, s)}`]);
      rows.push([label, 'Scan of the table, filtered to the room', ...cells(s), 'baseline']);
    }

    // Every socket got every message of its rooms exactly once (as sent by the server, and as the client emits).
    await sleep(200);
    for (const [i, member] of members.entries()) {
      if (member.client.state !== 'open') throw new Error(`Socket ${i} is ${member.client.state}, not open`);
      for (const { messageId, room } of sent) {
        const expected = member.rooms.has(room) ? 1 : 0;
        const raw = member.raw.get(messageId) ?? 0;
        const delivered = member.delivered.get(messageId) ?? 0;
        if (raw !== expected || delivered !== expected) {
          throw new Error(`Socket ${i} received message ${messageId} of ${room} ${raw} times (client emitted ${delivered}); expected ${expected}`);
        }
      }
    }
    log(`${sent.length} broadcasts, each received exactly once by every member; peak RSS ${num(peakRss / 2 ** 20)} MiB`);

    const main = results.find((r) => r.room === 100 && r.store === 100_000) ?? results[0];
    const writes = main.gatehouse.reads.writes;
    return {
      id: 'broadcast',
      title: 'Broadcast cost',
      method:
        `One message to a room of ${num(main.room, 0)} real sockets of tenant acme (opened with the shipped Node client through the local ` +
        `API Gateway) in a table of ${num(main.store, 0)} connections: the other ${num(main.store - sockets, 0)} are seeded items in the ` +
        `store's own shapes, spread over ${TENANTS} tenants, each in zero to two rooms of its tenant (one on average). Both ` +
        `broadcasters run the fan-out Lambda's core (\`deliverToRoom\`: sequence number, history item, posts to @connections with its ` +
        `concurrency of ${config.broadcastConcurrency}) in process; only the read of the room's members differs. Gatehouse Queries the ` +
        `room's own partition of the table (strongly consistent, so a member who just joined is never missed); the alternative Scans ` +
        `the table with a filter on the room, the approach of AWS's \`simple-websockets-chat-app\` sample (the usual API Gateway chat ` +
        `starting point). Items read are the responses' \`ScannedCount\` summed, counted by a middleware on the DynamoDB client; read ` +
        `capacity is the \`ConsumedCapacity\` dynalite reports for the same requests (1 RCU per 4 KB for the Query's strongly ` +
        `consistent read, 0.5 for the Scan's eventually consistent one). ` +
        `Time runs from the call until the last socket has received the message; medians of ${repeats} interleaved runs.`,
      head: ['Room in store', 'Broadcaster', 'Items read', 'Read requests', 'Read capacity', 'Time to deliver', 'vs Scan'],
      rows,
      headline:
        `a room of ${num(main.room, 0)} in ${num(main.store, 0)} connections: ${num(main.gatehouse.reads.items, 0)} items read vs ` +
        `${num(main.scan.reads.items, 0)} by a Scan (${ratio(main.scan.reads.items, main.gatehouse.reads.items)} fewer), delivered in ` +
        `${num(main.gatehouse.ms)} ms vs ${num(main.scan.ms)} ms (${speed(main.gatehouse, main.scan)})`,
      notes: [
        `The Scan reads every item in the table, not only connections: memberships, room counters and history too (here ` +
          `${num(main.scan.reads.items, 0)} items for ${num(main.store, 0)} connections). Its cost grows with the table whatever the room's size; ` +
          `the Query's grows with the room only.`,
        `Both broadcasters also make the same ${num(writes, 0)} writes per message (the room's sequence counter and its history item), ` +
          `which are not in the read columns but are in the time.`,
        `The sample's single Scan stops at 1 MB (about ${num(Math.round(main.scan.reads.items / main.scan.reads.requests / 100) * 100, 0)} ` +
          `items here) and would silently miss the rest; the baseline follows ` +
          `\`LastEvaluatedKey\`. A parallel Scan (\`TotalSegments\`) would shorten its time, not its items read or capacity.`,
        `To hold ${num(sockets, 0)} sockets from four demo users, the functions ran with \`MAX_CONNECTIONS_PER_USER=${perUserCap}\` ` +
          `(default ${realtimeConfig({ ...fanout.env, MAX_CONNECTIONS_PER_USER: undefined }).maxConnectionsPerUser}); nothing else was changed.`,
        ...results
          .filter((r) => r.room >= 1000)
          .map(
            (r) =>
              `A room of ${num(r.room, 0)} spends most of its time on its posts (${config.broadcastConcurrency} at a time), which both ` +
              `broadcasters make: the times come closer (${speed(r.gatehouse, r.scan)}) while the items read stay ` +
              `${ratio(r.scan.reads.items, r.gatehouse.reads.items)} apart.`,
          ),
        `Times are local: dynalite, the gateway and the sockets share this process and its two cores (and dynalite keeps the ` +
          `table in its memory: peak RSS ${num(peakRss / 2 ** 30, 1)} GiB). On AWS a Scan page is a network round trip too, so the ` +
          `Scan's sequential pages weigh at least as much there; items read and capacity carry over as they are.`,
      ],
    };
  } finally {
    await Promise.all(members.map((m) => m.client.close().catch(() => undefined)));
    await system.stop();
    log(`broadcast section done in ${num((performance.now() - started) / 1000, 1)} s`);
  }
};
