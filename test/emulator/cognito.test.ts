/**
 * The emulated Cognito issues tokens and ends sign-ins as Cognito does: `origin_jti` kept across refreshes (a new
 * `jti` each time), RevokeToken and global sign-out that stop refreshes, revoked access tokens refused by Cognito's
 * own APIs, and the new-password challenge for an administrator-created user. Its IAM-authorized operations (Admin*,
 * DescribeUserPoolClient, ListUsers, ...) need a signature and the caller's permission on the pool; the public and
 * token-authorized ones do not.
 */
import {
  AdminDeleteUserCommand,
  AdminDisableUserCommand,
  AdminEnableUserCommand,
  AdminGetUserCommand,
  AdminInitiateAuthCommand,
  AdminUserGlobalSignOutCommand,
  DescribeUserPoolClientCommand,
  GetUserCommand,
  GlobalSignOutCommand,
  InitiateAuthCommand,
  ListUsersCommand,
  RevokeTokenCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { createPublicKey, verify } from 'node:crypto';
import { startCognito, type LocalCognito } from '../../local/emulator/cognito';
import { Iam } from '../../local/emulator/iam';
import { Resolver } from '../../local/emulator/template';
import { role, template } from './fixtures';

const ACCOUNT = '000000000000';
const poolArn = { 'Fn::GetAtt': ['Pool', 'Arn'] };
const ROLES = {
  // What the stack grants its connect function, and its authorizer and session API.
  Reader: role([{ Effect: 'Allow', Action: 'cognito-idp:AdminGetUser', Resource: poolArn }]),
  Sessions: role([{ Effect: 'Allow', Action: ['cognito-idp:AdminInitiateAuth', 'cognito-idp:DescribeUserPoolClient', 'cognito-idp:AdminUserGlobalSignOut'], Resource: poolArn }]),
  Nobody: role([{ Effect: 'Allow', Action: 'dynamodb:GetItem', Resource: '*' }]),
};
const POOL = {
  Pool: { Type: 'AWS::Cognito::UserPool', Properties: { Policies: { PasswordPolicy: { MinimumLength: 8 } } } },
  Client: {
    Type: 'AWS::Cognito::UserPoolClient',
    Properties: {
      UserPoolId: { Ref: 'Pool' },
      ExplicitAuthFlows: ['ALLOW_USER_PASSWORD_AUTH', 'ALLOW_ADMIN_USER_PASSWORD_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH'],
      EnableTokenRevocation: true,
      AccessTokenValidity: 60,
      TokenValidityUnits: { AccessToken: 'minutes' },
    },
  },
};
const PASSWORD = 'Passw0rd!-long';
let cognito: LocalCognito;
/** Set once the pool exists (its ARN is in the policies), as the emulator sets it. */
let iam: Iam | undefined;

beforeAll(async () => {
  cognito = await startCognito({
    template: template({ ...POOL, ...ROLES }),
    region: 'eu-west-1',
    accountId: ACCOUNT,
    iam: () => iam,
    users: [
      { username: 'alice@example.test', password: PASSWORD, attributes: { email: 'alice@example.test' }, groups: ['tenant:a'] },
      { username: 'bob@example.test', password: PASSWORD, attributes: { email: 'bob@example.test' } },
      { username: 'newbie@example.test', password: PASSWORD, attributes: { email: 'newbie@example.test' }, mustChangePassword: true },
      { username: 'dora@example.test', password: PASSWORD, attributes: { email: 'dora@example.test' } },
      { username: 'gone@example.test', password: PASSWORD, attributes: { email: 'gone@example.test' } },
    ],
    log: () => undefined,
  });
  const resolver = new Resolver({ Pool: { ref: cognito.userPoolId, attrs: { Arn: `arn:aws:cognito-idp:eu-west-1:${ACCOUNT}:userpool/${cognito.userPoolId}` } } }, {});
  iam = new Iam({ template: template({ ...POOL, ...ROLES }), resolver, accountId: ACCOUNT });
});
afterAll(() => cognito.stop());

const claims = (token: string) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as Record<string, unknown>;
const refresh = (refreshToken: string) =>
  cognito.client.send(new InitiateAuthCommand({ ClientId: cognito.clientId, AuthFlow: 'REFRESH_TOKEN_AUTH', AuthParameters: { REFRESH_TOKEN: refreshToken } }));

describe('tokens', () => {
  it('carry origin_jti, kept by a refresh while jti changes, and verify against the pool\'s JWKS', async () => {
    const first = await cognito.signIn('alice@example.test', PASSWORD);
    const refreshed = await cognito.refresh(first.refreshToken);
    const [a, b] = [claims(first.accessToken), claims(refreshed.accessToken)];
    expect(a.origin_jti).toEqual(expect.any(String));
    expect(b.origin_jti).toBe(a.origin_jti);
    expect(b.jti).not.toBe(a.jti);
    expect(claims(refreshed.idToken).origin_jti).toBe(a.origin_jti);
    expect(a['cognito:groups']).toEqual(['tenant:a']);
    expect(b.iss).toBe(`https://cognito-idp.eu-west-1.amazonaws.com/${cognito.userPoolId}`);
    const { keys } = (await (await fetch(cognito.jwksUri)).json()) as { keys: Array<{ kid: string }> };
    const [header, payload, signature] = refreshed.accessToken.split('.');
    const key = keys.find((k) => k.kid === JSON.parse(Buffer.from(header, 'base64url').toString()).kid)!;
    expect(verify('RSA-SHA256', Buffer.from(`${header}.${payload}`), createPublicKey({ key: key as never, format: 'jwk' }), Buffer.from(signature, 'base64url'))).toBe(true);
  });

  it('give each sign-in an origin of its own', async () => {
    const [one, two] = await Promise.all([cognito.signIn('alice@example.test', PASSWORD), cognito.signIn('alice@example.test', PASSWORD)]);
    expect(claims(one.accessToken).origin_jti).not.toBe(claims(two.accessToken).origin_jti);
  });

  it('answer a refresh with ExpiresIn, as Cognito does', async () => {
    const { AuthenticationResult } = await refresh((await cognito.signIn('alice@example.test', PASSWORD)).refreshToken);
    expect(AuthenticationResult?.ExpiresIn).toBe(3600);
  });

  it('are refreshed through GetTokensFromRefreshToken too (what Amplify calls)', async () => {
    const { refreshToken, accessToken } = await cognito.signIn('alice@example.test', PASSWORD);
    const answer = await fetch(cognito.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'AWSCognitoIdentityProviderService.GetTokensFromRefreshToken' },
      body: JSON.stringify({ ClientId: cognito.clientId, RefreshToken: refreshToken }),
    });
    const { AuthenticationResult } = (await answer.json()) as { AuthenticationResult: { AccessToken: string } };
    expect(claims(AuthenticationResult.AccessToken).origin_jti).toBe(claims(accessToken).origin_jti);
  });
});

