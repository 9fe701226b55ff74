/**
 * The whole Gatehouse stack on one machine: the AWS emulator (local/emulator/) running the synthesized template,
 * plus what is Gatehouse's own: the demo users, the speech service (in process, configured like its ECS task), the
 * web app's files and config.json in the distribution's bucket, and the local-only path through which token mode's
 * Amplify reaches Cognito. `npm start` and the end-to-end tests both use startLocalSystem; nothing here needs an AWS
 * account.
 */
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { createLogger } from '../common/log';
import { runSpeechService } from '../speech/main';
import type { SpeechServer } from '../speech/server';
import { ensureWebBuild } from '../web/build';
import { DEMO_USERS, type DemoUser } from './demo-users';
import type { Tokens } from './emulator/cognito';
import { startEmulator, type Emulator } from './emulator/index';
import type { FunctionSpec } from './emulator/lambda';
import { loadTemplate, referencedIds, resourcesOfType } from './emulator/template';
import { CDK_OUT, COGNITO_SEED_CACHE } from './paths';
import { GROUP_DEFAULTS, SOCKET_PATHS, WEB_CONFIG_PATH, type WebConfig } from '../protocol';

export interface LocalSystemOptions {
  stackName?: string;
  /** Port of the gateway (WebSocket API, @connections, EventBridge, the edge). 0 picks a free one. @default 0 */
  port?: number;
  /** @default a free port */
  cognitoPort?: number;
  /** @default 0 (a free port) */
  dynamoPort?: number;
  /** Keep DynamoDB and Cognito state in this folder between runs. @default in memory */
  stateDir?: string;
  /** @default 'eu-west-1' */
  region?: string;
  /** API Gateway's idle timeout. @default 10 minutes */
  idleTimeoutMs?: number;
  /** API Gateway's maximum connection duration. @default 2 hours */
  maxConnectionMs?: number;
  /** false: closed sockets never reach $disconnect (stale-connection mode). @default true */
  deliverDisconnect?: boolean;
  /** @default the demo users */
  users?: DemoUser[];
  /**
   * Page origins allowed to open sockets besides the local edge's (what the stack's `allowedOrigins` prop does), e.g.
   * a development server: exact `scheme://host[:port]`. @default none
   */
  allowedOrigins?: string[];
  /** Users who must set a new password at their first sign-in (to exercise that challenge). @default none */
  newPasswordUsers?: DemoUser[];
  /** Extra environment for every function (e.g. a shorter history retention in tests). */
  functionEnv?: Record<string, string>;
  /** Extra environment for the speech service (e.g. shorter ping intervals in tests). */
  speechEnv?: Record<string, string>;
  /** Port of the speech service itself (it is also reachable through the edge at /ws/speech). @default 0 */
  speechPort?: number;
  /** The web app's static files. @default the production build, web/dist (built when stale) */
  webDir?: string;
  /** How the web app signs in (the deployed stack's `webAuthMode`). @default 'session' */
  webAuthMode?: 'session' | 'token';
  /** Access tokens shorter than the template's, to watch sockets expire. */
  accessTokenSeconds?: number;
  /** Run scheduled rules (the expiry sweeper) this often instead of every minute. */
  scheduleIntervalMs?: number;
  /** How late DynamoDB's indexes see a write. @default 200 ms ("a fraction of a second", as DynamoDB documents) */
  indexLagMs?: number;
  /** Lambda's waits before its async retries. @default one and two minutes */
  asyncRetryDelaysMs?: [number, number];
  /** EventBridge delivers every event twice (its at-least-once delivery, on purpose). @default false */
  duplicateEvents?: boolean;
  /** How long each @connections request takes (a round trip in AWS; benchmarks model it). @default 0 */
  connectionsLatencyMs?: number;
  /** API Gateway's throttle quota for @connections. @default 10,000 a second, a bucket of 5,000 */
  accountRate?: { perSecond: number; burst: number };
  /** Lambda's concurrency across all functions. @default 1,000 (the account quota) */
  accountConcurrency?: number;
  /** Every log line: functions' output and the emulators' own events. @default stdout */
  log?: (source: string, line: string) => void;
}

export interface LocalSystem {
  region: string;
  stage: string;
  userPoolId: string;
  clientId: string;
  eventBusName: string;
  users: DemoUser[];
  urls: {
    /** The local edge: the web app, /ws/realtime and /ws/speech, as behind CloudFront. */
    edge: string;
    realtime: string;
    speech: string;
    /** API Gateway's own stage URL. */
    websocket: string;
    connections: string;
    events: string;
    cognito: string;
    dynamodb: string;
    jwks: string;
  };
  /** The AWS emulator underneath: its services, clock, queues and IAM. */
  aws: Emulator;
  /** Every Lambda as it runs here: its bundle in cdk.out, handler and resolved environment, by logical id. */
  functions: Map<string, FunctionSpec>;
  gateway: Emulator['gateway'];
  dynamo: Emulator['dynamo'];
  cognito: Emulator['cognito'];
  speech: SpeechServer;
  signIn(email: string, password?: string): Promise<Tokens>;
  /** Switches the web app's sign-in mode (served in /config.json) for pages loaded from now on. */
  setWebAuthMode(mode: 'session' | 'token'): void;
  stop(): Promise<void>;
}

