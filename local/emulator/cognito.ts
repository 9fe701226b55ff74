/**
 * Cognito on loopback: cognito-local in a child process, configured from the template (pool policies, app clients
 * and their token validity, groups) and seeded with the users a caller names, behind a front end that makes its
 * tokens and sign-outs behave like Cognito's where cognito-local's do not:
 *
 * - **`origin_jti`.** With token revocation on, Cognito's access and ID tokens carry `origin_jti`, and "when the
 *   REFRESH_TOKEN authentication flow is used to generate new access and ID tokens, the new access and ID tokens have
 *   the same origin_jti claim. The jti claims are different." (https://repost.aws/knowledge-center/cognito-revoke-refresh-tokens).
 *   Tokens are re-signed with cognito-local's own key after the claim is set, so its JWKS still verifies them.
 * - **Revocation.** RevokeToken revokes the refresh token and every access token issued from it; GlobalSignOut and
 *   AdminUserGlobalSignOut revoke every refresh token of the user (https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_GlobalSignOut.html):
 *   a refresh with a revoked token fails with NotAuthorizedException "Refresh Token has been revoked", and Cognito
 *   APIs called with a revoked access token answer "Access Token has been revoked". (A JWT library still accepts a
 *   revoked token until it expires, as with Cognito: revocation is the application's to check.)
 * - **Errors.** A wrong password is NotAuthorizedException "Incorrect username or password.", an unknown refresh
 *   token NotAuthorizedException "Invalid Refresh Token", as at Cognito.
 * - **Challenges.** AdminInitiateAuth for a user who must set a new password answers NEW_PASSWORD_REQUIRED, as
 *   Cognito does, instead of tokens; refreshes answer ExpiresIn; GetTokensFromRefreshToken (which Amplify calls and
 *   cognito-local lacks) is answered as InitiateAuth with REFRESH_TOKEN_AUTH.
 *
 * - **IAM.** Cognito has three authorization models ("Authorization models for API and SDK authentication",
 *   https://docs.aws.amazon.com/cognito/latest/developerguide/authentication-flows-public-server-side.html): public
 *   operations (InitiateAuth, SignUp, ...) and token-authorized ones (GetUser, GlobalSignOut, ...) take no AWS
 *   credentials; every other operation (the Admin* family, DescribeUserPoolClient, ListUsers, the pool's
 *   configuration) is IAM-authorized: "Amazon Cognito evaluates IAM policies in requests for this API operation"
 *   (the note on each such page of the API reference). With an `iam`, those must be SigV4-signed for `cognito-idp`
 *   and the caller allowed `cognito-idp:<Operation>` on the pool's ARN (`arn:aws:cognito-idp:<region>:<account>:
 *   userpool/<id>`; `*` for an operation on no pool), else 400 AccessDeniedException with IAM's message. An
 *   operation this front end does not know as public needs IAM (stricter than reading it as public).
 *
 * Ids are the same on every start, so a page or CLI left running across a restart keeps working: the pool is
 * `<region>_Gatehouse`, each app client's id is derived from the pool and its logical id, each user's `sub` from the
 * pool and the username (cognito-local's own are random), and cognito-local signs with the key its package ships.
 *
 * Tokens carry the real Cognito issuer form (`https://cognito-idp.<region>.amazonaws.com/<region>_<id>`), so a
 * production verifier accepts them unchanged; only the JWKS location differs (served over http here).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, createSign, randomUUID, type KeyObject } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  AdminAddUserToGroupCommand,
  AdminCreateUserCommand,
  AdminSetUserPasswordCommand,
  CognitoIdentityProviderClient,
  CreateGroupCommand,
  CreateUserPoolClientCommand,
  InitiateAuthCommand,
  UpdateUserPoolCommand,
  type AuthenticationResultType,
} from '@aws-sdk/client-cognito-identity-provider';
import { OPERATOR_CREDENTIALS, type Credentials, type Iam } from './iam';
import { verifySignature } from './sigv4';
import { onlyResource, resourcesOfType, type Template } from './template';

export interface CognitoUser {
  username: string;
  password: string;
  attributes?: Record<string, string>;
  groups?: string[];
  /** The user must set a new password at the first sign-in (an administrator-created user). @default false */
  mustChangePassword?: boolean;
}

