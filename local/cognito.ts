/**
 * Cognito on loopback: cognito-local in a child process, with a user pool, app client and groups configured from
 * the synthesized template, and demo users in two tenants.
 *
 * Its tokens carry the real Cognito issuer form (`https://cognito-idp.<region>.amazonaws.com/<region>_<id>`), so the
 * production verifier accepts them unchanged; only the JWKS location differs (cognito-local serves it over http).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  AdminAddUserToGroupCommand,
  AdminCreateUserCommand,
  AdminSetUserPasswordCommand,
  CognitoIdentityProviderClient,
  CreateGroupCommand,
  CreateUserPoolClientCommand,
  UpdateUserPoolCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { refreshTokens, signInWithPassword, type Tokens } from '../client/auth';
import { ROOT, onlyResource, resourcesOfType, type Template } from './template';

export interface DemoUser {
  email: string;
  password: string;
  tenants: string[];
  admin?: boolean;
}

const DEMO_PASSWORD = 'Demo-Passw0rd!';
/** Two tenants: acme (three users, one of them an admin) and globex (one user), plus a member of both. */
export const DEMO_USERS: DemoUser[] = [
  { email: 'alice@acme.test', password: DEMO_PASSWORD, tenants: ['acme'] },
  { email: 'bob@acme.test', password: DEMO_PASSWORD, tenants: ['acme'] },
  { email: 'dana@acme.test', password: DEMO_PASSWORD, tenants: ['acme'], admin: true },
  { email: 'carol@globex.test', password: DEMO_PASSWORD, tenants: ['globex'] },
  { email: 'erin@both.test', password: DEMO_PASSWORD, tenants: ['acme', 'globex'] },
];

export type { Tokens };

export interface LocalCognito {
  endpoint: string;
  userPoolId: string;
  /** The web app's (public) client. */
  clientId: string;
  /** Local client id of every app client in the template, by logical id. */
  clients: Record<string, string>;
  jwksUri: string;
  client: CognitoIdentityProviderClient;
  signIn(email: string, password: string): Promise<Tokens>;
  refresh(refreshToken: string): Promise<Tokens>;
  stop(): Promise<void>;
}

export interface CognitoOptions {
  template: Template;
  port: number;
  region: string;
  users: DemoUser[];
  /** Keep the pool here between runs; a temporary folder (deleted on stop) when absent. */
  stateDir?: string;
  adminGroup: string;
  tenantGroupPrefix: string;
  /** Shorter access tokens than the template's (to watch sockets expire). */
  accessTokenSeconds?: number;
  log: (line: string) => void;
}

const SEED_FILE = 'gatehouse-seed.json';

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

/**
 * Forwards a browser's Cognito API call (POST / with X-Amz-Target) to cognito-local, translating the one call it
 * lacks: Amplify refreshes tokens with GetTokensFromRefreshToken, which cognito-local knows only as InitiateAuth
 * with REFRESH_TOKEN_AUTH (same answer shape).
 */
export function forwardToCognito(req: IncomingMessage, res: ServerResponse, endpoint: string): void {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    let body = Buffer.concat(chunks);
    const headers: Record<string, string | string[] | undefined> = { ...req.headers, host: new URL(endpoint).host };
    if (String(req.headers['x-amz-target']).endsWith('.GetTokensFromRefreshToken')) {
      const { ClientId, RefreshToken } = JSON.parse(body.toString('utf8') || '{}') as { ClientId?: string; RefreshToken?: string };
      body = Buffer.from(JSON.stringify({ AuthFlow: 'REFRESH_TOKEN_AUTH', ClientId, AuthParameters: { REFRESH_TOKEN: RefreshToken } }));
      headers['x-amz-target'] = 'AWSCognitoIdentityProviderService.InitiateAuth';
    }
    headers['content-length'] = String(body.length);
    const upstream = httpRequest(new URL('/', endpoint), { method: req.method, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' }).end('{"message":"cognito-local is unreachable"}');
    });
    upstream.end(body);
  });
}

