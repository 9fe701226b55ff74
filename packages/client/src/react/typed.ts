/**
 * The hooks typed by a client's room map (see ../rooms.ts). A room map is a compile-time contract: at runtime every
 * client is the same, so these are the untyped hooks themselves, under typed signatures.
 *
 *   type Rooms = { jobs: JobUpdate; 'chat:*': { text: string } };
 *   export const { GatehouseProvider, useRoom, usePresence } = createGatehouseHooks<Rooms>();
 *   useRoom('chat:general').messages[0].data    // { text: string } (once narrowed: `!m.deleted`)
 *   useRoom('other')                            // compile error: no pattern matches
 */
import type { ReactElement } from 'react';
import type { GatehouseClient } from '../client';
import type { RoomMap, RoomOf } from '../rooms';
import { GatehouseProvider, useGatehouse, type GatehouseProviderProps } from './context';
import { useConnectionState, usePresence, useRoom, useTyping, useUnread, type RoomOptions, type RoomView } from './hooks';

/** The bindings for clients of one room map; each member is the hook of the same name, typed. */
export interface GatehouseHooks<Rooms extends RoomMap> {
  /** {@link GatehouseProvider} for a `GatehouseClient<Rooms>`. */
  GatehouseProvider(props: GatehouseProviderProps<Rooms>): ReactElement;
  /** {@link useGatehouse}: the client, with its room map. */
  useGatehouse(): GatehouseClient<Rooms>;
  /** {@link useConnectionState} */
  useConnectionState: typeof useConnectionState;
  /** {@link useRoom}, for the map's rooms only: messages and actions carry the room's payload type. */
  useRoom<Room extends RoomOf<Rooms>>(room: Room, options?: RoomOptions): RoomView<Rooms, Room>;
  /** {@link usePresence} */
  usePresence(room: RoomOf<Rooms>): ReturnType<typeof usePresence>;
  /** {@link useTyping} */
  useTyping(room: RoomOf<Rooms>): ReturnType<typeof useTyping>;
  /** {@link useUnread} */
  useUnread: { (): ReadonlyMap<string, number>; (room: RoomOf<Rooms>): number };
}

/** The hooks typed by `Rooms`: call once per room map, at module level, and use what it returns. */
export function createGatehouseHooks<Rooms extends RoomMap>(): GatehouseHooks<Rooms> {
  return { GatehouseProvider, useGatehouse, useConnectionState, useRoom, usePresence, useTyping, useUnread } as unknown as GatehouseHooks<Rooms>;
}
