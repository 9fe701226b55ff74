/**
 * Server-side credentials: one-time tickets, cookie sessions and revocations in the table, and the Cognito calls a
 * confidential (server-side) app client makes. Shared by the HTTP API, the WebSocket authorizer, the message handler
 * and the speech service, so every entry point treats a ticket, a session or a sign-out the same way.
 *
 * Secrets (session ids, tickets) are stored only as SHA-256 hashes; a stolen table dump cannot be replayed.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import {
  AdminInitiateAuthCommand,
  AdminUserGlobalSignOutCommand,
  CognitoIdentityProviderClient,
  DescribeUserPoolClientCommand,
  RevokeTokenCommand,
  type AuthenticationResultType,
} from '@aws-sdk/client-cognito-identity-provider';
import { BatchGetCommand, DeleteCommand, DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { SignInErrorCode } from '../protocol';
import { isConditionFailed } from './dynamo-errors';
import { TABLE, keys } from './table-schema';

/** Random secrets: 256 bits, base64url. */
export const newSecret = (): string => randomBytes(32).toString('base64url');
export const hashSecret = (secret: string): string => createHash('sha256').update(secret).digest('base64url');

export const SESSION_COOKIE = '__Host-gatehouse';
export const TICKET_TTL_SECONDS = 30;

/** Who a credential speaks for, as stored with a ticket or session. */
export interface StoredIdentity {
  userId: string;
  username: string;
  groups: string[];
  /** The sign-in this credential descends from (Cognito `origin_jti`, else the token's `jti`, else the session). */
  signIn: string;
  /** Epoch seconds the originating token was issued (for "sign out everywhere"). */
  issuedAt: number;
}

export interface TicketRecord extends StoredIdentity {
  tenantId: string;
  tokenExpiresAt: number;
  /** The page origin the ticket was issued to; null for non-browser clients. */
  origin: string | null;
  /** Hash of the cookie session the ticket was issued on: a socket opened with it can end that session. */
  session?: string;
  /** Epoch seconds. */
  expiresAt: number;
}

export interface SessionRecord extends StoredIdentity {
  email: string;
  accessToken: string;
  /** Epoch seconds. */
  accessExpiresAt: number;
  refreshToken: string;
  /** Epoch seconds: the session ends with its refresh token. */
  expiresAt: number;
  version: number;
}

