/**
 * What presence and read receipts cost in a big room: DynamoDB items read and written and @connections posts for
 * one presence change and one read receipt in a room of 1,000 connections (and of 20, where signals are live),
 * Gatehouse's design (a presence item per user, a read cursor per user and room, signals bounded by room size)
 * beside the naive one (presence per socket broadcast to every socket; a receipt item per message per recipient,
 * every receipt broadcast to the room), both run against the same dynalite table and a counting @connections
 * stand-in in this process. Counts, not times: they are what DynamoDB and API Gateway bill.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, DynamoDBDocumentClient, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { createLogger } from '../common/log';
import { keys } from '../common/table-schema';
import { markRead, readOwn } from '../lambda/core/conversation';
import { realtimeConfig } from '../lambda/core/config';
import { createConnectionsApi, type ConnectionsApi } from '../lambda/core/connections-api';
import { numberMessage, deliverToRoom } from '../lambda/core/deliver';
import { enterRoom, signalRoom } from '../lambda/core/presence';
import { ConnectionStore } from '../lambda/core/store';
import { ConnectionTable } from '../lib/connection-table';
import { createTables, startDynamo, tableDefinitions } from '../local/emulator/dynamodb';
import { REALTIME_DEFAULTS } from '../protocol';
import { num, ratio, type Bench } from './report';

const int = (n: number) => num(n, 0);

const TENANT = 'acme';
const CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

interface Counts {
  read: number;
  written: number;
  posts: number;
}

/** A document client counting the items DynamoDB read and wrote for it. */
function metered(endpoint: string) {
  const counts = { read: 0, written: 0 };
  const client = new DynamoDBClient({ endpoint, region: 'eu-west-1', credentials: CREDENTIALS });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const result = await next(args);
      const name = context.commandName ?? '';
      const output = result.output as { Count?: number; ScannedCount?: number; Item?: unknown; Responses?: Record<string, unknown[]> };
      const input = args.input as { RequestItems?: Record<string, unknown[]> };
      if (/^(Query|Scan)Command$/.test(name)) counts.read += output.ScannedCount ?? output.Count ?? 0;
      else if (name === 'GetItemCommand') counts.read += output.Item ? 1 : 0;
      else if (name === 'BatchGetItemCommand') counts.read += Object.values(output.Responses ?? {}).reduce((n, items) => n + items.length, 0);
      else if (name === 'BatchWriteItemCommand') counts.written += Object.values(input.RequestItems ?? {}).reduce((n, items) => n + items.length, 0);
      else if (/^(PutItem|UpdateItem|DeleteItem)Command$/.test(name)) counts.written++;
      return result;
    },
    { step: 'initialize', name: 'conversationBenchMeter' },
  );
  return { doc: DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } }), counts };
}

