/**
 * A sample room authorization hook (see RoomAuthorizerProps in lib/realtime-api.ts): the message function invokes it
 * at a join of a room in a namespace the deployment gave it, with the connection's verified identity, and it answers
 * `{ "allow": true | false }`. Anything else it does (throwing, answering garbage, taking too long) refuses the join.
 *
 * The rule: `run:<id>` is for users whose groups include `runs:<id>` (that run) or `run-viewers` (every run of the
 * tenant). Groups are Cognito groups, in the access token, managed by administrators. Every other room is denied.
 * Each decision is logged once (`room_hook_decided`), so its invocations can be counted.
 *
 * Test behaviours, only when ROOM_HOOK_TEST_BEHAVIOURS=true (never set by the stack; the end-to-end tests set it):
 * `run:fail-*` throws (a FunctionError), `run:slow-*` answers after ROOM_HOOK_TEST_DELAY_MS (default 3000 ms, past
 * the caller's 2 s time-out), `run:garbage-*` answers `{ "allow": "yes" }` (malformed).
 */
import { createLogger } from '../../common/log';
import type { RoomHookAnswer, RoomHookRequest } from '../core/room-access';

const log = createLogger({ component: 'room-hook' });
const testBehaviours = process.env.ROOM_HOOK_TEST_BEHAVIOURS === 'true';
const testDelayMs = Number(process.env.ROOM_HOOK_TEST_DELAY_MS ?? 3000);

/** The sample's rule, on its own so it can be read (and tested) apart from the test behaviours. */
export function allows(request: RoomHookRequest): boolean {
  const match = /^run:(.+)$/.exec(request.room);
  if (!match) return false;
  return request.identity.groups.includes(`runs:${match[1]}`) || request.identity.groups.includes('run-viewers');
}

function isRequest(event: unknown): event is RoomHookRequest {
  const e = event as Partial<RoomHookRequest> | null;
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof e.room === 'string' &&
    typeof e.identity?.userId === 'string' &&
    typeof e.identity.tenantId === 'string' &&
    Array.isArray(e.identity.groups) &&
    e.identity.groups.every((g) => typeof g === 'string')
  );
}

export const handler = async (event: unknown): Promise<RoomHookAnswer | { allow: string }> => {
  if (!isRequest(event)) {
    log.warn('room_hook_bad_request', {});
    return { allow: false };
  }
  const { room, identity } = event;
  if (testBehaviours) {
    if (room.startsWith('run:fail-')) {
      log.info('room_hook_decided', { room, userId: identity.userId, tenantId: identity.tenantId, test: 'fail' });
      throw new Error('Sample hook: failing on purpose (test behaviour).');
    }
    if (room.startsWith('run:slow-')) {
      log.info('room_hook_decided', { room, userId: identity.userId, tenantId: identity.tenantId, test: 'slow' });
      await new Promise((resolve) => setTimeout(resolve, testDelayMs));
      return { allow: true };
    }
    if (room.startsWith('run:garbage-')) {
      log.info('room_hook_decided', { room, userId: identity.userId, tenantId: identity.tenantId, test: 'garbage' });
      return { allow: 'yes' };
    }
  }
  const allow = allows(event);
  log.info('room_hook_decided', { room, userId: identity.userId, tenantId: identity.tenantId, allow });
  return { allow };
};
