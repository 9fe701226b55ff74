/**
 * One tenant's part of the workspace: its socket's lifecycle, and its rooms, jobs and speech. Mounted once the user
 * first opens the tenant (inside the provider of its client, see Workspace) and kept (hidden) while another is
 * shown, so its messages and job progress stay.
 */
import { useEffect, useState } from 'react';
import { GatehouseClient } from '@gatehouse/client';
import { useGatehouse } from '@gatehouse/client/react';
import { GROUP_DEFAULTS } from '../../protocol';
import { AuthError, SESSION_ENDED, type Auth, type User } from './auth';
import { withQuery } from './config';
import { Jobs } from './Jobs';
import { Rooms } from './Rooms';
import { Speech } from './Speech';
import type { Tab } from './Workspace';

/** The socket of one tenant (`named`: only a user of several names it, on the URL and in the ticket). */
export function tenantClient(auth: Auth, realtimeUrl: string, named: string | undefined): GatehouseClient {
  const credentials = auth.sockets(named);
  return new GatehouseClient({
    url: named ? withQuery(realtimeUrl, 'tenant', named) : realtimeUrl,
    token: credentials.token,
    socket: credentials.factory,
    renew: credentials.renew,
    stillSignedIn: credentials.stillSignedIn,
    ...(credentials.renewToken ? { renewToken: credentials.renewToken } : {}),
  });
}

export function Tenant({
  tenant,
  named,
  active,
  tab,
  speechUrl,
  auth,
  user,
  onSignedOut,
  onSessionEnded,
}: {
  tenant: string | undefined;
  /** The tenant as the sockets name it (a user of several must), or undefined. */
  named: string | undefined;
  active: boolean;
  tab: Tab;
  speechUrl: string;
  auth: Auth;
  user: User;
  onSignedOut: (notice?: string) => void;
  onSessionEnded: () => void;
}) {
  const client = useGatehouse();
  const [problem, setProblem] = useState<string>();

  // Opened only now that the user is signed in; closed on unmount (sign-out). Ends of the sign-in are events of
  // the client, acted on once, not states to render.
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
    const off = [
      client.on('state', (s) => {
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
      void client.close();
    };
  }, [client, auth, named, onSignedOut, onSessionEnded]);

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
        <Rooms me={user.userId} admin={user.groups.includes(GROUP_DEFAULTS.adminGroup)} active={active && tab === 'rooms'} />
      </section>
      <section hidden={tab !== 'jobs'} aria-label="Job progress">
        <Jobs />
      </section>
      {active && tab === 'speech' && (
        <section aria-label="Speech">
          <Speech url={named ? withQuery(speechUrl, 'tenant', named) : speechUrl} auth={auth} tenant={named} />
        </section>
      )}
    </div>
  );
}
