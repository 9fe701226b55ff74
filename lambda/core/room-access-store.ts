/**
 * Private rooms' member lists in DynamoDB: one item per room, pk=acl#<tenantId>#<room>, sk=acl, holding `owner` and
 * `members` (a string set of user ids, the owner always in it).
 *
 * Invariants:
 * - The tenant is part of the key: the same name in two tenants is two rooms, and no read here can cross tenants.
 * - Every read is strongly consistent: a user removed a moment ago is not let in by a stale read.
 * - The cap is a condition on the one item (`size(members) < :max`), so concurrent invites cannot overshoot it, and
 *   every write is one conditional update: no transactions, and repeating any of them changes nothing more.
 * - The owner is set once, at creation, and never changes; the owner cannot be removed, so the set is never empty.
 * - The item never expires (like a room's counter): a room's access must not vanish under its members.
 *
 * Cost: a join of a private room reads this item (1 read unit per 4 KB: 1 for rooms of up to about 100 members of
 * Cognito ids, 7 at the cap); an invite or removal writes it (1 write unit per KB).
 */
import { GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { isConditionFailed } from '../../common/dynamo-errors';
import { TABLE, keys } from '../../common/table-schema';

/** A private room's access list; `members` includes the owner, sorted. */
export interface RoomAcl {
  owner: string;
  members: string[];
}

const NAMES = { '#pk': TABLE.partitionKey, '#owner': 'owner', '#members': 'members' };

function aclOf(item: Record<string, unknown> | undefined): RoomAcl | undefined {
  if (!item || typeof item.owner !== 'string') return undefined;
  const members = item.members instanceof Set ? [...(item.members as Set<string>)] : [];
  return { owner: item.owner, members: members.sort() };
}

export class RoomAclStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Creates the room with `owner` as its owner and only member; 'exists' when the name is taken in the tenant. */
  async create(tenantId: string, room: string, owner: string): Promise<RoomAcl | 'exists'> {
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.roomAccess(tenantId, room), owner, members: new Set([owner]), createdAt: this.now() },
          ConditionExpression: 'attribute_not_exists(#pk)',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
        }),
      );
      return { owner, members: [owner] };
    } catch (err) {
      if (isConditionFailed(err)) return 'exists';
      throw err;
    }
  }

  /** The room's access list (strongly consistent), or undefined when no such private room exists in the tenant. */
  async get(tenantId: string, room: string): Promise<RoomAcl | undefined> {
    const { Item } = await this.db.send(new GetCommand({ TableName: this.tableName, Key: keys.roomAccess(tenantId, room), ConsistentRead: true }));
    return aclOf(Item);
  }

  /** Whether `userId` is on the room's list (strongly consistent; false when there is no such room). */
  async isMember(tenantId: string, room: string, userId: string): Promise<boolean> {
    return (await this.get(tenantId, room))?.members.includes(userId) ?? false;
  }

  /** Adds a member (idempotent): 'missing' when there is no such room, 'full' when it has `max` members already. */
  async add(tenantId: string, room: string, userId: string, max: number): Promise<RoomAcl | 'missing' | 'full'> {
    try {
      const { Attributes } = await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.roomAccess(tenantId, room),
          UpdateExpression: 'ADD #members :user',
          ConditionExpression: 'attribute_exists(#pk) AND (size(#members) < :max OR contains(#members, :id))',
          ExpressionAttributeNames: { '#pk': NAMES['#pk'], '#members': NAMES['#members'] },
          ExpressionAttributeValues: { ':user': new Set([userId]), ':max': max, ':id': userId },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return aclOf(Attributes)!;
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
      return (await this.get(tenantId, room)) ? 'full' : 'missing';
    }
  }

  /**
   * Removes a member (idempotent: `removed` says whether they were one): 'missing' when there is no such room,
   * 'owner' when `userId` owns it (the owner stays).
   */
  async remove(tenantId: string, room: string, userId: string): Promise<{ acl: RoomAcl; removed: boolean } | 'missing' | 'owner'> {
    try {
      const { Attributes } = await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.roomAccess(tenantId, room),
          UpdateExpression: 'DELETE #members :user',
          ConditionExpression: 'attribute_exists(#pk) AND #owner <> :id',
          ExpressionAttributeNames: NAMES,
          ExpressionAttributeValues: { ':user': new Set([userId]), ':id': userId },
          ReturnValues: 'ALL_OLD',
        }),
      );
      const before = aclOf(Attributes)!;
      return { acl: { owner: before.owner, members: before.members.filter((m) => m !== userId) }, removed: before.members.includes(userId) };
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
      return (await this.get(tenantId, room)) ? 'owner' : 'missing';
    }
  }
}
