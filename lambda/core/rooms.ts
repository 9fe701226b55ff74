/**
 * Per-room authorization. Rooms always live inside the caller's tenant (the tenant is part of every room key), so
 * these rules only decide which rooms of that tenant a connection may join.
 */
import type { Identity } from './identity';

/** Why `identity` may not join `room`, or undefined when it may. `room` has passed the protocol's pattern. */
export function roomRefusal(identity: Identity, room: string, adminGroup: string): string | undefined {
  if (room.startsWith('user:') && room !== `user:${identity.userId}`) {
    return 'Room user:<id> is private to that user.';
  }
  if (room.startsWith('admin:') && !identity.groups.includes(adminGroup)) {
    return `Rooms admin:* are for members of the ${adminGroup} group.`;
  }
  return undefined;
}
