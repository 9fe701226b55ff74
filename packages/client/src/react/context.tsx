/**
 * The provider, and how the hooks reach the store of its client (see ./store.ts).
 */
import { createContext, useCallback, useContext, useEffect, useSyncExternalStore, type ReactElement, type ReactNode } from 'react';
import type { DefaultRooms, GatehouseClient } from '../client';
import type { RoomMap } from '../rooms';
import { storeFor, type GatehouseStore } from './store';

const StoreContext = createContext<GatehouseStore | undefined>(undefined);

export interface GatehouseProviderProps<Rooms extends RoomMap = DefaultRooms> {
  /** The client the hooks below use. Connecting and closing it stay with the app. */
  client: GatehouseClient<Rooms>;
  /**
   * Failures of work the hooks do in the background that no hook state shows: loading unread counts and read
   * receipts, leaving a room after its last user unmounted. Work cut short by a closed connection is not reported
   * (it is redone once the connection is back, or moot). @default the platform's `reportError` (as an uncaught error)
   */
  onError?: (error: Error) => void;
  children?: ReactNode;
}

/**
 * Makes `client` the one the Gatehouse hooks below use. Several providers of one client (say, a status bar in the
 * header and the rooms in the page) share its state: one join per room, one set of snapshots.
 */
export function GatehouseProvider({ client, onError, children }: GatehouseProviderProps): ReactElement {
  // Idempotent per client, so a render that React discards leaves nothing behind but the store the next one uses.
  const store = storeFor(client);
  useEffect(() => (onError ? store.onError(onError) : undefined), [store, onError]);
  return <StoreContext.Provider value={store}>{children}</StoreContext.Provider>;
}

export function useStore(): GatehouseStore {
  const store = useContext(StoreContext);
  if (!store) throw new Error('The Gatehouse hooks need a <GatehouseProvider client={...}> above them.');
  return store;
}

/** The client of the nearest GatehouseProvider, for what the hooks do not cover (requests, events). */
export function useGatehouse(): GatehouseClient {
  return useStore().client;
}

/** `read()` of the store, read again after every change of `topic`. */
export function useTopic<T>(store: GatehouseStore, topic: string, read: () => T): T {
  // Stable while the topic is: a new subscribe function would make React resubscribe on every render.
  const subscribe = useCallback((onChange: () => void) => store.listen(topic, onChange), [store, topic]);
  return useSyncExternalStore(subscribe, read, read);
}
