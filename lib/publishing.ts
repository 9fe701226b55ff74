import { Duration, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { PUBLISH_DETAIL_TYPE } from '../common/protocol';
import { handlerFunction } from './handler-function';
import type { RealtimeApi } from './realtime-api';

export interface PublishingProps {
  readonly realtime: RealtimeApi;
  readonly table: dynamodb.ITable;
  /**
   * IAM principals (role or user ARNs, or account ids) allowed to put events on the bus: the backend services that
   * publish. Principals in this account can also be granted later with `bus.grantPutEventsTo`. @default none
   */
  readonly publisherArns?: string[];
}

/**
 * Server-side publishing: an EventBridge bus whose rule feeds a fan-out Lambda that reuses the room delivery path
 * (sequence numbers, history, broadcast). Failed deliveries are retried, then kept in a dead-letter queue.
 */
export class Publishing extends Construct {
  readonly bus: events.EventBus;
  readonly fanout: NodejsFunction;
  readonly deadLetters: sqs.Queue;

  constructor(scope: Construct, id: string, props: PublishingProps) {
    super(scope, id);
    this.bus = new events.EventBus(this, 'Bus', { description: 'Gatehouse server-side publishing' });
    this.fanout = handlerFunction(this, 'Fanout', {
      entry: 'publish.ts',
      environment: props.realtime.realtimeEnvironment,
      logRetention: props.realtime.logRetention,
    });
    props.realtime.grantStoreAccess(this.fanout, props.table);
    props.realtime.grantManageConnections(this.fanout);

    this.deadLetters = new sqs.Queue(this, 'DeadLetters', {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    Validations.of(this.deadLetters).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the dead-letter queue of the publishing rule; a DLQ of a DLQ would only move the problem.',
    });

    new events.Rule(this, 'ToRooms', {
      eventBus: this.bus,
      description: 'Deliver published events to their tenant room',
      eventPattern: { detailType: [PUBLISH_DETAIL_TYPE] },
      targets: [
        new targets.LambdaFunction(this.fanout, {
          deadLetterQueue: this.deadLetters,
          retryAttempts: 8,
          maxEventAge: Duration.hours(1),
        }),
      ],
    });

    (props.publisherArns ?? []).forEach((arn, i) => {
      this.bus.addToResourcePolicy(
        new iam.PolicyStatement({
          sid: `Publisher${i}`,
          principals: [/^\d{12}$/.test(arn) ? new iam.AccountPrincipal(arn) : new iam.ArnPrincipal(arn)],
          actions: ['events:PutEvents'],
          resources: [this.bus.eventBusArn],
        }),
      );
    });
  }
}
