/**
 * The AWS emulator: everything a synthesized CDK template asks of AWS that can run on one machine, configured from
 * that template alone, and no more forgiving than AWS where code could tell the difference. It imports nothing of
 * the application it runs (a lint rule keeps it so): an app adds its own users, settings and side services.
 *
 * One HTTP server on loopback is the API Gateway WebSocket API (`/<stage>`), its `@connections` endpoint, the
 * EventBridge endpoint, Lambda's Invoke API and the CloudFront distribution; DynamoDB and Cognito have their own ports. Functions run
 * their bundles from the cloud assembly with the template's environment, each with its role's credentials, and
 * every service endpoint checks SigV4 and that role's IAM policies.
 */
import { mkdirSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { LocalHttpApi } from './apigateway-http';
import { createGatewayServer, WebSocketGateway } from './apigateway-websocket';
import { Clock } from './clock';
import { LocalEdge, type BucketContents, type Upgrade } from './cloudfront';
import { startCognito, type CognitoUser, type LocalCognito } from './cognito';
import { createTables, startDynamo, tableDefinitions, type LocalDynamo } from './dynamodb';
import { LocalEventBus } from './eventbridge';
import { Iam, OPERATOR_CREDENTIALS } from './iam';
import { AccountConcurrency, LocalFunction, type FunctionSpec } from './lambda';
import { LambdaApi } from './lambda-api';
import { LocalQueues } from './sqs';
import { assetDir, referencedIds, resourcesOfType, Resolver, type LocalValue, type Template } from './template';

/** What the WebSocket gateway reports to `gateway.observe` (frames in, @connections posts out, opens, closes). */
export type { GatewayEvent } from './apigateway-websocket';

export interface EmulatorOptions {
  template: Template;
  /** The cloud assembly folder holding the functions' bundles. */
  cdkOut: string;
  /** @default 'eu-west-1' */
  region?: string;
  /** @default '000000000000' */
  accountId?: string;
  /** Port of the gateway, EventBridge and CloudFront server. @default 0 (a free port) */
  port?: number;
  /** @default 0 (a free port) */
  cognitoPort?: number;
  /** @default 0 (a free port) */
  dynamoPort?: number;
  /** Keep DynamoDB and Cognito state here between runs. @default in memory */
  stateDir?: string;
  /** Without `stateDir`: where seeded user pools are kept, so later starts copy one instead of seeding. @default none */
  cognitoSeedCacheDir?: string;
  /** Users to create in the user pool. @default none */
  users?: CognitoUser[];
  /** Groups to create besides the template's and the users'. @default none */
  groups?: string[];
  /** Access tokens shorter than the template's. @default the template's validity */
  accessTokenSeconds?: number;
  /** Drop a connection to the server whose request headers are still incomplete after this long. @default 10 seconds */
  headersTimeoutMs?: number;
  /** API Gateway's idle timeout. @default 10 minutes */
  idleTimeoutMs?: number;
  /** API Gateway's maximum connection duration. @default 2 hours */
  maxConnectionMs?: number;
  /** false: closed sockets never reach $disconnect. @default true */
  deliverDisconnect?: boolean;
  /** Delay before a DynamoDB write reaches the global secondary indexes. @default 0 */
  indexLagMs?: number;
  /** Run DynamoDB's TTL reaper this often. @default 60 seconds */
  reapIntervalMs?: number;
  /** Require SigV4 and evaluate the template's IAM policies at every service endpoint. @default true */
  iam?: boolean;
  /** Waits before Lambda's first and second async retry. @default one and two minutes, as Lambda */
  asyncRetryDelaysMs?: [number, number];
  /** EventBridge delivers every event twice. @default false */
  duplicateEvents?: boolean;
  /** Run scheduled rules this often instead of their own rate. @default their rate */
  scheduleIntervalMs?: number;
  /** Concurrent executions across all functions (the account quota). @default 1000 */
  accountConcurrency?: number;
  /** API Gateway's throttle quota for @connections requests. @default 10,000 a second, a bucket of 5,000 (ACCOUNT_RATE) */
  accountRate?: { perSecond: number; burst: number };
  /** How long each @connections request takes to answer (a round trip in AWS, for benchmarks). @default 0 */
  connectionsLatencyMs?: number;
  /** Adjusts a function's environment after the template's is resolved. @default unchanged */
  functionEnv?: (functionId: string, env: Record<string, string>, local: { origin: string; cognito: LocalCognito; dynamo: LocalDynamo }) => Record<string, string>;
  /** The distribution's S3 bucket contents. @default an empty bucket */
  bucket?: BucketContents;
  /** Handshakes for the distribution's VPC origin. @default refused with 502 */
  vpcOrigin?: Upgrade;
  /** Local-only routes on the server, tried first; return true when handled. @default none */
  intercept?: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** Function output and the emulators' own events. */
  log: (source: string, line: string) => void;
}

export interface Emulator {
  region: string;
  accountId: string;
  template: Template;
  resolver: Resolver;
  iam?: Iam;
  clock: Clock;
  /** The server's origin (`http://127.0.0.1:<port>`): gateway, EventBridge, Lambda's Invoke API and distribution. */
  origin: string;
  /** API Gateway's own WebSocket stage URL. */
  websocketUrl: string;
  /** The @connections endpoint (`<origin>/<stage>`). */
  connectionsUrl: string;
  dynamo: LocalDynamo;
  cognito: LocalCognito;
  functions: Map<string, LocalFunction>;
  gateway: WebSocketGateway;
  httpApi: LocalHttpApi;
  events: LocalEventBus;
  /** Lambda's Invoke API, on the server's origin. */
  lambdaApi: LambdaApi;
  queues: LocalQueues;
  edge: LocalEdge;
  /** Sets the VPC origin once the service behind it runs (it may need the emulator's endpoints first). */
  setVpcOrigin(upgrade: Upgrade): void;
  stop(): Promise<void>;
}

const API_ID = 'localapi';

/** What each resource resolves to locally. Names and ARNs follow AWS formats so code that parses them still works. */
function localValues(template: Template, region: string, accountId: string, edgeHost: string, known: Record<string, LocalValue>): Record<string, LocalValue> {
  const values: Record<string, LocalValue> = {};
  const arn = (service: string, resource: string) => `arn:aws:${service}:${region}:${accountId}:${resource}`;
  const busNames = new Map(resourcesOfType(template, 'AWS::Events::EventBus').map(([id, r]) => [id, String(r.Properties?.Name ?? id)]));
  for (const [id, resource] of Object.entries(template.Resources)) {
    values[id] = known[id] ?? { ref: id, attrs: { Arn: arn('local', id) } };
    switch (resource.Type) {
      case 'AWS::DynamoDB::Table':
        values[id] = { ref: id, attrs: { Arn: arn('dynamodb', `table/${id}`) } };
        break;
      case 'AWS::Lambda::Function':
        values[id] = { ref: id, attrs: { Arn: arn('lambda', `function:${id}`) } };
        break;
      case 'AWS::IAM::Role':
        values[id] = { ref: id, attrs: { Arn: `arn:aws:iam::${accountId}:role/${id}`, RoleId: `AROA${id.slice(0, 16).toUpperCase()}` } };
        break;
      case 'AWS::SQS::Queue':
        values[id] = { ref: `https://sqs.${region}.amazonaws.com/${accountId}/${id}`, attrs: { Arn: arn('sqs', id), QueueName: id } };
        break;
      case 'AWS::Events::EventBus': {
        const name = busNames.get(id)!;
        values[id] = { ref: name, attrs: { Name: name, Arn: arn('events', `event-bus/${name}`) } };
        break;
      }
      case 'AWS::Events::Rule': {
        const bus = referencedIds(resource.Properties?.EventBusName)[0];
        values[id] = { ref: id, attrs: { Arn: arn('events', `rule/${bus ? `${busNames.get(bus) ?? bus}/` : ''}${id}`) } };
        break;
      }
      case 'AWS::CloudFront::Distribution':
        values[id] = { ref: id, attrs: { DomainName: edgeHost } };
        break;
      case 'AWS::ApiGatewayV2::Api':
        values[id] = { ref: API_ID, attrs: { ApiEndpoint: `wss://${API_ID}.execute-api.${region}.amazonaws.com` } };
        break;
    }
  }
  return values;
}

export async function startEmulator(options: EmulatorOptions): Promise<Emulator> {
  const { template, log } = options;
  const region = options.region ?? 'eu-west-1';
  const accountId = options.accountId ?? '000000000000';
  const clock = new Clock();
  if (options.stateDir) mkdirSync(options.stateDir, { recursive: true });
  const started: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const stop of started.reverse()) await stop().catch(() => undefined);
  };
  // The emulator's own events, shaped like the functions' log lines (common/log.ts), `component` saying which service.
  const emit = (source: string) => (event: string, fields: Record<string, unknown>) =>
    log(source, JSON.stringify({ time: new Date().toISOString(), level: 'warn', event, component: source, ...fields }));

  try {
    const server: Server = createGatewayServer({ headersTimeoutMs: options.headersTimeoutMs });
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

    // Cognito's IAM-authorized operations are checked with the emulator's Iam, which needs the resolver, which needs
    // the pool Cognito creates: it is read when a request arrives, by then set.
    const cognitoIam: { current?: Iam } = {};
    const cognito = await startCognito({
      template,
      ...(options.cognitoPort ? { port: options.cognitoPort } : {}),
      region,
      accountId,
      iam: () => cognitoIam.current,
      users: options.users ?? [],
      ...(options.groups ? { groups: options.groups } : {}),
      ...(options.stateDir ? { stateDir: path.join(options.stateDir, 'cognito') } : {}),
      ...(options.cognitoSeedCacheDir ? { seedCacheDir: options.cognitoSeedCacheDir } : {}),
      ...(options.accessTokenSeconds ? { accessTokenSeconds: options.accessTokenSeconds } : {}),
      log: (line) => log('cognito', line),
    });
    started.push(() => cognito.stop());

    const [poolId] = resourcesOfType(template, 'AWS::Cognito::UserPool')[0] ?? [];
    const resolver = new Resolver(
      localValues(template, region, accountId, new URL(origin).host, {
        ...(poolId ? { [poolId]: { ref: cognito.userPoolId, attrs: { Arn: `arn:aws:cognito-idp:${region}:${accountId}:userpool/${cognito.userPoolId}` } } } : {}),
        ...Object.fromEntries(Object.entries(cognito.clients).map(([logicalId, id]) => [logicalId, { ref: id }])),
      }),
      { 'AWS::Region': region, 'AWS::AccountId': accountId, 'AWS::Partition': 'aws', 'AWS::URLSuffix': 'amazonaws.com', 'AWS::StackName': 'local', 'AWS::NoValue': '' },
    );
    const iam = options.iam === false ? undefined : new Iam({ template, resolver, accountId });
    cognitoIam.current = iam;

    const dynamo = await startDynamo({
      port: options.dynamoPort ?? 0,
      region,
      accountId,
      clock,
      indexLagMs: options.indexLagMs ?? 0,
      reapIntervalMs: options.reapIntervalMs ?? 60_000,
      ...(iam ? { iam } : {}),
      ...(options.stateDir ? { path: path.join(options.stateDir, 'dynamodb') } : {}),
    });
    started.push(() => dynamo.close());
    await createTables(dynamo.client, tableDefinitions(template, (logicalId) => logicalId));

    const queues = new LocalQueues(template, (id) => resolver.getAtt(id, 'Arn'));
    const executeApi = `https://${API_ID}.execute-api.${region}.amazonaws.com`;
    const account = new AccountConcurrency(options.accountConcurrency);
    const functions = new Map<string, LocalFunction>();
    for (const [name, fn] of resourcesOfType(template, 'AWS::Lambda::Function')) {
      const p = fn.Properties ?? {};
      const variables = resolver.resolve(p.Environment?.Variables ?? {}) as Record<string, string>;
      const roleId = referencedIds(p.Role)[0];
      // Without IAM every caller is the operator; with it, a function signs with its role's key, and one whose role
      // the template does not name signs with a key no one knows (so it is refused, never taken for the operator).
      const credentials = !iam ? OPERATOR_CREDENTIALS : roleId ? iam.credentialsOf(roleId) : { accessKeyId: 'ASIANOROLE', secretAccessKey: 'none' };
      const env: Record<string, string> = {
        // The template's environment, with the API's execute-api URL pointing at the local gateway...
        ...Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, String(v).replace(executeApi, origin)])),
        // ...what the Lambda runtime provides: region, the role's credentials, the function's name and memory...
        AWS_REGION: region,
        AWS_DEFAULT_REGION: region,
        AWS_ACCESS_KEY_ID: credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
        AWS_LAMBDA_FUNCTION_NAME: name,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(p.MemorySize ?? 128),
        // ...and where the stand-ins are: only configuration differs from a deployment, never the code.
        AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
        AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER: cognito.endpoint,
        AWS_ENDPOINT_URL_EVENTBRIDGE: origin,
        AWS_ENDPOINT_URL_LAMBDA: origin,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      };
      const spec: FunctionSpec = {
        name,
        dir: assetDir(fn, options.cdkOut),
        handler: String(p.Handler ?? 'index.handler'),
        env: options.functionEnv ? options.functionEnv(name, env, { origin, cognito, dynamo }) : env,
        timeoutMs: Number(p.Timeout ?? 3) * 1000,
        memoryMb: Number(p.MemorySize ?? 128),
        ...(p.ReservedConcurrentExecutions !== undefined ? { reservedConcurrency: Number(p.ReservedConcurrentExecutions) } : {}),
        arn: resolver.getAtt(name, 'Arn'),
      };
      functions.set(name, new LocalFunction(spec, log, account));
    }
    // Asynchronous invocation settings (AWS::Lambda::EventInvokeConfig) and their on-failure destinations.
    for (const [, config] of resourcesOfType(template, 'AWS::Lambda::EventInvokeConfig')) {
      const p = config.Properties ?? {};
      const fnId = referencedIds(p.FunctionName)[0];
      const fn = fnId ? functions.get(fnId) : undefined;
      if (!fn) continue;
      const destination = p.DestinationConfig?.OnFailure?.Destination ? String(resolver.resolve(p.DestinationConfig.OnFailure.Destination)) : undefined;
      const roleId = referencedIds(template.Resources[fnId]?.Properties?.Role)[0];
      fn.configureAsync({
        ...(p.MaximumRetryAttempts !== undefined ? { maxRetries: Number(p.MaximumRetryAttempts) } : {}),
        ...(p.MaximumEventAgeInSeconds !== undefined ? { maxEventAgeMs: Number(p.MaximumEventAgeInSeconds) * 1000 } : {}),
        ...(destination
          ? {
              onFailure: async (record) => {
                // Lambda sends the record with the function's own role: it needs sqs:SendMessage on the queue.
                const allowed = !iam || !roleId || iam.authorize(iam.credentialsOf(roleId).accessKeyId, 'sqs:SendMessage', destination).allowed;
                if (allowed && queues.send(destination, JSON.stringify(record))) return;
                emit('lambda')('destination_delivery_failed', { function: fnId, destination, reason: allowed ? 'no such queue' : 'the role may not sqs:SendMessage' });
              },
            }
          : {}),
      });
    }
    if (options.asyncRetryDelaysMs) for (const fn of functions.values()) fn.configureAsync({ retryDelaysMs: options.asyncRetryDelaysMs });
    started.push(async () => {
      await Promise.all([...functions.values()].map((f) => f.stop()));
    });

    const gateway = new WebSocketGateway({
      template,
      functions,
      region,
      apiId: API_ID,
      accountId,
      idleTimeoutMs: options.idleTimeoutMs ?? 10 * 60 * 1000,
      maxConnectionMs: options.maxConnectionMs ?? 2 * 60 * 60 * 1000,
      deliverDisconnect: options.deliverDisconnect ?? true,
      ...(options.accountRate ? { accountRate: options.accountRate } : {}),
      ...(options.connectionsLatencyMs ? { connectionsLatencyMs: options.connectionsLatencyMs } : {}),
      log: emit('apigateway'),
      ...(iam ? { iam } : {}),
    });
    const events = new LocalEventBus({
      template,
      resolver,
      functions,
      region,
      accountId,
      log: emit('eventbridge'),
      queues,
      duplicateDeliveries: options.duplicateEvents ?? false,
      ...(iam ? { iam } : {}),
      ...(options.scheduleIntervalMs ? { scheduleIntervalMs: options.scheduleIntervalMs } : {}),
    });
    const lambdaApi = new LambdaApi({ functions, region, accountId, log: emit('lambda'), ...(iam ? { iam } : {}) });
    const httpApi = new LocalHttpApi(template, functions, emit('apigateway-http'));
    // Sockets close (delivering $disconnect) and queued events finish before the functions and the store go away.
    started.push(async () => {
      events.stop();
      await gateway.close();
      await Promise.all([...functions.values()].map((f) => f.drain()));
    });

    let vpcOrigin: Upgrade =
      options.vpcOrigin ??
      (async (_req, socket) => {
        socket.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      });
    const edge = new LocalEdge({
      template,
      resolve: (value) => resolver.resolve(value),
      origins: {
        s3: options.bucket ?? { dir: path.join(options.cdkOut, '.no-bucket') },
        http: (request) => httpApi.handle(request),
        api: (req, socket, head) => gateway.handleUpgrade(req, socket, head),
        vpc: (req, socket, head) => vpcOrigin(req, socket, head),
      },
    });

    server.on('upgrade', (req, socket, head) => {
      edge
        .handleUpgrade(req, socket, head)
        .then((handled) => (handled ? undefined : gateway.handleUpgrade(req, socket, head)))
        .catch((err: Error) => {
          emit('edge')('upgrade_failed', { error: err.message });
          socket.destroy();
        });
    });
    server.on('request', (req, res) => {
      if (options.intercept?.(req, res)) return;
      if (gateway.handleRequest(req, res) || events.handleRequest(req, res) || lambdaApi.handleRequest(req, res) || edge.handleRequest(req, res)) return;
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'Not Found' }));
    });

    return {
      region,
      accountId,
      template,
      resolver,
      ...(iam ? { iam } : {}),
      clock,
      origin,
      websocketUrl: `${origin.replace('http', 'ws')}/${gateway.stage}`,
      connectionsUrl: `${origin}/${gateway.stage}`,
      dynamo,
      cognito,
      functions,
      gateway,
      httpApi,
      events,
      lambdaApi,
      queues,
      edge,
      setVpcOrigin: (upgrade) => {
        vpcOrigin = upgrade;
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
