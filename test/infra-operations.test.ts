/**
 * What the on-call engineer gets from the stack: an encrypted alarm topic with the subscribers given, one alarm per
 * failure the README's runbook names (each watching the right metric, threshold and resource, notifying the topic
 * on alarm and on recovery), every function watched, the custom metrics read from the names the code writes
 * (common/metrics.ts), and a dashboard.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../bin/app';
import cdkJson from '../cdk.json';
import { METRICS, METRICS_NAMESPACE_ENV } from '../common/metrics';

function synth(context: Record<string, unknown> = {}) {
  const app = new App({ context: { ...cdkJson.context, ...context } });
  return Template.fromStack(buildApp(app));
}

const template = synth({ alarmEmails: 'oncall@example.com,backup@example.com' });
const resources = (type: string) => Object.entries(template.findResources(type)) as Array<[string, { Properties: Record<string, any> }]>;
const alarms = resources('AWS::CloudWatch::Alarm');
/** The alarm whose logical id starts with Operations<id> (or the failed-invocations one). */
const alarm = (id: string) => {
  const found = alarms.find(([logicalId]) => new RegExp(`^(Operations)?${id}[0-9A-F]{8}$`).test(logicalId));
  if (!found) throw new Error(`no alarm ${id}: ${alarms.map(([l]) => l).join(', ')}`);
  return found[1].Properties;
};
const [topicId] = resources('AWS::SNS::Topic')[0];
const FUNCTIONS = ['Authorizer', 'Connect', 'Disconnect', 'Message', 'Fanout', 'RoomFanout', 'Sweeper', 'Sessions', 'RoomHook'];
const SERVICE_ALARMS = ['AuthorizerDenials', 'ThrottledPosts', 'FailedPosts', 'GoneRate', 'DynamoThrottles', 'ApiIntegrationErrors', 'SpeechErrorCloses', 'SpeechUnhealthyTargets', 'FailedInvocationsAlarm'];
const README = readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');

