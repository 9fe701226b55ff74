/**
 * Presence in DynamoDB: one item per user and room (pk=pres#<tenant>#<room>, sk=<userId>) holding the set of that
 * user's connections in the room. A user is present while the set is not empty, so two tabs are one presence and
 * only the first socket in and the last socket out change it. Every change is one conditional or atomic update of
 * that one item, and bumps its version `v`: events carry it, so a client applies changes of one user in the order
 * the item took them, whatever order the events arrive in. An item outlives its last connection (with its TTL)
 * so that the version keeps counting up.
 */
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { isConditionFailed } from '../../common/dynamo-errors';
import { TABLE, keys } from '../../common/table-schema';
import type { Member } from '../../protocol';
import { firstOf, partitionPages } from './dynamo-read';

export interface PresenceChange {
  /** The user's presence changed: their first socket entered, or their last one left. */
  changed: boolean;
  v: number;
}

/** Pages a presence snapshot reads at most. */
const SNAPSHOT_PAGES = 5;

export class PresenceStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly now: () => number,
  ) {}

  /** Adds a connection to the user's presence in the room (idempotent: a rejoin after a reconnect changes nothing). */
  async enter(tenantId: string, room: string, member: Member, connectionId: string, expiresAt: number): Promise<PresenceChange> {
    const base = this.now();
    const { Attributes: old } = await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.presence(tenantId, room, member.userId),
        // A version that starts from the clock when the item is (re)created, so it never restarts below one a client saw.
        UpdateExpression: 'ADD conns :conn SET v = if_not_exists(v, :base) + :one, #name = :name, #ttl = :ttl',
        ExpressionAttributeNames: { '#name': 'name', '#ttl': TABLE.ttlAttribute },
        ExpressionAttributeValues: { ':conn': new Set([connectionId]), ':one': 1, ':base': base, ':name': member.name, ':ttl': expiresAt },
        ReturnValues: 'ALL_OLD',
      }),
    );
    const conns = old?.conns instanceof Set ? (old.conns as Set<string>) : new Set<string>();
    // An item past its TTL that DynamoDB has not deleted yet is no presence, whatever it lists: its connections are
    // long gone (they expired with it). Exactly those are removed (a concurrent joiner's stays).
    const wasPresent = conns.size > 0 && Number(old?.[TABLE.ttlAttribute]) * 1000 > this.now();
    const stale = [...conns].filter((id) => id !== connectionId);
    if (!wasPresent && stale.length > 0) {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.presence(tenantId, room, member.userId),
          UpdateExpression: 'DELETE conns :stale',
          ExpressionAttributeValues: { ':stale': new Set(stale) },
        }),
      );
    }
    return { changed: !wasPresent, v: Number(old?.v ?? base) + 1 };
  }

  /** Removes a connection from the user's presence in the room; undefined when it was not there. */
  async exit(tenantId: string, room: string, userId: string, connectionId: string): Promise<(PresenceChange & { name: string }) | undefined> {
    try {
      const { Attributes } = await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.presence(tenantId, room, userId),
          UpdateExpression: 'DELETE conns :conn ADD v :one',
          ConditionExpression: 'contains(conns, :id)',
          ExpressionAttributeValues: { ':conn': new Set([connectionId]), ':one': 1, ':id': connectionId },
          ReturnValues: 'ALL_NEW',
        }),
      );
      // DynamoDB drops a set that becomes empty: no `conns` left means the user's last socket left.
      return { changed: !(Attributes?.conns instanceof Set && Attributes.conns.size > 0), v: Number(Attributes?.v), name: String(Attributes?.name ?? '') };
    } catch (err) {
      if (isConditionFailed(err)) return undefined;
      throw err;
    }
  }

  /** Users present in the room (strongly consistent), at most `max`; `more` when there are others. */
  async snapshot(tenantId: string, room: string, max: number): Promise<{ users: Array<Member & { v: number }>; more: boolean }> {
    const pages = partitionPages(this.db, this.tableName, keys.presencePartition(tenantId, room), {
      pageSize: max + 1,
      now: this.now,
      filter: 'attribute_exists(conns)',
      projection: '#sk, #name, v, #ttl',
      names: { '#sk': TABLE.sortKey, '#name': 'name', '#ttl': TABLE.ttlAttribute },
    });
    // Users who left keep their item (its version) until it expires; the filter drops them after DynamoDB read them, so
    // the pages read are capped (SNAPSHOT_PAGES), and a room with that many departures says `more`.
    const { items, more } = await firstOf(pages, max, (item) => ({ userId: String(item[TABLE.sortKey]), name: String(item.name), v: Number(item.v) }), SNAPSHOT_PAGES);
    return { users: items, more };
  }

  /**
   * Records that the user typed, unless they did less than `throttleMs` ago (or are not present): true when this
   * one is to be passed on. One conditional update, so concurrent frames from several tabs pass one at most.
   */
  async typed(tenantId: string, room: string, userId: string, throttleMs: number): Promise<boolean> {
    const now = this.now();
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.presence(tenantId, room, userId),
          UpdateExpression: 'SET typedAt = :now',
          ConditionExpression: 'attribute_exists(conns) AND (attribute_not_exists(typedAt) OR typedAt <= :cut)',
          ExpressionAttributeValues: { ':now': now, ':cut': now - throttleMs },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailed(err)) return false;
      throw err;
    }
  }
}