describe('ending sign-ins', () => {
  it('RevokeToken stops that sign-in\'s refreshes, and Cognito refuses its access tokens; other sign-ins go on', async () => {
    const revoked = await cognito.signIn('alice@example.test', PASSWORD);
    const other = await cognito.signIn('alice@example.test', PASSWORD);
    await cognito.client.send(new RevokeTokenCommand({ ClientId: cognito.clientId, Token: revoked.refreshToken }));
    await expect(refresh(revoked.refreshToken)).rejects.toMatchObject({ name: 'NotAuthorizedException' });
    await expect(cognito.client.send(new GetUserCommand({ AccessToken: revoked.accessToken }))).rejects.toMatchObject({ name: 'NotAuthorizedException', message: 'Access Token has been revoked' });
    await expect(refresh(other.refreshToken)).resolves.toBeDefined();
  });

  it('GlobalSignOut ends every sign-in of the user ("Refresh Token has been revoked"), and no one else\'s', async () => {
    const [one, two] = await Promise.all([cognito.signIn('alice@example.test', PASSWORD), cognito.signIn('alice@example.test', PASSWORD)]);
    const bob = await cognito.signIn('bob@example.test', PASSWORD);
    await cognito.client.send(new GlobalSignOutCommand({ AccessToken: one.accessToken }));
    for (const t of [one, two]) await expect(refresh(t.refreshToken)).rejects.toMatchObject({ name: 'NotAuthorizedException', message: 'Refresh Token has been revoked' });
    await expect(cognito.client.send(new GlobalSignOutCommand({ AccessToken: one.accessToken }))).rejects.toMatchObject({ message: 'Access Token has been revoked' });
    await expect(refresh(bob.refreshToken)).resolves.toBeDefined();
  });

  it('AdminUserGlobalSignOut does the same for an administrator', async () => {
    const bob = await cognito.signIn('bob@example.test', PASSWORD);
    await cognito.client.send(new AdminUserGlobalSignOutCommand({ UserPoolId: cognito.userPoolId, Username: 'bob@example.test' }));
    await expect(refresh(bob.refreshToken)).rejects.toMatchObject({ message: 'Refresh Token has been revoked' });
  });
});

