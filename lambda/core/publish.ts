/**
 * Server-side publishing: a backend service puts `{tenantId, room, type, payload}` on the event bus; this delivers
 * it to that room of that tenant only, through the same path as user messages (sequence, history, broadcast).
 *
 * Delivery is idempotent per EventBridge event id, because the same event can arrive more than once: Lambda
 * retries an invocation that failed, and EventBridge may invoke a target twice for one event. The first invocation
 * claims the event (a lease that ends with its own timeout) and gives it a sequence number once; a retry reuses
 * that number and content, so members and the history see one message however many attempts it took; a duplicate
 * of a delivered event, or of one another invocation is delivering, does nothing. That is safe because the holder
 * is itself an asynchronous invocation: if it fails, Lambda retries it, and if it keeps failing its own record goes
 * to the on-failure destination (a duplicate that failed in its place would only add a false alarm).
 */
import { parsePublishRequest, type Limits } from '../../protocol';
import type { BroadcastResult } from './broadcast';
import { deliverToRoom, numberMessage, type DeliverDeps } from './deliver';

export interface PublishEvent {
  id?: string;
  source: string;
  'detail-type': string;
  detail: unknown;
}

export type PublishOutcome =
  | { delivered: true; seq: number; result: BroadcastResult }
  | { delivered: false; duplicate: 'delivered' | 'in_flight'; eventId: string }
  | { delivered: false; error: string };

/** How long an event id is remembered: longer than EventBridge and Lambda keep retrying it (an hour each). */
export const PUBLISHED_RECORD_SECONDS = 24 * 3600;

export async function handlePublish(
  event: PublishEvent,
  deps: DeliverDeps & { config: DeliverDeps['config'] & { limits: Limits } },
  invocation: { remainingMs: number },
): Promise<PublishOutcome> {
  const parsed = parsePublishRequest(event.detail, deps.config.limits);
  const eventId = event.id;
  if (!parsed.ok || !eventId) {
    // Retrying cannot fix a malformed event: log it and let it go (EventBridge would otherwise retry for hours).
    const error = parsed.ok ? 'The event has no id.' : parsed.error;
    deps.log.warn('publish_rejected', { eventId, source: event.source, error });
    return { delivered: false, error };
  }
  const { store } = deps;
  const now = (deps.now ?? Date.now)();
  const claim = await store.claimPublished(eventId, now + invocation.remainingMs, Math.floor(now / 1000) + PUBLISHED_RECORD_SECONDS);
  if (!claim.claimed) {
    const duplicate = claim.done ? 'delivered' : 'in_flight';
    deps.log.info('publish_duplicate', { eventId, source: event.source, duplicate });
    return { delivered: false, duplicate, eventId };
  }
  const { tenantId, room, type, payload } = parsed.request;
  try {
    const { seq, messageId, ts, n } = claim.record;
    const numbered =
      seq !== undefined && messageId !== undefined && ts !== undefined
        ? { seq, messageId, ts, ...(n === undefined ? {} : { n }) }
        : await store.assignPublished(eventId, await numberMessage(tenantId, room, deps));
    const { result } = await deliverToRoom(tenantId, room, { sender: { service: event.source }, kind: type, data: payload }, deps, { numbered });
    await store.finishPublished(eventId, 'done');
    deps.log.info('published', { eventId, source: event.source, tenantId, room, kind: type, seq: numbered.seq, retry: seq !== undefined, ...result });
    return { delivered: true, seq: numbered.seq, result };
  } catch (err) {
    // Let the retry that follows take the event over at once instead of waiting out this invocation's lease.
    await store.finishPublished(eventId, 'released').catch(() => undefined);
    throw err;
  }
}
