/**
 * Fan-out to API Gateway connections: the one delivery path for room messages and, later, server-side publishing.
 *
 * Recipients arrive a page at a time (a strongly consistent Query of the room's partition), posts run with bounded concurrency, and a recipient that
 * answers 410 Gone (its socket died without a $disconnect) is removed from the store during the same broadcast.
 */
import type { Logger } from '../../common/log';
import { METRICS } from '../../common/metrics';
import { isGone, isThrottled, type ConnectionsApi } from './connections-api';

export interface BroadcastDeps {
  api: ConnectionsApi;
  /** Removes a connection that API Gateway no longer knows. */
  removeConnection: (connectionId: string) => Promise<unknown>;
  log: Logger;
  concurrency: number;
}

export interface BroadcastResult {
  delivered: number;
  /** Of those delivered, to connections `options.others` counts (other users' sockets). */
  others?: number;
  gone: number;
  /** Not delivered: refused for another reason than gone (throttled past the client's retries included). */
  failed: number;
  /** Of those failed, refused with 429 after every retry (the account's post rate, or a client not reading). */
  throttled?: number;
  /** A big room: handed to the fan-out workers, which post after the reply (the counts here are 0). */
  pending?: true;
}

/**
 * Posts `payload` to every recipient. `protect` names a connection that is never removed as gone (the sender: it
 * is demonstrably alive, and a transient 410 for it must not delete its state).
 */
export async function broadcast(
  recipients: AsyncIterable<string[]> | Iterable<string[]>,
  payload: string,
  deps: BroadcastDeps,
  options: { protect?: string; others?: (connectionId: string) => boolean } = {},
): Promise<BroadcastResult> {
  const result: BroadcastResult = { delivered: 0, gone: 0, failed: 0, ...(options.others ? { others: 0 } : {}) };
  const inFlight = new Set<Promise<void>>();

  const deliver = async (connectionId: string): Promise<void> => {
    if ((await postCounted(connectionId, payload, deps, result, options.protect)) && options.others?.(connectionId)) result.others!++;
  };

  for await (const page of recipients) {
    for (const connectionId of page) {
      while (inFlight.size >= deps.concurrency) await Promise.race(inFlight);
      const task: Promise<void> = deliver(connectionId).finally(() => inFlight.delete(task));
      inFlight.add(task);
    }
  }
  await Promise.all(inFlight);
  return result;
}

/**
 * Posts `payload` to one connection and counts the outcome in `result`: delivered; gone (removed, unless it is
 * `protect`); or failed (a 429 after every retry counted apart as throttled). Never throws; true when delivered.
 */
export async function postCounted(
  connectionId: string,
  payload: string,
  deps: Pick<BroadcastDeps, 'api' | 'removeConnection' | 'log'>,
  result: Pick<BroadcastResult, 'delivered' | 'gone' | 'failed' | 'throttled'>,
  protect?: string,
): Promise<boolean> {
  try {
    await deps.api.post(connectionId, payload);
    result.delivered++;
    return true;
  } catch (err) {
    if (isGone(err) && connectionId !== protect) {
      result.gone++;
      try {
        await deps.removeConnection(connectionId);
        deps.log.info('stale_connection_removed', { connectionId });
      } catch (cleanupErr) {
        deps.log.warn('stale_connection_cleanup_failed', { connectionId, error: cleanupErr });
      }
    } else {
      result.failed++;
      if (isThrottled(err)) result.throttled = (result.throttled ?? 0) + 1;
      deps.log.warn('post_failed', { connectionId, error: err as Error });
    }
    return false;
  }
}

/** A delivery's counts as metrics (one home for how deliver and the fan-out workers report them). */
export function deliveryMetrics(result: Pick<BroadcastResult, 'delivered' | 'gone' | 'failed' | 'throttled'>): Record<string, number> {
  const throttled = result.throttled ?? 0;
  return { [METRICS.deliveries]: result.delivered, [METRICS.gone]: result.gone, [METRICS.throttledPosts]: throttled, [METRICS.failedPosts]: result.failed - throttled };
}
