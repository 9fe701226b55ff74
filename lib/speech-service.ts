import * as path from 'node:path';
import { Duration, Stack, Validations } from 'aws-cdk-lib';
import type * as cognito from 'aws-cdk-lib/aws-cognito';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { IgnoreMode } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { SPEECH_LOAD_METRIC } from '../common/metrics';
import { DEFAULT_MODEL_ID, SPEECH_ENV } from '../speech/config';

const ROOT = path.join(__dirname, '..');
export const SPEECH_PORT = 8080;
/** The NLB listener: plain TCP, because a CloudFront VPC origin cannot front a TLS listener. */
export const SPEECH_LISTENER_PORT = 80;

export interface SpeechServiceProps {
  readonly vpc: ec2.IVpc;
  readonly userPool: cognito.IUserPool;
  readonly userPoolClient: cognito.IUserPoolClient;
  /** The pool's access-token validity; longer-lived tokens are refused. */
  readonly maxTokenLifetime: Duration;
  readonly tenantGroupPrefix: string;
  /** How credentials are checked (the API's settings: pool, clients, table, allowed origins). */
  readonly authEnvironment: Record<string, string>;
  /** @default 'amazon.nova-2-sonic-v1:0' */
  readonly modelId?: string;
  /** Region of Bedrock (Nova Sonic is in a few regions; the stream cannot cross regions). @default the stack's */
  readonly bedrockRegion?: string;
  /** @default 'matthew' */
  readonly voiceId?: string;
  /** @default a short friendly-assistant prompt (see speech/config.ts) */
  readonly systemPrompt?: string;
  /** A Bedrock knowledge base the model may search (adds bedrock:Retrieve on it, and only then). */
  readonly knowledgeBaseId?: string;
  /** Sessions per task before new ones are refused (1013). @default 50 */
  readonly maxSessionsPerTask?: number;
  /** Sessions one user may hold in one task (1013 beyond). @default 3 */
  readonly maxSessionsPerUser?: number;
  /** Sessions one tenant may hold in one task (1013 beyond). @default 20 */
  readonly maxSessionsPerTenant?: number;
  /** Model streams (`start`s, each a billed Bedrock stream) one user may open per minute in one task; also the burst. @default 10 */
  readonly maxStartsPerMinute?: number;
  /** The same limit for each session on its own. @default maxStartsPerMinute */
  readonly maxStartsPerMinutePerSession?: number;
  /** Control messages per session per second (each may cost a token check and a table read); beyond: 1008. @default 10 */
  readonly maxControlMessagesPerSecond?: number;
  /** Control messages a session may send at once before the per-second rate applies. @default 20 */
  readonly controlMessageBurst?: number;
  /** How long a connection may take to send its handshake's headers before it is dropped. @default 5 seconds */
  readonly headersTimeout?: Duration;
  /** @default 2 */
  readonly minTasks?: number;
  /** @default 10 */
  readonly maxTasks?: number;
  /** Scale out when the average task holds more sessions than this. @default 60% of maxSessionsPerTask */
  readonly targetSessionsPerTask?: number;
  /**
   * How long a deregistered task keeps serving its sessions before the NLB closes them: the longest session tail
   * tolerated during a deployment or scale-in. @default 2 minutes
   */
  readonly deregistrationDelay?: Duration;
  /** @default one month */
  readonly logRetention?: logs.RetentionDays;
}

function limitsEnvironment(props: SpeechServiceProps): Record<string, string> {
  const limits: Array<[string, number | undefined]> = [
    [SPEECH_ENV.maxSessionsPerUser, props.maxSessionsPerUser],
    [SPEECH_ENV.maxSessionsPerTenant, props.maxSessionsPerTenant],
    [SPEECH_ENV.maxStartsPerMinute, props.maxStartsPerMinute],
    [SPEECH_ENV.maxStartsPerMinutePerSession, props.maxStartsPerMinutePerSession],
    [SPEECH_ENV.maxControlMessagesPerSecond, props.maxControlMessagesPerSecond],
    [SPEECH_ENV.controlMessageBurst, props.controlMessageBurst],
    [SPEECH_ENV.headersTimeoutMs, props.headersTimeout?.toMilliseconds()],
  ];
  return Object.fromEntries(limits.filter((l): l is [string, number] => l[1] !== undefined).map(([name, value]) => [name, String(value)]));
}

/**
 * The speech service: Fargate tasks (arm64) in private subnets, behind an internal Network Load Balancer that only
 * CloudFront can reach (VPC origin; the NLB's security group admits the CloudFront origin-facing prefix list,
 * looked up at deploy time). The task role may invoke exactly the configured model, and search exactly the
 * configured knowledge base.
 */
export class SpeechService extends Construct {
  readonly service: ecs.FargateService;
  readonly loadBalancer: elbv2.NetworkLoadBalancer;
  /** The service's tasks behind the load balancer (their health is on the dashboard and alarmed). */
  readonly targetGroup: elbv2.NetworkTargetGroup;
  /** The ECS service's name: the dimension of its load metric (SPEECH_LOAD_METRIC). */
  readonly serviceName: string;
  readonly taskRole: iam.Role;

