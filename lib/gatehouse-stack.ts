import { CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { ConnectionTable, type ConnectionTableProps } from './connection-table';
import { metricsNamespaceOf } from '../common/metrics';
import { Edge, type EdgeProps } from './edge';
import { FailedInvocations } from './failed-invocations';
import { Network, type NetworkProps } from './network';
import { Operations, type OperationsProps } from './operations';
import { Identity, type IdentityProps } from './identity';
import { ConnectionSweeper } from './connection-sweeper';
import { Publishing, type PublishingProps } from './publishing';
import { RoomFanout, type RoomFanoutProps } from './room-fanout';
import { SessionApi, type SessionApiProps } from './session-api';
import { handlerFunction } from './handler-function';
import { RealtimeApi, type RealtimeApiProps, type RoomAuthorizerProps } from './realtime-api';
import { SpeechService, type SpeechServiceProps } from './speech-service';

/** Realtime API settings a deployer may change; the wiring (table, pool, client) is the stack's job. */
export type RealtimeSettings = Omit<
  RealtimeApiProps,
  | 'table'
  | 'userPool'
  | 'userPoolClient'
  | 'sessionClient'
  | 'sessionLifetime'
  | 'maxTokenLifetime'
  | 'tenantGroupPrefix'
  | 'adminGroupName'
  | 'roomAuthorizer'
>;

/** A room authorization hook for the namespaces a deployer names (see RoomAuthorizerProps). */
export interface RoomHookSettings extends Omit<RoomAuthorizerProps, 'function'> {
  /**
   * ARN of an existing function to ask. @default the sample hook, lambda/samples/room-hook.ts (`run:<id>` for the
   * groups `runs:<id>` and `run-viewers`), deployed with the stack
   */
  readonly functionArn?: string;
}

export interface GatehouseStackProps extends StackProps {
  /**
   * The Cognito side: a pool the stack creates (with its settings), or an existing one (`existingUserPool`).
   * @default a new pool with a web client, a session client and the admin group (see IdentityProps)
   */
  readonly identity?: IdentityProps;
  readonly connections?: ConnectionTableProps;
  readonly realtime?: RealtimeSettings;
  readonly publishing?: Omit<PublishingProps, 'realtime' | 'table' | 'failures'>;
  readonly network?: NetworkProps;
  readonly speech?: Omit<SpeechServiceProps, 'vpc' | 'userPool' | 'userPoolClient' | 'maxTokenLifetime' | 'tenantGroupPrefix' | 'authEnvironment'>;
  readonly edge?: Pick<EdgeProps, 'domain' | 'webAclArn' | 'priceClass' | 'logRetentionDays' | 'webAssets'>;
  readonly sessions?: Pick<SessionApiProps, 'throttle'>;
  /**
   * How the web app signs in: `session` keeps Cognito tokens server-side behind an HttpOnly cookie; `token` signs
   * in with Amplify in the browser and opens sockets with one-time tickets. `session` needs a session client (an
   * existing pool's `sessionClientId`). @default 'session', or 'token' for an existing pool without a session client
   */
  readonly webAuthMode?: 'session' | 'token';
  /** Rooms of these namespaces are joined only when the hook allows it. @default none: only built-in namespaces */
  readonly roomHook?: RoomHookSettings;
  /** The big-room fan-out workers' concurrency, time-out and retries. @default see RoomFanoutProps */
  readonly fanout?: Omit<RoomFanoutProps, 'realtime' | 'table' | 'failures'>;
  /** Who gets the alarms, and the denial threshold. @default no subscriber (subscribe to `operations.topic`), 500 denials */
  readonly operations?: Pick<OperationsProps, 'alarmEmails' | 'authorizerDenialThreshold'>;
}

/** Gatehouse: identity, connection store, realtime API, publishing, the speech service and the edge, composed. */
export class GatehouseStack extends Stack {
  readonly identity: Identity;
  readonly connections: ConnectionTable;
  readonly realtime: RealtimeApi;
  readonly publishing: Publishing;
  /** Big rooms' delivery, shard by shard, after the sender's reply. */
  readonly fanout: RoomFanout;
  readonly failedInvocations: FailedInvocations;
  readonly sessionApi: SessionApi;
  readonly speech: SpeechService;
  readonly edge: Edge;
  /** Alarms, their topic and the dashboard. */
  readonly operations: Operations;

  constructor(scope: Construct, id: string, props: GatehouseStackProps = {}) {
    super(scope, id, props);
    this.identity = new Identity(this, 'Identity', props.identity);
    const webAuthMode = props.webAuthMode ?? (this.identity.sessionClient ? 'session' : 'token');
    if (webAuthMode === 'session' && !this.identity.sessionClient) {
      throw new Error("webAuthMode 'session' needs a session client: give identity.existingUserPool.sessionClientId, or use webAuthMode 'token'.");
    }
    this.connections = new ConnectionTable(this, 'Connections', props.connections);
    this.realtime = new RealtimeApi(this, 'Realtime', {
      ...props.realtime,
      ...(props.roomHook ? { roomAuthorizer: this.roomAuthorizer(props.roomHook, props.realtime?.logRetention) } : {}),
      table: this.connections.table,
      userPool: this.identity.userPool,
      userPoolClient: this.identity.webClient,
      sessionClient: this.identity.sessionClient,
      sessionLifetime: this.identity.refreshTokenValidity,
      maxTokenLifetime: this.identity.accessTokenValidity,
      tenantGroupPrefix: this.identity.tenantGroupPrefix,
      adminGroupName: this.identity.adminGroupName,
    });
    this.sessionApi = new SessionApi(this, 'Sessions', { ...props.sessions, realtime: this.realtime, table: this.connections.table });
    this.failedInvocations = new FailedInvocations(this, 'FailedInvocations');
    const sweeper = new ConnectionSweeper(this, 'Sweeper', { realtime: this.realtime, table: this.connections.table, failures: this.failedInvocations });
    this.publishing = new Publishing(this, 'Publishing', {
      ...props.publishing,
      realtime: this.realtime,
      table: this.connections.table,
      failures: this.failedInvocations,
    });

    this.fanout = new RoomFanout(this, 'RoomFanout', { ...props.fanout, realtime: this.realtime, table: this.connections.table, failures: this.failedInvocations });
    for (const fn of [this.realtime.messageFunction, this.publishing.fanout]) this.fanout.useFrom(fn);

    const network = new Network(this, 'Network', props.network);
    this.speech = new SpeechService(this, 'Speech', {
      ...props.speech,
      vpc: network.vpc,
      userPool: this.identity.userPool,
      userPoolClient: this.identity.webClient,
      maxTokenLifetime: this.identity.accessTokenValidity,
      tenantGroupPrefix: this.identity.tenantGroupPrefix,
      authEnvironment: this.realtime.authEnvironment,
    });
    this.realtime.grantAuthentication(this.speech.taskRole, this.connections.table);
    this.edge = new Edge(this, 'Edge', {
      ...props.edge,
      api: this.realtime.api,
      stageName: this.realtime.stage.stageName,
      speechLoadBalancer: this.speech.loadBalancer,
      sessionApiDomain: this.sessionApi.domainName,
      webConfig: {
        region: this.region,
        userPoolId: this.identity.userPool.userPoolId,
        userPoolClientId: this.identity.webClient.userPoolClientId,
        authMode: webAuthMode,
      },
    });

    const roomHook = this.node.tryFindChild('RoomHook');
    this.operations = new Operations(this, 'Operations', {
      ...props.operations,
      namespace: metricsNamespaceOf(this.stackName),
      functions: [
        { label: 'Authorizer', fn: this.realtime.authorizerFunction },
        { label: 'Connect', fn: this.realtime.connectFunction },
        { label: 'Disconnect', fn: this.realtime.disconnectFunction },
        { label: 'Message', fn: this.realtime.messageFunction },
        { label: 'Fanout', fn: this.publishing.fanout },
        { label: 'RoomFanout', fn: this.fanout.worker },
        { label: 'Sweeper', fn: sweeper.handler },
        { label: 'Sessions', fn: this.sessionApi.handler },
        // The sample room hook, when it is deployed here (a hook named by ARN is its owner's to watch).
        ...(roomHook instanceof lambda.Function ? [{ label: 'RoomHook', fn: roomHook }] : []),
      ],
      table: this.connections.table,
      api: this.realtime.api,
      stageName: this.realtime.stage.stageName,
      failedInvocations: this.failedInvocations,
      speech: this.speech,
    });

    // The pages allowed to open sockets and call /api: the edge's own origin(s).
    this.realtime.allowOrigins(...[this.edge.domainName, ...(props.edge?.domain?.names.slice(1) ?? [])].map((d) => `https://${d}`));

    new CfnOutput(this, 'WebAppUrl', { value: `https://${this.edge.domainName}` });
    new CfnOutput(this, 'RealtimeUrl', { value: `wss://${this.edge.domainName}/ws/realtime` });
    new CfnOutput(this, 'SpeechUrl', { value: `wss://${this.edge.domainName}/ws/speech` });
    new CfnOutput(this, 'WebSocketUrl', { value: this.realtime.stage.url });
    new CfnOutput(this, 'UserPoolId', { value: this.identity.userPool.userPoolId });
    new CfnOutput(this, 'UserPoolClientId', { value: this.identity.webClient.userPoolClientId });
    new CfnOutput(this, 'ConnectionTableName', { value: this.connections.table.tableName });
    new CfnOutput(this, 'EventBusName', { value: this.publishing.bus.eventBusName });
    new CfnOutput(this, 'FailedInvocationsQueueUrl', { value: this.failedInvocations.queue.queueUrl });
    new CfnOutput(this, 'Region', { value: this.region });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.operations.topic.topicArn });
    new CfnOutput(this, 'DashboardName', { value: this.operations.dashboard.dashboardName });
  }

  /** The hook's function: an existing one by ARN, or the sample deployed here. */
  private roomAuthorizer(settings: RoomHookSettings, logRetention: RealtimeSettings['logRetention']): RoomAuthorizerProps {
    const { functionArn, ...rest } = settings;
    const fn = functionArn
      ? lambda.Function.fromFunctionArn(this, 'RoomHook', functionArn)
      : handlerFunction(this, 'RoomHook', {
          entry: 'samples/room-hook.ts',
          environment: {},
          logRetention: logRetention ?? RealtimeApi.DEFAULT_LOG_RETENTION,
          timeout: Duration.seconds(5),
        });
    return { ...rest, function: fn };
  }
}