/** @connections stand-in: every POST is a delivery, counted. */
async function postCounter() {
  const counter = { posts: 0 };
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.method === 'POST') counter.posts++;
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/live`;
  const api = createConnectionsApi({ endpoint: url, region: 'eu-west-1', credentials: () => CREDENTIALS });
  return { counter, url, api, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/**
 * The naive design, on the same table: presence as an item per socket, each change posted to every socket of the
 * room; receipts as an item per message per recipient (written when the message is delivered, updated when read),
 * each read posted to every socket of the room.
 */
class NaiveConversation {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly api: ConnectionsApi,
  ) {}

  private async members(room: string): Promise<string[]> {
    const ids: string[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(
        new QueryCommand({ TableName: this.table, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': keys.roomPartition(TENANT, room) }, ExclusiveStartKey: start }),
      );
      ids.push(...(page.Items ?? []).map((i) => String(i.connectionId)));
      start = page.LastEvaluatedKey;
    } while (start);
    return ids;
  }

  private async postAll(room: string, payload: string): Promise<void> {
    const ids = await this.members(room);
    for (let i = 0; i < ids.length; i += 32) {
      await Promise.all(ids.slice(i, i + 32).map((id) => this.api.post(id, payload)));
    }
  }

  async presenceChange(room: string, connectionId: string): Promise<void> {
    await this.db.send(new PutCommand({ TableName: this.table, Item: { pk: `npres#${TENANT}#${room}`, sk: connectionId, online: true } }));
    await this.postAll(room, JSON.stringify({ type: 'presence', room, connectionId }));
  }

  /** Delivery bookkeeping of one message: a receipt item for every recipient. */
  async delivered(room: string, seq: number, recipients: string[]): Promise<void> {
    for (let i = 0; i < recipients.length; i += 25) {
      const batch = recipients.slice(i, i + 25).map((userId) => ({ PutRequest: { Item: { pk: `nrcpt#${TENANT}#${room}#${seq}`, sk: userId, status: 'delivered' } } }));
      await this.db.send(new BatchWriteCommand({ RequestItems: { [this.table]: batch } }));
    }
  }

  async read(room: string, seq: number, userId: string): Promise<void> {
    await this.db.send(
      new UpdateCommand({ TableName: this.table, Key: { pk: `nrcpt#${TENANT}#${room}#${seq}`, sk: userId }, UpdateExpression: 'SET #s = :read', ExpressionAttributeNames: { '#s': 'status' }, ExpressionAttributeValues: { ':read': 'read' } }),
    );
    await this.postAll(room, JSON.stringify({ type: 'receipt', room, seq, userId }));
  }
}