export interface Tokens {
  accessToken: string;
  idToken: string;
  refreshToken: string;
  /** Epoch milliseconds at which the access token expires. */
  expiresAt: number;
}

export interface LocalCognito {
  endpoint: string;
  userPoolId: string;
  /** The first app client without a secret (the one a browser or CLI signs in with). */
  clientId: string;
  /** Local client id of every app client in the template, by logical id. */
  clients: Record<string, string>;
  jwksUri: string;
  /** The operator's client (the account's administrator). */
  client: CognitoIdentityProviderClient;
  /** A client that signs with other credentials (a role's, to call Cognito as that role's code would). */
  clientFor(credentials: Credentials): CognitoIdentityProviderClient;
  signIn(username: string, password: string): Promise<Tokens>;
  refresh(refreshToken: string): Promise<Tokens>;
  stop(): Promise<void>;
}

export interface CognitoOptions {
  template: Template;
  /** Port of the front end; cognito-local itself listens on a free one. @default a free port */
  port?: number;
  region: string;
  /** @default '000000000000' */
  accountId?: string;
  /** Require SigV4 and evaluate IAM on the IAM-authorized operations (read per request). @default any caller is allowed */
  iam?: () => Iam | undefined;
  users: CognitoUser[];
  /** Groups to create besides the template's and the users'. @default none */
  groups?: string[];
  /** Keep the pool here between runs; a temporary folder (deleted on stop) when absent. */
  stateDir?: string;
  /**
   * Without `stateDir`: keep a freshly seeded pool here, keyed by everything that seeded it, and start from a copy
   * of it next time, which skips seeding (and its restart of cognito-local). @default seed afresh each start
   */
  seedCacheDir?: string;
  /** Shorter access tokens than the template's (to watch sockets expire). */
  accessTokenSeconds?: number;
  log: (line: string) => void;
}

const SEED_FILE = 'gatehouse-seed.json';
const REVOCATIONS_FILE = 'emulator-revocations.json';
const TARGET = 'AWSCognitoIdentityProviderService.';
const COGNITO_LOCAL = path.dirname(require.resolve('cognito-local/package.json'));
const EXIT_WITH_PARENT = path.join(__dirname, 'exit-with-parent.cjs');
const COGNITO_LOCAL_VERSION = (JSON.parse(readFileSync(path.join(COGNITO_LOCAL, 'package.json'), 'utf8')) as { version: string }).version;
/** Changes when what a seeded pool holds does (2: derived client ids and subs), so older cached seeds are not reused. */
const SEED_FORMAT = 2;

/**
 * The operations Cognito authorizes without AWS credentials: the public ones and those a session or access token
 * authorizes (the API reference's "Amazon Cognito doesn't evaluate AWS Identity and Access Management (IAM)
 * policies in requests for this API operation"). Every other operation is IAM-authorized.
 */
export const UNAUTHENTICATED_OPERATIONS: ReadonlySet<string> = new Set([
  // Public.
  'SignUp',
  'ConfirmSignUp',
  'ResendConfirmationCode',
  'ForgotPassword',
  'ConfirmForgotPassword',
  'InitiateAuth',
  'RespondToAuthChallenge',
  'RevokeToken',
  'GetTokensFromRefreshToken',
  'UpdateAuthEventFeedback',
  // Session- or access-token-authorized.
  'AssociateSoftwareToken',
  'VerifySoftwareToken',
  'GetUser',
  'UpdateUserAttributes',
  'DeleteUserAttributes',
  'DeleteUser',
  'ChangePassword',
  'GlobalSignOut',
  'GetUserAttributeVerificationCode',
  'VerifyUserAttribute',
  'SetUserMFAPreference',
  'SetUserSettings',
  'ConfirmDevice',
  'ForgetDevice',
  'GetDevice',
  'ListDevices',
  'UpdateDeviceStatus',
  'GetUserAuthFactors',
  'StartWebAuthnRegistration',
  'CompleteWebAuthnRegistration',
  'ListWebAuthnCredentials',
  'DeleteWebAuthnCredential',
]);

