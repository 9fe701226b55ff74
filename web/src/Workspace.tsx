/**
 * The signed-in app: the header (status, tenant, sign-out), the sections, and one Tenant view per tenant the user
 * has opened. Each tenant keeps its own socket and state for as long as the user is signed in, so switching tenants
 * and back loses nothing (a user of several tenants is rare, and has at most one socket per tenant).
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import type { ConnectionState, GatehouseClient } from '@gatehouse/client';
import type { Auth, User } from './auth';
import { StatusBar } from './StatusBar';
import { announceSignOut } from './tabs';
import { Tenant } from './Tenant';

export type Tab = 'rooms' | 'jobs' | 'speech';
const TABS: Array<[Tab, string]> = [
  ['rooms', 'Rooms'],
  ['jobs', 'Job progress'],
  ['speech', 'Speech'],
];

export interface Connection {
  state: ConnectionState;
  /** When the next reconnect attempt starts (epoch ms), while reconnecting. */
  retryAt?: number;
}

export function Workspace({
  config,
  auth,
  user,
  onSignedOut,
  onSessionEnded,
}: {
  config: { realtimeUrl: string; speechUrl: string };
  auth: Auth;
  user: User;
  onSignedOut: (notice?: string) => void;
  /** The sign-in is gone (the server refused it on a reconnect): not a sign-out anyone asked for. */
  onSessionEnded: () => void;
}) {
  const [tenant, setTenant] = useState(user.tenants[0]);
  // Tenants opened so far, in the order opened: each stays mounted (socket and messages) until sign-out.
  const [opened, setOpened] = useState<string[]>(() => [user.tenants[0]]);
  const [tab, setTab] = useState<Tab>('rooms');
  const [connections, setConnections] = useState<Record<string, Connection>>({});
  const clients = useRef(new Map<string | undefined, GatehouseClient>());
  const heading = useRef<HTMLHeadingElement>(null);

  // After sign-in, focus starts inside the workspace (Rooms moves it on to the compose box once it is usable),
  // not on a body the sign-in form left behind.
  useEffect(() => heading.current?.focus(), []);

  const onClient = useCallback((t: string | undefined, client: GatehouseClient | undefined) => {
    if (client) clients.current.set(t, client);
    else clients.current.delete(t);
  }, []);
  const onConnection = useCallback((t: string | undefined, c: Connection) => setConnections((all) => ({ ...all, [String(t)]: c })), []);

  function switchTenant(next: string) {
    setTenant(next);
    setOpened((all) => (all.includes(next) ? all : [...all, next]));
  }

  async function signOut(everywhere: boolean) {
    const client = clients.current.get(tenant);
    try {
      // Token mode: the server revokes this sign-in and closes its sockets; session mode does it in /api/logout.
      if (auth.mode === 'token' && client?.state === 'open') await client.request({ action: 'logout', everywhere }).catch(() => undefined);
      await auth.signOut(everywhere);
    } finally {
      await Promise.all([...clients.current.values()].map((c) => c.close()));
      announceSignOut();
      onSignedOut(everywhere ? 'Signed out everywhere.' : 'Signed out.');
    }
  }

  return (
    <div className="workspace">
      <header className="topbar">
        <h1 className="brand" ref={heading} tabIndex={-1}>
          <span className="logo" aria-hidden="true">▣</span> Gatehouse
        </h1>
        <StatusBar connection={connections[String(tenant)] ?? { state: 'idle' }} />
        <span className="who">
          <span className="email">{user.email}</span>
          {user.tenants.length > 1 ? (
            <label>
              <span className="visually-hidden">Tenant</span>
              <select value={tenant} onChange={(e) => switchTenant(e.target.value)} aria-label="Tenant">
                {user.tenants.map((t) => (
                  <option key={t}>{t}</option>
                ))}
              </select>
            </label>
          ) : (
            <span className="tenant" title="Tenant">{tenant ?? 'no tenant'}</span>
          )}
        </span>
        <span className="actions">
          <button type="button" onClick={() => void signOut(false)}>Sign out</button>
          <button type="button" className="secondary" onClick={() => void signOut(true)}>Sign out everywhere</button>
        </span>
      </header>
      <nav className="tabs" aria-label="Sections">
        {TABS.map(([id, label]) => (
          <button key={id} type="button" aria-current={tab === id ? 'page' : undefined} className={tab === id ? 'active' : ''} onClick={() => setTab(id)}>
            {label}
          </button>
        ))}
      </nav>
      <main className="content">
        {opened.map((t) => (
          <Tenant
            key={String(t)}
            tenant={t}
            // Only a user of several tenants names one (on the URL and in the ticket); the server knows the only one.
            pick={user.tenants.length > 1}
            active={t === tenant}
            tab={tab}
            config={config}
            auth={auth}
            user={user}
            onClient={onClient}
            onConnection={onConnection}
            onSignedOut={onSignedOut}
            onSessionEnded={onSessionEnded}
          />
        ))}
      </main>
    </div>
  );
}
