/**
 * Big rooms: the sender's reply, and the time until the last member has the message, for rooms of 1,000, 10,000
 * and 100,000, with the fan-out workers (lambda/core/fanout.ts) beside today's single-invocation fan-out (the same
 * delivery run in the message function: lambda/core/deliver.ts without workers).
 *
 * What is run, and what is modelled. Everything Gatehouse does is run for real, in this process: the `send`
 * handler against a DynamoDB engine (in a process of its own, so its work is not counted as the function's) holding the room (members seeded into their shards as joins put them), the
 * workers' code task by task (claims, shard reads, progress records, posts through the lean SigV4 client to an
 * @connections stand-in in a process of its own, which counts every copy each member gets), and the inline fan-out.
 * What AWS adds is modelled, from stated figures: each @connections post takes POST_MS to answer; a 512 MB function
 * has LAMBDA_SHARE of a vCPU, so its CPU time (measured here, per task) runs 1/LAMBDA_SHARE times slower; a worker
 * starts INVOKE_MS after it is invoked; API Gateway lets the account make 10,000 posts a second (a bucket of 5,000);
 * a Lambda function stops at its timeout. A worker posts BROADCAST concurrently, so it goes at the slower of
 * BROADCAST/POST_MS and LAMBDA_SHARE/(CPU per post); the workers share the account's posts (simulated in 10 ms steps).
 */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { authConfig, createAuth } from '../common/auth';
import { createLogger } from '../common/log';
import { keys, TABLE } from '../common/table-schema';
import { realtimeConfig } from '../lambda/core/config';
import { createConnectionsApi } from '../lambda/core/connections-api';
import { connect } from '../lambda/core/connection';
import { runFanoutTask, type FanoutDeps, type FanoutTask } from '../lambda/core/fanout';
import { toAuthorizerContext } from '../lambda/core/identity';
import { ROOM_SHARDS, SPLIT_AT, shardOf } from '../lambda/core/membership-store';
import { handleMessage, type MessageDeps } from '../lambda/core/messages';
import { ConnectionStore } from '../lambda/core/store';
import { ConnectionTable } from '../lib/connection-table';
import { createTables, startDynamo, tableDefinitions, type LocalDynamo } from '../local/emulator/dynamodb';
import { ACCOUNT_RATE } from '../local/emulator/apigateway-websocket';
import { OPERATOR_CREDENTIALS } from '../local/emulator/iam';
import { REALTIME_DEFAULTS } from '../protocol';
import { LAMBDA_SHARE, startDynamoProcess, startEndpoint } from './engines';
import { median, num, ratio, type Bench } from './report';

/** A post's round trip from Lambda to API Gateway's @connections in the same Region (a stated figure). */
const POST_MS = 15;
/** From an asynchronous invocation to the worker running (a warm environment; a stated figure). */
const INVOKE_MS = 50;
/** The message function's time-out, which today's single-invocation fan-out runs into. */
const MESSAGE_TIMEOUT_MS = 10_000;
const BROADCAST = REALTIME_DEFAULTS.broadcastConcurrency;
const TENANT = 'acme';
const CREDENTIALS = { accessKeyId: 'AKIDBENCH', secretAccessKey: 'bench-secret' };
const EXPIRES = 4_000_000_000;

/** Members as joins would have put them: the first SPLIT_AT in the room's own partition, the rest spread over the shards. */
async function seedRoom(dynamo: { doc: DynamoDBDocumentClient }, store: ConnectionStore, table: string, room: string, n: number, log: (l: string) => void): Promise<void> {
  const items = Array.from({ length: n }, (_, i) => {
    const connectionId = `${room}-${String(i).padStart(6, '0')}`;
    const shard = i < SPLIT_AT ? 0 : shardOf(connectionId, ROOM_SHARDS);
    return { ...keys.member(TENANT, room, connectionId, shard), connectionId, userId: `u-${i % 5000}`, credExp: EXPIRES, [TABLE.ttlAttribute]: EXPIRES };
  });
  if (n > SPLIT_AT) await store.members.split(TENANT, room);
  const started = Date.now();
  for (let i = 0; i < items.length; i += 25 * 8) {
    await Promise.all(
      Array.from({ length: 8 }, (_, j) => items.slice(i + j * 25, i + (j + 1) * 25)).filter((b) => b.length).map((batch) =>
        dynamo.doc.send(new BatchWriteCommand({ RequestItems: { [table]: batch.map((Item) => ({ PutRequest: { Item } })) } })),
      ),
    );
  }
  log(`seeded ${num(n, 0)} members of ${room} in ${num((Date.now() - started) / 1000, 1)} s`);
}

const cpuNow = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