/** The sign-ins the front end has seen: which origin each refresh token carries, and which are revoked. */
interface Ledger {
  /** refresh token -> the sign-in it belongs to. */
  refresh: Record<string, { originJti: string; username: string }>;
  revokedOrigins: string[];
}

function waitForListening(child: ChildProcess, log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`cognito-local did not start within 15 s:\n${output}`)), 15_000);
    const onData = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      output += text;
      for (const line of text.split('\n')) if (line.trim()) log(line);
      if (output.includes('Cognito Local running on')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`cognito-local exited with code ${code}:\n${output}`));
    });
  });
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

const decodePart = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;

/** Re-signs a token's claims with cognito-local's key (RS256, kid CognitoLocal). */
function sign(claims: Record<string, unknown>, header: Record<string, unknown>, key: KeyObject): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${createSign('RSA-SHA256').update(input).sign(key).toString('base64url')}`;
}

export async function startCognito(options: CognitoOptions): Promise<LocalCognito> {
  const { region } = options;
  const accountId = options.accountId ?? '000000000000';
  const dir = options.stateDir ?? mkdtempSync(path.join(tmpdir(), 'gatehouse-cognito-'));
  const dbDir = path.join(dir, '.cognito', 'db');
  mkdirSync(dbDir, { recursive: true });
  writeFileSync(path.join(dir, '.cognito', 'config.json'), JSON.stringify({ TokenConfig: { IssuerDomain: `https://cognito-idp.${region}.amazonaws.com` } }));
  const seedPath = path.join(dir, SEED_FILE);
  const cached = !options.stateDir && options.seedCacheDir ? path.join(options.seedCacheDir, seedKey(options)) : undefined;
  if (cached && existsSync(path.join(cached, SEED_FILE))) cpSync(cached, dir, { recursive: true });
  const seed = existsSync(seedPath) ? (JSON.parse(readFileSync(seedPath, 'utf8')) as { userPoolId: string; clients: Record<string, string> }) : undefined;
  // cognito-local names pools local_<id>; a pool file named in Cognito's own form gives tokens the real issuer.
  const userPoolId = seed?.userPoolId ?? `${region}_Gatehouse`;
  if (!seed) writeFileSync(path.join(dbDir, `${userPoolId}.json`), '{}');
  const ledgerPath = path.join(dir, REVOCATIONS_FILE);
  const ledger: Ledger = existsSync(ledgerPath) ? (JSON.parse(readFileSync(ledgerPath, 'utf8')) as Ledger) : { refresh: {}, revokedOrigins: [] };
  const save = () => {
    if (options.stateDir) writeFileSync(ledgerPath, JSON.stringify(ledger));
  };
  const key = createPrivateKey((JSON.parse(readFileSync(path.join(COGNITO_LOCAL, 'lib', 'keys', 'cognitoLocal.private.json'), 'utf8')) as { pem: string }).pem);

  // cognito-local, (re)started by `launch`: seeding a new pool restarts it once (see stableClients).
  let backendPort = 0;
  let child: ChildProcess | undefined;
  const killOnExit = () => child?.kill('SIGKILL');
  process.once('exit', killOnExit);
  const stopChild = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  };
  const launch = async () => {
    backendPort = await freePort();
    child = spawn(process.execPath, ['--require', EXIT_WITH_PARENT, path.join(COGNITO_LOCAL, 'lib', 'bin', 'start.js')], {
      cwd: dir,
      env: { ...process.env, PORT: String(backendPort), HOST: '127.0.0.1', NODE_NO_WARNINGS: '1', DEBUG: '' },
      // stdin: a pipe this process holds open for as long as it lives (see exit-with-parent.cjs).
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    await waitForListening(child, options.log);
  };
  const stopBackend = async () => {
    process.removeListener('exit', killOnExit);
    await stopChild();
  };
  try {
    await launch();
  } catch (err) {
    await stopBackend();
    if (!options.stateDir) rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const backend = (target: string, body: Buffer, headers: IncomingMessage['headers']) =>
    new Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }>((resolve, reject) => {
      const upstream = httpRequest(
        { host: '127.0.0.1', port: backendPort, method: 'POST', path: '/', headers: { ...headers, host: `127.0.0.1:${backendPort}`, 'x-amz-target': target, 'content-length': String(body.length) } },
        (answer) => {
          const chunks: Buffer[] = [];
          answer.on('data', (c: Buffer) => chunks.push(c));
          answer.on('end', () => resolve({ status: answer.statusCode ?? 502, headers: answer.headers, body: Buffer.concat(chunks) }));
        },
      );
      upstream.on('error', reject);
      upstream.end(body);
    });
  const call = async (operation: string, input: Record<string, unknown>) => {
    const answer = await backend(TARGET + operation, Buffer.from(JSON.stringify(input)), { 'content-type': 'application/x-amz-json-1.1' });
    return { status: answer.status, body: JSON.parse(answer.body.toString('utf8') || '{}') as Record<string, any> };
  };

  /** Sets origin_jti (new for a sign-in, kept for a refresh), a fresh jti, and ExpiresIn. */
  const stamp = (result: AuthenticationResultType, originJti: string): AuthenticationResultType => {
    const restamp = (token: string | undefined) => {
      if (!token) return token;
      const [h, p] = token.split('.');
      return sign({ ...decodePart(p), origin_jti: originJti, jti: randomUUID() }, decodePart(h), key);
    };
    const access = result.AccessToken ? decodePart(result.AccessToken.split('.')[1]) : undefined;
    return {
      ...result,
      AccessToken: restamp(result.AccessToken),
      IdToken: restamp(result.IdToken),
      ...(access ? { ExpiresIn: Number(access.exp) - Number(access.iat), TokenType: 'Bearer' } : {}),
    };
  };
  const revokedAccessToken = (token: unknown): boolean => {
    if (typeof token !== 'string') return false;
    try {
      return ledger.revokedOrigins.includes(String(decodePart(token.split('.')[1]).origin_jti));
    } catch {
      return false;
    }
  };

  const respond = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' }).end(JSON.stringify(body));
  };
  const cognitoError = (res: ServerResponse, type: string, message: string) => respond(res, 400, { __type: type, message });

  const handle = async (operation: string, input: Record<string, any>, body: Buffer, req: IncomingMessage, res: ServerResponse) => {
    const flow = String(input.AuthFlow ?? '');
    const refreshToken = input.AuthParameters?.REFRESH_TOKEN ?? input.RefreshToken;
    if (operation === 'GetTokensFromRefreshToken') {
      operation = 'InitiateAuth';
      input = { AuthFlow: 'REFRESH_TOKEN_AUTH', ClientId: input.ClientId, AuthParameters: { REFRESH_TOKEN: refreshToken } };
    }
    const isRefresh = (operation === 'InitiateAuth' || operation === 'AdminInitiateAuth') && /^REFRESH_TOKEN(_AUTH)?$/.test(String(input.AuthFlow));
    if (isRefresh) {
      const known = ledger.refresh[String(input.AuthParameters?.REFRESH_TOKEN)];
      if (known && ledger.revokedOrigins.includes(known.originJti)) return cognitoError(res, 'NotAuthorizedException', 'Refresh Token has been revoked');
    }
    if (operation === 'InitiateAuth' || operation === 'AdminInitiateAuth') {
      // Cognito refuses every flow, a refresh included, of a disabled user (AdminDisableUser: "a deactivated user
      // can't sign in") or a deleted one; cognito-local issues tokens to both.
      const username = isRefresh ? ledger.refresh[String(input.AuthParameters?.REFRESH_TOKEN)]?.username : input.AuthParameters?.USERNAME;
      if (username !== undefined) {
        const user = await call('AdminGetUser', { UserPoolId: userPoolId, Username: username });
        if (user.status === 200 && user.body.Enabled === false) return cognitoError(res, 'NotAuthorizedException', 'User is disabled.');
        if (user.status !== 200 && isRefresh) return cognitoError(res, 'NotAuthorizedException', 'Refresh Token has been revoked');
      }
    }
    if (['GetUser', 'ChangePassword', 'UpdateUserAttributes', 'DeleteUser'].includes(operation) && revokedAccessToken(input.AccessToken)) {
      return cognitoError(res, 'NotAuthorizedException', 'Access Token has been revoked');
    }
    switch (operation) {
      case 'GlobalSignOut':
      case 'AdminUserGlobalSignOut': {
        let username: string | undefined = input.Username;
        if (operation === 'GlobalSignOut') {
          if (revokedAccessToken(input.AccessToken)) return cognitoError(res, 'NotAuthorizedException', 'Access Token has been revoked');
          try {
            username = String(decodePart(String(input.AccessToken).split('.')[1]).username);
          } catch {
            return cognitoError(res, 'NotAuthorizedException', 'Invalid Access Token');
          }
        }
        const user = await call('AdminGetUser', { UserPoolId: userPoolId, Username: username });
        if (user.status !== 200) return respond(res, user.status, user.body);
        const names = new Set([username, user.body.Username]);
        for (const entry of Object.values(ledger.refresh)) {
          if (names.has(entry.username) && !ledger.revokedOrigins.includes(entry.originJti)) ledger.revokedOrigins.push(entry.originJti);
        }
        save();
        return respond(res, 200, {});
      }
      case 'RevokeToken': {
        const answer = await backend(TARGET + operation, body, req.headers);
        const known = ledger.refresh[String(input.Token)];
        if (answer.status === 200 && known && !ledger.revokedOrigins.includes(known.originJti)) {
          ledger.revokedOrigins.push(known.originJti);
          save();
        }
        return res.writeHead(answer.status, { 'content-type': 'application/x-amz-json-1.1' }).end(answer.body);
      }
    }
    const answer = await backend(TARGET + operation, Buffer.from(JSON.stringify(input)), req.headers);
    const parsed = JSON.parse(answer.body.toString('utf8') || '{}') as Record<string, any>;
    // A wrong password is NotAuthorizedException at Cognito (cognito-local says InvalidPasswordException, which
    // Cognito keeps for passwords that break the policy).
    if (/InitiateAuth$/.test(operation) && String(parsed.__type ?? parsed.code).includes('InvalidPasswordException')) {
      return cognitoError(res, 'NotAuthorizedException', 'Incorrect username or password.');
    }
    // A refresh token the pool does not know (another pool's, or one from before a fresh start) is "Invalid Refresh
    // Token" at Cognito; cognito-local says "User not authorized".
    if (isRefresh && String(parsed.__type ?? parsed.code).includes('NotAuthorized')) return cognitoError(res, 'NotAuthorizedException', 'Invalid Refresh Token');
    if (answer.status !== 200 || !parsed.AuthenticationResult) return res.writeHead(answer.status, { 'content-type': 'application/x-amz-json-1.1' }).end(answer.body);

    if (operation === 'AdminInitiateAuth' && !isRefresh && /PASSWORD/.test(flow)) {
      // Cognito asks an administrator-created user for a new password before it issues tokens.
      const user = await call('AdminGetUser', { UserPoolId: userPoolId, Username: input.AuthParameters?.USERNAME });
      if (user.body.UserStatus === 'FORCE_CHANGE_PASSWORD') {
        return respond(res, 200, {
          ChallengeName: 'NEW_PASSWORD_REQUIRED',
          Session: randomUUID(),
          ChallengeParameters: { USER_ID_FOR_SRP: user.body.Username, requiredAttributes: '[]', userAttributes: '{}' },
        });
      }
    }
    const result = parsed.AuthenticationResult as AuthenticationResultType;
    const known = isRefresh ? ledger.refresh[String(input.AuthParameters?.REFRESH_TOKEN)] : undefined;
    const originJti = known?.originJti ?? randomUUID();
    const stamped = stamp(result, originJti);
    if (result.RefreshToken) {
      const claims = decodePart(result.AccessToken!.split('.')[1]);
      ledger.refresh[result.RefreshToken] = { originJti, username: String(claims.username) };
      save();
    }
    respond(res, 200, { ...parsed, AuthenticationResult: stamped });
  };

  const front = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const target = String(req.headers['x-amz-target'] ?? '');
      if (req.method !== 'POST' || !target.startsWith(TARGET)) {
        // The JWKS and anything else cognito-local serves over GET.
        const upstream = httpRequest({ host: '127.0.0.1', port: backendPort, method: req.method, path: req.url, headers: { ...req.headers, host: `127.0.0.1:${backendPort}` } }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        });
        upstream.on('error', () => !res.headersSent && res.writeHead(502).end());
        upstream.end(body);
        return;
      }
      let input: Record<string, any>;
      try {
        input = JSON.parse(body.toString('utf8') || '{}') as Record<string, any>;
      } catch {
        return cognitoError(res, 'SerializationException', 'Malformed request body');
      }
      const operation = target.slice(TARGET.length);
      const iam = options.iam?.();
      if (iam && !UNAUTHENTICATED_OPERATIONS.has(operation)) {
        const verified = verifySignature({ method: 'POST', url: req.url ?? '/', rawHeaders: req.rawHeaders, body }, { service: 'cognito-idp', region, secretOf: iam.secretOf });
        if (!verified.ok) {
          const type = { missing_authentication: 'MissingAuthenticationTokenException', unknown_access_key: 'UnrecognizedClientException', incomplete_signature: 'IncompleteSignatureException' }[verified.reason as string] ?? 'InvalidSignatureException';
          return cognitoError(res, type, verified.message);
        }
        const action = `cognito-idp:${operation}`;
        const resource = typeof input.UserPoolId === 'string' ? `arn:aws:cognito-idp:${region}:${accountId}:userpool/${input.UserPoolId}` : '*';
        const decision = iam.authorize(verified.accessKeyId, action, resource);
        if (!decision.allowed) return cognitoError(res, 'AccessDeniedException', iam.denialMessage(decision.principal, action, resource, decision.explicit));
      }
      handle(operation, input, body, req, res).catch((err: Error) => {
        if (!res.headersSent) respond(res, 500, { __type: 'InternalErrorException', message: err.message });
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    front.once('error', reject);
    front.listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  const endpoint = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
  const stop = async () => {
    front.closeAllConnections();
    await new Promise((resolve) => front.close(resolve));
    await stopBackend();
    if (!options.stateDir) rmSync(dir, { recursive: true, force: true });
  };

  const clientFor = (credentials: Credentials) => new CognitoIdentityProviderClient({ endpoint, region, credentials });
  const client = clientFor(OPERATOR_CREDENTIALS);
  try {
    let clients = seed?.clients;
    if (!clients) {
      await seedPool(client, userPoolId, options);
      // cognito-local holds its clients in memory: stopped, its file re-keyed, started again.
      await stopChild();
      clients = stableClients(dbDir);
      await launch();
      writeFileSync(seedPath, JSON.stringify({ userPoolId, clients }));
      if (cached) keepSeed(dir, cached);
    }
    const [publicLogicalId] = resourcesOfType(options.template, 'AWS::Cognito::UserPoolClient').find(([, c]) => !c.Properties?.GenerateSecret) ?? [''];
    const clientId = clients[publicLogicalId];
    const tokens = (result: AuthenticationResultType | undefined, refreshToken?: string): Tokens => {
      if (!result?.AccessToken || !result.IdToken) throw new Error('Cognito returned no tokens (is a challenge such as a new password pending?)');
      return { accessToken: result.AccessToken, idToken: result.IdToken, refreshToken: result.RefreshToken ?? refreshToken ?? '', expiresAt: Date.now() + (result.ExpiresIn ?? 0) * 1000 };
    };
    return {
      endpoint,
      userPoolId,
      clientId,
      clients,
      jwksUri: `${endpoint}/${userPoolId}/.well-known/jwks.json`,
      client,
      clientFor,
      async signIn(username, password) {
        const { AuthenticationResult } = await client.send(new InitiateAuthCommand({ ClientId: clientId, AuthFlow: 'USER_PASSWORD_AUTH', AuthParameters: { USERNAME: username, PASSWORD: password } }));
        return tokens(AuthenticationResult);
      },
      async refresh(refreshToken) {
        const { AuthenticationResult } = await client.send(new InitiateAuthCommand({ ClientId: clientId, AuthFlow: 'REFRESH_TOKEN_AUTH', AuthParameters: { REFRESH_TOKEN: refreshToken } }));
        return tokens(AuthenticationResult, refreshToken);
      },
      async stop() {
        client.destroy();
        await stop();
      },
    };
  } catch (err) {
    client.destroy();
    await stop();
    throw err;
  }
}

/** A stable value in [0, 2^256) for `parts`: ids derived from names, the same on every start and every machine. */
const digest = (...parts: string[]) => createHash('sha256').update(JSON.stringify(parts)).digest();

/** An app client id in Cognito's form (26 lowercase letters and digits), derived from the pool and the client's name. */
export const stableClientId = (userPoolId: string, clientName: string): string =>
  BigInt(`0x${digest('client', userPoolId, clientName).toString('hex')}`).toString(36).padStart(26, '0').slice(-26);

/** A user's `sub` in Cognito's form (a version 4 UUID), derived from the pool and the username. */
export function stableSub(userPoolId: string, username: string): string {
  const b = digest('sub', userPoolId, username);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/**
 * Gives the app clients cognito-local created (random ids) the ids stableClientId derives, in its clients file
 * (`{Clients: {<id>: {ClientId, ClientName, UserPoolId, ...}}}`), while it is stopped. Secrets stay as generated: one
 * derived from public names would be no secret. Returns the new ids by client name (the template's logical id).
 */
function stableClients(dbDir: string): Record<string, string> {
  const file = path.join(dbDir, 'clients.json');
  const db = JSON.parse(readFileSync(file, 'utf8')) as { Clients?: Record<string, { ClientId?: unknown; ClientName?: unknown; UserPoolId?: unknown }> };
  const byName: Record<string, string> = {};
  const rekeyed: Record<string, unknown> = {};
  for (const record of Object.values(db.Clients ?? {})) {
    if (typeof record.ClientName !== 'string' || typeof record.UserPoolId !== 'string') throw new Error(`${file} is not as cognito-local ${COGNITO_LOCAL_VERSION} writes it: a client without ClientName or UserPoolId`);
    const id = stableClientId(record.UserPoolId, record.ClientName);
    rekeyed[id] = { ...record, ClientId: id };
    byName[record.ClientName] = id;
  }
  writeFileSync(file, JSON.stringify({ ...db, Clients: rekeyed }, null, 2));
  return byName;
}

/** What a seeded pool depends on: the template's Cognito resources, the users and groups, token lifetimes, region. */
function seedKey(options: CognitoOptions): string {
  const cognitoResources = Object.entries(options.template.Resources ?? {}).filter(([, r]) => String(r.Type).startsWith('AWS::Cognito::'));
  const inputs = [SEED_FORMAT, COGNITO_LOCAL_VERSION, options.region, options.accountId, cognitoResources, options.users, options.groups, options.accessTokenSeconds];
  return createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 32);
}

/** Copies a just-seeded pool (nothing signed in yet) to the cache, whole or not at all: starts may run side by side. */
function keepSeed(dir: string, cached: string): void {
  const staging = `${cached}.${process.pid}.${randomUUID()}`;
  try {
    mkdirSync(path.join(staging, '.cognito'), { recursive: true });
    cpSync(path.join(dir, '.cognito', 'db'), path.join(staging, '.cognito', 'db'), { recursive: true });
    cpSync(path.join(dir, SEED_FILE), path.join(staging, SEED_FILE));
    renameSync(staging, cached);
  } catch {
    // Another start cached the same seed first (the rename found it there), or the cache is not writable: either
    // way this start's pool is complete, only its ids are not the ones kept.
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Configures the pool and its clients as the template does (clients named by logical id), creates the groups and the users. */
async function seedPool(client: CognitoIdentityProviderClient, userPoolId: string, options: CognitoOptions): Promise<void> {
  const { template } = options;
  const [, pool] = onlyResource(template, 'AWS::Cognito::UserPool');
  const p = pool.Properties ?? {};
  await client.send(
    new UpdateUserPoolCommand({
      UserPoolId: userPoolId,
      Policies: p.Policies,
      MfaConfiguration: p.MfaConfiguration,
      AdminCreateUserConfig: p.AdminCreateUserConfig,
      AutoVerifiedAttributes: p.AutoVerifiedAttributes,
    }),
  );
  for (const [logicalId, appClient] of resourcesOfType(template, 'AWS::Cognito::UserPoolClient')) {
    const c = appClient.Properties ?? {};
    const seconds = options.accessTokenSeconds;
    await client.send(
      new CreateUserPoolClientCommand({
        UserPoolId: userPoolId,
        ClientName: logicalId,
        ExplicitAuthFlows: c.ExplicitAuthFlows,
        AccessTokenValidity: seconds ?? c.AccessTokenValidity,
        IdTokenValidity: seconds ?? c.IdTokenValidity,
        RefreshTokenValidity: c.RefreshTokenValidity,
        TokenValidityUnits: { ...c.TokenValidityUnits, ...(seconds ? { AccessToken: 'seconds', IdToken: 'seconds' } : {}) },
        EnableTokenRevocation: c.EnableTokenRevocation,
        PreventUserExistenceErrors: c.PreventUserExistenceErrors,
        GenerateSecret: c.GenerateSecret === true,
      }),
    );
  }
  const groups = new Set([
    ...resourcesOfType(template, 'AWS::Cognito::UserPoolGroup').map(([, g]) => g.Properties?.GroupName as string),
    ...(options.groups ?? []),
    ...options.users.flatMap((u) => u.groups ?? []),
  ]);
  for (const GroupName of groups) await client.send(new CreateGroupCommand({ UserPoolId: userPoolId, GroupName }));
  for (const user of options.users) {
    await client.send(
      new AdminCreateUserCommand({
        UserPoolId: userPoolId,
        Username: user.username,
        MessageAction: 'SUPPRESS',
        ...(user.mustChangePassword ? { TemporaryPassword: user.password } : {}),
        // A sub of its own would make the user someone else (another userId) whenever the pool is seeded afresh.
        UserAttributes: Object.entries({ sub: stableSub(userPoolId, user.username), ...user.attributes }).map(([Name, Value]) => ({ Name, Value })),
      }),
    );
    if (!user.mustChangePassword) {
      await client.send(new AdminSetUserPasswordCommand({ UserPoolId: userPoolId, Username: user.username, Password: user.password, Permanent: true }));
    }
    for (const GroupName of user.groups ?? []) {
      await client.send(new AdminAddUserToGroupCommand({ UserPoolId: userPoolId, Username: user.username, GroupName }));
    }
  }
}
