/**
 * The whole Gatehouse stack on one machine: DynamoDB (dynalite), Cognito (cognito-local), and one HTTP server on
 * loopback that is the API Gateway WebSocket API, its @connections endpoint and the EventBridge endpoint, running
 * the bundled Lambdas from cdk.out with their template environment. `npm start` and the end-to-end tests both use
 * startLocalSystem; nothing here needs an AWS account.
 */
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { forwardToCognito, startCognito, DEMO_USERS, type DemoUser, type LocalCognito, type Tokens } from './cognito';
import { createTables, startDynamo, tableDefinitions, type LocalDynamo } from './dynamo';
import { LocalEdge } from './edge';
import { LocalEventBus } from './event-bus';
import { LocalHttpApi } from './http-api';
import { LocalFunction, type FunctionSpec } from './lambda';
import { assetDir, loadTemplate, resourcesOfType, Resolver, type LocalValue, type Template } from './template';
import { createLogger } from '../common/log';
import { runSpeechService } from '../speech/main';
import type { SpeechServer } from '../speech/server';
import { WebSocketGateway } from './websocket-gateway';
import { ensureWebBuild } from '../web/build';

export interface LocalSystemOptions {
  stackName?: string;
  /** Port of the gateway (WebSocket API, @connections, EventBridge). 0 picks a free one. @default 0 */
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
  users?: DemoUser[];
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
  gateway: WebSocketGateway;
  /** Every Lambda as it runs here: its bundle in cdk.out, handler and resolved environment, by logical id. */
  functions: Map<string, FunctionSpec>;
  speech: SpeechServer;
  dynamo: LocalDynamo;
  cognito: LocalCognito;
  signIn(email: string, password?: string): Promise<Tokens>;
  /** Switches the web app's sign-in mode (served in /config.json) for pages loaded from now on. */
  setWebAuthMode(mode: 'session' | 'token'): void;
  stop(): Promise<void>;
}

const ACCOUNT_ID = '000000000000';
const COGNITO_PATH = '/cognito/';
const API_ID = 'localapi';

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** What each resource resolves to locally. Names and ARNs follow AWS formats so code that parses them still works. */
function localValues(template: Template, region: string, edgeHost: string, known: Record<string, LocalValue>): Record<string, LocalValue> {
  const values: Record<string, LocalValue> = {};
  for (const [id, resource] of Object.entries(template.Resources)) {
    const arn = `arn:aws:local:${region}:${ACCOUNT_ID}:${id}`;
    values[id] = known[id] ?? { ref: id, attrs: { Arn: arn } };
    if (resource.Type === 'AWS::DynamoDB::Table') {
      values[id] = { ref: id, attrs: { Arn: `arn:aws:dynamodb:${region}:${ACCOUNT_ID}:table/${id}` } };
    } else if (resource.Type === 'AWS::Lambda::Function') {
      values[id] = { ref: id, attrs: { Arn: `arn:aws:lambda:${region}:${ACCOUNT_ID}:function:${id}` } };
    } else if (resource.Type === 'AWS::Events::EventBus') {
      const name = String(resource.Properties?.Name ?? id);
      values[id] = { ref: name, attrs: { Name: name, Arn: `arn:aws:events:${region}:${ACCOUNT_ID}:event-bus/${name}` } };
    } else if (resource.Type === 'AWS::CloudFront::Distribution') {
      values[id] = { ref: id, attrs: { DomainName: edgeHost } };
    } else if (resource.Type === 'AWS::ApiGatewayV2::Api') {
      values[id] = { ref: API_ID, attrs: { ApiEndpoint: `wss://${API_ID}.execute-api.${region}.amazonaws.com` } };
    }
  }
  return values;
}

