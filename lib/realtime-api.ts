import { Duration, Lazy, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { WebSocketLambdaAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { WebSocketLambdaIntegration, WebSocketMockIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type * as cognito from 'aws-cdk-lib/aws-cognito';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ACTIONS, DEFAULT_RATE_LIMIT, GROUP_DEFAULTS, PONG_TEMPLATE, REALTIME_DEFAULTS } from '../protocol';
import { METRICS_NAMESPACE_ENV, metricsNamespaceOf } from '../common/metrics';
import { ENV } from '../lambda/core/config';
import { ROOM_ACCESS_DEFAULTS, ROOM_ACCESS_ENV, hookNamespaceProblem } from '../lambda/core/room-access';
import { handlerFunction } from './handler-function';

export interface RealtimeApiProps {
  readonly table: dynamodb.ITable;
  readonly userPool: cognito.IUserPool;
  readonly userPoolClient: cognito.IUserPoolClient;
  /**
   * The confidential client of cookie sessions (server-side sign-in and refresh; its secret is read from Cognito at
   * run time). @default none: cookie sessions are off, and no function gets Cognito sign-in or sign-out permissions
   */
  readonly sessionClient?: cognito.IUserPoolClient;
  /** How long a cookie session lasts: the refresh token's validity. */
  readonly sessionLifetime: Duration;
  /** The pool's access-token validity; the authorizer refuses tokens claiming a longer life. */
  readonly maxTokenLifetime: Duration;
  /** @default 'live' */
  readonly stageName?: string;
  /** Stage-wide throttling of messages (and connects) per second. @default { rateLimit: 500, burstLimit: 1000 } */
  readonly throttle?: { rateLimit: number; burstLimit: number };
  /** Accept `?token=` on connect. URLs leak into logs and histories; prefer the header or subprotocol. @default true */
  readonly allowTokenInQueryString?: boolean;
  /** @default 'tenant:' */
  readonly tenantGroupPrefix?: string;
  /** @default 'admin' */
  readonly adminGroupName?: string;
  /** Largest `data` of a `send`, in bytes (API Gateway's own frame limit is 32 KB). @default 16384 */
  readonly maxDataBytes?: number;
  /** @default 50 */
  readonly maxRoomsPerConnection?: number;
  /** Parallel @connections posts per broadcast. @default 32 */
  readonly broadcastConcurrency?: number;
  /** How long a room's messages are kept: history pages and reconnect replay (TTL of room history). @default 7 days */
  readonly historyRetention?: Duration;
  /** The authorizer denies when the JWKS cannot be fetched within this time. @default 2 seconds */
  readonly jwksTimeout?: Duration;
  /** Retention of function and access logs. @default one month */
  readonly logRetention?: logs.RetentionDays;
  /** @default 'info' */
  readonly logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /**
   * Message rates: a token bucket per connection (`rate`/s up to `burst`) and one per user across all of the user's
   * sockets (`userRate`/s up to `userBurst`); `strikes` refusals before both have refilled disconnect the socket.
   * @default 10/s burst 20 per connection, 20/s burst 40 per user, 20 strikes (DEFAULT_RATE_LIMIT)
   */
  readonly rateLimit?: Partial<typeof DEFAULT_RATE_LIMIT>;
  /** Live connections one user may hold. @default 10 */
  readonly maxConnectionsPerUser?: number;
  /** Rooms with more connections than this get no live presence or typing signals (snapshots only). @default 250 */
  readonly signalMaxMembers?: number;
  /** Page origins allowed besides the edge's own (e.g. a development server), exact `scheme://host[:port]`. */
  readonly allowedOrigins?: string[];
  /**
   * Set this region's API Gateway CloudWatch role, an account-wide setting that stage logging requires. The role and
   * the setting are retained when the stack is deleted (other APIs of the region may log through them), as CDK's
   * own RestApi does. Turn off for every stack but one in an account and region, or when the account already has
   * the role (`-c configureAccountLogging=false`). @default true
   */
  readonly configureAccountLogging?: boolean;
  /**
   * Rooms of the namespaces named here (`run` for `run:<id>`) are joined only when this hook allows it. Without
   * it, every namespace but the built-in ones (user, admin, private) is refused. @default none
   */
  readonly roomAuthorizer?: RoomAuthorizerProps;
}

/**
 * A deployer's authorization hook for room namespaces. At a join of such a room, the message function invokes the
 * function synchronously with `{ "identity": { "userId", "tenantId", "groups" }, "room" }` (the connection's
 * verified identity, never client input) and expects `{ "allow": true | false }`; an error, a malformed answer or
 * no answer within `timeout` refuses. Answers are reused for `cacheTtl` per user, groups and room, per container.
 */
export interface RoomAuthorizerProps {
  /** Namespaces the hook decides: 1-16 characters of [a-z0-9] starting with a letter, none of user, admin, private. */
  readonly namespaces: string[];
  /** The hook. The message function gets lambda:InvokeFunction on it and nothing else of Lambda. */
  readonly function: lambda.IFunction;
  /** A hook that has not answered by then refuses (less than the message function's 10 s). @default 2 seconds */
  readonly timeout?: Duration;
  /** How long an answer is reused in a container (0: ask at every join). @default 30 seconds */
  readonly cacheTtl?: Duration;
}

/** What API Gateway itself enforces on every WebSocket connection; the handlers and README follow these. */
export const API_GATEWAY_LIMITS = {
  maxConnectionSeconds: REALTIME_DEFAULTS.maxConnectionSeconds,
  idleTimeoutSeconds: 10 * 60,
  maxFrameBytes: 32 * 1024,
  maxMessageBytes: 128 * 1024,
} as const;

/**
 * The WebSocket API: a REQUEST authorizer on $connect (the only route that can have one), $disconnect, one
 * message function behind every action route and $default, and a throttled stage with JSON access logs.
 */
export class RealtimeApi extends Construct {
  /** Retention of function and access logs unless `logRetention` says otherwise. */
  static readonly DEFAULT_LOG_RETENTION = logs.RetentionDays.ONE_MONTH;
  readonly api: apigwv2.WebSocketApi;
  readonly stage: apigwv2.WebSocketStage;
  readonly authorizerFunction: NodejsFunction;
  readonly connectFunction: NodejsFunction;
  readonly disconnectFunction: NodejsFunction;
  readonly messageFunction: NodejsFunction;
  /** Environment of every function that reads the store and posts to connections (see lambda/core/config.ts). */
  readonly realtimeEnvironment: Record<string, string>;
  /** How credentials are checked (common/auth.ts): the same for every runtime that accepts them. */
  readonly authEnvironment: Record<string, string>;
  /** Exact page origins allowed to open sockets and call the session API. */
  readonly allowedOrigins: string[];
  private readonly userPool: cognito.IUserPool;
  private readonly cookieSessions: boolean;
  readonly logRetention: logs.RetentionDays;
  private readonly stageName: string;

  constructor(scope: Construct, id: string, props: RealtimeApiProps) {
    super(scope, id);
    this.logRetention = props.logRetention ?? RealtimeApi.DEFAULT_LOG_RETENTION;
    const stageName = props.stageName ?? 'live';
    this.stageName = stageName;
    const logLevel = props.logLevel ?? 'info';

    this.userPool = props.userPool;
    this.cookieSessions = props.sessionClient !== undefined;
    this.allowedOrigins = [...(props.allowedOrigins ?? [])];
    const handler = (id: string, entry: string, environment: Record<string, string>) =>
      handlerFunction(this, id, { entry, environment, logRetention: this.logRetention });
    this.authEnvironment = {
      [ENV.userPoolId]: props.userPool.userPoolId,
      [ENV.clientId]: props.userPoolClient.userPoolClientId,
      [ENV.maxTokenLifetimeSeconds]: String(props.maxTokenLifetime.toSeconds()),
      [ENV.jwksTimeoutMs]: String((props.jwksTimeout ?? Duration.seconds(2)).toMilliseconds()),
      [ENV.allowQueryToken]: String(props.allowTokenInQueryString ?? true),
      [ENV.tenantGroupPrefix]: props.tenantGroupPrefix ?? GROUP_DEFAULTS.tenantGroupPrefix,
      ...(props.sessionClient ? { [ENV.sessionClientId]: props.sessionClient.userPoolClientId } : {}),
      [ENV.sessionLifetimeSeconds]: String(props.sessionLifetime.toSeconds()),
      [ENV.tableName]: props.table.tableName,
      // Filled in once the edge exists (allowOrigins); resolved at synth.
      [ENV.allowedOrigins]: Lazy.string({ produce: () => this.allowedOrigins.join(',') }),
      [ENV.logLevel]: logLevel,
      [METRICS_NAMESPACE_ENV]: metricsNamespaceOf(Stack.of(this).stackName),
    };
    this.authorizerFunction = handler('Authorizer', 'authorizer.ts', this.authEnvironment);

    this.api = new apigwv2.WebSocketApi(this, 'Api', {
      description: 'Gatehouse realtime API',
      routeSelectionExpression: '$request.body.action',
    });
    // The management endpoint of this stage; known before the stage exists, so no dependency cycle.
    const connectionsUrl = `https://${this.api.apiId}.execute-api.${Stack.of(this).region}.${Stack.of(this).urlSuffix}/${stageName}`;
    const rateLimit = { ...DEFAULT_RATE_LIMIT, ...props.rateLimit };
    const realtimeEnv = {
      ...this.authEnvironment,
      [ENV.connectionsUrl]: connectionsUrl,
      [ENV.maxConnectionSeconds]: String(API_GATEWAY_LIMITS.maxConnectionSeconds),
      [ENV.maxFrameBytes]: String(API_GATEWAY_LIMITS.maxFrameBytes),
      [ENV.maxDataBytes]: String(props.maxDataBytes ?? REALTIME_DEFAULTS.maxDataBytes),
      [ENV.maxRoomsPerConnection]: String(props.maxRoomsPerConnection ?? REALTIME_DEFAULTS.maxRoomsPerConnection),
      [ENV.broadcastConcurrency]: String(props.broadcastConcurrency ?? REALTIME_DEFAULTS.broadcastConcurrency),
      [ENV.historyRetentionSeconds]: String(props.historyRetention?.toSeconds() ?? REALTIME_DEFAULTS.historyRetentionSeconds),
      [ENV.adminGroup]: props.adminGroupName ?? REALTIME_DEFAULTS.adminGroup,
      [ENV.rateLimitPerSecond]: String(rateLimit.rate),
      [ENV.rateLimitBurst]: String(rateLimit.burst),
      [ENV.rateLimitStrikes]: String(rateLimit.strikes),
      [ENV.userRateLimitPerSecond]: String(rateLimit.userRate),
      [ENV.userRateLimitBurst]: String(rateLimit.userBurst),
      [ENV.maxConnectionsPerUser]: String(props.maxConnectionsPerUser ?? REALTIME_DEFAULTS.maxConnectionsPerUser),
      [ENV.signalMaxMembers]: String(props.signalMaxMembers ?? REALTIME_DEFAULTS.signalMaxMembers),
    };
    this.realtimeEnvironment = realtimeEnv;
    this.connectFunction = handler('Connect', 'connect.ts', realtimeEnv);
    this.disconnectFunction = handler('Disconnect', 'disconnect.ts', realtimeEnv);
    this.messageFunction = handler('Message', 'message.ts', realtimeEnv);

    const authorizer = new WebSocketLambdaAuthorizer('Authorizer', this.authorizerFunction, {
      authorizerName: 'gatehouse-connect',
    });
    const message = new WebSocketLambdaIntegration('Message', this.messageFunction);
    this.api.addRoute('$connect', {
      integration: new WebSocketLambdaIntegration('Connect', this.connectFunction),
      authorizer,
    });
    const unauthorizedRoutes = [
      this.api.addRoute('$disconnect', {
        integration: new WebSocketLambdaIntegration('Disconnect', this.disconnectFunction),
      }),
      this.api.addRoute('$default', { integration: message, returnResponse: true }),
      ...ACTIONS.filter((action) => action !== 'ping').map((action) => this.api.addRoute(action, { integration: message, returnResponse: true })),
      this.pingRoute(),
    ];
    for (const route of unauthorizedRoutes) {
      Validations.of(route).acknowledge({
        id: 'AwsSolutions-APIG4',
        reason:
          'WebSocket APIs authorize once, on $connect (API Gateway accepts an authorizer on no other route); every later frame arrives on that authorized connection, with its identity in the authorizer context.',
      });
    }

    // API Gateway answers 401 without calling the authorizer when any configured identity source is absent, and
    // the token may be in any of three places. Identity sources are optional for REQUEST authorizers without
    // caching (WebSocket authorizers cannot cache), so there are none: every handshake reaches the authorizer.
    const cfnAuthorizer = this.api.node
      .findAll()
      .find((c): c is apigwv2.CfnAuthorizer => c instanceof apigwv2.CfnAuthorizer);
    cfnAuthorizer?.addPropertyDeletionOverride('IdentitySource');

    const accessLogs = new logs.LogGroup(this, 'AccessLogs', { retention: this.logRetention });
    this.stage = new apigwv2.WebSocketStage(this, 'Stage', {
      webSocketApi: this.api,
      stageName,
      autoDeploy: true,
      throttle: props.throttle ?? { rateLimit: 500, burstLimit: 1000 },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(accessLogs),
        // Only context variables: WebSocket access logs cannot print headers or the query string, so no token.
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            time: '$context.requestTimeEpoch',
            ip: '$context.identity.sourceIp',
            eventType: '$context.eventType',
            routeKey: '$context.routeKey',
            connectionId: '$context.connectionId',
            status: '$context.status',
            userId: '$context.authorizer.principalId',
            tenantId: '$context.authorizer.tenantId',
            error: '$context.error.message',
            authorizerError: '$context.authorizer.error',
            integrationError: '$context.integration.error',
            integrationLatency: '$context.integration.latency',
          }),
        ),
      },
    });
    // Execution logs at ERROR only: INFO with data tracing would copy message bodies into CloudWatch.
    (this.stage.node.defaultChild as apigwv2.CfnStage).addPropertyOverride('DefaultRouteSettings.LoggingLevel', 'ERROR');
    (this.stage.node.defaultChild as apigwv2.CfnStage).addPropertyOverride('DefaultRouteSettings.DataTraceEnabled', false);

    if (props.configureAccountLogging ?? true) {
      const role = new iam.Role(this, 'ApiGatewayLoggingRole', {
        assumedBy: new iam.ServicePrincipal('apigateway.amazonaws.com'),
        managedPolicies: [
          iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonAPIGatewayPushToCloudWatchLogs'),
        ],
      });
      const account = new apigw.CfnAccount(this, 'ApiGatewayAccount', { cloudWatchRoleArn: role.roleArn });
      role.applyRemovalPolicy(RemovalPolicy.RETAIN);
      account.applyRemovalPolicy(RemovalPolicy.RETAIN);
      this.stage.node.addDependency(account);
      Validations.of(role).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
        reason:
          'The AWS-managed policy API Gateway documents for its account-wide logging role: API Gateway creates the log groups it writes to, so their names are not known in advance.',
      });
    }

    for (const fn of [this.connectFunction, this.disconnectFunction, this.messageFunction]) {
      this.grantStoreAccess(fn, props.table);
    }
    // $disconnect tells the rooms whose presence ended (and purges members found gone on the way).
    for (const fn of [this.messageFunction, this.disconnectFunction]) this.grantManageConnections(fn);
    // The authorizer looks up the user's display name (profiles.ts) in this pool, once per connection.
    this.authorizerFunction.addToRolePolicy(new iam.PolicyStatement({ actions: ['cognito-idp:AdminGetUser'], resources: [props.userPool.userPoolArn] }));
    // The authorizer consumes tickets, refreshes cookie sessions and reads revocations; sign-out (message) too.
    for (const fn of [this.authorizerFunction, this.messageFunction]) this.grantAuthentication(fn, props.table);
    if (props.roomAuthorizer) this.useRoomAuthorizer(props.roomAuthorizer);
  }

  /**
   * `ping`, answered by API Gateway itself: a mock integration whose response is the pong (PONG_TEMPLATE), so an
   * idle socket's heartbeat runs no function and writes nothing (two messages, the ping and the pong, are all it
   * costs). It has no per-connection rate limit, unlike every other action: the stage's throttle bounds it.
   */
  private pingRoute(): apigwv2.WebSocketRoute {
    const route = this.api.addRoute('ping', {
      integration: new WebSocketMockIntegration('Ping', { requestTemplates: { $default: '{"statusCode": 200}' }, templateSelectionExpression: '\\$default' }),
      returnResponse: true,
    });
    // The route binds its integration in its own scope.
    const integration = route.node.findAll().find((c): c is apigwv2.CfnIntegration => c instanceof apigwv2.CfnIntegration);
    if (!integration) throw new Error('The ping route has no integration');
    new apigwv2.CfnIntegrationResponse(this, 'PingResponse', {
      apiId: this.api.apiId,
      integrationId: integration.ref,
      integrationResponseKey: '$default',
      templateSelectionExpression: '\\$default',
      responseTemplates: { $default: PONG_TEMPLATE },
    });
    return route;
  }

  /** The message function asks the hook about joins of its namespaces: its settings, and invoke on it only. */
  private useRoomAuthorizer(hook: RoomAuthorizerProps): void {
    const problem = hook.namespaces.length === 0 ? 'roomAuthorizer.namespaces is empty.' : hook.namespaces.map(hookNamespaceProblem).find(Boolean);
    if (problem) throw new Error(problem);
    const timeout = hook.timeout ?? Duration.millis(ROOM_ACCESS_DEFAULTS.hookTimeoutMs);
    if (timeout.toMilliseconds() < 1 || timeout.toMilliseconds() >= this.messageFunction.timeout!.toMilliseconds()) {
      throw new Error(`roomAuthorizer.timeout must be shorter than the message function's ${this.messageFunction.timeout!.toSeconds()} s.`);
    }
    const environment = {
      [ROOM_ACCESS_ENV.hookFunction]: hook.function.functionArn,
      [ROOM_ACCESS_ENV.hookNamespaces]: hook.namespaces.join(','),
      [ROOM_ACCESS_ENV.hookTimeoutMs]: String(timeout.toMilliseconds()),
      [ROOM_ACCESS_ENV.hookCacheTtlMs]: String((hook.cacheTtl ?? Duration.millis(ROOM_ACCESS_DEFAULTS.hookCacheTtlMs)).toMilliseconds()),
    };
    for (const [key, value] of Object.entries(environment)) this.messageFunction.addEnvironment(key, value);
    // The function itself only: no alias or version wildcard, and no other function.
    this.messageFunction.addToRolePolicy(new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [hook.function.functionArn] }));
  }

  /** Adds page origins allowed to open sockets and call the session API (exact `scheme://host[:port]`). */
  allowOrigins(...origins: string[]): void {
    this.allowedOrigins.push(...origins);
  }

  /**
   * What checking and ending credentials needs: the table (tickets, sessions, revocations) and, with cookie sessions,
   * on this user pool only, server-side sign-in and refresh, reading the confidential client's secret, and global
   * sign-out (only cookie sessions call Cognito).
   */
  grantAuthentication(grantee: iam.IGrantable, table: dynamodb.ITable): void {
    table.grantReadWriteData(grantee);
    if (this.cookieSessions) {
      grantee.grantPrincipal.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ['cognito-idp:AdminInitiateAuth', 'cognito-idp:DescribeUserPoolClient', 'cognito-idp:AdminUserGlobalSignOut'],
          resources: [this.userPool.userPoolArn],
        }),
      );
    }
    const role = (grantee as { role?: iam.IRole }).role ?? grantee.grantPrincipal;
    Validations.of(role as unknown as Construct).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${Stack.of(this).getLogicalId(table.node.defaultChild as dynamodb.CfnTable)}.Arn>/index/*]`,
      reason: "CDK's table grant covers the table's own indexes too (only the expiry sweeper reads one, byExpiry); no other table is reachable.",
    });
  }

  /** Read and write the connection table (CDK's grant includes its indexes). */
  grantStoreAccess(fn: lambda.IFunction, table: dynamodb.ITable): void {
    table.grantReadWriteData(fn);
    const tableRef = `<${Stack.of(this).getLogicalId(table.node.defaultChild as dynamodb.CfnTable)}.Arn>`;
    Validations.of(fn.role!).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${tableRef}/index/*]`,
      reason: "CDK's table grant covers the table's own indexes too (only the expiry sweeper reads one, byExpiry); no other table is reachable.",
    });
  }

  /** POST (send) and DELETE (disconnect) on this stage's @connections, nothing else. */
  grantManageConnections(fn: lambda.IFunction): void {
    const apiRef = `<${Stack.of(this).getLogicalId(this.api.node.defaultChild as apigwv2.CfnApi)}>`;
    const statement = new iam.PolicyStatement({ actions: ['execute-api:ManageConnections'], resources: [] });
    for (const method of ['POST', 'DELETE']) {
      statement.addResources(
        Stack.of(this).formatArn({
          service: 'execute-api',
          resource: this.api.apiId,
          resourceName: `${this.stageName}/${method}/@connections/*`,
        }),
      );
      Validations.of(fn.role!).acknowledge({
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:${apiRef}/${this.stageName}/${method}/@connections/*]`,
        reason: `Connection ids are created at run time; the wildcard covers only ${method} on this API stage's @connections.`,
      });
    }
    fn.addToRolePolicy(statement);
  }
}