export async function startCognito(options: CognitoOptions): Promise<LocalCognito> {
  const { region, port } = options;
  const dir = options.stateDir ?? mkdtempSync(path.join(tmpdir(), 'gatehouse-cognito-'));
  const dbDir = path.join(dir, '.cognito', 'db');
  mkdirSync(dbDir, { recursive: true });
  writeFileSync(
    path.join(dir, '.cognito', 'config.json'),
    JSON.stringify({ TokenConfig: { IssuerDomain: `https://cognito-idp.${region}.amazonaws.com` } }),
  );
  const seedPath = path.join(dir, SEED_FILE);
  const seed = existsSync(seedPath) ? (JSON.parse(readFileSync(seedPath, 'utf8')) as { userPoolId: string; clients: Record<string, string> }) : undefined;
  // cognito-local names pools local_<id>; a pool file named in Cognito's own form gives tokens the real issuer.
  const userPoolId = seed?.userPoolId ?? `${region}_Gatehouse`;
  if (!seed) writeFileSync(path.join(dbDir, `${userPoolId}.json`), '{}');

  const child = spawn(process.execPath, [path.join(ROOT, 'node_modules', 'cognito-local', 'lib', 'bin', 'start.js')], {
    cwd: dir,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', NODE_NO_WARNINGS: '1', DEBUG: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const stop = async () => {
    process.removeListener('exit', killOnExit);
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    if (!options.stateDir) rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForListening(child, options.log);
  } catch (err) {
    await stop();
    throw err;
  }

  const endpoint = `http://127.0.0.1:${port}`;
  const client = new CognitoIdentityProviderClient({
    endpoint,
    region,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  const clients = seed?.clients ?? (await seedPool(client, userPoolId, options));
  if (!seed) writeFileSync(seedPath, JSON.stringify({ userPoolId, clients }));
  // The web client is the one offering the password/SRP flows a browser uses (the other is the server-side one).
  const [webLogicalId] = resourcesOfType(options.template, 'AWS::Cognito::UserPoolClient').find(
    ([, c]) => !c.Properties?.GenerateSecret,
  ) ?? [''];
  const clientId = clients[webLogicalId];

  return {
    endpoint,
    userPoolId,
    clientId,
    clients,
    jwksUri: `${endpoint}/${userPoolId}/.well-known/jwks.json`,
    client,
    signIn: (email, password) => signInWithPassword(client, clientId, email, password),
    refresh: (refreshToken) => refreshTokens(client, clientId, refreshToken),
    async stop() {
      client.destroy();
      await stop();
    },
  };
}

/** Configures the pool and its clients as the template does, creates the groups and the demo users. */
async function seedPool(client: CognitoIdentityProviderClient, userPoolId: string, options: CognitoOptions): Promise<Record<string, string>> {
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
  const clients: Record<string, string> = {};
  for (const [logicalId, appClient] of resourcesOfType(template, 'AWS::Cognito::UserPoolClient')) {
    const c = appClient.Properties ?? {};
    const seconds = options.accessTokenSeconds;
    const { UserPoolClient } = await client.send(
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
    clients[logicalId] = UserPoolClient!.ClientId!;
  }
  const groups = new Set(resourcesOfType(template, 'AWS::Cognito::UserPoolGroup').map(([, g]) => g.Properties?.GroupName as string));
  for (const user of options.users) {
    for (const tenant of user.tenants) groups.add(`${options.tenantGroupPrefix}${tenant}`);
  }
  for (const GroupName of groups) await client.send(new CreateGroupCommand({ UserPoolId: userPoolId, GroupName }));
  for (const user of options.users) {
    await client.send(
      new AdminCreateUserCommand({
        UserPoolId: userPoolId,
        Username: user.email,
        MessageAction: 'SUPPRESS',
        UserAttributes: [
          { Name: 'email', Value: user.email },
          { Name: 'email_verified', Value: 'true' },
        ],
      }),
    );
    await client.send(
      new AdminSetUserPasswordCommand({ UserPoolId: userPoolId, Username: user.email, Password: user.password, Permanent: true }),
    );
    const memberOf = [...user.tenants.map((t) => `${options.tenantGroupPrefix}${t}`), ...(user.admin ? [options.adminGroup] : [])];
    for (const GroupName of memberOf) {
      await client.send(new AdminAddUserToGroupCommand({ UserPoolId: userPoolId, Username: user.email, GroupName }));
    }
  }
  return clients;
}
