import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { METRICS, SPEECH_LOAD_METRIC, type MetricName } from '../common/metrics';
import type { FailedInvocations } from './failed-invocations';

/** A function the on-call engineer watches: its errors, throttles and how close it runs to its timeout. */
export interface WatchedFunction {
  /** Short name in alarm ids and on the dashboard (`Authorizer`, `Message`, ...). */
  readonly label: string;
  readonly fn: lambda.Function;
}

export interface OperationsProps {
  /** Namespace of Gatehouse's own metrics (common/metrics.ts: metricsNamespaceOf). */
  readonly namespace: string;
  readonly functions: WatchedFunction[];
  readonly table: dynamodb.ITable;
  readonly api: apigwv2.IWebSocketApi;
  readonly stageName: string;
  readonly failedInvocations: FailedInvocations;
  readonly speech: { readonly targetGroup: elbv2.INetworkTargetGroup; readonly serviceName: string };
  /** Addresses that get every alarm by email (each confirms its subscription once). @default none: subscribe to `topic` yourself */
  readonly alarmEmails?: string[];
  /** Refused handshakes in 5 minutes that page someone (expired tokens are refused too, so not 1). @default 500 */
  readonly authorizerDenialThreshold?: number;
}

/** Alarms the runbook (README, Operations) has a paragraph for, by id. */
export type AlarmId = string;

const FIVE_MINUTES = Duration.minutes(5);

/**
 * What an on-call engineer needs: one alarm topic (encrypted with a key of its own, subscribers a prop), an alarm
 * for each way Gatehouse fails (README, "Runbook", one paragraph per alarm), and a dashboard of the same signals.
 * Gatehouse's own counts (deliveries, gone, throttled posts, denials, ...) come from embedded-metric log lines
 * (common/metrics.ts), so the functions need no CloudWatch permission.
 */
export class Operations extends Construct {
  readonly topic: sns.Topic;
  readonly dashboard: cloudwatch.Dashboard;
  /** Every alarm, by its id. */
  readonly alarms: ReadonlyMap<AlarmId, cloudwatch.IAlarm>;
  private readonly alarmsById = new Map<AlarmId, cloudwatch.IAlarm>();
  private readonly action: actions.SnsAction;
  private readonly namespace: string;

  constructor(scope: Construct, id: string, props: OperationsProps) {
    super(scope, id);
    this.namespace = props.namespace;
    this.alarms = this.alarmsById;
    this.topic = this.alarmTopic(props.alarmEmails ?? []);
    this.action = new actions.SnsAction(this.topic);

    this.functionAlarms(props.functions);
    this.deliveryAlarms(props.authorizerDenialThreshold ?? 500);
    this.storeAndApiAlarms(props);
    this.speechAlarms(props.speech);
    // The failed-invocations queue has its own alarm; it pages through the same topic.
    props.failedInvocations.alarm.addAlarmAction(this.action);
    this.alarmsById.set('FailedInvocations', props.failedInvocations.alarm);

    this.dashboard = this.buildDashboard(props);
  }

  /** A count of Gatehouse's own (embedded-metric lines), in total: whichever component wrote it. */
  private own(name: MetricName, label?: string): cloudwatch.Metric {
    return new cloudwatch.Metric({ namespace: this.namespace, metricName: name, statistic: 'Sum', period: FIVE_MINUTES, ...(label ? { label } : {}) });
  }

