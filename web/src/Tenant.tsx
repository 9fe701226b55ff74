/**
 * One tenant's part of the workspace: its socket, and its rooms, jobs and speech. Mounted once the user first opens
 * the tenant and kept (hidden) while another is shown, so its messages and job progress stay.
 */
import { useEffect, useMemo, useState } from 'react';
import { GatehouseClient } from '@gatehouse/client';
import { GROUP_DEFAULTS } from '../../protocol';
import { AuthError, SESSION_ENDED, type Auth, type User } from './auth';
import { withQuery } from './config';
import { Jobs } from './Jobs';
import { Rooms } from './Rooms';
import { Speech } from './Speech';
import type { Connection, Tab } from './Workspace';

export function Tenant({
  tenant,
  pick,
  active,
  tab,
  config,
  auth,
  user,
  onClient,
  onConnection,
  onSignedOut,
  onSessionEnded,
}: {
  tenant: string | undefined;
  /** Name the tenant on the socket (a user of several must). */
  pick: boolean;
  active: boolean;
  tab: Tab;
  config: { realtimeUrl: string; speechUrl: string };
  auth: Auth;
  user: User;
  onClient: (tenant: string | undefined, client: GatehouseClient | undefined) => void;
  onConnection: (tenant: string | undefined, connection: Connection) => void;
  onSignedOut: (notice?: string) => void;
  onSessionEnded: () => void;
}) {
  const [connection, setConnection] = useState<Connection>({ state: 'idle' });
  const [problem, setProblem] = useState<string>();
  const named = pick ? tenant : undefined;

  // One socket for this tenant, opened only now that the user is signed in; closed on unmount (sign-out).
  const client = useMemo(() => {
    const credentials = auth.sockets(named);
    return new GatehouseClient({
      url: named ? withQuery(config.realtimeUrl, 'tenant', named) : config.realtimeUrl,
      token: credentials.token,
      socket: credentials.factory,
      renew: credentials.renew,
      stillSignedIn: credentials.stillSignedIn,
      ...(credentials.renewToken ? { renewToken: credentials.renewToken } : {}),
    });
  }, [auth, config.realtimeUrl, named]);

  useEffect(() => {
    // The sign-in is gone for good: stop knocking, and let the app say so (it also forgets this tab's tokens).
    const ended = () => {
      void client.close();
      onSessionEnded();
    };
    // A connection that failed for good: the sign-in may be what ended it (a browser cannot see why).
    const failed = (problem: string) =>
      auth.sockets(named).stillSignedIn().then(
        (signedIn) => (signedIn ? setProblem(problem) : ended()),
        () => setProblem(problem),
      );
    onClient(tenant, client);
    const off = [
      client.on('state', (s) => {
        const next = { state: s.state, ...(s.retryInMs !== undefined ? { retryAt: Date.now() + s.retryInMs } : {}) };
        setConnection(next);
        onConnection(tenant, next);
        if (s.state === 'open') setProblem(undefined);
        if (s.state === 'closed' && s.reason === 'closed_by_server') void failed('The server closed the connection.');
        if (s.state === 'signed_out') {
          if (s.reason === 'session_ended') ended();
          else onSignedOut('You were signed out.');
        }
      }),
      // Token mode learns of the end from its credential: the ticket or Amplify's refresh was refused.
      client.on('error', (err) => err instanceof AuthError && err.code === SESSION_ENDED && ended()),
    ];
    // The first attempt does not retry by itself.
    client.connect().catch((err: Error) => (err instanceof AuthError && err.code === SESSION_ENDED ? ended() : failed(`Could not connect: ${err.message}`)));
    return () => {
      off.forEach((f) => f());
      onClient(tenant, undefined);
      void client.close();
    };
  }, [client, auth, named, tenant, onClient, onConnection, onSignedOut, onSessionEnded]);

  const isLive = connection.state === 'open';
  return (
    <div className="tenant-view" hidden={!active} data-tenant={tenant}>
      {problem && (
        <p className="error banner" role="alert">
          {problem}{' '}
          <button type="button" className="secondary" onClick={() => client.connect().catch((err: Error) => setProblem(`Could not connect: ${err.message}`))}>
            Reconnect
          </button>
        </p>
      )}
      {/* Rooms and jobs stay mounted so nothing is missed while another section (or tenant) is shown. */}
      <section hidden={tab !== 'rooms'} aria-label="Rooms">
        <Rooms client={client} me={user.userId} admin={user.groups.includes(GROUP_DEFAULTS.adminGroup)} live={isLive} active={active && tab === 'rooms'} />
      </section>
      <section hidden={tab !== 'jobs'} aria-label="Job progress">
        <Jobs client={client} live={isLive} />
      </section>
      {active && tab === 'speech' && (
        <section aria-label="Speech">
          <Speech url={named ? withQuery(config.speechUrl, 'tenant', named) : config.speechUrl} auth={auth} tenant={named} />
        </section>
      )}
    </div>
  );
}