export async function startLocalSystem(options: LocalSystemOptions = {}): Promise<LocalSystem> {
  const region = options.region ?? 'eu-west-1';
  const stackName = options.stackName ?? 'Gatehouse';
  const print = options.log ?? ((source, line) => process.stdout.write(`[${source}] ${line}\n`));
  const users = options.users ?? DEMO_USERS;
  const template = loadTemplate(stackName);
  if (options.stateDir) mkdirSync(options.stateDir, { recursive: true });

  // Group names the deployed functions use, read from their own environment in the template.
  const envs = resourcesOfType(template, 'AWS::Lambda::Function').map(([, f]) => (f.Properties?.Environment?.Variables ?? {}) as Record<string, unknown>);
  const fromEnv = (name: string, fallback: string) => String(envs.find((e) => typeof e[name] === 'string')?.[name] ?? fallback);

  const started: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const stop of started.reverse()) await stop().catch(() => undefined);
  };
  try {
    const [dynamoStarted, cognitoStarted] = await Promise.allSettled([
      startDynamo({ port: options.dynamoPort ?? 0, region, ...(options.stateDir ? { path: path.join(options.stateDir, 'dynamodb') } : {}) }),
      (async () =>
        startCognito({
          template,
          port: options.cognitoPort || (await freePort()),
          region,
          users,
          ...(options.stateDir ? { stateDir: path.join(options.stateDir, 'cognito') } : {}),
          adminGroup: fromEnv('ADMIN_GROUP', 'admin'),
          tenantGroupPrefix: fromEnv('TENANT_GROUP_PREFIX', 'tenant:'),
          ...(options.accessTokenSeconds ? { accessTokenSeconds: options.accessTokenSeconds } : {}),
          log: (line) => print('cognito', line),
        }))(),
    ]);
    if (dynamoStarted.status === 'fulfilled') started.push(() => dynamoStarted.value.close());
    if (cognitoStarted.status === 'fulfilled') started.push(() => cognitoStarted.value.stop());
    if (dynamoStarted.status === 'rejected') throw dynamoStarted.reason;
    if (cognitoStarted.status === 'rejected') throw cognitoStarted.reason;
    const [dynamo, cognito] = [dynamoStarted.value, cognitoStarted.value];
    await createTables(dynamo.client, tableDefinitions(template, (logicalId) => logicalId));

    const server: Server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', resolve);
    });
    started.push(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const [poolId] = resourcesOfType(template, 'AWS::Cognito::UserPool')[0] ?? [];
    const resolver = new Resolver(
      localValues(template, region, new URL(origin).host, {
        ...(poolId ? { [poolId]: { ref: cognito.userPoolId, attrs: { Arn: `arn:aws:cognito-idp:${region}:${ACCOUNT_ID}:userpool/${cognito.userPoolId}` } } } : {}),
        ...Object.fromEntries(Object.entries(cognito.clients).map(([logicalId, id]) => [logicalId, { ref: id }])),
      }),
      { 'AWS::Region': region, 'AWS::AccountId': ACCOUNT_ID, 'AWS::Partition': 'aws', 'AWS::URLSuffix': 'amazonaws.com', 'AWS::StackName': stackName },
    );
    const executeApi = `https://${API_ID}.execute-api.${region}.amazonaws.com`;
    // Local counterparts of what a deployment gets from its own resources: the endpoints of the stand-ins, and the
    // local edge's origins as the pages allowed to open sockets.
    const allowedOrigins = [origin, origin.replace('127.0.0.1', 'localhost')].join(',');
    const localAws = {
      AWS_REGION: region,
      AWS_DEFAULT_REGION: region,
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
      AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER: cognito.endpoint,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    };

    const functions = new Map<string, LocalFunction>();
    for (const [name, fn] of resourcesOfType(template, 'AWS::Lambda::Function')) {
      const variables = resolver.resolve(fn.Properties?.Environment?.Variables ?? {}) as Record<string, string>;
      const env: Record<string, string> = {
        // The template's environment, with the API's execute-api URL pointing at the local gateway...
        ...Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, String(v).replace(executeApi, origin)])),
        // ...what the Lambda runtime provides, and the local endpoints: the code is the deployed bundle, only
        // configuration differs.
        ...localAws,
        AWS_LAMBDA_FUNCTION_NAME: name,
        ...('USER_POOL_ID' in variables ? { JWKS_URI: cognito.jwksUri } : {}),
        ...('ALLOWED_ORIGINS' in variables ? { ALLOWED_ORIGINS: allowedOrigins } : {}),
        ...options.functionEnv,
      };
      functions.set(
        name,
        new LocalFunction(
          { name, dir: assetDir(fn), handler: String(fn.Properties?.Handler ?? 'index.handler'), env, timeoutMs: Number(fn.Properties?.Timeout ?? 3) * 1000 },
          print,
        ),
      );
    }
    started.push(async () => {
      await Promise.all([...functions.values()].map((f) => f.stop()));
    });

    const logEvent = (source: string) => (event: string, fields: Record<string, unknown>) =>
      print(source, JSON.stringify({ time: new Date().toISOString(), level: 'warn', event, ...fields }));
    const gateway = new WebSocketGateway({
      template,
      functions,
      region,
      apiId: API_ID,
      accountId: ACCOUNT_ID,
      idleTimeoutMs: options.idleTimeoutMs ?? 10 * 60 * 1000,
      maxConnectionMs: options.maxConnectionMs ?? 2 * 60 * 60 * 1000,
      deliverDisconnect: options.deliverDisconnect ?? true,
      log: logEvent('apigateway'),
    });
    const events = new LocalEventBus({
      template,
      resolver,
      functions,
      region,
      accountId: ACCOUNT_ID,
      log: logEvent('eventbridge'),
      ...(options.scheduleIntervalMs ? { scheduleIntervalMs: options.scheduleIntervalMs } : {}),
    });
    const httpApi = new LocalHttpApi(template, functions, logEvent('apigateway-http'));
    // Sockets close (delivering $disconnect) and events drain before the functions and the store go away.
    started.push(async () => {
      events.stop();
      await gateway.close();
      await events.drain();
    });

    // The speech service, configured like its ECS task (the template's container environment) but with the
    // local provider and the local JWKS.
    const [, taskDefinition] = resourcesOfType(template, 'AWS::ECS::TaskDefinition')[0] ?? [];
    const containerEnv = ((taskDefinition?.Properties?.ContainerDefinitions?.[0]?.Environment ?? []) as Array<{ Name: string; Value: unknown }>).map(
      ({ Name, Value }) => [Name, String(resolver.resolve(Value))],
    );
    const speech = await runSpeechService(
      {
        ...Object.fromEntries(containerEnv),
        SPEECH_PROVIDER: 'local',
        JWKS_URI: cognito.jwksUri,
        ALLOWED_ORIGINS: allowedOrigins,
        PORT: String(options.speechPort ?? 0),
        ...options.speechEnv,
      },
      createLogger({ component: 'speech' }, { write: (line) => print('speech', line) }),
      // In this process: its AWS clients point at the local stand-ins explicitly.
      { host: '127.0.0.1', metrics: false, clients: { db: dynamo.doc, cognito: cognito.client } },
    );
    started.push(() => speech.shutdown());

    const wsOrigin = origin.replace('http', 'ws');
    let webAuthMode = options.webAuthMode ?? 'session';
    const edge = new LocalEdge({
      template,
      api: (req, socket, head) => gateway.handleUpgrade(req, socket, head),
      vpc: (req, socket, head) => speech.handleUpgrade(req, socket, head),
      http: (req, res) => httpApi.handleRequest(req, res),
      staticDir: options.webDir ?? ensureWebBuild(),
      resolve: (value) => resolver.resolve(value),
      config: () => ({
        region,
        userPoolId: cognito.userPoolId,
        userPoolClientId: cognito.clientId,
        authMode: webAuthMode,
        // Local only: where token mode's Amplify signs in, cognito-local proxied on this origin (so the app runs
        // under the deployed CSP, which allows only its own origin and Cognito).
        cognitoEndpoint: COGNITO_PATH,
      }),
    });

    server.on('upgrade', (req, socket, head) => {
      const fail = (err: Error) => {
        logEvent('edge')('upgrade_failed', { error: err.message });
        socket.destroy();
      };
      edge
        .handleUpgrade(req, socket, head)
        .then((handled) => (handled ? undefined : gateway.handleUpgrade(req, socket, head)))
        .catch(fail);
    });
    server.on('request', (req, res) => {
      if (req.url === COGNITO_PATH) return forwardToCognito(req, res, cognito.endpoint);
      if (gateway.handleRequest(req, res) || events.handleRequest(req, res) || edge.handleRequest(req, res)) return;
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'Not Found' }));
    });

    const [busId] = resourcesOfType(template, 'AWS::Events::EventBus')[0] ?? [];
    return {
      region,
      stage: gateway.stage,
      userPoolId: cognito.userPoolId,
      clientId: cognito.clientId,
      eventBusName: busId ? resolver.ref(busId) : 'default',
      users,
      urls: {
        edge: origin,
        realtime: `${wsOrigin}/ws/realtime`,
        speech: `${wsOrigin}/ws/speech`,
        websocket: `${wsOrigin}/${gateway.stage}`,
        connections: `${origin}/${gateway.stage}`,
        events: origin,
        cognito: cognito.endpoint,
        dynamodb: dynamo.endpoint,
        jwks: cognito.jwksUri,
      },
      gateway,
      functions: new Map([...functions].map(([name, fn]) => [name, fn.spec])),
      speech,
      dynamo,
      cognito,
      signIn: (email, password) => cognito.signIn(email, password ?? users.find((u) => u.email === email)?.password ?? ''),
      setWebAuthMode: (mode) => (webAuthMode = mode),
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
