import { useEffect, useState } from 'react';
import type { ConnectionState } from '@gatehouse/client';
import { useConnectionState } from '@gatehouse/client/react';

const LABELS: Record<ConnectionState, string> = {
  idle: 'Connecting…',
  connecting: 'Connecting…',
  open: 'Live',
  reconnecting: 'Reconnecting…',
  signed_out: 'Signed out',
  closed: 'Disconnected',
};

/** Always-visible connection state: connecting, live, reconnecting in N s, signed out. */
export function StatusBar() {
  const { state, retryAt } = useConnectionState();
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (retryAt === undefined) return;
    const timer = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(timer);
  }, [retryAt]);

  const text =
    state === 'reconnecting' && retryAt !== undefined
      ? `Reconnecting in ${Math.max(0, Math.ceil((retryAt - now) / 1000))} s`
      : LABELS[state];
  return (
    <span className={`status status-${state}`} role="status" aria-live="polite" data-state={state}>
      <span className="dot" aria-hidden="true" />
      {text}
    </span>
  );
}
