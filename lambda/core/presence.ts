/**
 * Room signals: presence changes and typing indicators. Ephemeral (never in history, never replayed) and bounded:
 * a signal goes only to rooms of at most `signalMaxMembers` connections, found with one read of at most that many
 * membership keys. A bigger room gets none (its presence is the snapshot a join or `presence` returns), so a
 * presence change costs at most one presence write, one read of up to `signalMaxMembers + 1` keys and that many
 * posts, whatever the size of the room.
 */
import type { Logger } from '../../common/log';
import { PRESENCE_SNAPSHOT_MAX, REALTIME_DEFAULTS, type Member, type PresenceEvent, type PresenceSnapshot, type ReceiptEvent, type TypingEvent } from '../../protocol';
import { broadcast, type BroadcastResult } from './broadcast';
import type { RealtimeConfig } from './config';
import type { ConnectionsApi } from './connections-api';
import type { ConnectionStore, Departure } from './store';

/** What signalling needs; every runtime that removes connections has it (limits default when not configured). */
export interface SignalDeps {
  store: ConnectionStore;
  api: ConnectionsApi;
  log: Logger;
  config?: Partial<Pick<RealtimeConfig, 'signalMaxMembers' | 'broadcastConcurrency'>>;
}

const maxMembers = (deps: SignalDeps) => deps.config?.signalMaxMembers ?? REALTIME_DEFAULTS.signalMaxMembers;

/** Posts a signal to the room's connections (but `except`); `live: false` when the room is too big for signals. */
export async function signalRoom(
  tenantId: string,
  room: string,
  event: PresenceEvent | TypingEvent | ReceiptEvent,
  deps: SignalDeps,
  except?: string,
): Promise<{ live: boolean; result?: BroadcastResult }> {
  const members = await deps.store.roomMembersUpTo(tenantId, room, maxMembers(deps));
  if (!members) return { live: false };
  const recipients = members.filter((id) => id !== except);
  const result = await broadcast([recipients], JSON.stringify(event), {
    api: deps.api,
    removeConnection: (id) => departConnection(id, deps),
    log: deps.log,
    concurrency: deps.config?.broadcastConcurrency ?? REALTIME_DEFAULTS.broadcastConcurrency,
  });
  return { live: true, result };
}

/** Deletes a connection (a $disconnect, or one found gone) and tells each room whose presence it ended. */
export async function departConnection(connectionId: string, deps: SignalDeps): Promise<number> {
  const { removed, departures } = await deps.store.removeConnection(connectionId);
  await announceDepartures(departures, deps);
  return removed;
}

export async function announceDepartures(departures: Departure[], deps: SignalDeps): Promise<void> {
  await Promise.all(
    departures.map((d) => signalRoom(d.tenantId, d.room, { type: 'presence', room: d.room, change: 'left', user: { userId: d.userId, name: d.name }, v: d.v }, deps)),
  );
}

/**
 * A connection entered a room: adds it to the user's presence, tells the others when it is the user's first socket
 * there, and returns the room's presence for the join's reply (the joiner included).
 */
export async function enterRoom(
  tenantId: string,
  room: string,
  member: Member,
  connection: { connectionId: string; expiresAt: number },
  deps: SignalDeps,
): Promise<PresenceSnapshot> {
  const change = await deps.store.presence.enter(tenantId, room, member, connection.connectionId, connection.expiresAt);
  const live = change.changed
    ? (await signalRoom(tenantId, room, { type: 'presence', room, change: 'joined', user: member, v: change.v }, deps, connection.connectionId)).live
    : await isLive(tenantId, room, deps);
  return snapshotOf(tenantId, room, live, deps);
}

/** Whether the room is small enough for live signals. */
export async function isLive(tenantId: string, room: string, deps: SignalDeps): Promise<boolean> {
  return (await deps.store.roomMembersUpTo(tenantId, room, maxMembers(deps))) !== undefined;
}

export async function snapshotOf(tenantId: string, room: string, live: boolean, deps: SignalDeps): Promise<PresenceSnapshot> {
  const { users, more } = await deps.store.presence.snapshot(tenantId, room, PRESENCE_SNAPSHOT_MAX);
  return { users, live, ...(more ? { more: true as const } : {}) };
}

/** A connection left a room: its user's presence ends there if it was their last socket. */
export async function exitRoom(tenantId: string, room: string, userId: string, connectionId: string, deps: SignalDeps): Promise<void> {
  const exit = await deps.store.presence.exit(tenantId, room, userId, connectionId);
  if (exit?.changed) await announceDepartures([{ tenantId, room, userId, name: exit.name, v: exit.v }], deps);
}
