/**
 * Sign-in, in the two modes /config.json chooses:
 * - session (default): the form posts to /api/login; the server keeps the Cognito tokens and sets an HttpOnly
 *   cookie. No token ever reaches this page; sockets are opened with the cookie.
 * - token: Amplify signs in from the browser (SRP deployed, the password flow against the local emulator); tokens
 *   live in sessionStorage (never localStorage) and sockets are opened with one-time tickets.
 */
import type { SocketFactory, SocketLike } from '@gatehouse/client';
import { SESSION_ROUTES, parseSessionUser, tenantsOfGroups, type SessionApiErrorCode } from '../../protocol';
import { withQuery, type AppConfig } from './config';

export interface User {
  userId: string;
  email: string;
  groups: string[];
  tenants: string[];
}

export class AuthError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** How to open a socket with this mode's credential. */
export interface SocketCredentials {
  /** Called before every (re)connect. Throws AuthError `session_ended` when the sign-in is gone for good. */
  token(): Promise<string>;
  factory: SocketFactory;
  renew: 'token' | 'session';
  renewToken?: () => Promise<string>;
  /**
   * Whether the sign-in still stands, asked by the client after a failed reconnect: a browser never sees the
   * handshake's status, so without it a socket whose session is gone (a server restarted with fresh state, a
   * revoked sign-in) would knock forever. Throws when it cannot tell (the server is down): the client retries.
   */
  stillSignedIn(): Promise<boolean>;
}

/** The sign-in is over (not a passing failure): the app returns to sign-in and says so. */
export const SESSION_ENDED = 'session_ended';

export interface Auth {
  mode: 'session' | 'token';
  restore(): Promise<User | null>;
  signIn(email: string, password: string): Promise<User>;
  signOut(everywhere: boolean): Promise<void>;
  /** `tenant`: the one the socket is for, for users of several (a ticket is bound to it). */
  sockets(tenant?: string): SocketCredentials;
}

const MESSAGES = {
  invalid_credentials: 'Wrong email or password.',
  new_password_required: 'This account needs a new password: set one with your administrator, then sign in again.',
  mfa_required: 'This account uses a second factor, which this app does not support yet.',
  password_reset_required: 'This account must reset its password first.',
  not_confirmed: 'This account is not confirmed yet.',
} satisfies Partial<Record<SessionApiErrorCode, string>>;

const plainSocket = (url: string) => new WebSocket(url) as unknown as SocketLike;

const UNEXPECTED = 'The server gave an answer this app does not understand; try again later.';
/** A signed-in user exactly as the session API describes one; anything else is not a user. */
function asUser(body: Record<string, unknown>): User | undefined {
  const user = parseSessionUser(body);
  return user && { userId: user.userId, email: user.email, groups: user.groups, tenants: user.tenants };
}

/** A request the session API has not answered in this long has failed (and a reconnect may try again). */
const API_TIMEOUT_MS = 10_000;

/**
 * A JSON answer of the session API. Anything that is not JSON (an HTML page from a misconfigured edge, a proxy's
 * error page) is a failure, never a user: the app would otherwise take a 200 page for a sign-in. A request left
 * unanswered (a server going down with it) fails after API_TIMEOUT_MS: the reconnect loop waits on these.
 */
async function apiJson(path: string, init?: RequestInit): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(path, {
    credentials: 'same-origin',
    signal: AbortSignal.timeout(API_TIMEOUT_MS),
    ...init,
    headers: { 'content-type': 'application/json', ...init?.headers },
  });
  const type = response.headers.get('content-type') ?? '';
  const body = type.includes('application/json') ? ((await response.json().catch(() => undefined)) as unknown) : undefined;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new AuthError('unexpected_response', UNEXPECTED);
  return { status: response.status, body: body as Record<string, unknown> };
}

function sessionAuth(): Auth {
  return {
    mode: 'session',
    async restore() {
      const { status, body } = await apiJson(SESSION_ROUTES.session.path);
      if (status === 401) return null;
      const user = status === 200 ? asUser(body) : undefined;
      if (!user) throw new AuthError('unexpected_response', UNEXPECTED);
      return user;
    },
    async signIn(email, password) {
      const { status, body } = await apiJson(SESSION_ROUTES.login.path, { method: SESSION_ROUTES.login.method, body: JSON.stringify({ email, password }) });
      if (status !== 200) {
        const code = String(body.error ?? 'error');
        throw new AuthError(code, (MESSAGES as Partial<Record<string, string>>)[code] ?? String(body.message ?? `Sign-in failed (${status}).`));
      }
      const user = asUser(body);
      if (!user) throw new AuthError('unexpected_response', UNEXPECTED);
      return user;
    },
    async signOut(everywhere) {
      await apiJson(SESSION_ROUTES.logout.path, { method: SESSION_ROUTES.logout.method, body: JSON.stringify(everywhere ? { everywhere: true } : {}) });
    },
    sockets: () => ({
      // The browser sends the HttpOnly cookie itself; the server checks it and our origin.
      token: async () => '',
      factory: (url) => plainSocket(url),
      renew: 'session',
      // 401: the cookie's session is gone (signed out, revoked, or a server that lost its state).
      stillSignedIn: async () => (await apiJson(SESSION_ROUTES.session.path)).status !== 401,
    }),
  };
}

