/**
 * Per-room authorization: which rule decides a room, by its namespace. Rooms always live inside the caller's tenant
 * (the tenant is part of every room key), so these rules only decide which rooms of that tenant a connection may
 * join. Pure: the rules that need the store (private rooms) or a deployer's hook (namespaces it names) say so, and
 * room-access.ts applies them.
 *
 *   plain name        open to the tenant
 *   user:<userId>     that user only
 *   admin:<name>      the tenant admin group only
 *   private:<name>    its member list only (room-access.ts)
 *   <ns>:<name>       the deployment's authorization hook, when it names <ns>; refused (reserved) otherwise
 */
import { namespaceOf } from '../../protocol';
import type { Identity } from './identity';

/** Why a rule refused a join without asking anyone (audit reasons; room-access.ts adds the others). */
export type StaticRefusal = 'other_user' | 'not_admin' | 'reserved_namespace';

export type RoomRule =
  | { kind: 'open' }
  | { kind: 'refused'; reason: StaticRefusal; message: string }
  /** A private room: its member list decides. */
  | { kind: 'members' }
  /** A namespace the deployment's hook decides. */
  | { kind: 'hook'; namespace: string };

/** The rule for `identity` joining `room` (which has passed the protocol's pattern). */
export function roomRule(identity: Pick<Identity, 'userId' | 'groups'>, room: string, adminGroup: string, hookNamespaces: readonly string[] = []): RoomRule {
  const namespace = namespaceOf(room);
  switch (namespace) {
    case undefined:
      return { kind: 'open' };
    case 'user':
      return room === `user:${identity.userId}` ? { kind: 'open' } : { kind: 'refused', reason: 'other_user', message: 'Room user:<id> is private to that user.' };
    case 'admin':
      return identity.groups.includes(adminGroup)
        ? { kind: 'open' }
        : { kind: 'refused', reason: 'not_admin', message: `Rooms admin:* are for members of the ${adminGroup} group.` };
    case 'private':
      return { kind: 'members' };
    default:
      return hookNamespaces.includes(namespace)
        ? { kind: 'hook', namespace }
        : { kind: 'refused', reason: 'reserved_namespace', message: `Namespace ${namespace}: is reserved.` };
  }
}

