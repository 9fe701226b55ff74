/**
 * Typed rooms: a map from room pattern to the payload type of the room's messages, checked at compile time.
 *
 *   type Rooms = { jobs: JobUpdate; 'chat:*': { text: string } };
 *   const client = new GatehouseClient<Rooms>({ ... });
 *   client.send('chat:general', { text: 'hi' });   // ok
 *   client.send('chat:general', { txt: 'hi' });    // compile error
 *   client.send('other', 1);                       // compile error: no pattern matches
 *
 * `*` in a pattern matches any run of characters. The map is a contract between your senders and receivers, not a
 * validation: the server accepts any JSON, so a publisher outside TypeScript can still send another shape.
 */
import type { HistoryEvent, MessageEvent, MessageUpdatedEvent } from '../../../protocol';

/** Room pattern to payload type. The default, `{ '*': Json }`, accepts any room and any JSON. */
export type RoomMap = Record<string, unknown>;

/** The room names a pattern stands for: `'chat:*'` is `` `chat:${string}` ``. */
export type RoomName<Pattern extends string> = Pattern extends `${infer Head}*${infer Tail}` ? `${Head}${string}${RoomName<Tail>}` : Pattern;

/** Every room name the map allows. */
export type RoomOf<Rooms extends RoomMap> = { [P in keyof Rooms & string]: RoomName<P> }[keyof Rooms & string];

/** The payload of messages in `Room` (the union when several patterns match it). */
export type PayloadOf<Rooms extends RoomMap, Room extends string> = {
  [P in keyof Rooms & string]: Room extends RoomName<P> ? Rooms[P] : never;
}[keyof Rooms & string];

/** A message of one of the map's rooms: narrow on `room` (`if (m.room === 'jobs')`) to get that room's payload. */
export type TypedMessage<Rooms extends RoomMap> = {
  [P in keyof Rooms & string]: Omit<MessageEvent, 'room' | 'data'> & { room: RoomName<P>; data: Rooms[P] };
}[keyof Rooms & string];

/** A message of `Room`. */
export type RoomMessage<Rooms extends RoomMap, Room extends string> = Omit<MessageEvent, 'room' | 'data'> & { room: Room; data: PayloadOf<Rooms, Room> };

/** An edit in one of the map's rooms (its new content has the room's payload type). */
export type TypedUpdate<Rooms extends RoomMap> = {
  [P in keyof Rooms & string]: Omit<MessageUpdatedEvent, 'room' | 'data'> & { room: RoomName<P>; data: Rooms[P] };
}[keyof Rooms & string];

/** A page of `Room`'s history (a deleted message's `data` is null). */
export type RoomHistory<Rooms extends RoomMap, Room extends string> = Omit<HistoryEvent, 'messages' | 'room'> & {
  room: Room;
  messages: Array<RoomMessage<Rooms, Room>>;
};
