/**
 * `@gatehouse/client/react`: React bindings for the Gatehouse client. Put a `<GatehouseProvider client={client}>`
 * above the components, and read the connection, rooms, presence, typing and unread counts with the hooks; for a
 * client with a room map, `createGatehouseHooks<Rooms>()` gives the same hooks typed by it.
 */
export { GatehouseProvider, useGatehouse, type GatehouseProviderProps } from './context';
export { useConnectionState, usePresence, useRoom, useTyping, useUnread, type RoomActions, type RoomOptions, type RoomView } from './hooks';
export type { ShownMessage } from './messages';
export { DEFAULT_KEEP, DEFAULT_PAGE_SIZE, type RoomSnapshot, type RoomStatus, type Sent } from './feed';
export type { ConnectionSnapshot, RoomPresence } from './store';
export { createGatehouseHooks, type GatehouseHooks } from './typed';