describe('errors and challenges', () => {
  it('answers a wrong password with NotAuthorizedException, as Cognito does (not InvalidPasswordException)', async () => {
    await expect(cognito.signIn('alice@example.test', 'wrong-Passw0rd!')).rejects.toMatchObject({ name: 'NotAuthorizedException', message: 'Incorrect username or password.' });
    await expect(
      cognito.client.send(
        new AdminInitiateAuthCommand({ UserPoolId: cognito.userPoolId, ClientId: cognito.clientId, AuthFlow: 'ADMIN_USER_PASSWORD_AUTH', AuthParameters: { USERNAME: 'alice@example.test', PASSWORD: 'wrong' } }),
      ),
    ).rejects.toMatchObject({ name: 'NotAuthorizedException' });
  });

  it('asks an administrator-created user for a new password in the server-side flow too (NEW_PASSWORD_REQUIRED)', async () => {
    const answer = await cognito.client.send(
      new AdminInitiateAuthCommand({
        UserPoolId: cognito.userPoolId,
        ClientId: cognito.clientId,
        AuthFlow: 'ADMIN_USER_PASSWORD_AUTH',
        AuthParameters: { USERNAME: 'newbie@example.test', PASSWORD },
      }),
    );
    expect(answer.ChallengeName).toBe('NEW_PASSWORD_REQUIRED');
    expect(answer.AuthenticationResult).toBeUndefined();
  });
});

describe('disabled and deleted users', () => {
  // AdminDisableUser: "a deactivated user can't sign in"; a refresh is a sign-in flow too. cognito-local issues both.
  it('refuses a disabled user\'s sign-in and refresh with NotAuthorizedException, and serves them again once enabled', async () => {
    const tokens = await cognito.signIn('dora@example.test', PASSWORD);
    await cognito.client.send(new AdminDisableUserCommand({ UserPoolId: cognito.userPoolId, Username: 'dora@example.test' }));
    await expect(refresh(tokens.refreshToken)).rejects.toMatchObject({ name: 'NotAuthorizedException', message: 'User is disabled.' });
    await expect(cognito.signIn('dora@example.test', PASSWORD)).rejects.toMatchObject({ name: 'NotAuthorizedException' });
    await cognito.client.send(new AdminEnableUserCommand({ UserPoolId: cognito.userPoolId, Username: 'dora@example.test' }));
    expect((await refresh(tokens.refreshToken)).AuthenticationResult?.AccessToken).toEqual(expect.any(String));
  });

  it('refuses a deleted user\'s refresh token', async () => {
    const tokens = await cognito.signIn('gone@example.test', PASSWORD);
    await cognito.client.send(new AdminDeleteUserCommand({ UserPoolId: cognito.userPoolId, Username: 'gone@example.test' }));
    await expect(refresh(tokens.refreshToken)).rejects.toMatchObject({ name: 'NotAuthorizedException' });
  });
});

