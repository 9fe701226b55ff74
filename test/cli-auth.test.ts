/**
 * The CLI's sign-in (`sessionTokenProvider`) against the local system's Cognito (cognito-local behind the emulator's
 * front end, seeded from the synthesized stack's pool and app client): it refreshes while it can and signs in with
 * the password again when the refresh token is refused, so a long-running `connect` outlives a revoked or forgotten
 * refresh token; a Cognito that does not answer is not a refusal. And the tenant hints read from a token.
 */
import {
  AdminSetUserPasswordCommand,
  AdminUserGlobalSignOutCommand,
  type CognitoIdentityProviderClient,
  type ServiceInputTypes,
} from '@aws-sdk/client-cognito-identity-provider';
import { isRefusedByCognito, sessionTokenProvider, tenantsOfToken, unverifiedClaims } from '@gatehouse/client/node';
import { GROUP_DEFAULTS } from '../protocol';
import { DEMO_USERS } from '../local/demo-users';
import { startCognito, type LocalCognito } from '../local/emulator/cognito';
import { loadTemplate } from '../local/emulator/template';
import { CDK_OUT } from '../local/paths';

const users = DEMO_USERS.filter((u) => ['alice@acme.test', 'erin@both.test', 'dana@acme.test'].includes(u.email));
let cognito: LocalCognito;

beforeAll(async () => {
  cognito = await startCognito({
    template: loadTemplate(CDK_OUT, 'Gatehouse'),
    region: 'eu-west-1',
    users: users.map((u) => ({
      username: u.email,
      password: u.password,
      attributes: { email: u.email },
      groups: [...u.tenants.map((t) => `${GROUP_DEFAULTS.tenantGroupPrefix}${t}`), ...(u.admin ? [GROUP_DEFAULTS.adminGroup] : [])],
    })),
    log: () => undefined,
  });
});
afterAll(() => cognito.stop());

const password = users[0].password;
const originOf = (token: string) => unverifiedClaims(token).origin_jti;
/** Always due for a refresh: a margin longer than any access token lives. */
const ALWAYS = 24 * 60 * 60 * 1000;

/**
 * The operator's client, counting the auth flows it is asked for; while `down` it fails them as if Cognito were
 * down, while `forgetful` it presents refresh tokens Cognito never issued (what a restarted local system sees).
 */
