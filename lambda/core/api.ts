/**
 * The session API under /api (backend for frontend): the browser signs in here and gets an HttpOnly cookie; the
 * Cognito tokens stay server-side, in the session store. It also issues one-time WebSocket tickets.
 *
 *   POST /api/login      {email, password}       sets the __Host- session cookie
 *   GET  /api/session                            who is signed in
 *   POST /api/logout     {everywhere?}           ends the session (or all of the user's), closes its sockets
 *   POST /api/ws-ticket  {tenant?}               a 30-second, single-use ticket (bearer token or session cookie)
 *
 * State-changing requests from a browser must come from an allowed origin (with SameSite=Strict cookies, that is
 * the CSRF defence); bodies are small JSON objects, validated strictly.
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import type { Auth } from '../../common/auth';
import { SESSION_COOKIE, SignInError, hashSecret, newSecret, signInOf } from '../../common/credentials';
import { cookie, header, type Headers } from '../../common/handshake';
import type { Logger } from '../../common/log';
import { MAX_SESSION_BODY_BYTES, SESSION_BODIES, SESSION_ROUTES, TENANT_ID_PATTERN, parseBoundedJson, tenantsOfGroups, type BodySpec, type SessionApiError, type SessionApiErrorCode, type SessionUser } from '../../protocol';
import { signOut, type SignOutDeps } from './revoke';

export interface ApiDeps {
  auth: Auth;
  signOut?: SignOutDeps;
  log: Logger;
  now?: () => number;
}

type Result = APIGatewayProxyStructuredResultV2;

const json = (statusCode: number, body: unknown, cookies?: string[]): Result => ({
  statusCode,
  headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
  body: JSON.stringify(body),
  ...(cookies ? { cookies } : {}),
});
const fail = (statusCode: number, error: SessionApiErrorCode, message: string) => json(statusCode, { error, message } satisfies SessionApiError);
const routeKey = (route: { method: string; path: string }) => `${route.method} ${route.path}`;
const ROUTE = {
  login: routeKey(SESSION_ROUTES.login),
  session: routeKey(SESSION_ROUTES.session),
  logout: routeKey(SESSION_ROUTES.logout),
  wsTicket: routeKey(SESSION_ROUTES.wsTicket),
};

/**
 * A small JSON object body, validated strictly: exactly the named fields (own keys, exact names), each of its type,
 * the required ones present. Anything else is refused with a message that names the problem.
 */
function parseBody(
  event: APIGatewayProxyEventV2,
  spec: BodySpec,
): Record<string, unknown> | string {
  const raw = event.body ? (event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body) : '{}';
  if (raw.length > MAX_SESSION_BODY_BYTES) return 'Body too large.';
  const parsed = parseBoundedJson(raw, 2);
  if (!parsed.ok) return parsed.tooDeep ? 'Body must be a flat JSON object.' : 'Body must be JSON.';
  const value = parsed.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'Body must be a JSON object.';
  const required: Readonly<Record<string, string>> = spec.required ?? {};
  const optional: Readonly<Record<string, string>> = spec.optional ?? {};
  for (const [key, v] of Object.entries(value)) {
    const type = Object.hasOwn(required, key) ? required[key] : Object.hasOwn(optional, key) ? optional[key] : undefined;
    if (!type) return `Unexpected field "${key}".`;
    if (typeof v !== type) return `Field "${key}" must be a ${type}.`;
  }
  for (const key of Object.keys(required)) {
    if (!Object.hasOwn(value, key)) return `Field "${key}" is required.`;
  }
  return value as Record<string, unknown>;
}

