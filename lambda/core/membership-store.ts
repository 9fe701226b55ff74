/**
 * A room's members: who a delivery posts to, read strongly consistently from the table (never an index).
 *
 * Layout (common/table-schema.ts). A room's members live in its own partition, `room#<tenant>#<room>`, one item
 * per connection. One partition takes about 3,000 strongly consistent read units and 1,000 writes a second, so a
 * room that grows past SPLIT_AT members is split into ROOM_SHARDS partitions: a marker item in the room's partition
 * (`sk = #shards`, sorted before every member, so a read of the partition meets it first at no extra cost) says how
 * many, and from then on a joining connection goes to shard `fnv1a(connectionId) % count` (`room#<tenant>#<room>#<k>`
 * for k > 0; shard 0 is the room's own partition, which keeps the members it had). A connection's shard in a room
 * is kept on its connection item (`rs#<room>`, absent for shard 0), so leaving, disconnecting and renewing find the
 * member item without reading the room. Readers read every shard; a room never goes back to one partition (its
 * marker has no TTL), and its members leave the old layout within two hours (every connection's lifetime).
 *
 * A room is split when it is found crowded: by a join (one in SPLIT_CHECK_EVERY, at random, counts the room's own
 * partition, so a room that fills up before its first message is split on the way) or by a delivery that counts
 * SPLIT_AT members there (fanout.ts). A delivery to a split room reads and posts each shard apart, in parallel, so
 * neither the reads nor the joins of a room of 100,000 meet one partition's limits.
 */
