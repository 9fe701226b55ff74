/**
 * Cognito sign-in with the password flow (USER_PASSWORD_AUTH) and token refresh, for the CLI, tests and tools.
 * The web app signs in with SRP through Amplify instead; both end with the same access token.
 */
import { CognitoIdentityProviderClient, InitiateAuthCommand, type AuthenticationResultType } from '@aws-sdk/client-cognito-identity-provider';
import { GROUP_DEFAULTS, tenantsOfGroups } from '../../../protocol';

export interface Tokens {
  accessToken: string;
  idToken: string;
  refreshToken: string;
  /** Epoch milliseconds at which the access token expires. */
  expiresAt: number;
}

function tokens(result: AuthenticationResultType | undefined, refreshToken?: string): Tokens {
  if (!result?.AccessToken || !result.IdToken) throw new Error('Cognito returned no tokens (is a challenge such as MFA pending?)');
  return {
    accessToken: result.AccessToken,
    idToken: result.IdToken,
    refreshToken: result.RefreshToken ?? refreshToken ?? '',
    expiresAt: Date.now() + (result.ExpiresIn ?? 0) * 1000,
  };
}

export async function signInWithPassword(cognito: CognitoIdentityProviderClient, clientId: string, username: string, password: string): Promise<Tokens> {
  const { AuthenticationResult } = await cognito.send(
    new InitiateAuthCommand({ ClientId: clientId, AuthFlow: 'USER_PASSWORD_AUTH', AuthParameters: { USERNAME: username, PASSWORD: password } }),
  );
  return tokens(AuthenticationResult);
}

export async function refreshTokens(cognito: CognitoIdentityProviderClient, clientId: string, refreshToken: string): Promise<Tokens> {
  const { AuthenticationResult } = await cognito.send(
    new InitiateAuthCommand({ ClientId: clientId, AuthFlow: 'REFRESH_TOKEN_AUTH', AuthParameters: { REFRESH_TOKEN: refreshToken } }),
  );
  return tokens(AuthenticationResult, refreshToken);
}

/**
 * Whether Cognito refused the credential itself (a wrong or reset password, an unknown or disabled user, a revoked,
 * expired or forgotten refresh token), as opposed to failing to answer: only a refusal is worth a different credential.
 */
export function isRefusedByCognito(err: unknown): boolean {
  const name = (err as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' && REFUSALS.has(name);
}
const REFUSALS = new Set(['NotAuthorizedException', 'UserNotFoundException', 'PasswordResetRequiredException', 'UserNotConfirmedException']);

/**
 * A token provider for GatehouseClient: signs in once, then refreshes when the access token is about to expire. A
 * refused refresh (the token revoked or expired, or forgotten: a restarted local system's Cognito keeps none) signs
 * in with the password again, so a long-running client reconnects instead of failing; only a refused password
 * fails. Concurrent calls (a reconnect and a renewal) share one request.
 */
export function sessionTokenProvider(
  cognito: CognitoIdentityProviderClient,
  clientId: string,
  username: string,
  password: string,
  marginMs = 60_000,
): () => Promise<string> {
  let current: Tokens | undefined;
  let inFlight: Promise<Tokens> | undefined;
  const signIn = () => signInWithPassword(cognito, clientId, username, password);
  const renew = async (tokens: Tokens | undefined): Promise<Tokens> => {
    if (!tokens) return signIn();
    if (tokens.expiresAt - marginMs >= Date.now()) return tokens;
    try {
      return await refreshTokens(cognito, clientId, tokens.refreshToken);
    } catch (err) {
      if (!isRefusedByCognito(err)) throw err;
      return signIn();
    }
  };
  return async () => {
    inFlight ??= renew(current).finally(() => (inFlight = undefined));
    current = await inFlight;
    return current.accessToken;
  };
}

/**
 * The claims of a JWT, read without verifying it: for hints to the user (which tenants a token's groups name), never
 * for a decision; the server verifies every token it is given.
 */
export function unverifiedClaims(token: string): Record<string, unknown> {
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
  } catch {
    // reported below
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw new Error('Not a JWT');
  return claims as Record<string, unknown>;
}

/**
 * The tenants a Cognito token's groups (`cognito:groups`) put its user in, by the pool's group convention
 * (`tenant:<id>`, GROUP_DEFAULTS): the ones the server lets the user choose among with `?tenant=`.
 */
export function tenantsOfToken(token: string, prefix: string = GROUP_DEFAULTS.tenantGroupPrefix): string[] {
  const groups = unverifiedClaims(token)['cognito:groups'];
  if (!Array.isArray(groups)) return [];
  return tenantsOfGroups(groups, prefix);
}