interface TaskRun {
  posts: number;
  cpuUs: number;
  /** Handed on by another task: in the model it starts one invocation's start after that one. */
  handedOn?: true;
}

/**
 * The account's posts over time: each worker demands `rate` posts a second from its start until it has made its
 * posts; API Gateway's bucket (10,000 a second, 5,000 deep) grants what it can, shared in proportion. Returns the
 * time the last post is made.
 */
function simulate(workers: Array<{ startMs: number; posts: number; rate: number }>): number {
  const step = 10;
  const left = workers.map((w) => w.posts);
  let tokens: number = ACCOUNT_RATE.burst;
  for (let t = 0; t < 600_000; t += step) {
    tokens = Math.min(ACCOUNT_RATE.burst, tokens + (ACCOUNT_RATE.perSecond * step) / 1000);
    const demand = workers.map((w, i) => (t >= w.startMs && left[i] > 0 ? Math.min(left[i], (w.rate * step) / 1000) : 0));
    const total = demand.reduce((a, b) => a + b, 0);
    if (total === 0 && left.every((l) => l <= 0)) return t;
    const granted = Math.min(1, tokens / Math.max(total, 1e-9));
    workers.forEach((_, i) => (left[i] -= demand[i] * granted));
    tokens -= total * granted;
    if (left.every((l) => l <= 1e-6)) return t + step;
  }
  return Infinity;
}