import { DeleteCommand, GetCommand, PutCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { isConditionFailed } from '../../common/dynamo-errors';
import { TABLE, keys } from '../../common/table-schema';
import { firstOf, partitionPages } from './dynamo-read';

/** Partitions a big room's members are spread over. */
export const ROOM_SHARDS = 16;
/** Members a room's own partition holds before the room is split. */
export const SPLIT_AT = 1000;
/** One join in this many (at random) counts the room's own partition: a room is split within about as many joins past SPLIT_AT. */
export const SPLIT_CHECK_EVERY = 64;

/** A member as a delivery needs it: the connection, its user (for `others` counts) and where its item is. */
export interface MemberRef {
  connectionId: string;
  userId?: string;
  shard: number;
}

/** A page of one shard, with the sort key to go on after (a delivery's checkpoint). */
export interface ShardPage {
  refs: MemberRef[];
  /** The sort key of the page's last item: read on after it. */
  last: string;
}

/** 32-bit FNV-1a of a connection id: a stable, even spread of connections over the shards. */
export function shardOf(connectionId: string, count: number): number {
  if (count <= 1) return 0;
  let hash = 0x811c9dc5;
  for (let i = 0; i < connectionId.length; i++) {
    hash ^= connectionId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % count;
}

const MEMBER_PREFIX = keys.member('', '', '').sk;

export class MembershipStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly now: () => number,
  ) {}

  /** How many shards the room's members are spread over (1: one partition). Eventually consistent unless asked. */
  async shardCount(tenantId: string, room: string, consistent = false): Promise<number> {
    const { Item } = await this.db.send(new GetCommand({ TableName: this.tableName, Key: keys.shardMarker(tenantId, room), ConsistentRead: consistent }));
    return typeof Item?.count === 'number' && Item.count > 1 ? Item.count : 1;
  }

  /** Splits the room (once: the first split's count stands). Joins from now on spread over `count` shards. */
  async split(tenantId: string, room: string, count = ROOM_SHARDS): Promise<void> {
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.shardMarker(tenantId, room), count },
          ConditionExpression: 'attribute_not_exists(#pk)',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
        }),
      );
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
    }
  }

  /**
   * Splits the room if its own partition holds SPLIT_AT members or more: a count of at most SPLIT_AT + 1 keys,
   * eventually consistent (about 40 read units at most; a join samples it, see SPLIT_CHECK_EVERY).
   */
  async splitIfCrowded(tenantId: string, room: string): Promise<boolean> {
    const { Count = 0 } = await this.db.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :member)',
        ExpressionAttributeNames: { '#pk': TABLE.partitionKey, '#sk': TABLE.sortKey },
        ExpressionAttributeValues: { ':pk': keys.memberPartition(tenantId, room, 0), ':member': MEMBER_PREFIX },
        Select: 'COUNT',
        Limit: SPLIT_AT,
      }),
    );
    if (Count < SPLIT_AT) return false;
    await this.split(tenantId, room);
    return true;
  }

  /** Writes the member item in its shard. */
  async put(tenantId: string, room: string, shard: number, member: { connectionId: string; userId: string; credExp: number; expiresAt: number }): Promise<void> {
    await this.db.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...keys.member(tenantId, room, member.connectionId, shard),
          connectionId: member.connectionId,
          userId: member.userId,
          // Deliveries skip a member whose credential has expired (the sweeper closes it later).
          credExp: member.credExp,
          [TABLE.ttlAttribute]: member.expiresAt,
        },
      }),
    );
  }

  async remove(tenantId: string, room: string, connectionId: string, shard: number): Promise<void> {
    await this.db.send(new DeleteCommand({ TableName: this.tableName, Key: keys.member(tenantId, room, connectionId, shard) }));
  }

  /** Sets a membership's credential expiry, only ever later (concurrent writers converge on the latest). */
  async setExpiry(tenantId: string, room: string, connectionId: string, shard: number, credentialExpiresAt: number): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.member(tenantId, room, connectionId, shard),
          UpdateExpression: 'SET credExp = :exp',
          ConditionExpression: 'attribute_exists(#pk) AND (attribute_not_exists(credExp) OR credExp < :exp)',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
          ExpressionAttributeValues: { ':exp': credentialExpiresAt },
        }),
      );
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
    }
  }

  /**
   * One shard's live members, a page at a time, from after `after` (a sort key: where an interrupted delivery got
   * to). Members whose credential expired are left out (the sweeper closes them). The marker is never a member.
   */
  async *shardPages(tenantId: string, room: string, shard: number, options: { pageSize: number; after?: string }): AsyncGenerator<ShardPage & { marker?: number }> {
    const pages = partitionPages(this.db, this.tableName, keys.memberPartition(tenantId, room, shard), {
      pageSize: options.pageSize,
      now: this.now,
      projection: '#sk, #id, #ttl, credExp, userId, #count',
      names: { '#sk': TABLE.sortKey, '#id': 'connectionId', '#ttl': TABLE.ttlAttribute, '#count': 'count' },
      ...(options.after ? { startAfter: { ...keys.member(tenantId, room, '', shard), [TABLE.sortKey]: options.after } } : {}),
    });
    for await (const page of pages) {
      const now = this.now();
      let marker: number | undefined;
      const refs: MemberRef[] = [];
      for (const item of page) {
        const sk = String(item[TABLE.sortKey]);
        if (sk === keys.shardMarker('', '').sk) {
          marker = Number(item.count);
          continue;
        }
        if (!sk.startsWith(MEMBER_PREFIX)) continue;
        if (typeof item.credExp === 'number' && item.credExp * 1000 <= now) continue;
        refs.push({ connectionId: String(item.connectionId), shard, ...(typeof item.userId === 'string' ? { userId: item.userId } : {}) });
      }
      yield { refs, last: String(page[page.length - 1][TABLE.sortKey]), ...(marker !== undefined ? { marker } : {}) };
    }
  }

  /** Every live member of the room, shard after shard, a page at a time (pages may be empty). */
  async *refs(tenantId: string, room: string, pageSize: number): AsyncGenerator<MemberRef[]> {
    let count = 1;
    for await (const page of this.shardPages(tenantId, room, 0, { pageSize })) {
      if (page.marker) count = page.marker;
      yield page.refs;
    }
    for (let shard = 1; shard < count; shard++) {
      for await (const page of this.shardPages(tenantId, room, shard, { pageSize })) yield page.refs;
    }
  }

  /**
   * The room's members when there are at most `max` of them, from one read of about `max + 1` items of its own
   * partition; undefined for a bigger room (a split room is one). Room signals (presence, typing) go only to rooms
   * this small.
   */
  async upTo(tenantId: string, room: string, max: number): Promise<string[] | undefined> {
    return (await this.upToRefs(tenantId, room, max))?.map((m) => m.connectionId);
  }

  /**
   * upTo, with each member's user and shard (what a delivery needs). A split room is counted across its shards (a
   * room that was big may have shrunk), and found big as soon as it is: one read of its own partition for a room
   * still crowded there.
   */
  async upToRefs(tenantId: string, room: string, max: number): Promise<MemberRef[] | undefined> {
    const { items, more } = await firstOf(this.refs(tenantId, room, max + 2), max, (ref) => ref);
    return more ? undefined : items;
  }
}
