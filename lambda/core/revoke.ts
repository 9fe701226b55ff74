/**
 * Sign-out that disconnects. Revokes the sign-in (or every sign-in of the user) in Gatehouse's own records, which the
 * authorizer and the speech service check on every handshake, revokes the refresh token at Cognito, and closes every
 * live API socket of that sign-in (the speech service closes its own within seconds, from the same records).
 */
import { RevokeTokenCommand, type CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import type { Auth } from '../../common/auth';
import type { CognitoSessions, CredentialStore } from '../../common/credentials';
import type { Logger } from '../../common/log';
import { METRICS } from '../../common/metrics';
import type { ServerEvent } from '../../protocol';
import { isGone, type ConnectionsApi } from './connections-api';
import { departConnection } from './presence';
import type { ConnectionStore } from './store';

/** A connection recorded this recently may still be inside its $connect (API Gateway's 410 means "not yet"). */
const HANDSHAKE_GRACE_MS = 30_000;
const CLOSE_RETRY_MS = [250, 1000, 3000];

export interface SignOutTarget {
  userId: string;
  username: string;
  signIn: string;
  /** Hash of a cookie session to end. */
  session?: string;
  /** A refresh token the client holds (token mode), revoked at Cognito. */
  refreshToken?: string;
  everywhere: boolean;
}

export interface SignOutDeps {
  store: ConnectionStore;
  credentials: CredentialStore;
  sessions?: CognitoSessions;
  /** Revokes a public client's refresh token. */
  cognito?: { client: CognitoIdentityProviderClient; publicClientId: string };
  api: ConnectionsApi;
  log: Logger;
  maxTokenLifetimeSeconds: number;
  sessionLifetimeSeconds: number;
  now?: () => number;
}

export async function signOut(target: SignOutTarget, deps: SignOutDeps): Promise<{ closed: number }> {
  const now = Math.floor((deps.now ?? Date.now)() / 1000);
  // Gatehouse's own records first: from here on no handshake with this sign-in succeeds. A session's sign-in is
  // revoked for as long as the session could have lived (its tokens are renewed from it), a token's until it expires.
  const lifetime = target.session ? Math.max(deps.sessionLifetimeSeconds, deps.maxTokenLifetimeSeconds) : deps.maxTokenLifetimeSeconds;
  await deps.credentials.revokeSignIn(target.signIn, now + lifetime + 60);
  if (target.everywhere) await deps.credentials.revokeUser(target.userId, now + 1, now + deps.sessionLifetimeSeconds + 60);

  const warn = (what: string) => (err: Error) => deps.log.warn('signout_step_failed', { step: what, userId: target.userId, error: err });
  if (target.session) {
    const session = await deps.credentials.deleteSession(target.session);
    if (session && deps.sessions) await deps.sessions.revoke(session.refreshToken).catch(warn('revoke_session_refresh_token'));
  }
  if (target.refreshToken && deps.cognito) {
    await deps.cognito.client
      .send(new RevokeTokenCommand({ Token: target.refreshToken, ClientId: deps.cognito.publicClientId }))
      .catch(warn('revoke_refresh_token'));
  }
  if (target.everywhere && deps.sessions) await deps.sessions.globalSignOut(target.username).catch(warn('global_sign_out'));

  let closed = 0;
  const notice: ServerEvent = { type: 'signed_out', everywhere: target.everywhere };
  // The user's connections from their own item, read strongly: a socket opened a moment ago is on it.
  const sockets = await deps.store.userSignIns(target.userId);
  await Promise.all(
    sockets
      .filter((c) => target.everywhere || c.signIn === target.signIn)
      .map(async ({ connectionId, connectedAt }) => {
        const close = async () => {
          await deps.api.post(connectionId, JSON.stringify(notice));
          await deps.api.remove(connectionId);
          closed++;
        };
        try {
          await close();
          return;
        } catch (err) {
          if (!isGone(err)) throw err;
        }
        // API Gateway answers 410 for a socket whose $connect has not returned yet. A young record may be one: mark
        // it (any frame it sends closes it), then try again once its handshake can have completed.
        if (Date.now() - connectedAt < HANDSHAKE_GRACE_MS) {
          await deps.store.markRevoked(connectionId);
          for (const delay of CLOSE_RETRY_MS) {
            await new Promise((resolve) => setTimeout(resolve, delay));
            try {
              await close();
              return;
            } catch (err) {
              if (!isGone(err)) throw err;
            }
          }
        }
        await departConnection(connectionId, deps);
      }),
  );
  deps.log.info('revoked', { category: 'audit', userId: target.userId, everywhere: target.everywhere, socketsClosed: closed });
  deps.log.metrics({ [METRICS.revoked]: closed });
  return { closed };
}

/** The sign-out dependencies from a runtime's parts; undefined when this runtime has no credential store. */
export function signOutDeps(parts: {
  store: ConnectionStore;
  auth: Pick<Auth, 'credentials' | 'sessions' | 'config'>;
  cognito?: CognitoIdentityProviderClient;
  api: ConnectionsApi;
  log: Logger;
  now?: () => number;
}): SignOutDeps | undefined {
  const { credentials, sessions, config } = parts.auth;
  if (!credentials) return undefined;
  return {
    store: parts.store,
    credentials,
    ...(sessions ? { sessions } : {}),
    ...(parts.cognito ? { cognito: { client: parts.cognito, publicClientId: config.verifier.clientId[0] } } : {}),
    api: parts.api,
    log: parts.log,
    maxTokenLifetimeSeconds: config.verifier.maxTokenLifetimeSeconds,
    sessionLifetimeSeconds: config.sessionLifetimeSeconds,
    ...(parts.now ? { now: parts.now } : {}),
  };
}
