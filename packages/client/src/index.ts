/**
 * `@gatehouse/client`: the Gatehouse client for browsers and Node. No Node-only imports here (see ./node.ts for the
 * Node transport, password sign-in and WAV helpers).
 */
export * from './client';
export * from './format';
export * from './resample';
export * from './rooms';
export * from './speech';
export { CLOSE, shouldReconnect, ROOM_PATTERN, SUBPROTOCOL, HISTORY_PAGE_MAX, TYPING_EXPIRY_MS } from '../../../protocol';
export type {
  ErrorCode,
  HistoryEvent,
  JoinedEvent,
  Json,
  Member,
  MessageDeletedEvent,
  MessageEvent,
  MessageUpdatedEvent,
  ReadCursor,
  Sender,
  ServerEvent,
  SpeechEvent,
  WhoamiEvent,
} from '../../../protocol';
