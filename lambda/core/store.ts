/**
 * The connection store: connections and room memberships in DynamoDB.
 *
 * Every write is idempotent (a retried Lambda writes the same item again), no transactions are used, and every
 * read skips items whose TTL has passed, because DynamoDB deletes expired items lazily (up to days later).
 * Fan-out reads Query an index partition page by page: cost follows the room, never the table.
 */
import {
  BatchWriteCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import type { TokenSource } from '../../common/handshake';
import { TABLE, keys } from '../../common/table-schema';
import type { Identity } from './identity';

export interface ConnectionRecord extends Identity {
  connectionId: string;
  /** How the connection authenticated. */
  source: TokenSource;
  /** Epoch milliseconds. */
  connectedAt: number;
  /** Epoch seconds: TTL of the connection and of its memberships. */
  expiresAt: number;
}

/** The rate limiter's token bucket, kept on the connection item. */
export interface RateState {
  rlTokens?: number;
  /** Epoch milliseconds of the last refill. */
  rlAt?: number;
  /** Refusals in a row. */
  rlStrikes?: number;
}

export type StoredConnection = ConnectionRecord & RateState;

export interface StoreOptions {
  now?: () => number;
  /** Items per index page during fan-out. */
  pageSize?: number;
}

type Index = (typeof TABLE.indexes)[keyof typeof TABLE.indexes];

const BATCH = 25;
/** A room counter outlives any connection and any history item by far; it only needs to stay monotonic. */
const COUNTER_TTL_SECONDS = 2 * 24 * 60 * 60;

export interface HistoryItem {
  seq: number;
  /** The message exactly as it was delivered (JSON). */
  event: string;
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class ConnectionStore {
  private readonly now: () => number;
  private readonly pageSize: number;

  constructor(
    private readonly db: DynamoDBDocumentClient,
    readonly tableName: string,
    options: StoreOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.pageSize = options.pageSize ?? 250;
  }

  private live(item: Record<string, unknown> | undefined): boolean {
    if (!item) return false;
    const expiresAt = item[TABLE.ttlAttribute];
    return typeof expiresAt !== 'number' || expiresAt * 1000 > this.now();
  }

  async putConnection(record: ConnectionRecord): Promise<void> {
    await this.db.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...keys.connection(record.connectionId),
          ...record,
          [TABLE.indexes.byUser.partitionKey]: record.userId,
          [TABLE.indexes.byTenant.partitionKey]: record.tenantId,
          [TABLE.indexes.byExpiry.partitionKey]: keys.expiryBucket(record.tokenExpiresAt),
        },
      }),
    );
  }

  async getConnection(connectionId: string): Promise<StoredConnection | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: keys.connection(connectionId), ConsistentRead: true }),
    );
    if (!this.live(Item)) return undefined;
    const { pk: _pk, sk: _sk, gsiUser: _u, gsiTenant: _t, gsiExpiry: _e, ...record } = Item as Record<string, unknown>;
    return record as unknown as StoredConnection;
  }

  /** A refreshed credential: the connection lives until the new expiry (and the sweeper looks for it then). */
  async extendConnection(connectionId: string, tokenExpiresAt: number, signIn: string): Promise<boolean> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.connection(connectionId),
          UpdateExpression: 'SET tokenExpiresAt = :exp, #bucket = :bucket, signIn = :signIn',
          ConditionExpression: 'attribute_exists(#pk)',
          ExpressionAttributeNames: { '#bucket': TABLE.indexes.byExpiry.partitionKey, '#pk': TABLE.partitionKey },
          ExpressionAttributeValues: { ':exp': tokenExpiresAt, ':bucket': keys.expiryBucket(tokenExpiresAt), ':signIn': signIn },
        }),
      );
      return true;
    } catch (err) {
      if ((err as Error).name === 'ConditionalCheckFailedException') return false;
      throw err;
    }
  }

  /**
   * Takes one token from the connection's bucket (`rate` per second, up to `burst`). Read-modify-write with an
   * optimistic condition on the last refill time, retried on contention; never recreates a deleted connection.
   */
  async takeToken(
    connection: StoredConnection,
    limits: { rate: number; burst: number },
  ): Promise<{ allowed: boolean; strikes: number } | undefined> {
    let current: StoredConnection | undefined = connection;
    for (let attempt = 0; current && attempt < 5; attempt++) {
      const now = this.now();
      const elapsed = current.rlAt === undefined ? 0 : Math.max(0, now - current.rlAt) / 1000;
      const tokens = Math.min(limits.burst, (current.rlTokens ?? limits.burst) + elapsed * limits.rate);
      const allowed = tokens >= 1;
      const strikes = allowed ? 0 : (current.rlStrikes ?? 0) + 1;
      try {
        await this.db.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: keys.connection(connection.connectionId),
            UpdateExpression: 'SET rlTokens = :tokens, rlAt = :now, rlStrikes = :strikes',
            ConditionExpression:
              current.rlAt === undefined ? 'attribute_exists(#pk) AND attribute_not_exists(rlAt)' : 'attribute_exists(#pk) AND rlAt = :prev',
            ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
            ExpressionAttributeValues: {
              ':tokens': allowed ? tokens - 1 : tokens,
              ':now': now,
              ':strikes': strikes,
              ...(current.rlAt === undefined ? {} : { ':prev': current.rlAt }),
            },
          }),
        );
        return { allowed, strikes };
      } catch (err) {
        if ((err as Error).name !== 'ConditionalCheckFailedException') throw err;
        current = await this.getConnection(connection.connectionId);
      }
    }
    return current ? { allowed: false, strikes: current.rlStrikes ?? 0 } : undefined;
  }

  /** Live connections of a user (for the per-user cap). */
  async countUserConnections(userId: string): Promise<number> {
    let count = 0;
    for await (const page of this.userConnections(userId)) count += page.length;
    return count;
  }

  /** A user's live connections with the sign-in each belongs to (for sign-out). */
  async *userSignIns(userId: string): AsyncGenerator<Array<{ connectionId: string; signIn: string }>> {
    const index = TABLE.indexes.byUser;
    for await (const items of this.pages({ IndexName: index.name, ...this.keyIs(index.partitionKey, userId) })) {
      const live = items.filter((i) => this.live(i)).map((i) => ({ connectionId: i.connectionId as string, signIn: i.signIn as string }));
      if (live.length > 0) yield live;
    }
  }

  /** Connections whose credential expired by `nowSeconds`, looking back `lookbackSeconds` (minute buckets). */
  async *expiredConnections(nowSeconds: number, lookbackSeconds: number): AsyncGenerator<string[]> {
    const index = TABLE.indexes.byExpiry;
    for (let t = nowSeconds - lookbackSeconds; t <= nowSeconds + 59; t += 60) {
      for await (const items of this.pages({ IndexName: index.name, ...this.keyIs(index.partitionKey, keys.expiryBucket(t)) })) {
        const due = items.filter((i) => this.live(i) && Number(i.tokenExpiresAt) <= nowSeconds).map((i) => i.connectionId as string);
        if (due.length > 0) yield due;
      }
    }
  }

  /** Deletes the connection and every membership it holds. Safe to repeat. Returns the number of items removed. */
  async deleteConnection(connectionId: string): Promise<number> {
    let removed = 0;
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: '#pk = :pk',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey, '#sk': TABLE.sortKey },
          ExpressionAttributeValues: { ':pk': keys.connectionPartition(connectionId) },
          ProjectionExpression: '#pk, #sk',
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      const items = page.Items ?? [];
      for (let i = 0; i < items.length; i += BATCH) {
        await this.batchDelete(items.slice(i, i + BATCH));
      }
      removed += items.length;
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return removed;
  }

  private async batchDelete(items: Record<string, unknown>[]): Promise<void> {
    let requests = items.map((item) => ({
      DeleteRequest: { Key: { [TABLE.partitionKey]: item[TABLE.partitionKey], [TABLE.sortKey]: item[TABLE.sortKey] } },
    }));
    for (let attempt = 0; requests.length > 0; attempt++) {
      if (attempt > 0) {
        if (attempt > 6) throw new Error(`BatchWrite left ${requests.length} deletes unprocessed`);
        await sleep(Math.min(1000, 25 * 2 ** attempt));
      }
      const result = await this.db.send(
        new BatchWriteCommand({ RequestItems: { [this.tableName]: requests } }),
      );
      requests = (result.UnprocessedItems?.[this.tableName] ?? []) as typeof requests;
    }
  }

  async join(connection: Pick<ConnectionRecord, 'connectionId' | 'tenantId' | 'expiresAt'>, room: string): Promise<void> {
    await this.db.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...keys.membership(connection.connectionId, room),
          connectionId: connection.connectionId,
          room,
          [TABLE.indexes.byRoom.partitionKey]: keys.room(connection.tenantId, room),
          [TABLE.ttlAttribute]: connection.expiresAt,
        },
      }),
    );
  }

  /** Returns whether the membership existed. */
  async leave(connectionId: string, room: string): Promise<boolean> {
    const { Attributes } = await this.db.send(
      new DeleteCommand({
        TableName: this.tableName,
        Key: keys.membership(connectionId, room),
        ReturnValues: 'ALL_OLD',
      }),
    );
    return this.live(Attributes);
  }

  async isMember(connectionId: string, room: string): Promise<boolean> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: keys.membership(connectionId, room), ConsistentRead: true }),
    );
    return this.live(Item);
  }

  /** Rooms the connection currently holds. */
  async countRooms(connectionId: string): Promise<number> {
    let count = 0;
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :room)',
          FilterExpression: '#ttl > :now',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey, '#sk': TABLE.sortKey, '#ttl': TABLE.ttlAttribute },
          ExpressionAttributeValues: {
            ':pk': keys.connectionPartition(connectionId),
            ':room': keys.roomPrefix,
            ':now': Math.floor(this.now() / 1000),
          },
          Select: 'COUNT',
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      count += page.Count ?? 0;
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return count;
  }

  /** Allocates the room's next sequence number (atomic counter; the first message of a room gets 1). */
  async nextSeq(tenantId: string, room: string): Promise<number> {
    const { Attributes } = await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.counter(tenantId, room),
        UpdateExpression: 'ADD #value :one SET #ttl = :ttl',
        ExpressionAttributeNames: { '#value': 'value', '#ttl': TABLE.ttlAttribute },
        ExpressionAttributeValues: { ':one': 1, ':ttl': Math.floor(this.now() / 1000) + COUNTER_TTL_SECONDS },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    return Attributes?.value as number;
  }

  /** The room's latest sequence number (0 for a room that never had a message). */
  async headSeq(tenantId: string, room: string): Promise<number> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: keys.counter(tenantId, room), ConsistentRead: true }),
    );
    return (Item?.value as number | undefined) ?? 0;
  }

  async appendHistory(tenantId: string, room: string, seq: number, event: string, expiresAt: number): Promise<void> {
    await this.db.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          pk: keys.historyPartition(tenantId, room),
          sk: keys.historySort(seq),
          seq,
          event,
          [TABLE.ttlAttribute]: expiresAt,
        },
      }),
    );
  }

  /** Messages of the room after `after`, oldest first, at most `limit`; expired ones are skipped. */
  async historyAfter(tenantId: string, room: string, after: number, limit: number): Promise<HistoryItem[]> {
    const items: HistoryItem[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: '#pk = :pk AND #sk > :after',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey, '#sk': TABLE.sortKey },
          ExpressionAttributeValues: { ':pk': keys.historyPartition(tenantId, room), ':after': keys.historySort(after) },
          ConsistentRead: true,
          Limit: Math.min(limit, this.pageSize),
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) {
        if (this.live(item) && items.length < limit) items.push({ seq: item.seq as number, event: item.event as string });
      }
      startKey = items.length < limit ? page.LastEvaluatedKey : undefined;
    } while (startKey);
    return items;
  }

  /** Connection ids in a room of a tenant, a page at a time. */
  roomMembers(tenantId: string, room: string): AsyncGenerator<string[]> {
    return this.queryIndex(TABLE.indexes.byRoom, keys.room(tenantId, room));
  }

  /** Every live connection of a user (all of the user's sockets, any tenant). */
  userConnections(userId: string): AsyncGenerator<string[]> {
    return this.queryIndex(TABLE.indexes.byUser, userId);
  }

  tenantConnections(tenantId: string): AsyncGenerator<string[]> {
    return this.queryIndex(TABLE.indexes.byTenant, tenantId);
  }

  private async *queryIndex(index: Index, value: string): AsyncGenerator<string[]> {
    const query = this.keyIs(index.partitionKey, value);
    for await (const items of this.pages({
      IndexName: index.name,
      ...query,
      ExpressionAttributeNames: { ...query.ExpressionAttributeNames, '#id': 'connectionId', '#ttl': TABLE.ttlAttribute },
      ProjectionExpression: '#id, #ttl',
    })) {
      const ids = items.filter((item) => this.live(item)).map((item) => item.connectionId as string);
      if (ids.length > 0) yield ids;
    }
  }

  private keyIs(attribute: string, value: string) {
    return {
      KeyConditionExpression: '#k = :v',
      ExpressionAttributeNames: { '#k': attribute } as Record<string, string>,
      ExpressionAttributeValues: { ':v': value },
    };
  }

  /** An index Query, page by page (`pageSize` items each). */
  private async *pages(input: Omit<QueryCommandInput, 'TableName'>): AsyncGenerator<Record<string, unknown>[]> {
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(new QueryCommand({ TableName: this.tableName, Limit: this.pageSize, ...input, ExclusiveStartKey: startKey }));
      yield page.Items ?? [];
      startKey = page.LastEvaluatedKey;
    } while (startKey);
  }
}
