/**
 * Delivery to big rooms, by workers: the sender's reply comes once the message is numbered and stored, whatever
 * the room's size, and a room of 100,000 is posted to by many invocations at once, each reading and posting one
 * shard of its members (membership-store.ts).
 *
 * - A room of at most `inlineDeliveryMax` connections is still posted to by the function that stored the event,
 *   before it answers (deliver.ts): the reply says exactly whom it reached, at the cost of a few posts.
 * - A bigger room's event becomes one task, `room`, for the workers (an asynchronous Lambda invocation: it is
 *   queued by Lambda, retried on failure, and sent to the failed-invocations queue when retries run out). The
 *   `room` worker hands each other shard to a worker of its own (`shard` tasks) and posts to shard 0 itself.
 * - A shard is posted to a page at a time; after each page its progress is recorded (fanout-store.ts): the member
 *   it got to, and which members past it were posted to already. A worker that fails (a read, a write) waits for
 *   its posts in flight, records exactly what they reached and throws; Lambda's retry goes on from there. A worker
 *   short of time records its progress, hands the rest to a new invocation and returns. A duplicate invocation
 *   (Lambda may deliver one event twice) finds the shard leased or done and does nothing. So one message has one
 *   seq, however many retries, and no member gets it twice, unless a worker dies between a post and the record of
 *   its page (a crash or a timeout; then at most one page is posted again, and clients drop what they have by seq).
 * - A post answered 410 removes the member (the socket is gone); 429 and 5xx are retried by the posting client
 *   (connections-api.ts) and then counted, not retried by the worker: the member catches up from history.
 * - Shard 0 of a room not split yet is counted as it is read: at SPLIT_AT members the room is split, and its later
 *   joiners spread over ROOM_SHARDS partitions.
 */
import type { Logger } from '../../common/log';
import { keys } from '../../common/table-schema';
import { deliveryMetrics, postCounted, type BroadcastResult } from './broadcast';
import { WORST_CASE_POST_MS, type ConnectionsApi } from './connections-api';
import type { FanoutStore, ShardProgress } from './fanout-store';
import { SPLIT_AT } from './membership-store';
import { departConnection } from './presence';
import type { ConnectionStore } from './store';

/** Work for a fan-out worker: a room event to deliver to a room's members, or to one shard of them. */
export interface FanoutTask {
  kind: 'room' | 'shard';
  tenantId: string;
  room: string;
  seq: number;
  /** The event's JSON, as stored in history and posted. */
  event: string;
  /** A connection never removed as gone (the sender: it is demonstrably alive). */
  protect?: string;
  /** The shard (`shard` tasks). */
  shard?: number;
  /** The room was in one partition when its delivery began: the worker of shard 0 splits it once it counts SPLIT_AT. */
  unsplit?: true;
}

/** Hands a task to a worker (an asynchronous invocation of the fan-out function). */
export type FanoutDispatcher = (task: FanoutTask) => Promise<void>;

export interface FanoutDeps {
  store: ConnectionStore;
  fanouts: FanoutStore;
  api: ConnectionsApi;
  log: Logger;
  config: { broadcastConcurrency: number };
  dispatch: FanoutDispatcher;
  now?: () => number;
}

export interface FanoutOptions {
  /** Members read and posted between two progress records. @default 500 */
  pageSize?: number;
  /**
   * A worker with less time left than this starts no more posts and hands the rest of its shard on: one post's
   * worst case (the poster's every attempt timing out, with backoff) and a margin. @default FANOUT_RESERVE_MS (25.4 s)
   */
  reserveMs?: number;
}

/** The time a worker keeps in hand: one post's worst case, and 5 s for the records and the hand-over. */
export const FANOUT_RESERVE_MS = WORST_CASE_POST_MS + 5_000;

export type FanoutOutcome =
  | { shard: number; delivered: true; result: BroadcastResult & { members: number } }
  | { shard: number; delivered: false; reason: 'done' | 'in_flight' | 'continued' };

/** Runs one task in this invocation; `remainingMs` is the invocation's time left. */
export async function runFanoutTask(task: FanoutTask, deps: FanoutDeps, remainingMs: () => number, options: FanoutOptions = {}): Promise<FanoutOutcome> {
  if (task.kind === 'shard') return deliverShard(task, task.shard ?? 0, deps, remainingMs, options);
  const count = await deps.store.members.shardCount(task.tenantId, task.room, true);
  // Shard 0 here; every other shard to a worker of its own, once (a duplicate or retry of this task does not hand
  // them on again), and only by the worker that holds shard 0.
  return deliverShard({ ...task, ...(count === 1 ? { unsplit: true } : {}) }, 0, deps, remainingMs, options, async (progress) => {
    if (count === 1 || progress.dispatched) return;
    await Promise.all(Array.from({ length: count - 1 }, (_, i) => deps.dispatch({ ...task, kind: 'shard', shard: i + 1 })));
    await deps.fanouts.markDispatched(task.tenantId, task.room, task.seq);
  });
}

