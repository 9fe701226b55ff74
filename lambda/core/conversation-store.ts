/**
 * The conversation's state beyond the message stream, in the one table (layout: common/table-schema.ts):
 * - history items rewritten in place by edits and deletions (a deleted message's content is overwritten, and so
 *   is every edit event that carried it);
 * - one read cursor per user and room (the last seq read, and how many messages that is): "seen by" and unread
 *   counts are derived from cursors, never from an item per message per recipient;
 * - the set of rooms each user has joined in a tenant, so unread counts can be listed without a scan.
 * Every read a decision rests on is strongly consistent; every cursor write only ever moves it forward.
 */
import { DynamoDBDocumentClient, GetCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { isConditionFailed } from '../../common/dynamo-errors';
import { TABLE, keys } from '../../common/table-schema';
import type { Member, ReadCursor } from '../../protocol';
import { batchGetAll, firstOf, isLive, partitionPages } from './dynamo-read';

export interface StoredRoomEvent {
  seq: number;
  /** The event's JSON as it stands now (edited content, or a tombstone). */
  event: string;
  /** Messages of the room up to this seq. */
  n?: number;
  deleted?: boolean;
  /** Sequence numbers of the edit events of this message. */
  edits: number[];
  lastEdit?: number;
}

/** Most rooms whose unread counts a user's list keeps, per tenant. */
export const MAX_TRACKED_ROOMS = 100;

const numbers = (value: unknown): number[] => (value instanceof Set ? [...(value as Set<number>)].map(Number) : []);

export class ConversationStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly now: () => number,
  ) {}

  private live(item: Record<string, unknown> | undefined): boolean {
    return isLive(item, this.now());
  }

  async roomEvent(tenantId: string, room: string, seq: number): Promise<StoredRoomEvent | undefined> {
    const { Item } = await this.db.send(new GetCommand({ TableName: this.tableName, Key: keys.historyItem(tenantId, room, seq), ConsistentRead: true }));
    if (!this.live(Item)) return undefined;
    return {
      seq,
      event: String(Item!.event),
      ...(typeof Item!.n === 'number' ? { n: Item!.n } : {}),
      ...(Item!.deleted === true ? { deleted: true } : {}),
      edits: numbers(Item!.edits),
      ...(typeof Item!.lastEdit === 'number' ? { lastEdit: Item!.lastEdit } : {}),
    };
  }

  /**
   * Applies an edit (numbered `editSeq`) to the message at `target`: its content becomes `json`, unless it was
   * deleted, or a later edit already applied (edits apply in sequence order, as clients replay them). Either way
   * the edit's number is recorded on the message, so that a deletion finds every event that carried its content.
   */
  async applyEdit(tenantId: string, room: string, target: number, json: string, editSeq: number, ts: number): Promise<'applied' | 'superseded' | 'deleted'> {
    const key = keys.historyItem(tenantId, room, target);
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: key,
          UpdateExpression: 'SET event = :json, lastEdit = :seq, edited = :ts ADD edits :seqs',
          ConditionExpression: 'attribute_exists(#pk) AND attribute_not_exists(deleted) AND (attribute_not_exists(lastEdit) OR lastEdit < :seq)',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
          ExpressionAttributeValues: { ':json': json, ':seq': editSeq, ':ts': ts, ':seqs': new Set([editSeq]) },
        }),
      );
      return 'applied';
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
    }
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: key,
          UpdateExpression: 'ADD edits :seqs',
          ConditionExpression: 'attribute_exists(#pk) AND attribute_not_exists(deleted)',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
          ExpressionAttributeValues: { ':seqs': new Set([editSeq]) },
        }),
      );
      return 'superseded';
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
      return 'deleted';
    }
  }

  /**
   * Deletes the message at `target`: its item becomes `tombstone` (no content), once. Returns the edit events to
   * scrub, or undefined when it was deleted already.
   */
  async markDeleted(tenantId: string, room: string, target: number, tombstone: string): Promise<number[] | undefined> {
    try {
      const { Attributes } = await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.historyItem(tenantId, room, target),
          UpdateExpression: 'SET event = :json, deleted = :true',
          ConditionExpression: 'attribute_exists(#pk) AND attribute_not_exists(deleted)',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
          ExpressionAttributeValues: { ':json': tombstone, ':true': true },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return numbers(Attributes?.edits);
    } catch (err) {
      if (isConditionFailed(err)) return undefined;
      throw err;
    }
  }

  /**
   * Overwrites a room event (an edit of a deleted message) with `json`, whether or not it was written yet; what else
   * the item holds (`n`, which unread counts read) stays.
   */
  async overwrite(tenantId: string, room: string, seq: number, json: string, expiresAt: number): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.historyItem(tenantId, room, seq),
        UpdateExpression: 'SET event = :json, seq = :seq, #ttl = if_not_exists(#ttl, :ttl)',
        ExpressionAttributeNames: { '#ttl': TABLE.ttlAttribute },
        ExpressionAttributeValues: { ':json': json, ':seq': seq, ':ttl': expiresAt },
      }),
    );
  }

  /** Messages of the room up to `seq`: `n` of the latest stored event at or before it (0 when none is left). */
  async messagesUpTo(tenantId: string, room: string, seq: number): Promise<number> {
    const { Items } = await this.db.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: '#pk = :pk AND #sk <= :seq',
        ExpressionAttributeNames: { '#pk': TABLE.partitionKey, '#sk': TABLE.sortKey },
        ExpressionAttributeValues: { ':pk': keys.historyPartition(tenantId, room), ':seq': keys.historySort(seq) },
        ProjectionExpression: 'n',
        ScanIndexForward: false,
        ConsistentRead: true,
        // Scrubbed edits may lack `n`; a message has at most MAX_EDITS_PER_MESSAGE of them in a row.
        Limit: 64,
      }),
    );
    const found = (Items ?? []).find((i) => typeof i.n === 'number');
    return Number(found?.n ?? 0);
  }

  /** Moves the user's read cursor in the room forward to `seq`; returns the cursor as stored (maybe later). */
  async advanceCursor(tenantId: string, room: string, member: Member, seq: number, n: number, expiresAt: number): Promise<{ seq: number; moved: boolean }> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.cursor(tenantId, room, member.userId),
          UpdateExpression: 'SET seq = :seq, n = :n, #name = :name, #ttl = :ttl',
          ConditionExpression: 'attribute_not_exists(seq) OR seq < :seq',
          ExpressionAttributeNames: { '#name': 'name', '#ttl': TABLE.ttlAttribute },
          ExpressionAttributeValues: { ':seq': seq, ':n': n, ':name': member.name, ':ttl': expiresAt },
        }),
      );
      return { seq, moved: true };
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
      const { Item } = await this.db.send(new GetCommand({ TableName: this.tableName, Key: keys.cursor(tenantId, room, member.userId), ConsistentRead: true }));
      return { seq: Number(Item?.seq ?? seq), moved: false };
    }
  }

  /** Read cursors of the room's users, at most `max` (most rooms are far smaller). */
  async cursors(tenantId: string, room: string, max: number): Promise<{ cursors: ReadCursor[]; more: boolean }> {
    const pages = partitionPages(this.db, this.tableName, keys.cursorPartition(tenantId, room), { pageSize: max + 1, now: this.now });
    const { items, more } = await firstOf(pages, max, (item) => ({ userId: String(item[TABLE.sortKey]), name: String(item.name), seq: Number(item.seq) }));
    return { cursors: items, more };
  }

  /** Remembers that the user joined the room (for unread counts), up to MAX_TRACKED_ROOMS rooms. */
  async rememberRoom(tenantId: string, userId: string, room: string): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.userRooms(tenantId, userId),
          UpdateExpression: 'ADD rooms :room',
          ConditionExpression: 'attribute_not_exists(rooms) OR size(rooms) < :max OR contains(rooms, :name)',
          ExpressionAttributeValues: { ':room': new Set([room]), ':max': MAX_TRACKED_ROOMS, ':name': room },
        }),
      );
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
    }
  }

  /** Forgets a room of the user's (they were removed from it): no unread counts of it any more. */
  async forgetRoom(tenantId: string, userId: string, room: string): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.userRooms(tenantId, userId),
          UpdateExpression: 'DELETE rooms :room',
          ConditionExpression: 'contains(rooms, :name)',
          ExpressionAttributeValues: { ':room': new Set([room]), ':name': room },
        }),
      );
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
    }
  }

  /**
   * Unread counts of every room the user joined: messages after their cursor (the room's message count minus
   * the cursor's). One read of the user's rooms, then batched reads of each room's counter and cursor.
   */
  async unread(tenantId: string, userId: string): Promise<Array<{ room: string; unread: number; lastSeq: number; readSeq: number }>> {
    const { Item } = await this.db.send(new GetCommand({ TableName: this.tableName, Key: keys.userRooms(tenantId, userId), ConsistentRead: true }));
    const rooms = Item?.rooms instanceof Set ? [...(Item.rooms as Set<string>)].sort() : [];
    const wanted = rooms.flatMap((room) => [keys.counter(tenantId, room), keys.cursor(tenantId, room, userId)]);
    // Answers come back by key, in no order: index them by partition key.
    const found = new Map((await batchGetAll(this.db, this.tableName, wanted)).filter((item) => this.live(item)).map((item) => [String(item[TABLE.partitionKey]), item]));
    return rooms.map((room) => {
      const counter = found.get(keys.counter(tenantId, room).pk);
      const cursor = found.get(keys.cursor(tenantId, room, userId).pk);
      const lastSeq = Number(counter?.value ?? 0);
      const readSeq = Number(cursor?.seq ?? 0);
      const unread = Math.max(0, Number(counter?.msgs ?? 0) - Number(cursor?.n ?? 0));
      return { room, unread: readSeq >= lastSeq ? 0 : unread, lastSeq, readSeq };
    });
  }
}
