/**
 * The connection store: connections, room memberships, users' connections, room sequence numbers and history in
 * DynamoDB (layout: common/table-schema.ts).
 *
 * Invariants:
 * - Every read a guarantee rests on is a strongly consistent read of the base table, never of an index: a room's
 *   members (broadcast), a user's connections (the cap, sign-out), a connection's rooms. An index may lag a write.
 * - Caps are conditions on a single item, so concurrent requests cannot overshoot them: a user's connections are a
 *   map on one item (`size(conns) < :max`), a connection's rooms a set on its item (`size(rooms) < :max`).
 * - A room's counter never expires, so its numbering never restarts under a client that still holds a number.
 * - Writes are idempotent where Lambda may retry them; every read skips items whose TTL has passed, because
 *   DynamoDB deletes expired items lazily (days later).
 */
import {
  BatchWriteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { isConditionFailed } from '../../common/dynamo-errors';
import { batchGetAll, isLive } from './dynamo-read';
import type { TokenSource } from '../../common/handshake';
import { TABLE, keys } from '../../common/table-schema';
import type { Identity } from './identity';
import { ConversationStore } from './conversation-store';
import { FanoutStore } from './fanout-store';
import { MembershipStore, SPLIT_CHECK_EVERY, shardOf, type MemberRef } from './membership-store';
import { PresenceStore } from './presence-store';

export interface ConnectionRecord extends Identity {
  connectionId: string;
  /** The display name others see, looked up by the authorizer from the verified identity (see profiles.ts). */
  name?: string;
  /** How the connection authenticated. */
  source: TokenSource;
  /** Epoch milliseconds. */
  connectedAt: number;
  /** Epoch seconds: TTL of the connection and of its memberships. */
  expiresAt: number;
}

/** The rate limiter's state, kept on the connection item. */
export interface RateState {
  /** Signed out while its handshake was still completing (see signOut). */
  revoked?: boolean;
  /** Epoch milliseconds: the token bucket's theoretical arrival time (GCRA). */
  rlTat?: number;
  /** Refusals since the bucket was last full. */
  rlStrikes?: number;
}

export type StoredConnection = ConnectionRecord &
  RateState & {
    rooms: string[];
    /** The connection's shard in each split room it joined (membership-store.ts); absent: shard 0. */
    roomShards?: Record<string, number>;
  };

const SHARD_ATTRIBUTE = keys.roomShardAttribute('');

/** The `rs#<room>` attributes of a connection item: its shard in each split room (the others are shard 0). */
function roomShardsOf(item: Record<string, unknown>): Record<string, number> {
  const shards: Record<string, number> = {};
  for (const [name, value] of Object.entries(item)) if (name.startsWith(SHARD_ATTRIBUTE) && typeof value === 'number') shards[name.slice(SHARD_ATTRIBUTE.length)] = value;
  return shards;
}

export interface StoreOptions {
  now?: () => number;
  /** Items per page when reading a room's members. */
  pageSize?: number;
  /** A join counts the room's own partition (to split a crowded room) one time in this many. @default SPLIT_CHECK_EVERY */
  splitCheckEvery?: number;
  /** @default Math.random */
  random?: () => number;
}

export interface HistoryItem {
  seq: number;
  /** The message exactly as it was delivered (JSON). */
  event: string;
}

/** A published event's delivery record: the sequence number and content it was given, once. */
export interface PublishedRecord {
  seq?: number;
  messageId?: string;
  ts?: number;
  /** Messages of the room up to this one (see nextNumber). */
  n?: number;
}

/** A user's last socket left a room (their presence there ended) when a connection was removed. */
export interface Departure {
  tenantId: string;
  room: string;
  userId: string;
  name: string;
  v: number;
}

export type PublishClaim = { claimed: true; record: PublishedRecord } | { claimed: false; done: boolean };

const BATCH = 25;
/** How long after going idle a bucket is still charged by increment (see gcra). */
const IDLE_SLACK_MS = 1000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class ConnectionStore {
  private readonly now: () => number;
  private readonly pageSize: number;
  private readonly splitCheckEvery: number;
  private readonly random: () => number;
  /** Who is in each room, per user (presence-store.ts). */
  readonly presence: PresenceStore;
  /** Edits and deletions in history, read cursors, users' rooms (conversation-store.ts). */
  readonly conversation: ConversationStore;
  /** Rooms' members, a big room's spread over shards (membership-store.ts). */
  readonly members: MembershipStore;
  /** Progress of big rooms' deliveries, shard by shard (fanout-store.ts). */
  readonly fanouts: FanoutStore;

  constructor(
    private readonly db: DynamoDBDocumentClient,
    readonly tableName: string,
    options: StoreOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.pageSize = options.pageSize ?? 250;
    this.splitCheckEvery = options.splitCheckEvery ?? SPLIT_CHECK_EVERY;
    this.random = options.random ?? Math.random;
    this.presence = new PresenceStore(db, tableName, this.now);
    this.conversation = new ConversationStore(db, tableName, this.now);
    this.members = new MembershipStore(db, tableName, this.now);
    this.fanouts = new FanoutStore(db, tableName, this.now);
  }

  private seconds(): number {
    return Math.floor(this.now() / 1000);
  }

  private live(item: Record<string, unknown> | undefined): boolean {
    return isLive(item, this.now());
  }

  // --- connections and the per-user cap ---------------------------------------------------------------------

  /**
   * Takes one of the user's `max` connection slots for `connectionId`, atomically: of any number of concurrent
   * connects, at most `max` succeed. Slots of connections that expired, or whose record is gone, are reclaimed when
   * the user is at the cap; so the connection's record must be written before its slot is taken. Returns false when
   * the user holds `max` live connections.
   */
  async registerUserConnection(userId: string, connectionId: string, expiresAt: number, max: number): Promise<boolean> {
    const key = keys.user(userId);
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        await this.db.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: key,
            UpdateExpression: 'SET conns.#id = :exp, #ttl = :ttl',
            ConditionExpression: 'attribute_exists(conns) AND (size(conns) < :max OR attribute_exists(conns.#id))',
            ExpressionAttributeNames: { '#id': connectionId, '#ttl': TABLE.ttlAttribute },
            ExpressionAttributeValues: { ':exp': expiresAt, ':ttl': expiresAt, ':max': max },
          }),
        );
        return true;
      } catch (err) {
        if (!isConditionFailed(err)) throw err;
      }
      const { Item } = await this.db.send(new GetCommand({ TableName: this.tableName, Key: key, ConsistentRead: true }));
      if (!Item?.conns) {
        // First connection of this user (or the item expired): create the map with this slot in it.
        try {
          await this.db.send(
            new PutCommand({
              TableName: this.tableName,
              Item: { ...key, conns: { [connectionId]: expiresAt }, [TABLE.ttlAttribute]: expiresAt },
              ConditionExpression: 'attribute_not_exists(#pk) OR #ttl < :now',
              ExpressionAttributeNames: { '#pk': TABLE.partitionKey, '#ttl': TABLE.ttlAttribute },
              ExpressionAttributeValues: { ':now': this.seconds() },
            }),
          );
          return true;
        } catch (err) {
          if (!isConditionFailed(err)) throw err;
          continue; // created concurrently: take a slot in it
        }
      }
      const conns = Item.conns as Record<string, number>;
      if (Object.keys(conns).length < max) continue;
      const stale = await this.staleSlots(conns);
      if (stale.length === 0) return false;
      await this.releaseSlots(userId, stale, conns).catch((err) => {
        if (!isConditionFailed(err)) throw err;
      });
    }
    return false;
  }

  /** Slots whose connection expired or no longer has a record (it vanished and was purged). */
  private async staleSlots(conns: Record<string, number>): Promise<string[]> {
    const now = this.seconds();
    const expired = Object.entries(conns).filter(([, exp]) => exp <= now).map(([id]) => id);
    const others = Object.keys(conns).filter((id) => !expired.includes(id));
    const present = new Set((await this.batchGet(others.map((id) => keys.connection(id)), 'connectionId')).map((i) => i.connectionId as string));
    return [...expired, ...others.filter((id) => !present.has(id))];
  }

  /** Removes slots, each only if it still holds the value that made it stale (never a slot retaken meanwhile). */
  private async releaseSlots(userId: string, ids: string[], seen: Record<string, number>): Promise<void> {
    const names = Object.fromEntries(ids.map((id, i) => [`#c${i}`, id]));
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.user(userId),
        UpdateExpression: `REMOVE ${ids.map((_, i) => `conns.#c${i}`).join(', ')}`,
        ConditionExpression: ids.map((_, i) => `conns.#c${i} = :v${i}`).join(' AND '),
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: Object.fromEntries(ids.map((id, i) => [`:v${i}`, seen[id]])),
      }),
    );
  }

  /** Frees the user's slot of a connection (safe to repeat). */
  async unregisterUserConnection(userId: string, connectionId: string): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.user(userId),
          UpdateExpression: 'REMOVE conns.#id',
          ConditionExpression: 'attribute_exists(conns.#id)',
          ExpressionAttributeNames: { '#id': connectionId },
        }),
      );
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
    }
  }

  /** The user's registered connections (strongly consistent; includes any not yet purged). */
  async userConnectionIds(userId: string): Promise<string[]> {
    const { Item } = await this.db.send(new GetCommand({ TableName: this.tableName, Key: keys.user(userId), ConsistentRead: true }));
    const now = this.seconds();
    return Object.entries((Item?.conns ?? {}) as Record<string, number>)
      .filter(([, exp]) => exp > now)
      .map(([id]) => id);
  }

  /** A user's live connections with the sign-in each belongs to and when it connected (for sign-out). */
  async userSignIns(userId: string): Promise<Array<{ connectionId: string; signIn: string; connectedAt: number }>> {
    const ids = await this.userConnectionIds(userId);
    const items = await this.batchGet(ids.map((id) => keys.connection(id)), 'connectionId, signIn, connectedAt, #ttl');
    return items
      .filter((i) => this.live(i))
      .map((i) => ({ connectionId: i.connectionId as string, signIn: i.signIn as string, connectedAt: Number(i.connectedAt) }));
  }

  /** Marks a connection signed out: every frame it sends closes it (for a socket API Gateway has not opened yet). */
  async markRevoked(connectionId: string): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.connection(connectionId),
          UpdateExpression: 'SET revoked = :true',
          ConditionExpression: 'attribute_exists(#pk)',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
          ExpressionAttributeValues: { ':true': true },
        }),
      );
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
    }
  }

  async putConnection(record: ConnectionRecord): Promise<void> {
    await this.db.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...keys.connection(record.connectionId),
          ...record,
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
    const { pk: _pk, sk: _sk, gsiExpiry: _e, rooms, ...rest } = Item as Record<string, unknown>;
    const roomShards = roomShardsOf(rest);
    const record = Object.fromEntries(Object.entries(rest).filter(([name]) => !name.startsWith(SHARD_ATTRIBUTE)));
    return {
      ...(record as unknown as ConnectionRecord & RateState),
      rooms: rooms instanceof Set ? [...(rooms as Set<string>)] : [],
      ...(Object.keys(roomShards).length > 0 ? { roomShards } : {}),
    };
  }

  /**
   * A renewed credential (see refreshIdentity): the connection now stands for `identity`'s sign-in and session
   * and lives until its expiry (the sweeper looks for it then), as do its memberships, which deliveries check.
   * Returns false when the connection is gone.
   */
  async renewConnection(connectionId: string, identity: Identity): Promise<boolean> {
    let rooms: string[];
    let shards: Record<string, number>;
    try {
      const { Attributes } = await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.connection(connectionId),
          UpdateExpression: `SET tokenExpiresAt = :exp, #bucket = :bucket, signIn = :signIn, issuedAt = :iat${identity.session ? ', #session = :session' : ''}${identity.session ? '' : ' REMOVE #session'}`,
          ConditionExpression: 'attribute_exists(#pk)',
          ExpressionAttributeNames: { '#bucket': TABLE.indexes.byExpiry.partitionKey, '#pk': TABLE.partitionKey, '#session': 'session' },
          ExpressionAttributeValues: {
            ':exp': identity.tokenExpiresAt,
            ':bucket': keys.expiryBucket(identity.tokenExpiresAt),
            ':signIn': identity.signIn,
            ':iat': identity.issuedAt,
            ...(identity.session ? { ':session': identity.session } : {}),
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      rooms = Attributes?.rooms instanceof Set ? [...(Attributes.rooms as Set<string>)] : [];
      shards = roomShardsOf(Attributes ?? {});
    } catch (err) {
      if (isConditionFailed(err)) return false;
      throw err;
    }
    // A join racing this renewal re-reads the connection after writing its membership (see join): between the two,
    // every membership ends up with the later expiry.
    const tenantId = identity.tenantId;
    await Promise.all(rooms.map((room) => this.members.setExpiry(tenantId, room, connectionId, shards[room] ?? 0, identity.tokenExpiresAt)));
    return true;
  }

  /**
   * Charges a frame (`cost` tokens: a join's replay costs more) to two token buckets, the user's (shared by all of
   * the user's sockets, kept on the user's item, so opening more sockets or reopening one buys nothing) and then
   * the connection's. Each is the generic cell rate algorithm's single number (the theoretical arrival time,
   * `rlTat`), so every decision is one conditional update that either holds or fails, never a read-modify-write
   * that gives up under contention. A refusal by either counts a strike on the connection; strikes are forgiven
   * only when both buckets were full (the client went quiet), so a sustained flood adds up to a disconnect however
   * many frames slip through as tokens trickle back. Returns undefined when the connection is gone. Whatever the
   * interleaving of concurrent frames, at most `burst` pass at once and then one per `1/rate` s, per connection
   * and per user, and every frame refused is counted.
   */
  async takeToken(
    connection: Pick<StoredConnection, 'connectionId' | 'userId' | 'rlTat'>,
    limits: { rate: number; burst: number; userRate: number; userBurst: number },
    cost = 1,
  ): Promise<{ allowed: boolean; strikes: number } | undefined> {
    const user = await this.gcra(keys.user(connection.userId), limits.userRate, limits.userBurst, cost, false);
    // A frame into two full buckets starts afresh (strikes forgiven); otherwise the strikes stand.
    const own = user === 'refused' ? 'refused' : await this.gcra(keys.connection(connection.connectionId), limits.rate, limits.burst, cost, user === 'idle', { tat: connection.rlTat });
    if (own === 'gone') return undefined;
    if (own !== 'refused') return { allowed: true, strikes: 0 };
    try {
      const { Attributes } = await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.connection(connection.connectionId),
          UpdateExpression: 'ADD rlStrikes :one',
          ConditionExpression: 'attribute_exists(#pk)',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
          ExpressionAttributeValues: { ':one': 1 },
          ReturnValues: 'UPDATED_NEW',
        }),
      );
      return { allowed: false, strikes: Attributes?.rlStrikes as number };
    } catch (err) {
      if (isConditionFailed(err)) return undefined;
      throw err;
    }
  }

  /**
   * One GCRA decision on the bucket kept on `key`'s item: 'idle' (the bucket was full), 'allowed', 'refused', or
   * 'gone' (no such item). A busy bucket is charged by an increment, which commutes with every other frame's: it
   * fails only when the bucket is over its burst at that instant (refused) or has gone idle (then it is restarted).
   * So concurrent frames do not conflict with each other, and a handful of steps decides every frame.
   * `forgive` resets the item's strikes when the bucket was full.
   */
  private async gcra(
    key: Record<string, string>,
    rate: number,
    burst: number,
    cost: number,
    forgive: boolean,
    hint?: { tat: number | undefined },
  ): Promise<'idle' | 'allowed' | 'refused' | 'gone'> {
    const interval = 1000 / rate;
    const n = Math.min(cost, burst);
    const names = { '#pk': TABLE.partitionKey };
    // What the caller last read of the bucket picks the first step; without it, a busy bucket is assumed.
    let idle = hint !== undefined && (hint.tat === undefined || hint.tat < this.now() - IDLE_SLACK_MS);
    for (let step = 0; step < 6; step++) {
      const now = this.now();
      try {
        await this.db.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: key,
            ...(idle
              ? {
                  // The bucket is full: this frame starts a new burst.
                  UpdateExpression: forgive ? 'SET rlTat = :next, rlStrikes = :zero' : 'SET rlTat = :next',
                  ConditionExpression: 'attribute_exists(#pk) AND (attribute_not_exists(rlTat) OR rlTat < :now)',
                  ExpressionAttributeValues: { ':next': now + n * interval, ':now': now, ...(forgive ? { ':zero': 0 } : {}) },
                }
              : {
                  // A bucket that went idle within the last second is still charged by increment: frames in flight
                  // together must not all fall back to a restart. It grants at most a second's worth more.
                  UpdateExpression: 'SET rlTat = rlTat + :cost',
                  ConditionExpression: 'attribute_exists(#pk) AND rlTat >= :floor AND rlTat <= :limit',
                  ExpressionAttributeValues: { ':cost': n * interval, ':floor': now - IDLE_SLACK_MS, ':limit': now + (burst - n) * interval },
                }),
            ExpressionAttributeNames: names,
          }),
        );
        return idle ? 'idle' : 'allowed';
      } catch (err) {
        if (!isConditionFailed(err)) throw err;
      }
      // Over the burst, idle, restarted by another frame, or gone: what is stored now says which.
      const { Item } = await this.db.send(new GetCommand({ TableName: this.tableName, Key: key, ConsistentRead: true, ProjectionExpression: 'rlTat, #pk', ExpressionAttributeNames: names }));
      if (!Item) return 'gone';
      const tat = Item.rlTat as number | undefined;
      const at = this.now();
      idle = tat === undefined || tat < at - IDLE_SLACK_MS;
      if (!idle && tat! + n * interval > at + burst * interval) return 'refused';
    }
    // Six steps each lost to a frame that moved the bucket across a boundary: it is at its burst, so refuse.
    return 'refused';
  }

  /** Connections whose credential expired by `nowSeconds`, looking back `lookbackSeconds` (minute buckets). */
  async *expiredConnections(nowSeconds: number, lookbackSeconds: number): AsyncGenerator<string[]> {
    const index = TABLE.indexes.byExpiry;
    for (let t = nowSeconds - lookbackSeconds; t <= nowSeconds + 59; t += 60) {
      let startKey: Record<string, unknown> | undefined;
      do {
        const page = await this.db.send(
          new QueryCommand({
            TableName: this.tableName,
            IndexName: index.name,
            KeyConditionExpression: '#k = :v',
            ExpressionAttributeNames: { '#k': index.partitionKey },
            ExpressionAttributeValues: { ':v': keys.expiryBucket(t) },
            Limit: this.pageSize,
            ExclusiveStartKey: startKey,
          }),
        );
        // The index may lag a refresh: candidates only; the sweeper re-reads each one before closing it.
        const due = (page.Items ?? []).filter((i) => this.live(i) && Number(i.tokenExpiresAt) <= nowSeconds).map((i) => i.connectionId as string);
        if (due.length > 0) yield due;
        startKey = page.LastEvaluatedKey;
      } while (startKey);
    }
  }

  /**
   * Deletes the connection, every room membership it holds and its slot in the user's connections. Safe to repeat.
   * Returns the number of items removed.
   */
  async deleteConnection(connectionId: string): Promise<number> {
    return (await this.removeConnection(connectionId)).removed;
  }

  /**
   * deleteConnection, saying also whose presence ended with it (the caller announces them: see presence.ts). The
   * connection leaves each room's presence after its memberships are gone, so no delivery reaches it after "left".
   */
  async removeConnection(connectionId: string): Promise<{ removed: number; departures: Departure[] }> {
    const items: Record<string, unknown>[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: '#pk = :pk',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
          ExpressionAttributeValues: { ':pk': keys.connectionPartition(connectionId) },
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      items.push(...(page.Items ?? []));
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    const connection = items.find((i) => i[TABLE.sortKey] === 'conn');
    const rooms = connection?.rooms instanceof Set ? [...(connection.rooms as Set<string>)] : [];
    const shards = connection ? roomShardsOf(connection) : {};
    const deletes = [
      ...items.map((i) => ({ [TABLE.partitionKey]: i[TABLE.partitionKey], [TABLE.sortKey]: i[TABLE.sortKey] })),
      ...(connection ? rooms.map((room) => keys.member(connection.tenantId as string, room, connectionId, shards[room] ?? 0)) : []),
    ];
    for (let i = 0; i < deletes.length; i += BATCH) await this.batchDelete(deletes.slice(i, i + BATCH));
    const departures: Departure[] = [];
    if (connection) {
      const tenantId = connection.tenantId as string;
      const userId = connection.userId as string;
      await this.unregisterUserConnection(userId, connectionId);
      const exits = await Promise.all(rooms.map((room) => this.presence.exit(tenantId, room, userId, connectionId)));
      exits.forEach((exit, i) => {
        if (exit?.changed) departures.push({ tenantId, room: rooms[i], userId, name: exit.name, v: exit.v });
      });
    }
    return { removed: deletes.length, departures };
  }

  // --- rooms --------------------------------------------------------------------------------------------------

  /**
   * Adds the connection to a room: the room's list of members (what deliveries read; in a split room, the shard
   * the connection hashes to) and the connection's set of rooms (what sends and disconnects read), the latter at
   * most `maxRooms`, atomically, with the shard beside it. Joining a room again keeps the shard the connection is
   * in: a member is never in two shards. Returns 'limit' when the connection already holds `maxRooms` other rooms,
   * 'gone' when the connection no longer exists.
   */
  async join(
    connection: Pick<StoredConnection, 'connectionId' | 'tenantId' | 'userId' | 'expiresAt' | 'tokenExpiresAt'>,
    room: string,
    maxRooms: number,
  ): Promise<'joined' | 'limit' | 'gone'> {
    const { connectionId, tenantId } = connection;
    const attribute = keys.roomShardAttribute(room);
    const count = await this.members.shardCount(tenantId, room);
    let shard = shardOf(connectionId, count);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.db.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: keys.connection(connectionId),
            UpdateExpression: `ADD rooms :room${shard > 0 ? ' SET #shard = :shard' : ''}`,
            ConditionExpression: 'attribute_exists(#pk) AND NOT contains(rooms, :name) AND (attribute_not_exists(rooms) OR size(rooms) < :max)',
            ExpressionAttributeNames: { '#pk': TABLE.partitionKey, ...(shard > 0 ? { '#shard': attribute } : {}) },
            ExpressionAttributeValues: { ':room': new Set([room]), ':max': maxRooms, ':name': room, ...(shard > 0 ? { ':shard': shard } : {}) },
          }),
        );
        break;
      } catch (err) {
        if (!isConditionFailed(err)) throw err;
        const current = await this.getConnection(connectionId);
        if (!current) return 'gone';
        if (current.rooms.includes(room)) {
          // Joined already (a rejoin, or a concurrent join of the same room): its member item stays where it is.
          shard = current.roomShards?.[room] ?? 0;
          break;
        }
        // Not in the room and under the limit: a leave ran between the condition and the read. Try once more.
        if (current.rooms.length >= maxRooms || attempt >= 2) return 'limit';
      }
    }
    await this.members.put(tenantId, room, shard, { connectionId, userId: connection.userId, credExp: connection.tokenExpiresAt, expiresAt: connection.expiresAt });
    // A room filling up before anyone posts is split on the way (a sample of joins count its own partition).
    if (count === 1 && this.random() * this.splitCheckEvery < 1) await this.members.splitIfCrowded(tenantId, room);
    // A renewal may have run since the connection was read: the membership takes its expiry too.
    const current = await this.getConnection(connectionId);
    if (current && current.tokenExpiresAt > connection.tokenExpiresAt) {
      await this.members.setExpiry(tenantId, room, connectionId, shard, current.tokenExpiresAt);
    }
    return 'joined';
  }

  /** Returns whether the connection was in the room. */
  async leave(connection: Pick<StoredConnection, 'connectionId' | 'tenantId'>, room: string): Promise<boolean> {
    let was = false;
    let shard = 0;
    try {
      const { Attributes } = await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.connection(connection.connectionId),
          UpdateExpression: 'DELETE rooms :room REMOVE #shard',
          ConditionExpression: 'contains(rooms, :name)',
          ExpressionAttributeNames: { '#shard': keys.roomShardAttribute(room) },
          ExpressionAttributeValues: { ':room': new Set([room]), ':name': room },
          ReturnValues: 'ALL_OLD',
        }),
      );
      was = true;
      shard = roomShardsOf(Attributes ?? {})[room] ?? 0;
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
    }
    await this.removeMember(connection.tenantId, room, connection.connectionId, shard);
    return was;
  }

  /** Removes one membership from a room's list (a connection that left, or answered 410 Gone), in its shard. */
  async removeMember(tenantId: string, room: string, connectionId: string, shard = 0): Promise<void> {
    await this.members.remove(tenantId, room, connectionId, shard);
  }

  /** Connection ids in a room of a tenant, a page at a time, read strongly consistently. */
  async *roomMembers(tenantId: string, room: string): AsyncGenerator<string[]> {
    for await (const page of this.roomMemberRefs(tenantId, room)) yield page.map((m) => m.connectionId);
  }

  /** roomMembers, with the user and shard of each connection (memberships written before names were kept say no user). */
  async *roomMemberRefs(tenantId: string, room: string, pageSize = this.pageSize): AsyncGenerator<MemberRef[]> {
    for await (const page of this.members.refs(tenantId, room, pageSize)) if (page.length > 0) yield page;
  }

  /**
   * The room's members when there are at most `max` of them (a strongly consistent read of about `max + 1`);
   * undefined for a bigger room. Room signals (presence, typing) go only to rooms this small.
   */
  roomMembersUpTo(tenantId: string, room: string, max: number): Promise<string[] | undefined> {
    return this.members.upTo(tenantId, room, max);
  }

  // --- sequence numbers and history ---------------------------------------------------------------------------

  /**
   * Allocates the room's next sequence number (atomic counter; the first message of a room gets 1). The counter
   * never expires: were it deleted, numbering would restart under clients that still hold a number and drop what
   * follows as already seen. A counter written with a TTL by an earlier version loses it here.
   */
  async nextSeq(tenantId: string, room: string): Promise<number> {
    return (await this.nextNumber(tenantId, room, false)).seq;
  }

  /**
   * nextSeq, counting messages apart (`msgs`: edits and deletions take a sequence number but are no message):
   * `n` is the number of messages up to and including this number, what unread counts subtract.
   */
  async nextNumber(tenantId: string, room: string, message: boolean): Promise<{ seq: number; n: number }> {
    const { Attributes } = await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.counter(tenantId, room),
        UpdateExpression: `ADD #value :one${message ? ', msgs :one' : ''} REMOVE #ttl`,
        ExpressionAttributeNames: { '#value': 'value', '#ttl': TABLE.ttlAttribute },
        ExpressionAttributeValues: { ':one': 1 },
        ReturnValues: 'ALL_NEW',
      }),
    );
    return { seq: Attributes?.value as number, n: Number(Attributes?.msgs ?? 0) };
  }

  /** The room's latest sequence number (0 for a room that never had a message). */
  async headSeq(tenantId: string, room: string): Promise<number> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: keys.counter(tenantId, room), ConsistentRead: true }),
    );
    return (Item?.value as number | undefined) ?? 0;
  }

  /**
   * Stores a room event at its sequence number, with `n` (messages up to it). `onlyNew`: refused (false) when the
   * number already holds one (a deletion's tombstone written first: see conversation.ts).
   */
  async appendHistory(tenantId: string, room: string, seq: number, event: string, expiresAt: number, extra: { n?: number; onlyNew?: boolean } = {}): Promise<boolean> {
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            ...keys.historyItem(tenantId, room, seq),
            seq,
            event,
            ...(extra.n === undefined ? {} : { n: extra.n }),
            [TABLE.ttlAttribute]: expiresAt,
          },
          ...(extra.onlyNew ? { ConditionExpression: 'attribute_not_exists(#pk)', ExpressionAttributeNames: { '#pk': TABLE.partitionKey } } : {}),
        }),
      );
      return true;
    } catch (err) {
      if (extra.onlyNew && isConditionFailed(err)) return false;
      throw err;
    }
  }

  /**
   * Messages of the room after `after`, oldest first, at most `limit` and `maxBytes` (the first always, whatever
   * its size); expired ones are skipped. Reads stop at the budget, in small pages, so a capped replay also costs
   * only what it returns. `more`: messages beyond the budget remain.
   */
  historyAfter(tenantId: string, room: string, after: number, limit: number, maxBytes = Infinity): Promise<{ items: HistoryItem[]; more: boolean }> {
    return this.historyRange(tenantId, room, { after }, limit, maxBytes);
  }

  /**
   * A page of the room's history before `before` (exclusive; the newest page without it), read newest first and
   * returned oldest first: at most `limit` items and `maxBytes` (the first always). `next` is the cursor of the page
   * older than this one, when there may be one.
   */
  async historyBefore(tenantId: string, room: string, before: number | undefined, limit: number, maxBytes: number): Promise<{ items: HistoryItem[]; next?: number }> {
    const { items, more } = await this.historyRange(tenantId, room, { before }, limit, maxBytes);
    const oldest = items[items.length - 1]?.seq;
    return { items: items.reverse(), ...(more && oldest !== undefined ? { next: oldest } : {}) };
  }

  /** History items after `after` (oldest first) or before `before` (newest first), within the budget. */
  private async historyRange(
    tenantId: string,
    room: string,
    range: { after: number } | { before: number | undefined },
    limit: number,
    maxBytes: number,
  ): Promise<{ items: HistoryItem[]; more: boolean }> {
    const forward = 'after' in range;
    const bound = forward ? range.after : range.before;
    const items: HistoryItem[] = [];
    let bytes = 0;
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: bound === undefined ? '#pk = :pk' : `#pk = :pk AND #sk ${forward ? '>' : '<'} :bound`,
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey, ...(bound === undefined ? {} : { '#sk': TABLE.sortKey }) },
          ExpressionAttributeValues: { ':pk': keys.historyPartition(tenantId, room), ...(bound === undefined ? {} : { ':bound': keys.historySort(bound) }) },
          ScanIndexForward: forward,
          ConsistentRead: true,
          // One more than the budget when it is a count, to know whether more remain; small pages under a byte budget.
          Limit: Math.min(limit - items.length + 1, maxBytes === Infinity ? this.pageSize : 25),
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) {
        if (!this.live(item)) {
          // Expiry follows the sequence: reading backwards, what lies beyond an expired item has expired too (read no
          // further, however long the backlog DynamoDB has yet to delete).
          if (!forward) return { items, more: false };
          continue;
        }
        const size = Buffer.byteLength(item.event as string);
        if (items.length >= limit || (items.length > 0 && bytes + size > maxBytes)) return { items, more: true };
        items.push({ seq: item.seq as number, event: item.event as string });
        bytes += size;
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return { items, more: false };
  }

  // --- published events: one event id, one sequence number --------------------------------------------------

  /**
   * Claims a published event for delivery until `leaseUntil` (epoch ms). Fails while another invocation holds an
   * unexpired lease on it, or once it was delivered (`done`). The record returned carries the sequence number and
   * content an earlier attempt gave it, if any, so that a retry delivers the very same message.
   */
  async claimPublished(eventId: string, leaseUntil: number, expiresAt: number): Promise<PublishClaim> {
    try {
      const { Attributes } = await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.published(eventId),
          UpdateExpression: 'SET leaseUntil = :lease, #ttl = if_not_exists(#ttl, :ttl) ADD attempts :one',
          ConditionExpression: 'attribute_not_exists(done) AND (attribute_not_exists(leaseUntil) OR leaseUntil < :now)',
          ExpressionAttributeNames: { '#ttl': TABLE.ttlAttribute },
          ExpressionAttributeValues: { ':lease': leaseUntil, ':ttl': expiresAt, ':now': this.now(), ':one': 1 },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return { claimed: true, record: { seq: Attributes?.seq, messageId: Attributes?.messageId, ts: Attributes?.ts, ...(Attributes?.n === undefined ? {} : { n: Attributes.n }) } };
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
      const { Item } = await this.db.send(new GetCommand({ TableName: this.tableName, Key: keys.published(eventId), ConsistentRead: true }));
      return { claimed: false, done: Item?.done === true };
    }
  }

  /** Records the sequence number and content given to a claimed event (once: a second assignment is refused). */
  async assignPublished<R extends Required<Omit<PublishedRecord, 'n'>> & Pick<PublishedRecord, 'n'>>(eventId: string, record: R): Promise<Required<Omit<PublishedRecord, 'n'>> & Pick<PublishedRecord, 'n'>> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.published(eventId),
          UpdateExpression: `SET seq = :seq, messageId = :id, ts = :ts${record.n === undefined ? '' : ', n = :n'}`,
          ConditionExpression: 'attribute_not_exists(seq)',
          ExpressionAttributeValues: { ':seq': record.seq, ':id': record.messageId, ':ts': record.ts, ...(record.n === undefined ? {} : { ':n': record.n }) },
        }),
      );
      return record;
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
      const { Item } = await this.db.send(new GetCommand({ TableName: this.tableName, Key: keys.published(eventId), ConsistentRead: true }));
      return { seq: Item!.seq as number, messageId: Item!.messageId as string, ts: Item!.ts as number, ...(Item!.n === undefined ? {} : { n: Item!.n as number }) };
    }
  }

  /** Ends a claim: delivered (`done`, duplicates are then ignored), or released for a retry to take over. */
  async finishPublished(eventId: string, outcome: 'done' | 'released'): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.published(eventId),
        UpdateExpression: outcome === 'done' ? 'SET done = :true REMOVE leaseUntil' : 'REMOVE leaseUntil',
        ConditionExpression: 'attribute_exists(#pk)',
        ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
        ...(outcome === 'done' ? { ExpressionAttributeValues: { ':true': true } } : {}),
      }),
    );
  }

  // --- batches ------------------------------------------------------------------------------------------------

  private batchGet(keyList: Array<Record<string, string>>, projection: string): Promise<Record<string, unknown>[]> {
    return batchGetAll(this.db, this.tableName, keyList, projection);
  }

  private async batchDelete(keyList: Record<string, unknown>[]): Promise<void> {
    let requests = keyList.map((Key) => ({ DeleteRequest: { Key } }));
    for (let attempt = 0; requests.length > 0; attempt++) {
      if (attempt > 0) {
        if (attempt > 6) throw new Error(`BatchWrite left ${requests.length} deletes unprocessed`);
        await sleep(Math.min(1000, 25 * 2 ** attempt));
      }
      const result = await this.db.send(new BatchWriteCommand({ RequestItems: { [this.tableName]: requests } }));
      requests = (result.UnprocessedItems?.[this.tableName] ?? []) as typeof requests;
    }
  }
}
