/**
 * Server-side publishing: a backend service puts `{tenantId, room, type, payload}` on the event bus; this delivers
 * it to that room of that tenant only, through the same path as user messages (sequence, history, broadcast).
 */
import { parsePublishRequest, type Limits } from '../../common/protocol';
import type { BroadcastResult } from './broadcast';
import { deliverToRoom, type DeliverDeps } from './deliver';

export interface PublishEvent {
  id?: string;
  source: string;
  'detail-type': string;
  detail: unknown;
}

export type PublishOutcome = { delivered: true; seq: number; result: BroadcastResult } | { delivered: false; error: string };

export async function handlePublish(
  event: PublishEvent,
  deps: DeliverDeps & { config: DeliverDeps['config'] & { limits: Limits } },
): Promise<PublishOutcome> {
  const parsed = parsePublishRequest(event.detail, deps.config.limits);
  if (!parsed.ok) {
    // Retrying cannot fix a malformed event: log it and let it go (EventBridge would otherwise retry for hours).
    deps.log.warn('publish_rejected', { eventId: event.id, source: event.source, error: parsed.error });
    return { delivered: false, error: parsed.error };
  }
  const { tenantId, room, type, payload } = parsed.request;
  const { event: message, result } = await deliverToRoom(
    tenantId,
    room,
    { sender: { service: event.source }, kind: type, data: payload },
    deps,
  );
  deps.log.info('published', { eventId: event.id, source: event.source, tenantId, room, kind: type, seq: message.seq, ...result });
  return { delivered: true, seq: message.seq, result };
}
