import { useEffect, useMemo, useState } from 'react';
import { GatehouseClient, type ConnectionState } from '../../client/index';
import type { Auth, User } from './auth';
import { withQuery } from './config';
import { Jobs } from './Jobs';
import { Rooms } from './Rooms';
import { Speech } from './Speech';
import { StatusBar } from './StatusBar';
import { announceSignOut } from './tabs';

type Tab = 'rooms' | 'jobs' | 'speech';
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

const withTenant = (url: string, tenant: string | undefined) => (tenant ? withQuery(url, 'tenant', tenant) : url);

export function Workspace({
  config,
  auth,
  user,
  onSignedOut,
}: {
  config: { realtimeUrl: string; speechUrl: string };
  auth: Auth;
  user: User;
  onSignedOut: (notice?: string) => void;
}) {
  const [tenant, setTenant] = useState(user.tenants[0]);
  const [tab, setTab] = useState<Tab>('rooms');
  const [connection, setConnection] = useState<Connection>({ state: 'idle' });
  const [problem, setProblem] = useState<string>();

  // One socket per tab and tenant, opened only now that the user is signed in; closed on unmount (sign-out).
  const client = useMemo(() => {
    const credentials = auth.sockets();
    return new GatehouseClient({
      url: withTenant(config.realtimeUrl, user.tenants.length > 1 ? tenant : undefined),
      token: credentials.token,
      socket: credentials.factory,
      renew: credentials.renew,
      ...(credentials.renewToken ? { renewToken: credentials.renewToken } : {}),
    });
  }, [auth, config.realtimeUrl, tenant, user.tenants.length]);

  useEffect(() => {
    const off = client.on('state', (s) => {
      setConnection({ state: s.state, ...(s.retryInMs !== undefined ? { retryAt: Date.now() + s.retryInMs } : {}) });
      if (s.state === 'signed_out') onSignedOut('You were signed out.');
    });
    client.connect().catch((err: Error) => setProblem(`Could not connect: ${err.message}`));
    return () => {
      off();
      void client.close();
    };
  }, [client, onSignedOut]);

  async function signOut(everywhere: boolean) {
    try {
      // Token mode: the server revokes this sign-in and closes its sockets; session mode does it in /api/logout.
      if (auth.mode === 'token' && client.state === 'open') await client.request({ action: 'logout', everywhere }).catch(() => undefined);
      await auth.signOut(everywhere);
    } finally {
      await client.close();
      announceSignOut();
      onSignedOut(everywhere ? 'Signed out everywhere.' : 'Signed out.');
    }
  }

  return (
    <div className="workspace">
      <header className="topbar">
        <span className="brand">
          <span className="logo" aria-hidden="true">▣</span> Gatehouse
        </span>
        <StatusBar connection={connection} />
        <span className="who">
          <span className="email">{user.email}</span>
          {user.tenants.length > 1 ? (
            <label>
              <span className="visually-hidden">Tenant</span>
              <select value={tenant} onChange={(e) => setTenant(e.target.value)} aria-label="Tenant">
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
      {problem && <p className="error banner" role="alert">{problem}</p>}
      <nav className="tabs" aria-label="Sections">
        {TABS.map(([id, label]) => (
          <button key={id} type="button" aria-current={tab === id ? 'page' : undefined} className={tab === id ? 'active' : ''} onClick={() => setTab(id)}>
            {label}
          </button>
        ))}
      </nav>
      <main className="content">
        {/* Rooms and jobs stay mounted so nothing is missed while another section is open. */}
        <section hidden={tab !== 'rooms'} aria-label="Rooms">
          <Rooms key={tenant} client={client} me={user.userId} live={connection.state === 'open'} />
        </section>
        <section hidden={tab !== 'jobs'} aria-label="Job progress">
          <Jobs key={tenant} client={client} live={connection.state === 'open'} />
        </section>
        {tab === 'speech' && (
          <section aria-label="Speech">
            <Speech url={withTenant(config.speechUrl, user.tenants.length > 1 ? tenant : undefined)} auth={auth} />
          </section>
        )}
      </main>
    </div>
  );
}
