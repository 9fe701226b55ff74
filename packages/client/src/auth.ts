/**
 * Cognito sign-in with the password flow (USER_PASSWORD_AUTH) and token refresh, for the CLI, tests and tools.
 * The web app signs in with SRP through Amplify instead; both end with the same access token.
 */
import { CognitoIdentityProviderClient, InitiateAuthCommand, type AuthenticationResultType } from '@aws-sdk/client-cognito-identity-provider';

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

/** A token provider for GatehouseClient: signs in once, then refreshes when the access token is about to expire. */
export function sessionTokenProvider(
  cognito: CognitoIdentityProviderClient,
  clientId: string,
  username: string,
  password: string,
  marginMs = 60_000,
): () => Promise<string> {
  let current: Tokens | undefined;
  return async () => {
    if (!current) current = await signInWithPassword(cognito, clientId, username, password);
    else if (current.expiresAt - marginMs < Date.now()) current = await refreshTokens(cognito, clientId, current.refreshToken);
    return current.accessToken;
  };
}