  private alarm(id: AlarmId, description: string, props: Omit<cloudwatch.AlarmProps, 'alarmDescription' | 'actionsEnabled'>): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, id, {
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      ...props,
      alarmDescription: `${description} Runbook: README, Operations, "${id}".`,
    });
    alarm.addAlarmAction(this.action);
    alarm.addOkAction(this.action);
    this.alarmsById.set(id, alarm);
    return alarm;
  }

  /** The topic every alarm notifies: a key of its own (CloudWatch may use it), TLS only, the given subscribers. */
  private alarmTopic(emails: string[]): sns.Topic {
    const key = new kms.Key(this, 'AlarmTopicKey', {
      description: 'Encrypts the Gatehouse alarm topic',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // CloudWatch publishes alarm notifications to an encrypted topic only if the key lets it (an AWS-managed key
    // does not): https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
    );
    const topic = new sns.Topic(this, 'AlarmTopic', { masterKey: key, enforceSSL: true, displayName: 'Gatehouse alarms' });
    for (const email of emails) topic.addSubscription(new subscriptions.EmailSubscription(email));
    return topic;
  }

  /** Each function: errors, throttles, and a p99 duration at 80% of its timeout (it is about to time out). */
  private functionAlarms(functions: WatchedFunction[]): void {
    for (const { label, fn } of functions) {
      this.alarm(`${label}Errors`, `The ${label} function failed 5 times or more in 5 minutes.`, {
        metric: fn.metricErrors({ period: FIVE_MINUTES, statistic: 'Sum' }),
        threshold: 5,
        evaluationPeriods: 1,
      });
      this.alarm(`${label}Throttles`, `Lambda throttled the ${label} function (its reserved concurrency, or the account's, is exhausted).`, {
        metric: fn.metricThrottles({ period: FIVE_MINUTES, statistic: 'Sum' }),
        threshold: 1,
        evaluationPeriods: 1,
      });
      const timeout = fn.timeout ?? Duration.seconds(3);
      this.alarm(`${label}NearTimeout`, `The ${label} function's p99 duration reached 80% of its ${timeout.toSeconds()} s timeout.`, {
        metric: fn.metricDuration({ period: FIVE_MINUTES, statistic: 'p99' }),
        threshold: Math.round(timeout.toMilliseconds() * 0.8),
        evaluationPeriods: 2,
        datapointsToAlarm: 2,
      });
    }
  }

  /** Posts to @connections and the handshake: what users feel first. */
  private deliveryAlarms(denialThreshold: number): void {
    this.alarm('AuthorizerDenials', `The authorizer refused ${denialThreshold} handshakes or more in 5 minutes.`, {
      metric: this.own(METRICS.authorizerDenied),
      threshold: denialThreshold,
      evaluationPeriods: 1,
    });
    this.alarm('ThrottledPosts', '@connections posts were refused with 429 after every retry (the account quota, or clients not reading).', {
      metric: this.own(METRICS.throttledPosts),
      threshold: 1,
      evaluationPeriods: 1,
    });
    this.alarm('FailedPosts', '10 or more @connections posts failed (5xx or network) after their retries in 5 minutes.', {
      metric: this.own(METRICS.failedPosts),
      threshold: 10,
      evaluationPeriods: 1,
    });
    const delivered = this.own(METRICS.deliveries);
    const gone = this.own(METRICS.gone);
    this.alarm('GoneRate', 'More than 20% of posts found their socket gone (410) over 15 minutes, with at least 100 posts.', {
      metric: new cloudwatch.MathExpression({
        expression: 'IF((delivered + gone) >= 100, 100 * gone / (delivered + gone), 0)',
        usingMetrics: { delivered, gone },
        label: 'gone %',
        period: FIVE_MINUTES,
      }),
      threshold: 20,
      evaluationPeriods: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    });
  }

  private storeAndApiAlarms(props: OperationsProps): void {
    const table = (metricName: string) => this.tableMetric(props, metricName);
    this.alarm('DynamoThrottles', 'DynamoDB throttled reads or writes of the connection table (a hot partition: see the per-partition limits in the README).', {
      metric: new cloudwatch.MathExpression({ expression: 'reads + writes', usingMetrics: { reads: table('ReadThrottleEvents'), writes: table('WriteThrottleEvents') }, period: FIVE_MINUTES }),
      threshold: 1,
      evaluationPeriods: 1,
    });
    const api = (metricName: string) => this.apiMetric(props, metricName);
    this.alarm('ApiIntegrationErrors', 'API Gateway could not run a route (integration or execution errors) 10 times or more in 5 minutes.', {
      metric: new cloudwatch.MathExpression({ expression: 'integration + execution', usingMetrics: { integration: api('IntegrationError'), execution: api('ExecutionError') }, period: FIVE_MINUTES }),
      threshold: 10,
      evaluationPeriods: 1,
    });
  }

  private speechAlarms(speech: OperationsProps['speech']): void {
    this.alarm('SpeechErrorCloses', 'Speech sessions ended with 1011 (the model stream failed) 5 times or more in 5 minutes.', {
      metric: this.own(METRICS.speechErrorCloses),
      threshold: 5,
      evaluationPeriods: 1,
    });
    this.alarm('SpeechUnhealthyTargets', 'A speech task failed its health checks for 3 minutes.', {
      metric: speech.targetGroup.metrics.unHealthyHostCount({ period: Duration.minutes(1), statistic: 'Maximum' }),
      threshold: 1,
      evaluationPeriods: 3,
    });
  }

  private tableMetric(props: OperationsProps, metricName: string): cloudwatch.Metric {
    return new cloudwatch.Metric({ namespace: 'AWS/DynamoDB', metricName, dimensionsMap: { TableName: props.table.tableName }, statistic: 'Sum', period: FIVE_MINUTES });
  }

  private apiMetric(props: OperationsProps, metricName: string, statistic = 'Sum'): cloudwatch.Metric {
    return new cloudwatch.Metric({ namespace: 'AWS/ApiGateway', metricName, dimensionsMap: { ApiId: props.api.apiId, Stage: props.stageName }, statistic, period: FIVE_MINUTES });
  }

  private buildDashboard(props: OperationsProps): cloudwatch.Dashboard {
    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { defaultInterval: Duration.hours(3) });
    const graph = (title: string, left: cloudwatch.IMetric[], width = 8) => new cloudwatch.GraphWidget({ title, left, width, height: 6 });
    const speechLoad = new cloudwatch.Metric({
      namespace: SPEECH_LOAD_METRIC.namespace,
      metricName: SPEECH_LOAD_METRIC.name,
      dimensionsMap: { [SPEECH_LOAD_METRIC.dimension]: props.speech.serviceName },
      statistic: 'Sum',
      period: Duration.minutes(1),
    });
    dashboard.addWidgets(new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: [...this.alarmsById.values()], width: 24, height: 4 }));
    dashboard.addWidgets(
      graph('Connections (API Gateway)', [this.apiMetric(props, 'ConnectCount'), this.apiMetric(props, 'MessageCount'), this.apiMetric(props, 'ClientError')]),
      graph('Route failures (API Gateway)', [this.apiMetric(props, 'IntegrationError'), this.apiMetric(props, 'ExecutionError')]),
      graph('Handshakes refused', [this.own(METRICS.authorizerDenied)]),
    );
    dashboard.addWidgets(
      graph('Deliveries', [this.own(METRICS.deliveries), this.own(METRICS.gone, '410 gone')]),
      graph('Posts refused', [this.own(METRICS.throttledPosts, '429 after retries'), this.own(METRICS.failedPosts, 'failed')]),
      graph('Sockets closed by Gatehouse', [this.own(METRICS.revoked, 'sign-out'), this.own(METRICS.sweepClosed, 'expired'), this.own(METRICS.sweepGone, 'expired, gone'), this.own(METRICS.rateLimited, 'frames rate-limited')]),
    );
    const perFunction = (what: (fn: lambda.Function) => cloudwatch.IMetric) => props.functions.map(({ fn }) => what(fn));
    dashboard.addWidgets(
      graph('Lambda errors', perFunction((fn) => fn.metricErrors({ period: FIVE_MINUTES, label: fn.node.id }))),
      graph('Lambda throttles', perFunction((fn) => fn.metricThrottles({ period: FIVE_MINUTES, label: fn.node.id }))),
      graph('Lambda p99 duration (ms)', perFunction((fn) => fn.metricDuration({ period: FIVE_MINUTES, statistic: 'p99', label: fn.node.id }))),
    );
    const table = (metricName: string) => this.tableMetric(props, metricName);
    dashboard.addWidgets(
      graph('DynamoDB capacity used', [table('ConsumedReadCapacityUnits'), table('ConsumedWriteCapacityUnits')]),
      graph('DynamoDB throttles', [table('ReadThrottleEvents'), table('WriteThrottleEvents')]),
      graph('Failed asynchronous work (queue depth)', [props.failedInvocations.queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' })]),
    );
    dashboard.addWidgets(
      graph('Speech sessions', [speechLoad, this.own(METRICS.speechSessions, 'started')]),
      graph('Speech 1011 closes', [this.own(METRICS.speechErrorCloses)]),
      graph('Speech targets', [props.speech.targetGroup.metrics.healthyHostCount({ period: Duration.minutes(1), statistic: 'Minimum' }), props.speech.targetGroup.metrics.unHealthyHostCount({ period: Duration.minutes(1), statistic: 'Maximum' })]),
    );
    return dashboard;
  }
}