describe('operations', () => {
  it('has one alarm per failure the runbook names, each notifying the topic when it fires and when it clears', () => {
    const expected = [...FUNCTIONS.flatMap((f) => [`${f}Errors`, `${f}Throttles`, `${f}NearTimeout`]), ...SERVICE_ALARMS];
    expect(alarms).toHaveLength(expected.length);
    for (const id of expected) {
      const props = alarm(id);
      expect({ id, actions: props.AlarmActions }).toEqual({ id, actions: [{ Ref: topicId }] });
      if (id !== 'FailedInvocationsAlarm') expect({ id, ok: props.OKActions }).toEqual({ id, ok: [{ Ref: topicId }] });
      // The runbook has a paragraph for it, and the alarm says where.
      const runbookId = id === 'FailedInvocationsAlarm' ? 'FailedInvocations' : id.replace(new RegExp(`^(${FUNCTIONS.join('|')})(?=(Errors|Throttles|NearTimeout)$)`), '&lt;Function&gt;');
      expect({ id, inRunbook: README.includes(`**${runbookId}**`) }).toEqual({ id, inRunbook: true });
    }
  });

  it('watches every function the stack deploys: errors, throttles, and a p99 duration at 80% of its timeout', () => {
    const ours = resources('AWS::Lambda::Function').filter(([id]) => /^(Realtime|Publishing|Sessions|Sweeper|RoomHook|RoomFanout)/.test(id) && !/LogRetention|Provider/.test(id));
    expect(ours.length).toBe(FUNCTIONS.length);
    const watched = (metricName: string) =>
      alarms
        .map(([, a]) => a.Properties)
        .filter((a) => a.MetricName === metricName && a.Namespace === 'AWS/Lambda')
        .map((a) => a.Dimensions[0].Value.Ref)
        .sort();
    for (const metric of ['Errors', 'Throttles', 'Duration']) expect(watched(metric)).toEqual(ours.map(([id]) => id).sort());
    for (const [id, fn] of ours) {
      const near = alarms.map(([, a]) => a.Properties).find((a) => a.MetricName === 'Duration' && a.Dimensions[0].Value.Ref === id)!;
      expect({ id, threshold: near.Threshold, stat: near.ExtendedStatistic }).toEqual({ id, threshold: fn.Properties.Timeout * 800, stat: 'p99' });
    }
    expect(alarm('AuthorizerErrors')).toMatchObject({ Threshold: 5, Period: 300, Statistic: 'Sum', ComparisonOperator: 'GreaterThanOrEqualToThreshold', TreatMissingData: 'notBreaching' });
    expect(alarm('MessageThrottles')).toMatchObject({ Threshold: 1, MetricName: 'Throttles' });
  });

  it("reads Gatehouse's own counts, in the stack's namespace, by the names the code writes", () => {
    const own = alarms.map(([, a]) => a.Properties).filter((a) => a.Namespace === 'Gatehouse/Gatehouse');
    const names = new Set(Object.values(METRICS) as string[]);
    for (const a of own) expect({ metric: a.MetricName, known: names.has(a.MetricName), dimensions: a.Dimensions }).toEqual({ metric: a.MetricName, known: true, dimensions: undefined });
    expect(alarm('AuthorizerDenials')).toMatchObject({ MetricName: METRICS.authorizerDenied, Threshold: 500 });
    expect(alarm('ThrottledPosts')).toMatchObject({ MetricName: METRICS.throttledPosts, Threshold: 1 });
    expect(alarm('FailedPosts')).toMatchObject({ MetricName: METRICS.failedPosts, Threshold: 10 });
    expect(alarm('SpeechErrorCloses')).toMatchObject({ MetricName: METRICS.speechErrorCloses, Threshold: 5 });
    // Every function writes its counts into that namespace.
    for (const [id, fn] of resources('AWS::Lambda::Function').filter(([lid]) => /^(Realtime|Publishing|Sessions|Sweeper|RoomFanout)/.test(lid))) {
      expect({ id, namespace: fn.Properties.Environment.Variables[METRICS_NAMESPACE_ENV] }).toEqual({ id, namespace: 'Gatehouse/Gatehouse' });
    }
    const [, task] = resources('AWS::ECS::TaskDefinition')[0];
    expect(task.Properties.ContainerDefinitions[0].Environment).toContainEqual({ Name: METRICS_NAMESPACE_ENV, Value: 'Gatehouse/Gatehouse' });
  });

  it('alarms on the share of posts that found their socket gone, only with enough posts to mean something', () => {
    const gone = alarm('GoneRate');
    expect(gone).toMatchObject({ Threshold: 20, EvaluationPeriods: 3, ComparisonOperator: 'GreaterThanThreshold' });
    const expression = gone.Metrics.find((m: { Expression?: string }) => m.Expression).Expression;
    expect(expression).toBe('IF((delivered + gone) >= 100, 100 * gone / (delivered + gone), 0)');
    const inputs = gone.Metrics.filter((m: { MetricStat?: unknown }) => m.MetricStat).map((m: { Id: string; MetricStat: { Metric: { MetricName: string } } }) => [m.Id, m.MetricStat.Metric.MetricName]);
    expect(inputs.sort()).toEqual([['delivered', METRICS.deliveries], ['gone', METRICS.gone]]);
  });

  it('watches the table, the WebSocket stage and the speech targets', () => {
    const [tableId] = resources('AWS::DynamoDB::Table')[0];
    const dynamo = alarm('DynamoThrottles');
    expect(dynamo.Metrics.filter((m: { MetricStat?: unknown }) => m.MetricStat).map((m: any) => [m.MetricStat.Metric.MetricName, m.MetricStat.Metric.Dimensions[0].Value])).toEqual([
      ['ReadThrottleEvents', { Ref: tableId }],
      ['WriteThrottleEvents', { Ref: tableId }],
    ]);
    const api = alarm('ApiIntegrationErrors');
    const [websocketApiId] = resources('AWS::ApiGatewayV2::Api').find(([, r]) => r.Properties.ProtocolType === 'WEBSOCKET')!;
    expect(api.Metrics.filter((m: { MetricStat?: unknown }) => m.MetricStat).map((m: any) => [m.MetricStat.Metric.MetricName, m.MetricStat.Metric.Dimensions])).toEqual([
      ['IntegrationError', [{ Name: 'ApiId', Value: { Ref: websocketApiId } }, { Name: 'Stage', Value: 'live' }]],
      ['ExecutionError', [{ Name: 'ApiId', Value: { Ref: websocketApiId } }, { Name: 'Stage', Value: 'live' }]],
    ]);
    expect(alarm('SpeechUnhealthyTargets')).toMatchObject({ Namespace: 'AWS/NetworkELB', MetricName: 'UnHealthyHostCount', Statistic: 'Maximum', Period: 60, EvaluationPeriods: 3, Threshold: 1 });
    expect(alarm('FailedInvocationsAlarm')).toMatchObject({ MetricName: 'ApproximateNumberOfMessagesVisible', Threshold: 1 });
  });

  it('sends alarms to a TLS-only topic encrypted with a rotated key CloudWatch may use, subscribed from context', () => {
    const [keyId, key] = resources('AWS::KMS::Key')[0];
    expect(key.Properties.EnableKeyRotation).toBe(true);
    expect(key.Properties.KeyPolicy.Statement).toContainEqual(
      expect.objectContaining({ Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: ['kms:Decrypt', 'kms:GenerateDataKey*'], Effect: 'Allow' }),
    );
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: { 'Fn::GetAtt': [keyId, 'Arn'] } });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
    const emails = resources('AWS::SNS::Subscription').map(([, s]) => [s.Properties.Protocol, s.Properties.Endpoint]);
    expect(emails).toEqual([['email', 'oncall@example.com'], ['email', 'backup@example.com']]);
    expect(resources('AWS::SNS::Subscription').every(([, s]) => s.Properties.TopicArn.Ref === topicId)).toBe(true);
    template.hasOutput('AlarmTopicArn', { Value: { Ref: topicId } });
  });

  it('has no subscriber without alarmEmails, and refuses a malformed address', () => {
    expect(Object.keys(synth().findResources('AWS::SNS::Subscription'))).toEqual([]);
    expect(() => synth({ alarmEmails: 'oncall@example.com,not-an-address' })).toThrow('Context alarmEmails must be comma-separated email addresses, not "not-an-address".');
  });

  it('builds a dashboard of the same signals, with the alarms on top', () => {
    const [dashboardId, dashboard] = resources('AWS::CloudWatch::Dashboard')[0];
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    for (const metric of [METRICS.deliveries, METRICS.gone, METRICS.throttledPosts, METRICS.revoked, METRICS.sweepClosed, METRICS.rateLimited, METRICS.speechSessions, 'ConnectCount', 'IntegrationError', 'ReadThrottleEvents', 'UnHealthyHostCount', 'ActiveSessions']) {
      expect({ metric, shown: body.includes(`\\"${metric}\\"`) }).toEqual({ metric, shown: true });
    }
    expect(body).toContain('\\"alarms\\":[');
    template.hasOutput('DashboardName', { Value: { Ref: dashboardId } });
  });
});