export class CredentialStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {}

  private seconds(): number {
    return Math.floor(this.now() / 1000);
  }

  async putTicket(ticket: string, record: TicketRecord): Promise<void> {
    await this.db.send(new PutCommand({ TableName: this.tableName, Item: { ...keys.ticket(hashSecret(ticket)), ...record } }));
  }

  /**
   * Consumes a ticket: a conditional delete, so of two concurrent uses exactly one gets the record. A second or late
   * use finds nothing, or an expired record (which is consumed all the same).
   */
  async consumeTicket(ticket: string): Promise<TicketRecord | undefined> {
    try {
      const { Attributes } = await this.db.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: keys.ticket(hashSecret(ticket)),
          ConditionExpression: 'attribute_exists(#pk)',
          ExpressionAttributeNames: { '#pk': TABLE.partitionKey },
          ReturnValues: 'ALL_OLD',
        }),
      );
      return Attributes as TicketRecord | undefined;
    } catch (err) {
      if (isConditionFailed(err)) return undefined;
      throw err;
    }
  }

  // Sessions are addressed by the hash of their id (hashSecret of the cookie value); the id itself is never stored.

  async putSession(hash: string, record: SessionRecord): Promise<void> {
    await this.db.send(new PutCommand({ TableName: this.tableName, Item: { ...keys.session(hash), ...record } }));
  }

  async getSession(hash: string): Promise<SessionRecord | undefined> {
    const { Item } = await this.db.send(new GetCommand({ TableName: this.tableName, Key: keys.session(hash), ConsistentRead: true }));
    const record = Item as SessionRecord | undefined;
    return record && record.expiresAt > this.seconds() ? record : undefined;
  }

  /** Stores refreshed tokens unless another request refreshed first (then the caller re-reads). */
  async replaceSessionTokens(hash: string, version: number, tokens: { accessToken: string; accessExpiresAt: number }): Promise<boolean> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.session(hash),
          UpdateExpression: 'SET accessToken = :t, accessExpiresAt = :e, version = :next',
          ConditionExpression: 'version = :v',
          ExpressionAttributeValues: { ':t': tokens.accessToken, ':e': tokens.accessExpiresAt, ':v': version, ':next': version + 1 },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailed(err)) return false;
      throw err;
    }
  }

  async deleteSession(hash: string): Promise<SessionRecord | undefined> {
    const { Attributes } = await this.db.send(
      new DeleteCommand({ TableName: this.tableName, Key: keys.session(hash), ReturnValues: 'ALL_OLD' }),
    );
    return Attributes as SessionRecord | undefined;
  }

  /** Records a signed-out sign-in until its last token can have expired. */
  async revokeSignIn(signIn: string, until: number): Promise<void> {
    await this.db.send(new PutCommand({ TableName: this.tableName, Item: { ...keys.revocation(signIn), [TABLE.ttlAttribute]: until } }));
  }

  /** "Sign out everywhere": every credential of the user issued before `notBefore` is void. */
  async revokeUser(userId: string, notBefore: number, until: number): Promise<void> {
    await this.db.send(
      new PutCommand({ TableName: this.tableName, Item: { ...keys.notBefore(userId), notBefore, [TABLE.ttlAttribute]: until } }),
    );
  }

  /** Which of these credentials are revoked (one batched, strongly consistent read for all of them). */
  async revoked(credentials: Array<Pick<StoredIdentity, 'userId' | 'signIn' | 'issuedAt'>>): Promise<boolean[]> {
    if (credentials.length === 0) return [];
    const wanted = new Map<string, Record<string, string>>();
    for (const c of credentials) {
      for (const key of [keys.revocation(c.signIn), keys.notBefore(c.userId)]) wanted.set(`${key.pk}|${key.sk}`, key);
    }
    const found = new Map<string, Record<string, unknown>>();
    const all = [...wanted.values()];
    for (let i = 0; i < all.length; i += 100) {
      // Strongly consistent: a sign-out written a moment ago must be seen by the check that follows it.
      let request: Record<string, { Keys: Record<string, unknown>[]; ConsistentRead?: boolean }> | undefined = {
        [this.tableName]: { Keys: all.slice(i, i + 100), ConsistentRead: true },
      };
      for (let attempt = 0; request && Object.keys(request).length > 0; attempt++) {
        // Fail closed: a key left unread could be the revocation.
        if (attempt >= 5) throw new Error('Revocation check left keys unread');
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 25 * 2 ** attempt));
        const result = await this.db.send(new BatchGetCommand({ RequestItems: request }));
        for (const item of result.Responses?.[this.tableName] ?? []) found.set(`${item.pk}|${item.sk}`, item);
        request = result.UnprocessedKeys as typeof request;
      }
    }
    const now = this.seconds();
    const live = (item: Record<string, unknown> | undefined) => item !== undefined && Number(item[TABLE.ttlAttribute] ?? Infinity) > now;
    return credentials.map((c) => {
      const rev = keys.revocation(c.signIn);
      const nbf = keys.notBefore(c.userId);
      const notBefore = found.get(`${nbf.pk}|${nbf.sk}`);
      return live(found.get(`${rev.pk}|${rev.sk}`)) || (live(notBefore) && c.issuedAt < Number(notBefore!.notBefore));
    });
  }
}

export interface CognitoTokens {
  accessToken: string;
  idToken: string;
  refreshToken?: string;
  expiresIn: number;
}

export class SignInError extends Error {
  constructor(
    readonly code: SignInErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SignInError';
  }
}

/**
 * Cognito's server-side flow with the confidential app client: the client secret is read once per process from the
 * pool (DescribeUserPoolClient, IAM-authorized) and never leaves it; every call carries its SECRET_HASH.
 */