/** The sort key of a member item: what a shard's cursor compares with. */
const sortKeyOf = (connectionId: string) => keys.member('', '', connectionId).sk;

async function deliverShard(
  task: FanoutTask,
  shard: number,
  deps: FanoutDeps,
  remainingMs: () => number,
  options: FanoutOptions,
  onClaim?: (progress: ShardProgress) => Promise<void>,
): Promise<FanoutOutcome> {
  const { store, fanouts, log } = deps;
  const { tenantId, room, seq } = task;
  const now = deps.now ?? Date.now;
  const pageSize = options.pageSize ?? 500;
  const reserveMs = options.reserveMs ?? FANOUT_RESERVE_MS;
  const leaseUntil = () => now() + Math.max(remainingMs(), 1000);
  const claim = await fanouts.claim(tenantId, room, seq, shard, leaseUntil());
  if (!claim.claimed) {
    log.info('fanout_duplicate', { tenantId, room, seq, shard, done: claim.done });
    return { shard, delivered: false, reason: claim.done ? 'done' : 'in_flight' };
  }
  let { cursor } = claim.progress;
  let sent = claim.progress.sent;
  const result = { delivered: 0, gone: 0, failed: 0, throttled: 0, members: 0 };
  /** Members of the page in progress whose post is over (reached, gone or refused: none is posted again). */
  let over = new Set<string>();
  let split = !task.unsplit;
  /**
   * Out of time: no post is started any more (one in flight may take the poster's every retry: reserveMs covers it).
   * Never before this invocation's first post, so every invocation makes progress.
   */
  let started = 0;
  const late = () => started > 0 && remainingMs() < reserveMs;

  const post = async (connectionId: string, memberShard: number) => {
    started++;
    const removeConnection = () => Promise.all([store.removeMember(tenantId, room, connectionId, memberShard), departConnection(connectionId, deps)]);
    await postCounted(connectionId, task.event, { api: deps.api, removeConnection, log }, result, task.protect);
    over.add(connectionId);
  };

  /** Records exactly how far the shard got (through the cursor, and whom it reached past it) and frees its lease. */
  const release = () => fanouts.checkpoint(tenantId, room, seq, shard, { ...(cursor !== undefined ? { cursor } : {}), sent: new Set([...sent, ...over]) }, 0);

  const handOn = async () => {
    // The rest of the shard goes to a fresh invocation, from the page in progress on, skipping whom it reached.
    await release();
    await deps.dispatch({ ...task, kind: 'shard', shard });
    log.info('fanout_continued', { tenantId, room, seq, shard, ...result });
    emit(deps, result);
    return { shard, delivered: false as const, reason: 'continued' as const };
  };

  try {
    await onClaim?.(claim.progress);
    for await (const page of store.members.shardPages(tenantId, room, shard, { pageSize, ...(cursor !== undefined ? { after: cursor } : {}) })) {
      result.members += page.refs.length;
      const stopped = await pool(
        page.refs.filter((m) => !sent.has(m.connectionId)),
        deps.config.broadcastConcurrency,
        (m) => post(m.connectionId, m.shard),
        late,
      );
      if (stopped) return await handOn();
      cursor = page.last;
      // Posted before an interruption, past this page: still to be skipped (pages move as members come and go).
      const after = cursor;
      sent = new Set([...sent, ...over].filter((id) => sortKeyOf(id) > after));
      over = new Set();
      // A room still in one partition, found crowded: joins spread over shards from now on.
      if (!split && result.members >= SPLIT_AT) {
        split = true;
        await store.members.split(tenantId, room);
        log.info('room_split', { tenantId, room, members: result.members });
      }
      if (late()) return await handOn();
      await fanouts.checkpoint(tenantId, room, seq, shard, { cursor, sent }, leaseUntil());
    }
  } catch (err) {
    // No post is in flight here (pool waits for them, and posts never throw): record exactly what was reached, so
    // the retry skips it. (Should this write fail too, the retry posts the last page again: the one duplicate case.)
    await release().catch(() => undefined);
    log.error('fanout_failed', { tenantId, room, seq, shard, attempt: claim.progress.attempts, error: err as Error });
    emit(deps, result);
    throw err;
  }
  await fanouts.finish(tenantId, room, seq, shard);
  log.info('fanout_delivered', { tenantId, room, seq, shard, attempt: claim.progress.attempts, ...result });
  emit(deps, result);
  return { shard, delivered: true, result };
}

function emit(deps: FanoutDeps, result: { delivered: number; gone: number; failed: number; throttled: number }): void {
  deps.log.metrics(deliveryMetrics(result));
}

/**
 * Runs `work` over `items`, at most `concurrency` at once; resolves when every one started has settled, with
 * whether `stop` ended it early (no item is started once it says so).
 */
async function pool<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>, stop: () => boolean): Promise<boolean> {
  let next = 0;
  let stopped = false;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        if (stopped || (stopped = stop())) return;
        await work(items[next++]);
      }
    }),
  );
  return stopped;
}