async function tokenAuth(config: AppConfig): Promise<Auth> {
  // Loaded only in token mode: session mode ships without Amplify.
  const [{ Amplify }, auth, { cognitoUserPoolsTokenProvider }, { sessionStorage }] = await Promise.all([
    import('aws-amplify'),
    import('aws-amplify/auth'),
    import('aws-amplify/auth/cognito'),
    import('aws-amplify/utils'),
  ]);
  Amplify.configure({
    Auth: {
      Cognito: {
        userPoolId: config.userPoolId,
        userPoolClientId: config.userPoolClientId,
        ...(config.cognitoEndpoint ? { userPoolEndpoint: config.cognitoEndpoint } : {}),
        loginWith: { email: true },
      },
    },
  });
  cognitoUserPoolsTokenProvider.setKeyValueStorage(sessionStorage);

  // forceRefresh for renewals: Amplify would hand back the cached token until it has all but expired.
  // No tokens means Amplify could not refresh them (a revoked or expired sign-in): that sign-in is over.
  const accessToken = async (forceRefresh = false) => {
    const session = await auth.fetchAuthSession({ forceRefresh });
    const token = session.tokens?.accessToken;
    if (!token) throw new AuthError(SESSION_ENDED, 'Signed out.');
    return token;
  };
  const user = async (): Promise<User> => {
    const token = await accessToken();
    const groups = (token.payload['cognito:groups'] as string[] | undefined) ?? [];
    const { signInDetails } = await auth.getCurrentUser();
    return {
      userId: String(token.payload.sub),
      email: signInDetails?.loginId ?? '',
      groups,
      tenants: tenantsOfGroups(groups),
    };
  };
  const ticket = async (tenant?: string) => {
    const { status, body } = await apiJson(SESSION_ROUTES.wsTicket.path, {
      method: SESSION_ROUTES.wsTicket.method,
      headers: { authorization: `Bearer ${(await accessToken()).toString()}` },
      // A ticket is bound to one tenant: a user of several must name it, or the ticket is refused.
      body: JSON.stringify(tenant ? { tenant } : {}),
    });
    if (status === 200 && typeof body.ticket === 'string') return body.ticket;
    // The server refused this sign-in's token (revoked, expired, unknown to a server that lost its state): retrying
    // with it cannot succeed. Its key set being unreachable is the one refusal that may pass.
    const ended = (status === 401 || status === 403) && body.error !== 'jwks_unavailable';
    throw new AuthError(ended ? SESSION_ENDED : 'ticket_refused', typeof body.message === 'string' ? body.message : 'Could not open a connection.');
  };
  return {
    mode: 'token',
    async restore() {
      try {
        return await user();
      } catch {
        return null;
      }
    },
    async signIn(email, password) {
      try {
        const result = await auth.signIn({
          username: email,
          password,
          // cognito-local has no SRP; a deployed pool does.
          options: { authFlowType: config.cognitoEndpoint ? 'USER_PASSWORD_AUTH' : 'USER_SRP_AUTH' },
        });
        const step = result.nextStep.signInStep;
        if (step === 'CONFIRM_SIGN_IN_WITH_NEW_PASSWORD_REQUIRED') throw new AuthError('new_password_required', MESSAGES.new_password_required);
        if (step !== 'DONE') throw new AuthError('mfa_required', MESSAGES.mfa_required);
        return await user();
      } catch (err) {
        if (err instanceof AuthError) throw err;
        const name = (err as Error).name;
        if (['NotAuthorizedException', 'UserNotFoundException'].includes(name)) {
          throw new AuthError('invalid_credentials', MESSAGES.invalid_credentials);
        }
        throw new AuthError('error', (err as Error).message);
      }
    },
    async signOut(everywhere) {
      await auth.signOut({ global: everywhere }).catch(() => undefined);
    },
    sockets: (tenant) => ({
      // A one-time ticket in the URL (worthless after use), never the token itself.
      token: () => ticket(tenant),
      factory: (url, t) => plainSocket(withQuery(url, 'ticket', t)),
      renew: 'token',
      renewToken: async () => (await accessToken(true)).toString(),
      stillSignedIn: async () => (await auth.fetchAuthSession()).tokens?.accessToken !== undefined,
    }),
  };
}

export async function createAuth(config: AppConfig): Promise<Auth> {
  return config.authMode === 'token' ? tokenAuth(config) : sessionAuth();
}
