import { Duration } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { Construct } from 'constructs';
import { PUBLISH_DETAIL_TYPE } from '../protocol';
import type { FailedInvocations } from './failed-invocations';
import { handlerFunction } from './handler-function';
import type { RealtimeApi } from './realtime-api';

/** How long EventBridge and then Lambda keep trying to deliver one published event. */
export const PUBLISH_MAX_EVENT_AGE = Duration.hours(1);

export interface PublishingProps {
  readonly realtime: RealtimeApi;
  readonly table: dynamodb.ITable;
  /** Where events that could not be delivered go (the rule's dead letters and the fan-out's failures). */
  readonly failures: FailedInvocations;
  /**
   * IAM principals (role or user ARNs, or account ids) allowed to put events on the bus: the backend services that
   * publish. Principals in this account can also be granted later with `bus.grantPutEventsTo`. @default none
   */
  readonly publisherArns?: string[];
  /**
   * Published events handled at once, at most (reserved concurrency): a publish storm waits in Lambda's queue
   * (EventBridge's events are asynchronous invocations, kept up to 6 hours) instead of taking the account's
   * concurrency from the authorizer and the message function. @default 20
   */
  readonly reservedConcurrency?: number;
}

/**
 * Server-side publishing: an EventBridge bus whose rule feeds a fan-out Lambda that reuses the room delivery path
 * (sequence numbers, history, broadcast). EventBridge retries failures to invoke the function; Lambda retries an
 * invocation that throws (twice); what still fails lands in the failed-invocations queue, whose alarm fires. The
 * fan-out is idempotent per event id (one event, one sequence number), so retries and EventBridge's occasional
 * duplicate deliveries never show a message twice.
 */
export class Publishing extends Construct {
  readonly bus: events.EventBus;
  readonly fanout: NodejsFunction;

  constructor(scope: Construct, id: string, props: PublishingProps) {
    super(scope, id);
    this.bus = new events.EventBus(this, 'Bus', { description: 'Gatehouse server-side publishing' });
    this.fanout = handlerFunction(this, 'Fanout', {
      entry: 'publish.ts',
      environment: props.realtime.realtimeEnvironment,
      logRetention: props.realtime.logRetention,
      reservedConcurrency: props.reservedConcurrency ?? 20,
    });
    props.realtime.grantStoreAccess(this.fanout, props.table);
    props.realtime.grantManageConnections(this.fanout);
    props.failures.capture(this.fanout, { retryAttempts: 2, maxEventAge: PUBLISH_MAX_EVENT_AGE });

    new events.Rule(this, 'ToRooms', {
      eventBus: this.bus,
      description: 'Deliver published events to their tenant room',
      eventPattern: { detailType: [PUBLISH_DETAIL_TYPE] },
      targets: [
        // These retries and this dead-letter queue cover failures to invoke only (a throttle, a missing permission).
        new targets.LambdaFunction(this.fanout, {
          deadLetterQueue: props.failures.queue,
          retryAttempts: 8,
          maxEventAge: PUBLISH_MAX_EVENT_AGE,
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