describe('IAM', () => {
  const as = (roleId: keyof typeof ROLES) => cognito.clientFor(iam!.credentialsOf(roleId));
  const getUser = (username = 'alice@example.test', UserPoolId = cognito.userPoolId) => new AdminGetUserCommand({ UserPoolId, Username: username });
  const unsigned = (operation: string, input: unknown) =>
    fetch(cognito.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': `AWSCognitoIdentityProviderService.${operation}` },
      body: JSON.stringify(input),
    });

  it('refuses an Admin operation to a role without its permission: 400 AccessDeniedException, in IAM\'s words', async () => {
    const poolArnText = `arn:aws:cognito-idp:eu-west-1:${ACCOUNT}:userpool/${cognito.userPoolId}`;
    await expect(as('Nobody').send(getUser())).rejects.toMatchObject({
      name: 'AccessDeniedException',
      $metadata: { httpStatusCode: 400 },
      message: `User: arn:aws:iam::${ACCOUNT}:assumed-role/Nobody is not authorized to perform: cognito-idp:AdminGetUser on resource: ${poolArnText} because no identity-based policy allows the cognito-idp:AdminGetUser action`,
    });
  });

  it('allows a role granted the operation on this pool, and only that operation on that pool', async () => {
    await expect(as('Reader').send(getUser())).resolves.toMatchObject({ Username: expect.any(String) });
    await expect(as('Reader').send(new AdminDeleteUserCommand({ UserPoolId: cognito.userPoolId, Username: 'alice@example.test' }))).rejects.toMatchObject({ name: 'AccessDeniedException' });
    await expect(as('Reader').send(getUser('alice@example.test', 'eu-west-1_Other'))).rejects.toMatchObject({ name: 'AccessDeniedException', message: expect.stringContaining('userpool/eu-west-1_Other') });
    await expect(as('Reader').send(new ListUsersCommand({ UserPoolId: cognito.userPoolId }))).rejects.toMatchObject({ name: 'AccessDeniedException' });
  });

  it('authorizes the server-side sign-in a session service needs: DescribeUserPoolClient, AdminInitiateAuth, AdminUserGlobalSignOut', async () => {
    const sessions = as('Sessions');
    await expect(sessions.send(new DescribeUserPoolClientCommand({ UserPoolId: cognito.userPoolId, ClientId: cognito.clientId }))).resolves.toMatchObject({ UserPoolClient: { ClientId: cognito.clientId } });
    const { AuthenticationResult } = await sessions.send(
      new AdminInitiateAuthCommand({ UserPoolId: cognito.userPoolId, ClientId: cognito.clientId, AuthFlow: 'ADMIN_USER_PASSWORD_AUTH', AuthParameters: { USERNAME: 'bob@example.test', PASSWORD } }),
    );
    expect(AuthenticationResult?.AccessToken).toEqual(expect.any(String));
    await expect(sessions.send(new AdminUserGlobalSignOutCommand({ UserPoolId: cognito.userPoolId, Username: 'bob@example.test' }))).resolves.toBeDefined();
    await expect(as('Nobody').send(new DescribeUserPoolClientCommand({ UserPoolId: cognito.userPoolId, ClientId: cognito.clientId }))).rejects.toMatchObject({ name: 'AccessDeniedException' });
  });

  it('refuses an unsigned IAM-authorized request, and one signed with an unknown key', async () => {
    const answer = await unsigned('AdminGetUser', { UserPoolId: cognito.userPoolId, Username: 'alice@example.test' });
    expect(answer.status).toBe(400);
    expect(await answer.json()).toMatchObject({ __type: 'MissingAuthenticationTokenException' });
    await expect(cognito.clientFor({ accessKeyId: 'AKIAUNKNOWN', secretAccessKey: 'x' }).send(getUser())).rejects.toMatchObject({ name: 'UnrecognizedClientException' });
    // An operation it does not know as public is IAM-authorized too.
    expect(await (await unsigned('AdminFrobnicate', { UserPoolId: cognito.userPoolId })).json()).toMatchObject({ __type: 'MissingAuthenticationTokenException' });
  });

  it('leaves the public and token-authorized operations open, signed by anyone or not at all', async () => {
    const signIn = { ClientId: cognito.clientId, AuthFlow: 'USER_PASSWORD_AUTH', AuthParameters: { USERNAME: 'alice@example.test', PASSWORD } };
    const answer = await unsigned('InitiateAuth', signIn);
    expect(answer.status).toBe(200);
    const { AuthenticationResult } = (await answer.json()) as { AuthenticationResult: { AccessToken: string; RefreshToken: string } };
    await expect(as('Nobody').send(new InitiateAuthCommand(signIn as never))).resolves.toMatchObject({ AuthenticationResult: expect.any(Object) });
    expect((await unsigned('GetUser', { AccessToken: AuthenticationResult.AccessToken })).status).toBe(200);
    expect((await unsigned('RevokeToken', { ClientId: cognito.clientId, Token: AuthenticationResult.RefreshToken })).status).toBe(200);
    const other = await cognito.signIn('alice@example.test', PASSWORD);
    expect((await unsigned('GlobalSignOut', { AccessToken: other.accessToken })).status).toBe(200);
  });
});
