/**
 * Display names: what others see of a user (messages, presence, typing). Derived by the server from the verified
 * identity, never from the client: the user pool's attributes of the token's username, looked up once per
 * connection at $connect (then stored with it) and cached per container for a few minutes.
 */
import { AdminGetUserCommand, type CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import type { Logger } from '../../common/log';
import type { Member } from '../../protocol';

export interface Profiles {
  displayName(user: { userId: string; username: string }): Promise<string>;
}

const MAX_NAME = 64;

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
      .trim()
      .slice(0, MAX_NAME)
      .trim();
  const email = clean(attributes.email?.split('@')[0]);
  return clean(attributes.name) || clean(attributes.preferred_username) || email || fallbackName(username);
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

/** Names from the Cognito user pool (AdminGetUser), cached for `ttlMs`; a failed lookup falls back, logged. */
export function cognitoProfiles(
  cognito: CognitoIdentityProviderClient,
  userPoolId: string,
  log: Logger,
  options: { ttlMs?: number; maxEntries?: number; now?: () => number } = {},
): Profiles {
  const { ttlMs = 5 * 60_000, maxEntries = 10_000, now = Date.now } = options;
  const cache = new Map<string, { name: string; until: number }>();
  return {
    async displayName({ userId, username }) {
      const hit = cache.get(userId);
      if (hit && hit.until > now()) return hit.name;
      let name: string;
      try {
        const user = await cognito.send(new AdminGetUserCommand({ UserPoolId: userPoolId, Username: username }));
        const attributes = Object.fromEntries((user.UserAttributes ?? []).map((a) => [a.Name ?? '', a.Value]));
        name = displayNameOf(attributes, username);
      } catch (err) {
        log.warn('profile_lookup_failed', { userId, error: err as Error });
        return fallbackName(username);
      }
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
      cache.set(userId, { name, until: now() + ttlMs });
      return name;
    },
  };
}
