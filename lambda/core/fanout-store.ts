/**
 * The progress of one shard of one room event's delivery (fanout.ts), so that a retried or duplicated delivery of
 * a shard posts to no member twice: one item per (room, seq, shard) holding a lease (one worker at a time), the
 * sort key of the shard's member it has posted through (`cursor`), the members past it already posted to (`sent`:
 * a page's posts finish in any order), and `done`. Kept a day: longer than Lambda retries an event.
 */
import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { isConditionFailed } from '../../common/dynamo-errors';
import { TABLE, keys } from '../../common/table-schema';

export interface ShardProgress {
  /** Sort key of the last member posted through, in the shard's order; absent: from the start. */
  cursor?: string;
  /** Members after the cursor posted to already. */
  sent: Set<string>;
  /** Claims so far, this one included. */
  attempts: number;
  /** (Shard 0 of a split room) the other shards were handed to workers of their own. */
  dispatched: boolean;
}

export type ShardClaim = { claimed: true; progress: ShardProgress } | { claimed: false; done: boolean };

/** How long a shard's progress is remembered: longer than Lambda keeps retrying an asynchronous event (6 hours). */
export const FANOUT_RECORD_SECONDS = 24 * 3600;

const strings = (value: unknown): Set<string> => (value instanceof Set ? new Set([...(value as Set<string>)].map(String)) : new Set());

export class FanoutStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly now: () => number,
  ) {}

  /** Takes the shard for a worker until `leaseUntil` (epoch ms), unless it is done or another worker holds it. */
  async claim(tenantId: string, room: string, seq: number, shard: number, leaseUntil: number): Promise<ShardClaim> {
    const key = keys.fanout(tenantId, room, seq, shard);
    try {
      const { Attributes } = await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: key,
          UpdateExpression: 'SET leaseUntil = :lease, #ttl = if_not_exists(#ttl, :ttl) ADD attempts :one',
          ConditionExpression: 'attribute_not_exists(done) AND (attribute_not_exists(leaseUntil) OR leaseUntil < :now)',
          ExpressionAttributeNames: { '#ttl': TABLE.ttlAttribute },
          ExpressionAttributeValues: { ':lease': leaseUntil, ':ttl': Math.floor(this.now() / 1000) + FANOUT_RECORD_SECONDS, ':now': this.now(), ':one': 1 },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return {
        claimed: true,
        progress: {
          ...(typeof Attributes?.cursor === 'string' ? { cursor: Attributes.cursor } : {}),
          sent: strings(Attributes?.sent),
          attempts: Number(Attributes?.attempts ?? 1),
          dispatched: Attributes?.dispatched === true,
        },
      };
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
      const { Item } = await this.db.send(new GetCommand({ TableName: this.tableName, Key: key, ConsistentRead: true }));
      return { claimed: false, done: Item?.done === true };
    }
  }

  /**
   * Records how far the shard got: posted through `cursor`, and `sent` past it. `leaseUntil` renews the lease (a
   * worker going on), 0 releases it (a worker stopping, so that its retry or continuation takes over at once).
   */
  async checkpoint(tenantId: string, room: string, seq: number, shard: number, progress: { cursor?: string; sent: Set<string> }, leaseUntil: number): Promise<void> {
    // `cursor` is one of DynamoDB's reserved words: every name goes through a placeholder.
    const sets = [...(progress.cursor !== undefined ? ['#cursor = :cursor'] : []), ...(progress.sent.size > 0 ? ['#sent = :sent'] : []), ...(leaseUntil > 0 ? ['#lease = :lease'] : [])];
    const removes = [...(progress.sent.size > 0 ? [] : ['#sent']), ...(leaseUntil > 0 ? [] : ['#lease'])];
    const values = {
      ...(progress.cursor !== undefined ? { ':cursor': progress.cursor } : {}),
      ...(progress.sent.size > 0 ? { ':sent': progress.sent } : {}),
      ...(leaseUntil > 0 ? { ':lease': leaseUntil } : {}),
    };
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.fanout(tenantId, room, seq, shard),
        UpdateExpression: [sets.length ? `SET ${sets.join(', ')}` : '', removes.length ? `REMOVE ${removes.join(', ')}` : ''].filter(Boolean).join(' '),
        ConditionExpression: 'attribute_exists(#pk) AND attribute_not_exists(done)',
        ExpressionAttributeNames: {
          '#pk': TABLE.partitionKey,
          '#sent': 'sent',
          '#lease': 'leaseUntil',
          ...(progress.cursor !== undefined ? { '#cursor': 'cursor' } : {}),
        },
        ...(Object.keys(values).length > 0 ? { ExpressionAttributeValues: values } : {}),
      }),
    );
  }

  /** Records that the other shards were handed on (a retry of this shard does not hand them on again). */
  async markDispatched(tenantId: string, room: string, seq: number): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.fanout(tenantId, room, seq, 0),
        UpdateExpression: 'SET dispatched = :true',
        ConditionExpression: 'attribute_exists(#pk)',
        ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
        ExpressionAttributeValues: { ':true': true },
      }),
    );
  }

  /** The shard is delivered: later claims find it done. */
  async finish(tenantId: string, room: string, seq: number, shard: number): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.fanout(tenantId, room, seq, shard),
        UpdateExpression: 'SET done = :true REMOVE leaseUntil, #sent',
        ConditionExpression: 'attribute_exists(#pk)',
        ExpressionAttributeNames: { '#pk': TABLE.partitionKey, '#sent': 'sent' },
        ExpressionAttributeValues: { ':true': true },
      }),
    );
  }
}
