/**
 * The signed-in app: the header (status, tenant, sign-out), the sections, and one Tenant view per tenant the user
 * has opened. Each tenant keeps its own socket and state for as long as the user is signed in, so switching tenants
 * and back loses nothing (a user of several tenants is rare, and has at most one socket per tenant). The header's
 * status and the tenant's view are two providers of one client: they share its state.
 */
import { useEffect, useRef, useState } from 'react';
import type { GatehouseClient } from '@gatehouse/client';
import { GatehouseProvider } from '@gatehouse/client/react';
import type { Auth, User } from './auth';
import { StatusBar } from './StatusBar';
import { announceSignOut } from './tabs';
import { Tenant, tenantClient } from './Tenant';

export type Tab = 'rooms' | 'jobs' | 'speech';
const TABS: Array<[Tab, string]> = [
  ['rooms', 'Rooms'],
  ['jobs', 'Job progress'],
  ['speech', 'Speech'],
];

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
  // Only a user of several tenants names one (on the URL and in the ticket); the server knows the only one.
  const named = (t: string | undefined) => (user.tenants.length > 1 ? t : undefined);
  // Tenants opened so far, in the order opened, with their clients: each stays mounted (socket and messages) until
  // sign-out. A client opens no socket until its Tenant view connects it.
  const [clients, setClients] = useState(() => new Map([[tenant, tenantClient(auth, config.realtimeUrl, named(tenant))]]));
  const [tab, setTab] = useState<Tab>('rooms');
  const heading = useRef<HTMLHeadingElement>(null);

  // After sign-in, focus starts inside the workspace (Rooms moves it on to the compose box once it is usable),
  // not on a body the sign-in form left behind.
  useEffect(() => heading.current?.focus(), []);

  function switchTenant(next: string) {
    setTenant(next);
    if (!clients.has(next)) setClients(new Map(clients).set(next, tenantClient(auth, config.realtimeUrl, named(next))));
  }

  async function signOut(everywhere: boolean) {
    const client = clients.get(tenant);
    try {
      // Token mode: the server revokes this sign-in and closes its sockets; session mode does it in /api/logout.
      if (auth.mode === 'token' && client?.state === 'open') await client.request({ action: 'logout', everywhere }).catch(() => undefined);
      await auth.signOut(everywhere);
    } finally {
      await Promise.all([...clients.values()].map((c) => c.close()));
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
        <CurrentStatus client={clients.get(tenant)} />
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
        {[...clients].map(([t, client]) => (
          <GatehouseProvider key={String(t)} client={client}>
            <Tenant
              tenant={t}
              named={named(t)}
              active={t === tenant}
              tab={tab}
              speechUrl={config.speechUrl}
              auth={auth}
              user={user}
              onSignedOut={onSignedOut}
              onSessionEnded={onSessionEnded}
            />
          </GatehouseProvider>
        ))}
      </main>
    </div>
  );
}

/** The status of the tenant shown (always opened: switching to a tenant opens it). */
function CurrentStatus({ client }: { client: GatehouseClient | undefined }) {
  return client ? (
    <GatehouseProvider client={client}>
      <StatusBar />
    </GatehouseProvider>
  ) : null;
}
