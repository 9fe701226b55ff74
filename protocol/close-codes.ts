/**
 * Every WebSocket close code Gatehouse's sockets (realtime and speech) end with, in one catalog: what it means and
 * whether a client should come back. Codes below 4000 are the RFC 6455 registry (API Gateway sends 1001 at its
 * idle and 2-hour limits, 1003 for a binary frame, 1009 for an oversize one); 4000-4499 are ours and mean "reconnect",
 * 4500-4999 are ours and mean "do not" (the centrifuge convention: the range alone tells a client what to do).
 *
 * Runs in Node and in browsers.
 */

export interface CloseCode {
  readonly code: number;
  /** The close frame's reason (at most 123 bytes). */
  readonly reason: string;
  /** Whether a client that did not ask for this close should open a new connection. */
  readonly reconnect: boolean;
}

const close = (code: number, reason: string, reconnect: boolean): CloseCode => ({ code, reason, reconnect });

export const CLOSE = {
  /**
   * A close on purpose. Sent by a client, it is the end. Received from the server (API Gateway closes a connection
   * it was told to delete with it), it is not: a server that means "do not come back" says so first
   * (`signed_out`), so a client reconnects, with a fresh credential, when it did not ask for this close.
   */
  normal: close(1000, 'client closed', true),
  /** The server is restarting or a connection limit (idle, 2 h) was reached: come back. */
  goingAway: close(1001, 'going away', true),
  /** The frame was binary where text is expected (API Gateway). A client bug: reconnecting repeats it. */
  unsupportedData: close(1003, 'unsupported data', false),
  /** A credential problem (missing, expired, signed out) or a policy broken (flooding). A new credential may help. */
  policy: close(1008, 'policy violation', false),
  /** A frame over the size limit. */
  tooBig: close(1009, 'message too big', false),
  /** The server failed; a new connection may succeed. */
  internal: close(1011, 'internal error', true),
  /** No capacity here now: come back after a backoff. */
  tryAgainLater: close(1013, 'try again later', true),
  /** Client side: no answer to a heartbeat, the connection is dead. */
  heartbeatTimeout: close(4000, 'heartbeat timeout', true),
  /** Client side: the credential could not be renewed on the open socket; a new connection gets a fresh one. */
  renewalFailed: close(4001, 'renewal failed', true),
  /**
   * Client side: the credential is due for renewal within the connection's last minutes (API Gateway ends every
   * connection at 2 hours): a new connection with a fresh one now costs less than a refresh now and the reconnect
   * at 2 hours.
   */
  renewByReconnect: close(4002, 'renewing by reconnecting', true),
  /** Client side: the sign-in is over (signed out, revoked, session gone): sign in again. */
  signedOut: close(4500, 'signed out', false),
} as const;

export type CloseName = keyof typeof CLOSE;

/** Whether a close that the client did not ask for should be followed by a reconnect. */
export function shouldReconnect(code: number): boolean {
  const known = Object.values(CLOSE).find((c) => c.code === code);
  if (known) return known.reconnect;
  if (code >= 4500 && code <= 4999) return false;
  // 1005/1006 (no close frame: the network dropped), 1012 (service restart) and anything unknown: come back.
  return true;
}
