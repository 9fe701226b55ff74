/**
 * What Gatehouse costs in AWS, from the requests it makes: the real handlers run here, in process, against a
 * DynamoDB engine that reports the capacity each request consumes and an @connections stand-in that counts posts,
 * and every flow's requests are counted (Lambda invocations and their CPU time, DynamoDB read and write units,
 * API Gateway messages and connection minutes, EventBridge events). The counts are priced at AWS's list prices
 * (PRICES, with their date) and set beside AWS AppSync Events, Ably and Pusher for the same traffic.
 *
 * Flows: a connect (authorizer, $connect, one `join_rooms` of ROOMS rooms, $disconnect); an idle connection-hour
 * (heartbeats answered by API Gateway itself, credential renewals as the client makes them, and the reconnect that
 * ends every connection at 2 hours, shared over its hours); a message to a room of 10 and to a room of 1,000
 * (through the fan-out workers), priced per delivery.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { authConfig, createAuth } from '../common/auth';
import { createLogger } from '../common/log';
import { authorize } from '../lambda/core/authorize';
import { realtimeConfig } from '../lambda/core/config';
import { createConnectionsApi } from '../lambda/core/connections-api';
import { connect, disconnect } from '../lambda/core/connection';
import { runFanoutTask, type FanoutTask } from '../lambda/core/fanout';
import { handleMessage, type MessageDeps } from '../lambda/core/messages';
import { ConnectionStore } from '../lambda/core/store';
import { ConnectionTable } from '../lib/connection-table';
import { createTables, tableDefinitions } from '../local/emulator/dynamodb';
import { OPERATOR_CREDENTIALS } from '../local/emulator/iam';
import { HEARTBEAT_MS, REALTIME_DEFAULTS } from '../protocol';
import { CLIENT_ID, USER_POOL_ID, accessClaims, makeKey, serveJwks, signToken } from '../test/support/jwt';
import { RECONNECT_TO_RENEW_MS } from '@gatehouse/client';
import { LAMBDA_SHARE, startDynamoProcess, startEndpoint } from './engines';
import { num, ratio, type Bench } from './report';

/** List prices, US East (N. Virginia), as published by each vendor; this machine cannot reach their pages to check again. */
const PRICES = {
  asOf: '2025-11',
  apiGatewayMessage: 1.0 / 1e6, // WebSocket messages (32 KB units), first billion a month
  apiGatewayConnectionMinute: 0.25 / 1e6,
  lambdaRequest: 0.2 / 1e6,
  lambdaGbSecondArm: 0.0000133334,
  dynamoRead: 0.125 / 1e6, // on-demand read request unit
  dynamoWrite: 0.625 / 1e6, // on-demand write request unit
  eventBridgeEvent: 1.0 / 1e6,
  appSyncEventsOperation: 1.0 / 1e6, // publishes, subscribes, connects, and each message delivered (5 KB units)
  appSyncEventsConnectionMinute: 0.08 / 1e6,
  ablyMessage: 2.5 / 1e6, // each message published and each delivered
  ablyConnectionMinute: 1.0 / 1e6,
  ablyChannelMinute: 1.0 / 1e6,
  pusherProMonth: 99, // 2,000 concurrent connections, 4 million messages a day
} as const;
const LAMBDA_GB = 0.5;
/** A DynamoDB or @connections round trip, as a function waits for it in AWS (a stated figure). */
const ROUND_TRIP_MS = 5;
const ROOMS = 3;

interface Counts {
  invocations: number;
  /** Billed Lambda milliseconds (modelled: CPU at 512 MB's share, plus the round trips waited for). */
  lambdaMs: number;
  rru: number;
  wru: number;
  messages: number;
  events: number;
}
const zero = (): Counts => ({ invocations: 0, lambdaMs: 0, rru: 0, wru: 0, messages: 0, events: 0 });
const add = (a: Counts, b: Counts, times = 1): Counts => ({
  invocations: a.invocations + b.invocations * times,
  lambdaMs: a.lambdaMs + b.lambdaMs * times,
  rru: a.rru + b.rru * times,
  wru: a.wru + b.wru * times,
  messages: a.messages + b.messages * times,
  events: a.events + b.events * times,
});
const dollars = (c: Counts) =>
  c.invocations * PRICES.lambdaRequest +
  (c.lambdaMs / 1000) * LAMBDA_GB * PRICES.lambdaGbSecondArm +
  c.rru * PRICES.dynamoRead +
  c.wru * PRICES.dynamoWrite +
  c.messages * PRICES.apiGatewayMessage +
  c.events * PRICES.eventBridgeEvent;