export async function handleApi(event: APIGatewayProxyEventV2, deps: ApiDeps): Promise<Result> {
  const { auth, log } = deps;
  const now = Math.floor((deps.now ?? Date.now)() / 1000);
  const method = event.requestContext.http.method;
  const route = `${method} ${event.rawPath}`;
  // HTTP APIs deliver cookies apart from the headers; the handshake code reads them from a Cookie header.
  const headers: Headers = { ...event.headers, ...(event.cookies?.length ? { cookie: event.cookies.join('; ') } : {}) };
  const origin = header(headers, 'origin');
  const audit = { category: 'audit', sourceIp: event.requestContext.http.sourceIp };
  const lifetime = auth.config.sessionLifetimeSeconds;
  const setCookie = (value: string, maxAge: number) => `${SESSION_COOKIE}=${value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${maxAge}`;

  if (method !== 'GET' && origin !== undefined && !auth.config.allowedOrigins.includes(origin)) {
    log.warn('api_origin_refused', { ...audit, route });
    return fail(403, 'origin_not_allowed', 'This origin may not call the session API.');
  }
  const { credentials, sessions } = auth;
  if (!credentials) return fail(501, 'not_configured', 'Sessions are not configured.');

  switch (route) {
    case ROUTE.login: {
      if (!sessions) return fail(501, 'not_configured', 'Cookie sessions are not configured.');
      if (origin === undefined) return fail(403, 'origin_required', 'Sign in from the web app.');
      const body = parseBody(event, SESSION_BODIES.login);
      if (typeof body === 'string') return fail(400, 'invalid_request', body);
      const email = String(body.email).trim().toLowerCase();
      if (email.length > 254 || String(body.password).length > 256) return fail(400, 'invalid_request', 'Email or password too long.');
      let tokens;
      try {
        tokens = await sessions.signIn(email, String(body.password));
      } catch (err) {
        if (!(err instanceof SignInError)) throw err;
        log.info('login_failed', { ...audit, email, reason: err.code });
        return fail(err.code === 'invalid_credentials' ? 401 : 403, err.code, err.message);
      }
      const verified = await auth.verifier.verify(tokens.accessToken);
      if (!verified.ok || !tokens.refreshToken) throw new Error(`Cognito issued an unusable token (${verified.ok ? 'no refresh token' : verified.reason})`);
      const { claims } = verified;
      const id = newSecret();
      await credentials.putSession(hashSecret(id), {
        userId: claims.sub,
        username: claims.username,
        email,
        groups: claims.groups,
        accessToken: tokens.accessToken,
        accessExpiresAt: claims.exp,
        refreshToken: tokens.refreshToken,
        signIn: signInOf(claims),
        issuedAt: claims.iat,
        expiresAt: now + lifetime,
        version: 0,
      });
      log.info('login', { ...audit, userId: claims.sub });
      return json(200, describe(claims.sub, email, claims.groups, now + lifetime, auth), [setCookie(id, lifetime)]);
    }

    case ROUTE.session: {
      const id = cookie(headers, SESSION_COOKIE);
      const session = id ? await credentials.getSession(hashSecret(id)) : undefined;
      if (!session || (await credentials.revoked([session]))[0]) return json(401, { signedIn: false });
      return json(200, describe(session.userId, session.email, session.groups, session.expiresAt, auth));
    }

    case ROUTE.logout: {
      // Only our own pages may end a session (a cross-site form post carries the cookie, but not our origin).
      if (origin === undefined) return fail(403, 'origin_required', 'Sign out from the web app.');
      const body = parseBody(event, SESSION_BODIES.logout);
      if (typeof body === 'string') return fail(400, 'invalid_request', body);
      const id = cookie(headers, SESSION_COOKIE);
      const hash = id ? hashSecret(id) : undefined;
      const session = hash ? await credentials.getSession(hash) : undefined;
      if (session && hash && deps.signOut) {
        await signOut(
          { userId: session.userId, username: session.username, signIn: session.signIn, session: hash, everywhere: body.everywhere === true },
          deps.signOut,
        );
      }
      return json(200, { signedIn: false }, [setCookie('', 0)]);
    }

    case ROUTE.wsTicket: {
      const body = parseBody(event, SESSION_BODIES.wsTicket);
      if (typeof body === 'string') return fail(400, 'invalid_request', body);
      if (body.tenant !== undefined && !TENANT_ID_PATTERN.test(String(body.tenant))) return fail(400, 'invalid_request', 'Invalid tenant.');
      // Exactly the checks of a WebSocket handshake (bearer header or cookie; origin; revocation; tenant).
      const checked = await auth.handshake(
        { authorization: header(headers, 'authorization'), cookie: header(headers, 'cookie'), origin },
        body.tenant !== undefined ? { tenant: String(body.tenant) } : {},
      );
      if (!checked.ok) {
        log.info('ticket_refused', { ...audit, reason: checked.reason });
        return fail(checked.reason === 'missing_token' ? 401 : 403, checked.reason, 'Not allowed to open a socket.');
      }
      const ticket = newSecret();
      const expiresAt = now + auth.config.ticketTtlSeconds;
      const { identity } = checked;
      await credentials.putTicket(ticket, {
        userId: identity.userId,
        username: identity.username,
        groups: identity.groups,
        signIn: identity.signIn,
        issuedAt: identity.issuedAt,
        tenantId: identity.tenantId,
        tokenExpiresAt: identity.tokenExpiresAt,
        origin: origin ?? null,
        ...(identity.session ? { session: identity.session } : {}),
        expiresAt,
      });
      log.info('ticket_issued', { ...audit, userId: identity.userId, tenantId: identity.tenantId });
      return json(200, { ticket, expiresAt });
    }

    default:
      return fail(404, 'not_found', `No route ${route}.`);
  }
}

function describe(userId: string, email: string, groups: string[], expiresAt: number, auth: Auth): SessionUser {
  return {
    signedIn: true,
    userId,
    email,
    groups,
    tenants: tenantsOfGroups(groups, auth.config.tenantGroupPrefix),
    expiresAt,
  };
}