export class CognitoSessions {
  private secret?: Promise<string>;

  constructor(
    private readonly client: CognitoIdentityProviderClient,
    readonly userPoolId: string,
    readonly clientId: string,
  ) {}

  private clientSecret(): Promise<string> {
    this.secret ??= this.client
      .send(new DescribeUserPoolClientCommand({ UserPoolId: this.userPoolId, ClientId: this.clientId }))
      .then(({ UserPoolClient }) => {
        if (!UserPoolClient?.ClientSecret) throw new Error('The server-side app client has no secret');
        return UserPoolClient.ClientSecret;
      })
      .catch((err: Error) => {
        this.secret = undefined;
        throw err;
      });
    return this.secret;
  }

  private async secretHash(username: string): Promise<string> {
    return createHmac('sha256', await this.clientSecret()).update(username + this.clientId).digest('base64');
  }

  private tokens(result: AuthenticationResultType | undefined): CognitoTokens {
    if (!result?.AccessToken || !result.IdToken) throw new SignInError('challenge', 'Cognito asked for another step.');
    return {
      accessToken: result.AccessToken,
      idToken: result.IdToken,
      ...(result.RefreshToken ? { refreshToken: result.RefreshToken } : {}),
      expiresIn: result.ExpiresIn ?? 0,
    };
  }

  async signIn(email: string, password: string): Promise<CognitoTokens> {
    try {
      const response = await this.client.send(
        new AdminInitiateAuthCommand({
          UserPoolId: this.userPoolId,
          ClientId: this.clientId,
          AuthFlow: 'ADMIN_USER_PASSWORD_AUTH',
          AuthParameters: { USERNAME: email, PASSWORD: password, SECRET_HASH: await this.secretHash(email) },
        }),
      );
      if (response.ChallengeName === 'NEW_PASSWORD_REQUIRED') throw new SignInError('new_password_required', 'A new password is required.');
      if (response.ChallengeName && /MFA/.test(response.ChallengeName)) throw new SignInError('mfa_required', 'A second factor is required.');
      return this.tokens(response.AuthenticationResult);
    } catch (err) {
      if (err instanceof SignInError) throw err;
      const name = (err as Error).name;
      // Wrong password and unknown user look the same from outside: no user enumeration.
      if (['NotAuthorizedException', 'UserNotFoundException'].includes(name)) {
        throw new SignInError('invalid_credentials', 'Wrong email or password.');
      }
      if (name === 'PasswordResetRequiredException') throw new SignInError('password_reset_required', 'The password must be reset.');
      if (name === 'UserNotConfirmedException') throw new SignInError('not_confirmed', 'The account is not confirmed.');
      throw err;
    }
  }

  async refresh(username: string, refreshToken: string): Promise<CognitoTokens> {
    const response = await this.client.send(
      new AdminInitiateAuthCommand({
        UserPoolId: this.userPoolId,
        ClientId: this.clientId,
        AuthFlow: 'REFRESH_TOKEN_AUTH',
        AuthParameters: { REFRESH_TOKEN: refreshToken, SECRET_HASH: await this.secretHash(username) },
      }),
    );
    return this.tokens(response.AuthenticationResult);
  }

  async revoke(refreshToken: string): Promise<void> {
    await this.client.send(new RevokeTokenCommand({ Token: refreshToken, ClientId: this.clientId, ClientSecret: await this.clientSecret() }));
  }

  /** Invalidates every refresh token of the user (every device), where the service supports it. */
  async globalSignOut(username: string): Promise<void> {
    await this.client.send(new AdminUserGlobalSignOutCommand({ UserPoolId: this.userPoolId, Username: username }));
  }
}

/** The identity of a sign-in, from a verified access token's claims. */
export function signInOf(claims: { jti?: string; originJti?: string; sub: string; iat: number }): string {
  return claims.originJti ?? claims.jti ?? `${claims.sub}:${claims.iat}`;
}
