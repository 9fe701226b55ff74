/**
 * Expiring sockets: a connection lives no longer than its credential. The sweeper reads only the connections whose
 * credential has expired (the byExpiry index, minute by minute: no Scan), tells each why, and closes it.
 */
import type { Logger } from '../../common/log';
import { METRICS } from '../../common/metrics';
import type { ServerEvent } from '../../protocol';
import { isGone, type ConnectionsApi } from './connections-api';
import { departConnection } from './presence';
import type { ConnectionStore } from './store';

/** How far back the sweeper looks for expiries it has not handled (a missed run, a throttled one). */
export const SWEEP_LOOKBACK_SECONDS = 30 * 60;

export async function sweepExpired(
  deps: { store: ConnectionStore; api: ConnectionsApi; log: Logger },
  nowMs = Date.now(),
): Promise<{ closed: number; gone: number }> {
  const notice: ServerEvent = { type: 'expired', message: 'Your sign-in for this connection expired; reconnect with a fresh token.' };
  let closed = 0;
  let gone = 0;
  for await (const page of deps.store.expiredConnections(Math.floor(nowMs / 1000), SWEEP_LOOKBACK_SECONDS)) {
    for (const connectionId of page) {
      // The index is a hint that may lag a refresh: only the connection's own record says it is expired.
      const current = await deps.store.getConnection(connectionId);
      if (!current || current.tokenExpiresAt > Math.floor(nowMs / 1000)) continue;
      try {
        await deps.api.post(connectionId, JSON.stringify(notice));
        await deps.api.remove(connectionId);
        closed++;
      } catch (err) {
        if (!isGone(err)) {
          deps.log.warn('sweep_close_failed', { connectionId, error: err as Error });
          continue;
        }
        await departConnection(connectionId, deps);
        gone++;
      }
    }
  }
  if (closed + gone > 0) deps.log.info('swept', { category: 'audit', closed, gone });
  deps.log.metrics({ [METRICS.sweepClosed]: closed, [METRICS.sweepGone]: gone });
  return { closed, gone };
}
