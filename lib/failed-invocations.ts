import { Duration, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export interface FailedInvocationsProps {
  /** How long an undelivered event is kept for inspection and replay. @default 14 days (SQS's maximum) */
  readonly retention?: Duration;
}

/** How an asynchronously invoked function retries before its event lands in the queue. */
export interface AsyncRetryProps {
  /** Lambda's retries after a function error (0-2). @default 2 */
  readonly retryAttempts?: number;
  /** Oldest an event may be and still be tried. @default 1 hour */
  readonly maxEventAge?: Duration;
}

/**
 * Where asynchronous work that failed for good goes, and the alarm that says it did. EventBridge invokes functions
 * asynchronously: a rule's retries and dead-letter queue cover only failures to invoke, while an invocation that
 * throws is retried by Lambda (twice by default) and then dropped unless the function has an on-failure destination
 * (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html). One queue receives both, so
 * nothing asynchronous is lost without a trace: a rule's undeliverable events and the invocation records of
 * functions that kept failing (which carry the function's ARN, the condition and the event itself).
 */
export class FailedInvocations extends Construct {
  readonly queue: sqs.Queue;
  /** In alarm while anything waits in the queue. */
  readonly alarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: FailedInvocationsProps = {}) {
    super(scope, id);
    this.queue = new sqs.Queue(this, 'Queue', {
      retentionPeriod: props.retention ?? Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    Validations.of(this.queue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself where failed asynchronous work goes (dead letters and on-failure records); a DLQ of it would only move the problem.',
    });
    this.alarm = new cloudwatch.Alarm(this, 'Alarm', {
      alarmDescription:
        'Asynchronous work failed for good: a published event was not delivered to its room, or a sweep failed. Each message in the queue says which function and why (see the README runbook).',
      metric: this.queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }

  /** Sends the function's asynchronous invocations that fail for good to the queue, after its retries. */
  capture(fn: lambda.IFunction, props: AsyncRetryProps = {}): void {
    fn.configureAsyncInvoke({
      onFailure: new destinations.SqsDestination(this.queue),
      retryAttempts: props.retryAttempts ?? 2,
      maxEventAge: props.maxEventAge ?? Duration.hours(1),
    });
  }
}
