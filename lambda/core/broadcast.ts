/**
 * Fan-out to API Gateway connections: the one delivery path for room messages and, later, server-side publishing.
 *
 * Recipients arrive a page at a time (a strongly consistent Query of the room's partition), posts run with bounded concurrency, and a recipient that
 * answers 410 Gone (its socket died without a $disconnect) is removed from the store during the same broadcast.
 */
import { ApiGatewayManagementApiClient, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import type { Logger } from '../../common/log';

export interface BroadcastDeps {
  api: ApiGatewayManagementApiClient;
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
  failed: number;
}

/** Sends one payload to one connection; throws what API Gateway answers (see isGone). */
export async function postToConnection(api: ApiGatewayManagementApiClient, connectionId: string, payload: string): Promise<void> {
  await api.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: new TextEncoder().encode(payload) }));
}

export function isGone(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'GoneException' || e?.$metadata?.httpStatusCode === 410;
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
    try {
      await postToConnection(deps.api, connectionId, payload);
      result.delivered++;
      if (options.others?.(connectionId)) result.others!++;
    } catch (err) {
      if (isGone(err) && connectionId !== options.protect) {
        result.gone++;
        try {
          await deps.removeConnection(connectionId);
          deps.log.info('stale_connection_removed', { connectionId });
        } catch (cleanupErr) {
          deps.log.warn('stale_connection_cleanup_failed', { connectionId, error: cleanupErr });
        }
      } else {
        result.failed++;
        deps.log.warn('post_failed', { connectionId, error: err });
      }
    }
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