function watched() {
  const flows: string[] = [];
  const state = { down: false, forgetful: false };
  const client = {
    send(command: { input: ServiceInputTypes }) {
      const input = command.input as { AuthFlow?: string; AuthParameters?: Record<string, string> };
      flows.push(String(input.AuthFlow));
      if (state.down) return Promise.reject(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9229'), { code: 'ECONNREFUSED' }));
      if (state.forgetful && input.AuthParameters?.REFRESH_TOKEN) input.AuthParameters.REFRESH_TOKEN = 'a-refresh-token-from-before-the-restart';
      return cognito.client.send(command as never);
    },
  } as unknown as CognitoIdentityProviderClient;
  return { client, flows, state };
}

describe('sessionTokenProvider', () => {
  it('signs in once and hands out the same token until it is due for renewal', async () => {
    const { client, flows } = watched();
    const token = sessionTokenProvider(client, cognito.clientId, 'alice@acme.test', password);
    const first = await token();
    expect(await token()).toBe(first);
    expect(flows).toEqual(['USER_PASSWORD_AUTH']);
  });

  it('refreshes a token due for renewal, keeping the sign-in (origin_jti)', async () => {
    const { client, flows } = watched();
    const token = sessionTokenProvider(client, cognito.clientId, 'alice@acme.test', password, ALWAYS);
    const first = await token();
    const second = await token();
    expect(second).not.toBe(first);
    expect(originOf(second)).toBe(originOf(first));
    expect(flows).toEqual(['USER_PASSWORD_AUTH', 'REFRESH_TOKEN_AUTH']);
  });

  it.each([
    ['revoked by a global sign-out', async () => {
      await cognito.client.send(new AdminUserGlobalSignOutCommand({ UserPoolId: cognito.userPoolId, Username: 'dana@acme.test' }));
    }],
    ['unknown to a restarted Cognito', async (state: { forgetful: boolean }) => {
      state.forgetful = true;
    }],
  ])('signs in with the password again when the refresh token is refused (%s)', async (_name, refuse) => {
    const { client, flows, state } = watched();
    const token = sessionTokenProvider(client, cognito.clientId, 'dana@acme.test', password, ALWAYS);
    const first = await token();
    await refuse(state);
    const second = await token();
    state.forgetful = false;
    expect(originOf(second)).not.toBe(originOf(first)); // a new sign-in, not a refresh
    expect(flows).toEqual(['USER_PASSWORD_AUTH', 'REFRESH_TOKEN_AUTH', 'USER_PASSWORD_AUTH']);
    // And it goes on refreshing that new sign-in.
    expect(originOf(await token())).toBe(originOf(second));
  });

  it('fails with Cognito\'s refusal when the password is refused too, and tries once', async () => {
    const { client, flows } = watched();
    const token = sessionTokenProvider(client, cognito.clientId, 'erin@both.test', password, ALWAYS);
    await token();
    const changed = 'Changed-Passw0rd!';
    await cognito.client.send(new AdminSetUserPasswordCommand({ UserPoolId: cognito.userPoolId, Username: 'erin@both.test', Password: changed, Permanent: true }));
    await cognito.client.send(new AdminUserGlobalSignOutCommand({ UserPoolId: cognito.userPoolId, Username: 'erin@both.test' }));
    const refused = await token().catch((err: Error) => err);
    expect(refused).toMatchObject({ name: 'NotAuthorizedException', message: 'Incorrect username or password.' });
    expect(isRefusedByCognito(refused)).toBe(true);
    expect(flows).toEqual(['USER_PASSWORD_AUTH', 'REFRESH_TOKEN_AUTH', 'USER_PASSWORD_AUTH']);
    await cognito.client.send(new AdminSetUserPasswordCommand({ UserPoolId: cognito.userPoolId, Username: 'erin@both.test', Password: password, Permanent: true }));
  });

  it('passes an unreachable Cognito through as it is (not a refusal: the client retries later) and recovers', async () => {
    const { client, flows, state } = watched();
    const token = sessionTokenProvider(client, cognito.clientId, 'alice@acme.test', password, ALWAYS);
    const first = await token();
    state.down = true;
    const failure = await token().catch((err: Error) => err);
    expect(failure).toMatchObject({ code: 'ECONNREFUSED' });
    expect(isRefusedByCognito(failure)).toBe(false);
    state.down = false;
    expect(originOf(await token())).toBe(originOf(first)); // the refresh token was kept
    expect(flows).toEqual(['USER_PASSWORD_AUTH', 'REFRESH_TOKEN_AUTH', 'REFRESH_TOKEN_AUTH']);
  });

  it('shares one request between concurrent calls (a reconnect and a renewal at once)', async () => {
    const { client, flows } = watched();
    const token = sessionTokenProvider(client, cognito.clientId, 'alice@acme.test', password);
    const [a, b] = await Promise.all([token(), token()]);
    expect(a).toBe(b);
    expect(flows).toEqual(['USER_PASSWORD_AUTH']);
  });
});

describe('tenantsOfToken (hints, read without verifying)', () => {
  it('lists the tenants of the groups in an access token, leaving other groups out', async () => {
    const tenants = async (email: string) => tenantsOfToken((await cognito.signIn(email, password)).accessToken);
    expect(await tenants('erin@both.test')).toEqual(['acme', 'globex']);
    expect(await tenants('dana@acme.test')).toEqual(['acme']); // and in `admin`
  });

  it('reads no tenant from a token without groups, or groups of another convention', () => {
    const jwt = (claims: object) => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;
    expect(tenantsOfToken(jwt({ sub: 'x' }))).toEqual([]);
    expect(tenantsOfToken(jwt({ 'cognito:groups': ['org:acme', 'tenant:', 'tenant:a b', 'tenant:ok'] }))).toEqual(['ok']);
    expect(() => unverifiedClaims('not-a-token')).toThrow('Not a JWT');
    expect(() => unverifiedClaims('a.!!not-json.c')).toThrow('Not a JWT');
  });
});