export const conversationBench: Bench = async ({ full, log }) => {
  const sizes = full ? [20, 1000, 5000] : [20, 1000];
  const dynamo = await startDynamo();
  const stack = new Stack(new App(), 'TableOnly');
  new ConnectionTable(stack, 'Connections');
  const tableName = 'conversation-bench';
  await createTables(dynamo.client, tableDefinitions(Template.fromStack(stack).toJSON() as Parameters<typeof tableDefinitions>[0], () => tableName));
  const meter = metered(dynamo.endpoint);
  const posts = await postCounter();
  const store = new ConnectionStore(meter.doc, tableName);
  const config = realtimeConfig({ TABLE_NAME: tableName, CONNECTIONS_URL: posts.url });
  const deps = { store, api: posts.api, config, log: createLogger({ component: 'bench' }, { level: 'error' }) };
  const naive = new NaiveConversation(meter.doc, tableName, posts.api);
  const measure = async (what: () => Promise<unknown>): Promise<Counts> => {
    const before = { ...meter.counts, posts: posts.counter.posts };
    await what();
    return { read: meter.counts.read - before.read, written: meter.counts.written - before.written, posts: posts.counter.posts - before.posts };
  };

  const rows: string[][] = [];
  const results: Record<string, { gatehouse: Counts; naive: Counts }> = {};
  try {
    for (const size of sizes) {
      const room = `room-${size}`;
      log(`conversation: seeding a room of ${size}`);
      const expiresAt = Math.floor(Date.now() / 1000) + 7200;
      const users = Array.from({ length: size }, (_, i) => `user-${size}-${i}`);
      for (let i = 0; i < size; i += 50) {
        await Promise.all(
          users.slice(i, i + 50).map(async (userId) => {
            const connection = { connectionId: `c-${userId}`, userId, username: userId, name: userId, tenantId: TENANT, groups: ['tenant:acme'], tokenExpiresAt: expiresAt, signIn: userId, issuedAt: 0, source: 'header' as const, connectedAt: Date.now(), expiresAt };
            await store.putConnection(connection);
            await store.join(connection, room, 50);
            await store.presence.enter(TENANT, room, { userId, name: userId }, connection.connectionId, expiresAt);
          }),
        );
      }
      const author = { connectionId: `c-${users[0]}`, userId: users[0], tenantId: TENANT, groups: ['tenant:acme'], member: { userId: users[0], name: users[0] } };
      const reader = { ...author, connectionId: `c-${users[1]}`, userId: users[1], member: { userId: users[1], name: users[1] } };
      const newcomer = `user-${size}-new`;

      // One presence change: a user's first socket enters the room (the joiner's snapshot is the join's, apart).
      const gatehousePresence = await measure(() => store.presence.enter(TENANT, room, { userId: newcomer, name: newcomer }, `c-${newcomer}`, expiresAt).then(async (change) => {
        if (change.changed) {
          await signalRoom(TENANT, room, { type: 'presence', room, change: 'joined', user: { userId: newcomer, name: newcomer }, v: change.v }, deps, `c-${newcomer}`);
        }
      }));
      const naivePresence = await measure(() => naive.presenceChange(room, `c-${newcomer}`));
      const snapshot = await measure(() => enterRoom(TENANT, room, { userId: newcomer, name: newcomer }, { connectionId: `c-${newcomer}`, expiresAt }, deps));

      // One message, then one read receipt for it (the reader catches up by one).
      const numbered = await numberMessage(TENANT, room, deps);
      const gatehouseSend = await measure(() => readOwn(author, room, numbered.seq, numbered.n, deps));
      const naiveSend = await measure(() => naive.delivered(room, numbered.seq, users.slice(1)));
      await measure(() => deliverToRoom(TENANT, room, { sender: author.member, data: 'x' }, deps, { numbered })); // the message itself, same for both
      const gatehouseRead = await measure(() => markRead(reader, room, numbered.seq, deps));
      const naiveRead = await measure(() => naive.read(room, numbered.seq, users[1]));

      const add = (what: string, g: Counts, n: Counts) => {
        rows.push([`${what}, room of ${int(size)}`, 'Gatehouse', int(g.read), int(g.written), int(g.posts)]);
        rows.push(['', 'naive', int(n.read), int(n.written), int(n.posts)]);
      };
      add('presence change', gatehousePresence, naivePresence);
      rows.push([`presence snapshot for the joiner, room of ${int(size)}`, 'Gatehouse', int(snapshot.read), int(snapshot.written), int(snapshot.posts)]);
      add('receipt bookkeeping per message sent', gatehouseSend, naiveSend);
      add('read receipt', gatehouseRead, naiveRead);
      results[size] = {
        gatehouse: { read: gatehouseRead.read, written: gatehouseRead.written + gatehouseSend.written, posts: gatehouseRead.posts },
        naive: { read: naiveRead.read, written: naiveRead.written + naiveSend.written, posts: naiveRead.posts },
      };
    }
  } finally {
    await posts.close();
    await dynamo.close();
  }
  const big = results[1000];
  return {
    id: 'conversation',
    title: 'Presence and read receipts in big rooms',
    method:
      'Items DynamoDB read and wrote and @connections posts for one presence change (a user\'s first socket enters), the joiner\'s presence snapshot, the receipt bookkeeping of one sent message and one read receipt, in rooms of 20 and 1,000 connections (one user each), seeded in dynalite with the deployed table schema. Gatehouse: a presence item per user and a read cursor per user and room; presence and typing are posted only in rooms of at most `signalMaxMembers` connections (' +
      `${REALTIME_DEFAULTS.signalMaxMembers}), receipts only in rooms of at most \`receiptSignalMaxMembers\` (${REALTIME_DEFAULTS.receiptSignalMaxMembers}); bigger rooms read snapshots and cursors on request. Naive: presence per socket and every change posted to every socket; a receipt item per message per recipient, and every read posted to every socket.`,
    head: ['operation', 'design', 'items read', 'items written', 'posts'],
    rows,
    headline: big
      ? `a read receipt in a room of 1,000 (with its message's bookkeeping) writes ${int(big.gatehouse.written)} items and posts ${int(big.gatehouse.posts)} frames, the naive design ${int(big.naive.written)} items and ${int(big.naive.posts)} posts (${ratio(big.naive.written, big.gatehouse.written)} the writes)`
      : 'n/a',
    notes: [
      'Gatehouse reads up to signalMaxMembers + 1 membership keys to decide whether a room is small enough for live signals: that read is the whole cost of a presence change in a big room, however big it is.',
      'In big rooms "seen by" and presence are pulled (`receipts`, `presence`: one Query of at most 100 items each) instead of pushed; the naive design pushes N posts per read, so N readers of one message cost N² posts.',
    ],
  };
};
