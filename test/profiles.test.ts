/**
 * Display names: derived from the user pool's attributes only, cleaned of what could spoof or garble a name, looked
 * up once per user (a container cache, then the table) so a reconnect storm does not spend the account's
 * AdminGetUser quota, and never failing a connect (a slow or failing lookup falls back).
 */
import type { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { cognitoProfiles, displayNameOf, fallbackName, type NameCache } from '../lambda/core/profiles';
import { memoryLogger } from './support/log';

/** A user pool that answers AdminGetUser with `attributes` (or hangs, or fails), counting the calls. */
function pool(behaviour: Record<string, string> | 'hang' | 'fail') {
  const calls: string[] = [];
  const client = {
    send: (command: { input: { Username: string } }, options?: { abortSignal?: AbortSignal }) => {
      calls.push(command.input.Username);
      if (behaviour === 'fail') return Promise.reject(Object.assign(new Error('Rate exceeded'), { name: 'TooManyRequestsException' }));
      if (behaviour === 'hang') {
        return new Promise((_resolve, reject) => options?.abortSignal?.addEventListener('abort', () => reject(new Error('aborted'))));
      }
      return Promise.resolve({ UserAttributes: Object.entries(behaviour).map(([Name, Value]) => ({ Name, Value })) });
    },
  } as unknown as CognitoIdentityProviderClient;
  return { client, calls };
}

function sharedCache(): NameCache & { items: Map<string, string> } {
  const items = new Map<string, string>();
  return { items, get: async (id) => items.get(id), put: async (id, name) => void items.set(id, name) };
}

describe('displayNameOf', () => {
  it.each([
    [{ name: 'Alice Liddell', email: 'alice@acme.test' }, 'Alice Liddell'],
    [{ preferred_username: 'ally', email: 'alice@acme.test' }, 'ally'],
    [{ email: 'alice@acme.test' }, 'alice'], // never the whole address
    [{ name: '  Bob \n\t Marley  ' }, 'Bob Marley'],
    [{ name: 'evil\u202Egnp.exe' }, 'evilgnp.exe'], // a right-to-left override would reverse what follows
    [{ name: '\u200B\u0000' }, 'u-1234'], // nothing visible left: the fallback
    [{ name: 'x'.repeat(200) }, 'x'.repeat(64)],
    [{ name: '😀'.repeat(70) }, '😀'.repeat(64)], // capped by character, never through a surrogate pair
  ])('%j -> %s', (attributes, expected) => {
    expect(displayNameOf(attributes, 'u-1234')).toBe(expected);
  });

  it('falls back to a short id for a UUID username, never the whole sub', () => {
    expect(fallbackName('912a06a3-1111-2222-3333-444455556666')).toBe('User 912a06a3');
    expect(fallbackName('dana@acme.test')).toBe('dana');
  });
});

describe('cognitoProfiles', () => {
  it('asks the user pool once per user: then the container cache, and in other containers the table', async () => {
    const { client, calls } = pool({ name: 'Carol Danvers' });
    const shared = sharedCache();
    const first = cognitoProfiles(client, 'pool', memoryLogger().log, { shared });
    expect(await first.displayName({ userId: 'u1', username: 'carol' })).toBe('Carol Danvers');
    expect(await first.displayName({ userId: 'u1', username: 'carol' })).toBe('Carol Danvers');
    const otherContainer = cognitoProfiles(client, 'pool', memoryLogger().log, { shared });
    expect(await otherContainer.displayName({ userId: 'u1', username: 'carol' })).toBe('Carol Danvers');
    expect(calls).toEqual(['carol']);
  });

  it.each(['hang', 'fail'] as const)('falls back when the lookup %ss, within its time-out, and logs it', async (behaviour) => {
    const logger = memoryLogger();
    const profiles = cognitoProfiles(pool(behaviour).client, 'pool', logger.log, { timeoutMs: 50 });
    const started = Date.now();
    expect(await profiles.displayName({ userId: 'u2', username: 'erin@both.test' })).toBe('erin');
    expect(Date.now() - started).toBeLessThan(1000);
    expect(logger.events().map((e) => e.event)).toContain('profile_lookup_failed');
  });
});
