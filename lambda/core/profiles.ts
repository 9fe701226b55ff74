/**
 * Display names: what others see of a user (messages, presence, typing). Derived by the server from the verified
 * identity, never from the client: the user pool's attributes of the token's username, looked up once per
 * connection by the $connect authorizer (alongside its revocation read; the name reaches $connect in the
 * authorizer's context, which stores it with the connection) and cached per container for a few minutes.
 */
import { AdminGetUserCommand, type CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Logger } from '../../common/log';
import { keys, TABLE } from '../../common/table-schema';
import { isLive } from './dynamo-read';
import type { Member } from '../../protocol';

export interface Profiles {
  displayName(user: { userId: string; username: string }): Promise<string>;
}

/** A display name's longest form, in code points. */
export const MAX_NAME = 64;

/**
 * The name to show for a user pool user: `name`, else `preferred_username`, else the local part of `email` (the
 * whole address would tell every room member how to reach them), else the username. Control and format characters
 * (bidirectional overrides among them) are removed, whitespace collapsed, the length capped.
 */
export function displayNameOf(attributes: Record<string, string | undefined>, username: string): string {
  const clean = (value: string | undefined) =>
    (value ?? '')
      .replace(/[\p{Cc}\p{Cf}]/gu, '')
      .replace(/\s+/g, ' ')
      .trim();
  // By code point: a cut through a surrogate pair would leave half a character.
  const cap = (value: string) => Array.from(value).slice(0, MAX_NAME).join('').trim();
  const email = clean(attributes.email?.split('@')[0]);
  return cap(clean(attributes.name) || clean(attributes.preferred_username) || email) || fallbackName(username);
}

/** Without a profile (lookup failed, or a record from before names): the username, or a short id for a UUID. */
export function fallbackName(username: string): string {
  const local = username.split('@')[0];
  return /^[0-9a-f]{8}-[0-9a-f]{4}-/i.test(local) ? `User ${local.slice(0, 8)}` : local.slice(0, MAX_NAME) || 'User';
}

/** The member a stored connection stands for. */
export function memberOf(connection: { userId: string; username: string; name?: string }): Member {
  return { userId: connection.userId, name: connection.name ?? fallbackName(connection.username) };
}

/** Where looked-up names are kept between containers (the table: tableNameCache). */
export interface NameCache {
  get(userId: string): Promise<string | undefined>;
  put(userId: string, name: string, ttlSeconds: number): Promise<void>;
}

/** Looked-up names kept in the connection table (keys.profile), each until its expiry. */
export function tableNameCache(db: DynamoDBDocumentClient, tableName: string, now: () => number = Date.now): NameCache {
  return {
    async get(userId) {
      const { Item } = await db.send(new GetCommand({ TableName: tableName, Key: keys.profile(userId) }));
      return isLive(Item, now()) && typeof Item!.name === 'string' ? Item!.name : undefined;
    },
    async put(userId, name, ttlSeconds) {
      await db.send(new PutCommand({ TableName: tableName, Item: { ...keys.profile(userId), name, [TABLE.ttlAttribute]: Math.floor(now() / 1000) + ttlSeconds } }));
    },
  };
}

/**
 * Names from the Cognito user pool (AdminGetUser), cached in the container for `ttlMs` and in the table for
 * `sharedTtlSeconds`, so a reconnect storm asks the user pool once per user, not once per socket: AdminGetUser has
 * an account-wide quota that the rest of the account shares. A lookup that fails or takes over `timeoutMs` falls
 * back to the username's name (logged); the connect goes on.
 */
export function cognitoProfiles(
  cognito: CognitoIdentityProviderClient,
  userPoolId: string,
  log: Logger,
  options: { shared?: NameCache; ttlMs?: number; sharedTtlSeconds?: number; timeoutMs?: number; maxEntries?: number; now?: () => number } = {},
): Profiles {
  const { shared, ttlMs = 5 * 60_000, sharedTtlSeconds = 3600, timeoutMs = 1000, maxEntries = 10_000, now = Date.now } = options;
  const cache = new Map<string, { name: string; until: number }>();
  const remember = (userId: string, name: string) => {
    if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
    cache.set(userId, { name, until: now() + ttlMs });
    return name;
  };
  return {
    async displayName({ userId, username }) {
      const hit = cache.get(userId);
      if (hit && hit.until > now()) return hit.name;
      const kept = await shared?.get(userId).catch(() => undefined);
      if (kept) return remember(userId, kept);
      let name: string;
      try {
        const user = await cognito.send(new AdminGetUserCommand({ UserPoolId: userPoolId, Username: username }), { abortSignal: AbortSignal.timeout(timeoutMs) });
        const attributes = Object.fromEntries((user.UserAttributes ?? []).map((a) => [a.Name ?? '', a.Value]));
        name = displayNameOf(attributes, username);
      } catch (err) {
        log.warn('profile_lookup_failed', { userId, error: err as Error });
        return fallbackName(username);
      }
      await shared?.put(userId, name, sharedTtlSeconds).catch((err: Error) => log.warn('profile_cache_failed', { userId, error: err }));
      return remember(userId, name);
    },
  };
}