  constructor(scope: Construct, id: string, props: SpeechServiceProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const modelId = props.modelId ?? DEFAULT_MODEL_ID;
    const bedrockRegion = props.bedrockRegion ?? stack.region;
    const maxSessions = props.maxSessionsPerTask ?? 50;
    const serviceName = `${stack.stackName}-speech`;
    this.serviceName = serviceName;

    const cluster = new ecs.Cluster(this, 'Cluster', { vpc: props.vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });

    this.taskRole = new iam.Role(this, 'TaskRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
    this.taskRole.addToPolicy(
      new iam.PolicyStatement({
        // InvokeModelWithBidirectionalStream "requires permission for the bedrock:InvokeModel action"; IAM has no
        // action of its own name (API_runtime_InvokeModelWithBidirectionalStream.html).
        actions: ['bedrock:InvokeModel'],
        resources: [stack.formatArn({ service: 'bedrock', region: bedrockRegion, account: '', resource: 'foundation-model', resourceName: modelId })],
      }),
    );
    if (props.knowledgeBaseId) {
      this.taskRole.addToPolicy(
        new iam.PolicyStatement({
          actions: ['bedrock:Retrieve'],
          resources: [stack.formatArn({ service: 'bedrock', region: bedrockRegion, resource: 'knowledge-base', resourceName: props.knowledgeBaseId })],
        }),
      );
    }

    const taskDefinition = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: 1024,
      memoryLimitMiB: 2048,
      taskRole: this.taskRole,
      runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.ARM64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
    });
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH });
    const container = taskDefinition.addContainer('speech', {
      // The build context is the repository (the service shares common/ and protocol/ with the Lambdas), minus everything else.
      image: ecs.ContainerImage.fromAsset(ROOT, {
        file: 'speech/Dockerfile',
        platform: Platform.LINUX_ARM64,
        ignoreMode: IgnoreMode.DOCKER,
        exclude: ['*', '!package.json', '!package-lock.json', '!tsconfig.json', '!common/**', '!protocol/**', '!speech/**', 'speech/dist'],
      }),
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'speech', logGroup }),
      portMappings: [{ containerPort: SPEECH_PORT, protocol: ecs.Protocol.TCP }],
      readonlyRootFilesystem: true,
      // SIGTERM drains (1001 to every client); this is how long it may take before SIGKILL.
      stopTimeout: Duration.seconds(30),
      healthCheck: {
        command: ['CMD', 'node', '-e', `fetch('http://127.0.0.1:${SPEECH_PORT}/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`],
        interval: Duration.seconds(15),
        timeout: Duration.seconds(3),
        startPeriod: Duration.seconds(10),
        retries: 3,
      },
      environment: {
        // The same credential checks as the API, except that ?token= stays off here.
        ...Object.fromEntries(Object.entries(props.authEnvironment).filter(([k]) => k !== SPEECH_ENV.allowQueryToken && k !== 'LOG_LEVEL')),
        [SPEECH_ENV.port]: String(SPEECH_PORT),
        [SPEECH_ENV.provider]: 'bedrock',
        [SPEECH_ENV.modelId]: modelId,
        [SPEECH_ENV.bedrockRegion]: bedrockRegion,
        [SPEECH_ENV.voiceId]: props.voiceId ?? 'matthew',
        [SPEECH_ENV.maxSessions]: String(maxSessions),
        // Unset limits keep the service's defaults (speech/config.ts).
        ...limitsEnvironment(props),
        ...(props.systemPrompt ? { [SPEECH_ENV.systemPrompt]: props.systemPrompt } : {}),
        ...(props.knowledgeBaseId ? { [SPEECH_ENV.knowledgeBaseId]: props.knowledgeBaseId } : {}),
        // The scaling metric's dimension: this stack's own, so stacks side by side never scale on each other's load.
        SERVICE_NAME: serviceName,
      },
    });
    Validations.of(taskDefinition).acknowledge({
      id: 'AwsSolutions-ECS2',
      reason: 'The environment holds configuration only (pool and client ids, table name, model id, limits); the task needs no secret: its AWS access comes from the task role, and the session client secret is read from Cognito at start.',
    });

    const taskSecurityGroup = new ec2.SecurityGroup(this, 'TaskSecurityGroup', {
      vpc: props.vpc,
      description: 'Speech tasks: the service port, from the load balancer only',
    });
    // A CloudFront VPC origin requires the NLB to have a security group, and one can only be attached at creation.
    const lbSecurityGroup = new ec2.SecurityGroup(this, 'LoadBalancerSecurityGroup', {
      vpc: props.vpc,
      description: 'Speech NLB: CloudFront origin-facing addresses only',
      allowAllOutbound: false,
    });
    lbSecurityGroup.addEgressRule(taskSecurityGroup, ec2.Port.tcp(SPEECH_PORT), 'To the speech tasks');
    taskSecurityGroup.addIngressRule(lbSecurityGroup, ec2.Port.tcp(SPEECH_PORT), 'From the speech NLB');

    // The CloudFront origin-facing prefix list differs per region: look it up at deploy time (synth stays offline).
    const prefixList = new cr.AwsCustomResource(this, 'CloudFrontPrefixList', {
      onUpdate: {
        service: 'EC2',
        action: 'describeManagedPrefixLists',
        parameters: { Filters: [{ Name: 'prefix-list-name', Values: ['com.amazonaws.global.cloudfront.origin-facing'] }] },
        physicalResourceId: cr.PhysicalResourceId.fromResponse('ManagedPrefixLists.0.PrefixListId'),
        outputPaths: ['ManagedPrefixLists.0.PrefixListId'],
      },
      policy: cr.AwsCustomResourcePolicy.fromSdkCalls({ resources: cr.AwsCustomResourcePolicy.ANY_RESOURCE }),
      installLatestAwsSdk: false,
      logGroup: new logs.LogGroup(this, 'PrefixListLookupLogs', { retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH }),
    });
    lbSecurityGroup.addIngressRule(
      ec2.Peer.prefixList(prefixList.getResponseField('ManagedPrefixLists.0.PrefixListId')),
      ec2.Port.tcp(SPEECH_LISTENER_PORT),
      'CloudFront VPC origin',
    );

    this.loadBalancer = new elbv2.NetworkLoadBalancer(this, 'LoadBalancer', {
      vpc: props.vpc,
      internetFacing: false,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [lbSecurityGroup],
      crossZoneEnabled: true,
    });
    // TCP flows idle for 350 s are dropped by the NLB (CloudFront: 10 minutes); the service pings every 20 s.
    const listener = this.loadBalancer.addListener('Tcp', { port: SPEECH_LISTENER_PORT, protocol: elbv2.Protocol.TCP });

    this.service = new ecs.FargateService(this, 'Service', {
      cluster,
      taskDefinition,
      desiredCount: props.minTasks ?? 2,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [taskSecurityGroup],
      assignPublicIp: false,
      // Deployments add new tasks before removing old ones, and roll back when the new ones never get healthy.
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
      healthCheckGracePeriod: Duration.seconds(30),
    });
    this.targetGroup = listener.addTargets('Speech', {
      port: SPEECH_PORT,
      protocol: elbv2.Protocol.TCP,
      targets: [this.service.loadBalancerTarget({ containerName: container.containerName, containerPort: SPEECH_PORT })],
      deregistrationDelay: props.deregistrationDelay ?? Duration.minutes(2),
      healthCheck: {
        protocol: elbv2.Protocol.HTTP,
        path: '/health',
        interval: Duration.seconds(10),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 2,
      },
    });
    // When the delay ends, the NLB closes what is left instead of letting it hang on a task about to stop.
    this.targetGroup.setAttribute('deregistration_delay.connection_termination.enabled', 'true');

    const scaling = this.service.autoScaleTaskCount({ minCapacity: props.minTasks ?? 2, maxCapacity: props.maxTasks ?? 10 });
    scaling.scaleToTrackCustomMetric('Sessions', {
      // Published by each task as an embedded-metric log line (speech/main.ts): no PutMetricData permission needed.
      metric: new cloudwatch.Metric({
        namespace: SPEECH_LOAD_METRIC.namespace,
        metricName: SPEECH_LOAD_METRIC.name,
        dimensionsMap: { [SPEECH_LOAD_METRIC.dimension]: serviceName },
        statistic: 'Average',
        period: Duration.minutes(1),
      }),
      targetValue: props.targetSessionsPerTask ?? Math.max(1, Math.floor(maxSessions * 0.6)),
      scaleOutCooldown: Duration.minutes(1),
      scaleInCooldown: Duration.minutes(5),
    });

    Validations.of(this.loadBalancer).acknowledge({
      id: 'AwsSolutions-ELB2',
      reason: 'NLB access logs are only written for TLS listeners, and a CloudFront VPC origin cannot use one; requests are logged by CloudFront and the service.',
    });
    Validations.of(taskDefinition.obtainExecutionRole()).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'ecr:GetAuthorizationToken has no resource-level permissions; the other execution-role actions are scoped to this image repository and log group.',
    });
    // The CDK custom-resource Lambda that reads the prefix list id (a stack-level singleton) and its call policy.
    Validations.of(prefixList).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'ec2:DescribeManagedPrefixLists has no resource-level permissions; it is the only action granted.',
    });
    const provider = stack.node.tryFindChild(cr.AwsCustomResource.PROVIDER_FUNCTION_UUID ? `AWS${cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replace(/-/g, '')}` : '');
    if (provider) {
      Validations.of(provider).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason: 'CDK\'s custom-resource provider function writes only its own logs with the AWS-managed basic execution policy.',
      });
    }
  }
}