/** Where token mode's Amplify signs in: cognito-local, on the page's own origin (the CSP allows only that). */
const COGNITO_PATH = '/cognito/';

function forward(req: IncomingMessage, res: ServerResponse, endpoint: string): void {
  const upstream = httpRequest(new URL('/', endpoint), { method: req.method, headers: { ...req.headers, host: new URL(endpoint).host } }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  upstream.on('error', () => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' }).end('{"message":"Cognito is unreachable"}');
  });
  req.pipe(upstream);
}

/** An origin as a browser sends it (`http://localhost:5173`), or a clear error: a path or a typo would match nothing. */
export function exactOrigin(value: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    // reported below
  }
  if (!url || !/^https?:$/.test(url.protocol) || url.origin !== value) throw new Error(`Not an origin: "${value}" (expected scheme://host[:port], as in http://localhost:5173)`);
  return value;
}

export async function startLocalSystem(options: LocalSystemOptions = {}): Promise<LocalSystem> {
  const region = options.region ?? 'eu-west-1';
  const stackName = options.stackName ?? 'Gatehouse';
  const print = options.log ?? ((source, line) => process.stdout.write(`[${source}] ${line}\n`));
  const users = options.users ?? DEMO_USERS;
  const template = loadTemplate(CDK_OUT, stackName);

  // Group names the deployed functions use, read from their own environment in the template.
  const envs = resourcesOfType(template, 'AWS::Lambda::Function').map(([, f]) => (f.Properties?.Environment?.Variables ?? {}) as Record<string, unknown>);
  const fromEnv = (name: string, fallback: string) => String(envs.find((e) => typeof e[name] === 'string')?.[name] ?? fallback);
  const adminGroup = fromEnv('ADMIN_GROUP', GROUP_DEFAULTS.adminGroup);
  const tenantPrefix = fromEnv('TENANT_GROUP_PREFIX', GROUP_DEFAULTS.tenantGroupPrefix);
  const cognitoUser = (u: DemoUser, mustChangePassword = false) => ({
    username: u.email,
    password: u.password,
    attributes: { email: u.email, email_verified: 'true', ...(u.name ? { name: u.name } : {}) },
    groups: [...u.tenants.map((t) => `${tenantPrefix}${t}`), ...(u.admin ? [adminGroup] : [])],
    mustChangePassword,
  });

  let webAuthMode = options.webAuthMode ?? 'session';
  // The pages allowed to open sockets: the local edge's own origins, and any the developer adds.
  const extraOrigins = (options.allowedOrigins ?? []).map(exactOrigin);
  const originsOf = (origin: string) => [origin, origin.replace('127.0.0.1', 'localhost'), ...extraOrigins].join(',');
  const webDir = options.webDir ?? ensureWebBuild();
  let cognitoEndpoint = '';
  const emulator: Emulator = await startEmulator({
    template,
    cdkOut: CDK_OUT,
    region,
    ...(options.port !== undefined ? { port: options.port } : {}),
    ...(options.cognitoPort ? { cognitoPort: options.cognitoPort } : {}),
    ...(options.dynamoPort !== undefined ? { dynamoPort: options.dynamoPort } : {}),
    ...(options.stateDir ? { stateDir: options.stateDir } : { cognitoSeedCacheDir: COGNITO_SEED_CACHE }),
    users: [...users.map((u) => cognitoUser(u)), ...(options.newPasswordUsers ?? []).map((u) => cognitoUser(u, true))],
    ...(options.accessTokenSeconds ? { accessTokenSeconds: options.accessTokenSeconds } : {}),
    ...(options.idleTimeoutMs ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
    ...(options.maxConnectionMs ? { maxConnectionMs: options.maxConnectionMs } : {}),
    deliverDisconnect: options.deliverDisconnect ?? true,
    indexLagMs: options.indexLagMs ?? 200,
    ...(options.asyncRetryDelaysMs ? { asyncRetryDelaysMs: options.asyncRetryDelaysMs } : {}),
    duplicateEvents: options.duplicateEvents ?? false,
    ...(options.connectionsLatencyMs ? { connectionsLatencyMs: options.connectionsLatencyMs } : {}),
    ...(options.accountRate ? { accountRate: options.accountRate } : {}),
    ...(options.accountConcurrency ? { accountConcurrency: options.accountConcurrency } : {}),
    ...(options.scheduleIntervalMs ? { scheduleIntervalMs: options.scheduleIntervalMs } : {}),
    functionEnv: (_name, env, local) => ({
      ...env,
      // Local counterparts of what a deployment gets from its own resources: the JWKS of the local pool, and the
      // local edge's origins as the pages allowed to open sockets.
      ...('USER_POOL_ID' in env ? { JWKS_URI: local.cognito.jwksUri } : {}),
      ...('ALLOWED_ORIGINS' in env ? { ALLOWED_ORIGINS: originsOf(local.origin) } : {}),
      ...options.functionEnv,
    }),
    bucket: {
      dir: webDir,
      objects: {
        [WEB_CONFIG_PATH]: () => ({
          contentType: 'application/json',
          body: JSON.stringify({
            region,
            userPoolId: emulator.cognito.userPoolId,
            userPoolClientId: emulator.cognito.clientId,
            authMode: webAuthMode,
            // Local only: where token mode's Amplify signs in (see COGNITO_PATH).
            cognitoEndpoint: COGNITO_PATH,
          } satisfies WebConfig),
        }),
      },
    },
    intercept: (req, res) => {
      if (req.url !== COGNITO_PATH) return false;
      forward(req, res, cognitoEndpoint);
      return true;
    },
    log: print,
  });
  cognitoEndpoint = emulator.cognito.endpoint;
  const allowedOrigins = originsOf(emulator.origin);
  try {
    // The speech service, configured like its ECS task (the template's container environment) with the local
    // provider and the local JWKS.
    const [, taskDefinition] = resourcesOfType(template, 'AWS::ECS::TaskDefinition')[0] ?? [];
    const containerEnv = ((taskDefinition?.Properties?.ContainerDefinitions?.[0]?.Environment ?? []) as Array<{ Name: string; Value: unknown }>).map(
      ({ Name, Value }) => [Name, String(emulator.resolver.resolve(Value))],
    );
    const taskRole = referencedIds(taskDefinition?.Properties?.TaskRoleArn)[0];
    // The task role's credentials for its table reads and its Cognito calls, so IAM holds it to its own grants.
    const roleCredentials = emulator.iam && taskRole ? emulator.iam.credentialsOf(taskRole) : undefined;
    const db = roleCredentials ? emulator.dynamo.docFor(roleCredentials) : emulator.dynamo.doc;
    const cognito = roleCredentials ? emulator.cognito.clientFor(roleCredentials) : emulator.cognito.client;
    const speech = await runSpeechService(
      {
        ...Object.fromEntries(containerEnv),
        SPEECH_PROVIDER: 'local',
        JWKS_URI: emulator.cognito.jwksUri,
        ALLOWED_ORIGINS: allowedOrigins,
        PORT: String(options.speechPort ?? 0),
        ...options.speechEnv,
      },
      createLogger({ component: 'speech' }, { write: (line) => print('speech', line) }),
      { host: '127.0.0.1', metrics: false, clients: { db, cognito } },
    );
    emulator.setVpcOrigin((req, socket, head) => speech.handleUpgrade(req, socket, head));

    const [busId] = resourcesOfType(template, 'AWS::Events::EventBus')[0] ?? [];
    const wsOrigin = emulator.origin.replace('http', 'ws');
    return {
      region,
      stage: emulator.gateway.stage,
      userPoolId: emulator.cognito.userPoolId,
      clientId: emulator.cognito.clientId,
      eventBusName: busId ? emulator.resolver.ref(busId) : 'default',
      users,
      urls: {
        edge: emulator.origin,
        realtime: `${wsOrigin}${SOCKET_PATHS.realtime}`,
        speech: `${wsOrigin}${SOCKET_PATHS.speech}`,
        websocket: emulator.websocketUrl,
        connections: emulator.connectionsUrl,
        events: emulator.origin,
        cognito: emulator.cognito.endpoint,
        dynamodb: emulator.dynamo.endpoint,
        jwks: emulator.cognito.jwksUri,
      },
      aws: emulator,
      functions: new Map([...emulator.functions].map(([name, fn]) => [name, fn.spec])),
      gateway: emulator.gateway,
      dynamo: emulator.dynamo,
      cognito: emulator.cognito,
      speech,
      signIn: (email, password) => emulator.cognito.signIn(email, password ?? users.find((u) => u.email === email)?.password ?? ''),
      setWebAuthMode: (mode) => (webAuthMode = mode),
      async stop() {
        await speech.shutdown().catch(() => undefined);
        await emulator.stop();
      },
    };
  } catch (err) {
    await emulator.stop();
    throw err;
  }
}
