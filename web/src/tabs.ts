/** Tells the other tabs of this browser that the user signed out, so none of them keeps a live socket. */
const channel = typeof BroadcastChannel === 'undefined' ? undefined : new BroadcastChannel('gatehouse-auth');

export function announceSignOut(): void {
  channel?.postMessage({ type: 'signed-out' });
}

export function onSignOutElsewhere(listener: () => void): () => void {
  const handler = (event: MessageEvent<{ type?: string }>) => event.data?.type === 'signed-out' && listener();
  channel?.addEventListener('message', handler);
  return () => channel?.removeEventListener('message', handler);
}