export const costBench: Bench = async () => {
  const engine = await startDynamoProcess();
  const endpoint = await startEndpoint();
  const meter = { rru: 0, wru: 0, requests: 0 };
  const client = new DynamoDBClient({ endpoint: engine.endpoint, region: 'eu-west-1', credentials: OPERATOR_CREDENTIALS });
  // Every request asks what it consumed (dynalite sizes items as DynamoDB does). A write refused by its condition
  // still consumes a write unit in DynamoDB, though it returns no figure: counted as one.
  const WRITES = /^(Put|Update|Delete|BatchWrite|TransactWrite)/;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const write = WRITES.test(context.commandName ?? '');
      meter.requests++;
      try {
        const result = await next({ ...args, input: { ...(args.input as object), ReturnConsumedCapacity: 'TOTAL' } });
        const out = result.output as { ConsumedCapacity?: { CapacityUnits?: number } | Array<{ CapacityUnits?: number }> };
        const units = [out.ConsumedCapacity ?? []].flat().reduce((a, c) => a + (c.CapacityUnits ?? 0), 0);
        if (write) meter.wru += Math.max(1, units);
        else meter.rru += units;
        return result;
      } catch (error) {
        if (write) meter.wru += 1;
        throw error;
      }
    },
    { step: 'initialize', name: 'capacityMeter' },
  );
  const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  const stack = new Stack(new App(), 'CostBench');
  new ConnectionTable(stack, 'Connections');
  const [table] = tableDefinitions(Template.fromStack(stack).toJSON() as Parameters<typeof tableDefinitions>[0], () => 'cost-bench');
  await createTables(client, [table]);
  const key = makeKey('cost-key');
  const jwks = await serveJwks([key]);
  const env = { USER_POOL_ID, USER_POOL_CLIENT_ID: CLIENT_ID, JWKS_URI: jwks.url, TABLE_NAME: table.TableName!, CONNECTIONS_URL: endpoint.url, ALLOWED_ORIGINS: 'https://app.example.com' };
  const auth = createAuth(authConfig(env, { allowQueryToken: false }), { db: doc });
  const store = new ConnectionStore(doc, table.TableName!);
  const silent = createLogger({ component: 'cost' }, { level: 'error', write: () => undefined });
  const api = createConnectionsApi({ endpoint: endpoint.url, region: 'eu-west-1', credentials: () => ({ accessKeyId: 'a', secretAccessKey: 's' }) });
  const config = realtimeConfig(env);
  const tasks: FanoutTask[] = [];
  const deps: MessageDeps = { store, api, config, auth, log: silent, fanout: async (t) => void tasks.push(t) };

  /** Runs `work` as `invocations` function invocations and counts what it asked of AWS. */
  const measure = async (invocations: number, work: () => Promise<unknown>, messages = 0, events = 0): Promise<Counts> => {
    const before = { ...meter, posts: (await endpoint.stats()).copies };
    const cpu0 = process.cpuUsage();
    await work();
    const cpu = process.cpuUsage(cpu0);
    const requests = meter.requests - before.requests;
    const posted = (await endpoint.stats()).copies - before.posts;
    return {
      invocations,
      lambdaMs: Math.max(invocations, (cpu.user + cpu.system) / 1000 / LAMBDA_SHARE + (requests + posted) * ROUND_TRIP_MS),
      rru: meter.rru - before.rru,
      wru: meter.wru - before.wru,
      messages: messages + posted,
      events,
    };
  };

  try {
    // Warm-up (JIT, the JWKS fetch): one user through every flow, not counted.
    let users = 0;
    const steps = { authorizer: zero(), connect: zero(), join_rooms: zero(), disconnect: zero() };
    const oneConnect = async (label: string) => {
      const user = `user-${label}-${++users}`;
      const token = signToken(key, accessClaims({ sub: user, username: user, jti: `j-${user}`, origin_jti: `s-${user}` }));
      const connectionId = `c-${user}`;
      let context: unknown;
      const authorizer = await measure(1, async () => {
        const result = await authorize({ type: 'REQUEST', methodArn: 'arn:aws:execute-api:eu-west-1:1:a/live/$connect', headers: { Authorization: `Bearer ${token}` }, multiValueHeaders: {}, queryStringParameters: {}, requestContext: { connectionId } } as unknown as APIGatewayRequestAuthorizerEvent, { auth, log: silent });
        context = result.context;
      });
      const connected = await measure(1, () => connect({ connectionId, authorizer: { ...(context as object), principalId: user } }, deps));
      const joined = await measure(1, () => handleMessage({ connectionId, body: JSON.stringify({ action: 'join_rooms', rooms: Array.from({ length: ROOMS }, (_, i) => ({ room: `room-${i}` })) }) }, deps), 2);
      steps.authorizer = add(steps.authorizer, authorizer);
      steps.connect = add(steps.connect, connected);
      steps.join_rooms = add(steps.join_rooms, joined);
      return { user, token, connectionId, total: add(add(authorizer, connected), joined) };
    };
    const oneDisconnect = async (connectionId: string) => {
      const d = await measure(1, () => disconnect({ connectionId }, deps));
      steps.disconnect = add(steps.disconnect, d);
      return d;
    };
    const warm = await oneConnect('warm');
    await oneDisconnect(warm.connectionId);
    for (const step of Object.keys(steps) as Array<keyof typeof steps>) steps[step] = zero();

    // A connect, and the disconnect that ends it.
    const connects: Counts[] = [];
    for (let i = 0; i < 20; i++) {
      const c = await oneConnect('c');
      connects.push(add(c.total, await oneDisconnect(c.connectionId)));
    }
    const perConnect = connects.reduce((a, c) => add(a, c, 1 / connects.length), zero());

    // A renewal (`refresh`) on a socket in ROOMS rooms: one frame and its reply.
    const renewer = await oneConnect('r');
    const refreshes: Counts[] = [];
    for (let i = 0; i < 20; i++) {
      const fresh = signToken(key, accessClaims({ sub: renewer.user, username: renewer.user, jti: `j-r-${i}`, origin_jti: `s-r-${i}` }));
      refreshes.push(await measure(1, () => handleMessage({ connectionId: renewer.connectionId, body: JSON.stringify({ action: 'refresh', token: fresh }) }, deps), 2));
    }
    const perRefresh = refreshes.reduce((a, c) => add(a, c, 1 / refreshes.length), zero());

    /** An idle connection-hour with access tokens of `tokenMinutes`. */
    const connectionHour = (tokenMinutes: number) => {
      const lifetimeMin = REALTIME_DEFAULTS.maxConnectionSeconds / 60;
      // Renewals a minute before each expiry; one due in the last RECONNECT_TO_RENEW_MS is a reconnect instead.
      let renewals = 0;
      let ends = lifetimeMin;
      for (let due = tokenMinutes - 1; due < lifetimeMin; due += tokenMinutes) {
        if (lifetimeMin - due <= RECONNECT_TO_RENEW_MS / 60_000) {
          ends = due;
          break;
        }
        renewals++;
      }
      // Heartbeats only in the quiet stretches: a renewal is traffic, so pings come HEARTBEAT_MS after the last frame.
      const gap = Math.min(tokenMinutes, ends);
      const pingsPerGap = Math.floor((gap - 1e-9) / (HEARTBEAT_MS / 60_000));
      const pings = pingsPerGap * (renewals + 1);
      const hours = ends / 60;
      const perHour = add(add(zero(), perRefresh, renewals / hours), perConnect, 1 / hours);
      return { counts: { ...perHour, messages: perHour.messages + (pings * 2) / hours }, minutes: 60, renewals, pings, hours };
    };

    // A message to a room of `members`: the sender's frame and reply, the posts, and (big rooms) the workers.
    const messageTo = async (members: number): Promise<Counts> => {
      const room = `msg-${members}`;
      const sender = await oneConnect(`m${members}`);
      await handleMessage({ connectionId: sender.connectionId, body: JSON.stringify({ action: 'join', room }) }, deps);
      for (let i = 0; i < members - 1; i++) await store.members.put('acme', room, 0, { connectionId: `${room}-${i}`, userId: `u-${i}`, credExp: 4e9, expiresAt: 4e9 });
      tasks.length = 0;
      const send = await measure(1, () => handleMessage({ connectionId: sender.connectionId, body: JSON.stringify({ action: 'send', room, data: { text: 'hello, room' } }) }, deps), 2);
      let workers = zero();
      while (tasks.length > 0) {
        const task = tasks.shift()!;
        workers = add(workers, await measure(1, () => runFanoutTask(task, { store, fanouts: store.fanouts, api, log: silent, config, dispatch: async (t) => void tasks.push(t) }, () => 60_000)));
      }
      return add(send, workers);
    };
    const small = await messageTo(10);
    const big = await messageTo(1000);

    const hour15 = connectionHour(15);
    const hour60 = connectionHour(60);
    const hourDollars = (h: ReturnType<typeof connectionHour>) => dollars(h.counts) + h.minutes * PRICES.apiGatewayConnectionMinute;
    const apiGatewayMinutesPerHour = 60 * PRICES.apiGatewayConnectionMinute;
    const perMillion = (d: number) => `$${num(d * 1e6, 2)}`;
    const smallPer = dollars(small) / 10;
    const bigPer = dollars(big) / 1000;
    // Competitors, for the same traffic: a delivery is one message out (and its share of the one published).
    const appSync = { delivery: PRICES.appSyncEventsOperation, hour: 60 * PRICES.appSyncEventsConnectionMinute, connect: PRICES.appSyncEventsOperation * (1 + ROOMS) };
    const ably = { delivery: PRICES.ablyMessage, hour: 60 * (PRICES.ablyConnectionMinute + PRICES.ablyChannelMinute * ROOMS), connect: 0 };
    const pusherHour = PRICES.pusherProMonth / (2000 * 730);
    const pusherMessage = PRICES.pusherProMonth / (4e6 * 30);
    const pusher = { delivery: pusherMessage, hour: pusherHour, connect: 0 };
    const rows = [
      ['Gatehouse (this stack)', `${perMillion(smallPer)} (room of 10); ${perMillion(bigPer)} (room of 1,000)`, `${perMillion(hourDollars(hour15))} (15-minute tokens); ${perMillion(hourDollars(hour60))} (60-minute tokens)`, perMillion(dollars(perConnect))],
      ['AWS AppSync Events', perMillion(appSync.delivery), perMillion(appSync.hour), perMillion(appSync.connect)],
      ['Ably (pay as you go)', perMillion(ably.delivery), perMillion(ably.hour), perMillion(ably.connect)],
      ['Pusher Channels (Pro plan, fully used)', perMillion(pusher.delivery), perMillion(pusher.hour), perMillion(pusher.connect)],
    ];
    const target = 2 * apiGatewayMinutesPerHour;
    const heartbeats = (h: ReturnType<typeof connectionHour>) => (h.pings * 2 * PRICES.apiGatewayMessage) / h.hours;
    /** What an hour costs beyond API Gateway's minutes and the heartbeats it answers: renewals and reconnects. */
    const ownShare = (h: ReturnType<typeof connectionHour>) => hourDollars(h) - h.minutes * PRICES.apiGatewayConnectionMinute - heartbeats(h);
    const met = (h: ReturnType<typeof connectionHour>) => (hourDollars(h) <= target ? 'met' : 'not met');
    const breakdown = (h: ReturnType<typeof connectionHour>) =>
      `${perMillion(h.minutes * PRICES.apiGatewayConnectionMinute)} API Gateway connection minutes, ${perMillion(heartbeats(h))} heartbeats (${num(h.pings / h.hours, 1)} pings an hour, answered by API Gateway: two messages each), ${perMillion(dollars(add(zero(), perRefresh, h.renewals / h.hours)))} renewals (${num(h.renewals / h.hours, 1)} an hour), ${perMillion(dollars(perConnect) / h.hours)} the reconnect every ${num(h.hours, 2)} hours`;
    return {
      id: 'cost',
      title: 'Cost model',
      method: `The handlers run here, in process (authorizer, $connect, \`join_rooms\` of ${ROOMS} rooms, \`refresh\`, \`send\`, the fan-out workers, $disconnect), against a DynamoDB engine that reports each request's consumed capacity (a write of a small item counts 1 unit) and an @connections stand-in that counts posts. Lambda time is modelled as each invocation's CPU time here at a 512 MB function's ${num(LAMBDA_SHARE, 2)} of a vCPU, plus ${ROUND_TRIP_MS} ms for each DynamoDB request or post it waits for. Prices are AWS's, AppSync Events', Ably's and Pusher's list prices as published in ${PRICES.asOf} (US East; this machine cannot reach their pages to check them again): API Gateway $1.00 a million messages and $0.25 a million connection minutes; Lambda $0.20 a million requests and $0.0000133334 a GB-second (arm64); DynamoDB on demand $0.125 a million read and $0.625 a million write units; AppSync Events $1.00 a million operations and $0.08 a million connection minutes; Ably $2.50 a million messages, $1.00 a million connection minutes and channel minutes; Pusher's Pro plan $99 a month for 2,000 connections and 4 million messages a day.`,
      head: ['', 'per million deliveries', 'per million idle connection-hours', 'per million connects'],
      rows,
      headline: `a connection-hour costs ${perMillion(hourDollars(hour15))} a million with 15-minute tokens and ${perMillion(hourDollars(hour60))} with 60-minute tokens, against API Gateway's own ${perMillion(apiGatewayMinutesPerHour)} for the minutes (target 2×, ${perMillion(target)}: ${met(hour15)} / ${met(hour60)}); a delivery ${perMillion(smallPer)} a million in a room of 10, ${perMillion(bigPer)} in a room of 1,000 (AppSync Events ${perMillion(appSync.delivery)})`,
      notes: [
        `Connection-hour, 15-minute tokens (the stack's default): ${breakdown(hour15)}. With 60-minute tokens (\`-c accessTokenMinutes=60\`): ${breakdown(hour60)}.`,
        `Per connect (and its disconnect), averaged over ${connects.length}: ${(Object.entries(steps) as Array<[string, Counts]>)
          .map(([step, c]) => `${step} ${num(c.rru / connects.length, 1)} read and ${num(c.wru / connects.length, 1)} write units, ${num(c.lambdaMs / connects.length, 0)} ms`)
          .join('; ')} (join_rooms of ${ROOMS} rooms: for each, the room's shard marker, the connection's room set, the member, presence and its read-back, the unread index, the sequence number, the rate limit; $disconnect undoes them). Per renewal: ${num(perRefresh.invocations, 0)} invocation, ${num(perRefresh.rru, 1)} read and ${num(perRefresh.wru, 1)} write units (the rate limit, the record, the credential's expiry on each of the ${ROOMS} memberships), ${num(perRefresh.messages, 0)} messages.`,
        `Why the target is not reachable with a heartbeat that is answered: API Gateway bills both messages of a ping and its pong (${perMillion(2 * PRICES.apiGatewayMessage)} a million), and its 10-minute idle timeout needs one every ${HEARTBEAT_MS / 60_000} quiet minutes: ${num(60 / (HEARTBEAT_MS / 60_000), 1)} an hour on a silent socket, ${perMillion((60 / (HEARTBEAT_MS / 60_000)) * 2 * PRICES.apiGatewayMessage)} a million hours, which with the minutes themselves is already the 2× target before any renewal or reconnect. Gatehouse's own share (everything but the minutes and heartbeats) is ${perMillion(ownShare(hour15))} with 15-minute tokens and ${perMillion(ownShare(hour60))} with 60-minute ones; the issue that asked for this measured $92 a million in all, two-thirds of it heartbeat and refresh invocations.`,
        `A delivery in a room of 10 is the sender's invocation and its reads and writes shared by 10 posts; in a room of 1,000 the workers' invocations and progress records are shared by 1,000. API Gateway's message charge, ${perMillion(PRICES.apiGatewayMessage)} a million deliveries, is most of it either way.`,
        `The alternatives' figures are list prices for the same traffic, not measurements: AppSync Events counts each delivery and each subscribe as an operation; Ably counts every message delivered and bills a channel-minute per subscribed room; Pusher sells plans, so its per-unit figures assume a plan fully used. ${ratio(hourDollars(hour15), appSync.hour)} AppSync Events' connection-hour (15-minute tokens), ${ratio(hourDollars(hour60), appSync.hour)} with 60-minute ones.`,
      ],
    };
  } finally {
    endpoint.stop();
    await jwks.close();
    client.destroy();
    engine.stop();
  }
};

