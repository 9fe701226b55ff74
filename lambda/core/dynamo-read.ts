/**
 * The table's read patterns, written once: a partition read a page at a time (strongly consistent, expired items
 * skipped, since DynamoDB deletes them lazily), the first `max` of it with whether more remain, and batched gets
 * with unprocessed keys retried.
 */
import { BatchGetCommand, QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { TABLE } from '../../common/table-schema';

type Item = Record<string, unknown>;

export const isLive = (item: Item | undefined, nowMs: number): boolean => {
  if (!item) return false;
  const expiresAt = item[TABLE.ttlAttribute];
  return typeof expiresAt !== 'number' || expiresAt * 1000 > nowMs;
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The live items of partition `pk`, a page of at most `pageSize` at a time (strongly consistent). */
export async function* partitionPages(
  db: DynamoDBDocumentClient,
  tableName: string,
  pk: string,
  options: { pageSize: number; now: () => number; projection?: string; names?: Record<string, string>; filter?: string; startAfter?: Item },
): AsyncGenerator<Item[]> {
  let startKey: Item | undefined = options.startAfter;
  do {
    const page = await db.send(
      new QueryCommand({
        TableName: tableName,
        KeyConditionExpression: '#pk = :pk',
        ExpressionAttributeNames: { '#pk': TABLE.partitionKey, ...options.names },
        ExpressionAttributeValues: { ':pk': pk },
        ...(options.projection ? { ProjectionExpression: options.projection } : {}),
        ...(options.filter ? { FilterExpression: options.filter } : {}),
        ConsistentRead: true,
        Limit: options.pageSize,
        ExclusiveStartKey: startKey,
      }),
    );
    const now = options.now();
    const items = (page.Items ?? []).filter((item) => isLive(item, now));
    if (items.length > 0) yield items;
    startKey = page.LastEvaluatedKey;
  } while (startKey);
}

/**
 * The first `max` items that `map` keeps (undefined: skip), and whether there are more; reads stop there, and after
 * `maxPages` pages (then `more`), so a partition full of skipped items cannot make one call read without bound.
 */
export async function firstOf<I, T>(pages: AsyncIterable<I[]>, max: number, map: (item: I) => T | undefined, maxPages = Infinity): Promise<{ items: T[]; more: boolean }> {
  const items: T[] = [];
  let read = 0;
  for await (const page of pages) {
    if (++read > maxPages) return { items, more: true };
    for (const item of page) {
      const mapped = map(item);
      if (mapped === undefined) continue;
      if (items.length === max) return { items, more: true };
      items.push(mapped);
    }
  }
  return { items, more: false };
}

/** Strongly consistent batched reads of any number of keys, unprocessed keys retried with backoff. */
export async function batchGetAll(db: DynamoDBDocumentClient, tableName: string, keyList: Item[], projection?: string): Promise<Item[]> {
  const found: Item[] = [];
  for (let i = 0; i < keyList.length; i += 100) {
    let request: Item[] = keyList.slice(i, i + 100);
    for (let attempt = 0; request.length > 0; attempt++) {
      if (attempt > 0) {
        if (attempt > 6) throw new Error('BatchGet left keys unprocessed');
        await sleep(Math.min(1000, 25 * 2 ** attempt));
      }
      const result = await db.send(
        new BatchGetCommand({
          RequestItems: {
            [tableName]: {
              Keys: request,
              ConsistentRead: true,
              ...(projection ? { ProjectionExpression: projection } : {}),
              ...(projection?.includes('#ttl') ? { ExpressionAttributeNames: { '#ttl': TABLE.ttlAttribute } } : {}),
            },
          },
        }),
      );
      found.push(...(result.Responses?.[tableName] ?? []));
      request = (result.UnprocessedKeys?.[tableName]?.Keys ?? []) as Item[];
    }
  }
  return found;
}
