import { useEffect, useState } from 'react';
import type { Connection } from './Workspace';

const LABELS: Record<Connection['state'], string> = {
  idle: 'Connecting…',
  connecting: 'Connecting…',
  open: 'Live',
  reconnecting: 'Reconnecting…',
  signed_out: 'Signed out',
  closed: 'Disconnected',
};

/** Always-visible connection state: connecting, live, reconnecting in N s, signed out. */
export function StatusBar({ connection }: { connection: Connection }) {
  const [now, setNow] = useState(() => Date.now());
  const { retryAt } = connection;
  useEffect(() => {
    if (retryAt === undefined) return;
    const timer = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(timer);
  }, [retryAt]);

  const text =
    connection.state === 'reconnecting' && retryAt !== undefined
      ? `Reconnecting in ${Math.max(0, Math.ceil((retryAt - now) / 1000))} s`
      : LABELS[connection.state];
  return (
    <span className={`status status-${connection.state}`} role="status" aria-live="polite" data-state={connection.state}>
      <span className="dot" aria-hidden="true" />
      {text}
    </span>
  );
}