export const bigRoomBench: Bench = async ({ log }) => {
  const sizes = [1_000, 10_000, 100_000];
  const endpoint = await startEndpoint();
  const engine = await startDynamoProcess();
  const client = new DynamoDBClient({ endpoint: engine.endpoint, region: 'eu-west-1', credentials: OPERATOR_CREDENTIALS });
  const dynamo = { client, doc: DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } }) };
  const stack = new Stack(new App(), 'BigRoomBench');
  new ConnectionTable(stack, 'Connections');
  const definitions = (name: string) => tableDefinitions(Template.fromStack(stack).toJSON() as Parameters<typeof tableDefinitions>[0], () => name);
  const [definition] = definitions('bigroom-bench');
  await createTables(dynamo.client, [definition]);
  const table = definition.TableName!;
  const store = new ConnectionStore(dynamo.doc, table);
  const silent = createLogger({ component: 'bench' }, { level: 'error', write: () => undefined });
  const config = realtimeConfig({
    TABLE_NAME: table,
    CONNECTIONS_URL: endpoint.url,
    RATE_LIMIT_PER_SECOND: '1000',
    RATE_LIMIT_BURST: '1000',
    USER_RATE_LIMIT_PER_SECOND: '1000',
    USER_RATE_LIMIT_BURST: '1000',
  });
  const auth = createAuth(authConfig({ USER_POOL_ID: 'eu-west-1_BenchPool', USER_POOL_CLIENT_ID: 'bench', TABLE_NAME: table }, { allowQueryToken: false }), { db: dynamo.doc });
  const api = createConnectionsApi({ endpoint: endpoint.url, region: 'eu-west-1', credentials: () => CREDENTIALS, maxSockets: BROADCAST });
  const rows: string[][] = [];
  let faulty: LocalDynamo | undefined;
  const notes: string[] = [];
  const outcomes: Array<{ n: number; replyMs: number; lastMs: number; duplicates: number }> = [];
  try {
    // A room of 1,000 first, unrecorded: the code's first runs (JIT, connections, caches) would weigh on the smallest room.
    for (const [n, warmUp] of [[1_000, true] as const, ...sizes.map((size) => [size, false] as const)]) {
      const room = warmUp ? 'warm-up' : `big-${n}`;
      await seedRoom(dynamo, store, table, room, n, log);

      // The sender: a connection of its own, joined to the room, sending through the message handler.
      const tasks: FanoutTask[] = [];
      const deps: MessageDeps = { store, api, config, log: silent, auth, fanout: async (task) => void tasks.push(task) };
      const connectionId = `sender-${room}`;
      const identity = { userId: `sender-${n}`, username: 'sender', tenantId: TENANT, groups: ['tenant:acme'], tokenExpiresAt: EXPIRES, signIn: 'bench', issuedAt: 1_700_000_000 };
      await connect({ connectionId, authorizer: toAuthorizerContext(identity, 'header') }, deps);
      await handleMessage({ connectionId, body: JSON.stringify({ action: 'join', room }) }, deps);
      const replies: number[] = [];
      const replyCpu: number[] = [];
      for (let i = 0; i < 5; i++) {
        const c0 = cpuNow();
        const t0 = performance.now();
        const reply = await handleMessage({ connectionId, body: JSON.stringify({ action: 'send', room, data: { text: `hello ${i}` } }) }, deps);
        replies.push(performance.now() - t0);
        replyCpu.push(cpuNow() - c0);
        if (reply.type !== 'sent' || !reply.pending) throw new Error(`expected a pending sent, got ${JSON.stringify(reply)}`);
      }
      const replyMs = median(replies);

      // The workers, task by task (the room's, then each shard's), for the last message sent.
      const last = tasks[tasks.length - 1];
      await endpoint.reset();
      const runs = new Map<FanoutTask, TaskRun>();
      const queue: FanoutTask[] = [last];
      const fanoutDeps: FanoutDeps = {
        store,
        fanouts: store.fanouts,
        api,
        log: silent,
        config,
        dispatch: async (task) => {
          queue.push(task);
          runs.set(task, { posts: 0, cpuUs: 0, handedOn: true });
        },
      };
      runs.set(last, { posts: 0, cpuUs: 0 });
      while (queue.length > 0) {
        const task = queue.shift()!;
        const c0 = cpuNow();
        const outcome = await runFanoutTask(task, fanoutDeps, () => 60_000);
        const run = runs.get(task)!;
        run.cpuUs = cpuNow() - c0;
        run.posts = outcome.delivered ? outcome.result.delivered + outcome.result.gone + outcome.result.failed : 0;
      }
      const stats = await endpoint.stats();
      const list = [...runs.values()];
      const cpuPerPost = list.reduce((a, r) => a + r.cpuUs, 0) / Math.max(1, list.reduce((a, r) => a + r.posts, 0));
      // In the model: the room's worker starts INVOKE_MS after the reply; the shard workers INVOKE_MS after it.
      const workerModel = list.map((r) => ({
        startMs: INVOKE_MS + (r.handedOn ? INVOKE_MS : 0),
        posts: r.posts,
        rate: Math.min(BROADCAST / (POST_MS / 1000), LAMBDA_SHARE / ((r.cpuUs / Math.max(1, r.posts)) / 1e6)),
      }));
      const lastMs = simulate(workerModel);

      // Today: the message function posts to every member itself before it answers.
      await endpoint.reset();
      const inline: MessageDeps = { ...deps, fanout: undefined };
      const c0 = cpuNow();
      const t0 = performance.now();
      await handleMessage({ connectionId, body: JSON.stringify({ action: 'send', room, data: { text: 'inline' } }) }, inline);
      const inlineWall = performance.now() - t0;
      const inlineCpu = cpuNow() - c0;
      const todayRate = Math.min(BROADCAST / (POST_MS / 1000), LAMBDA_SHARE / (inlineCpu / 1e6 / (n + 1)));
      const todayFull = simulate([{ startMs: 0, posts: n + 1, rate: todayRate }]);
      const todayMs = Math.min(todayFull, MESSAGE_TIMEOUT_MS);
      const todayDelivered = todayFull <= MESSAGE_TIMEOUT_MS ? n + 1 : Math.floor((n + 1) * (MESSAGE_TIMEOUT_MS / todayFull));
      if (warmUp) continue;
      outcomes.push({ n, replyMs, lastMs, duplicates: stats.duplicates });
      log(`room of ${num(n, 0)}: reply ${num(replyMs)} ms (CPU ${num(median(replyCpu) / 1000)} ms), ${list.length} worker tasks, ${num(cpuPerPost, 0)} µs CPU a post, last delivery at ${num(lastMs / 1000, 1)} s (modelled); today ${num(inlineWall / 1000, 1)} s here, ${todayFull <= MESSAGE_TIMEOUT_MS ? `${num(todayFull / 1000, 1)} s` : 'times out'} modelled`);
      rows.push([
        num(n, 0),
        `${num(replyMs)} ms`,
        todayFull <= MESSAGE_TIMEOUT_MS ? `${num(todayMs / 1000, 2)} s` : `times out at 10 s`,
        `${list.length} (${num(Math.max(...list.map((r) => r.posts)), 0)} posts at most)`,
        `${num(lastMs / 1000, 2)} s`,
        todayFull <= MESSAGE_TIMEOUT_MS ? `${num(todayFull / 1000, 2)} s` : `${num((todayDelivered / (n + 1)) * 100, 0)}% by 10 s, then retried`,
        `${num(stats.members, 0)} / ${num(stats.duplicates, 0)}`,
      ]);
    }

    // A failure injected in a shard of a room of 10,000 (an engine in this process, which can inject faults): the
    // retry goes on from the record.
    const room = 'big-10000';
    const local = await startDynamo();
    faulty = local;
    const [faultyTable] = definitions('bigroom-faults');
    await createTables(local.client, [faultyTable]);
    const faultyStore = new ConnectionStore(local.doc, faultyTable.TableName!);
    await seedRoom(local, faultyStore, faultyTable.TableName!, room, 10_000, log);
    await endpoint.reset();
    const victim = 3;
    const attempts = await local.doc.config.maxAttempts();
    const heal = local.injectFault({
      operation: 'Query',
      times: attempts,
      when: (input) => input.ExpressionAttributeValues?.[':pk']?.S === keys.memberPartition(TENANT, room, victim) && input.ExclusiveStartKey !== undefined,
    });
    const queue: Array<{ task: FanoutTask; attempt: number }> = [{ task: { kind: 'room', tenantId: TENANT, room, seq: 999_999, event: JSON.stringify({ type: 'message', room, seq: 999_999 }) }, attempt: 1 }];
    let failures = 0;
    while (queue.length > 0) {
      const { task, attempt } = queue.shift()!;
      try {
        await runFanoutTask(task, { store: faultyStore, fanouts: faultyStore.fanouts, api, log: silent, config, dispatch: async (t) => void queue.push({ task: t, attempt: 1 }) }, () => 60_000, { pageSize: 100 });
      } catch {
        failures++;
        if (attempt < 3) queue.push({ task, attempt: attempt + 1 });
      }
    }
    heal();
    const injected = await endpoint.stats();
    notes.push(
      `Failure injected: in a room of 10,000, the second page read of shard ${victim} failed past the SDK's ${attempts} attempts (${failures} worker failure${failures === 1 ? '' : 's'}, retried as Lambda retries): ${num(injected.members, 0)} of 10,000 members reached, ${num(injected.duplicates, 0)} duplicates (target 0: ${injected.duplicates === 0 && injected.members === 10_000 ? 'met' : 'not met'}).`,
    );
    outcomes.push({ n: -1, replyMs: 0, lastMs: 0, duplicates: injected.duplicates });
  } finally {
    endpoint.stop();
    client.destroy();
    engine.stop();
    await faulty?.close();
  }

  const [small, , large] = outcomes;
  const replyRatio = large.replyMs / small.replyMs;
  const duplicates = outcomes.reduce((a, o) => a + o.duplicates, 0);
  notes.unshift(
    `Model: a post takes ${POST_MS} ms to answer; a 512 MB function has ${num(LAMBDA_SHARE, 2)} of a vCPU, so the CPU time measured here for each task runs ${num(1 / LAMBDA_SHARE, 1)}× slower; a worker starts ${INVOKE_MS} ms after it is invoked; posts share API Gateway's account quota (${num(ACCOUNT_RATE.perSecond, 0)} a second, a bucket of ${num(ACCOUNT_RATE.burst, 0)}); today's fan-out stops at the message function's ${MESSAGE_TIMEOUT_MS / 1000} s time-out (and is then retried as a new message: members get it up to three times).`,
    `The reply is measured here (DynamoDB in a process of its own, on loopback): what the sender waits for is one read of up to ${REALTIME_DEFAULTS.inlineDeliveryMax + 2} member items, the history write and one asynchronous invocation, whatever the room's size; today's reply waits for the whole fan-out.`,
    `Reply time from 1,000 to 100,000 members: ${ratio(large.replyMs, small.replyMs)} (target within 2×: ${replyRatio <= 2 ? 'met' : 'not met'}); 100,000 members delivered in ${num(large.lastMs / 1000, 1)} s, modelled (target 15 s: ${large.lastMs <= 15_000 ? 'met' : 'not met'}).`,
  );
  return {
    id: 'bigroom',
    title: 'Big rooms',
    method: `Rooms of ${sizes.map((n) => num(n, 0)).join(', ')} members in a DynamoDB engine, seeded as joins put them (the first ${num(SPLIT_AT, 0)} in the room's own partition, the rest spread over ${ROOM_SHARDS} shards). One sender sends 5 messages through the message handler; its reply time is the median. The fan-out workers' code then delivers the last one, task by task, through the lean @connections client to a stand-in in another process that counts each member's copies; each task's CPU time is measured. Today's fan-out (the message function posting to every member before it answers) delivers one more message the same way. The times to the last delivery are then modelled from the measured CPU and stated AWS figures (notes).`,
    head: ['members', 'reply (Gatehouse)', 'reply (today)', 'worker tasks', 'last delivery (Gatehouse, modelled)', 'last delivery (today, modelled)', 'members reached / duplicates'],
    rows,
    headline: `sender's reply ${num(small.replyMs)} ms at 1,000 members and ${num(large.replyMs)} ms at 100,000 (${ratio(large.replyMs, small.replyMs)}); 100,000 members reached in ${num(large.lastMs / 1000, 1)} s modelled (today's single invocation times out at 10 s); ${duplicates} duplicates, a shard failure injected`,
    notes,
  };
};
