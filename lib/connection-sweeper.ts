import { Duration } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { Construct } from 'constructs';
import type { FailedInvocations } from './failed-invocations';
import { handlerFunction } from './handler-function';
import type { RealtimeApi } from './realtime-api';

export interface ConnectionSweeperProps {
  readonly realtime: RealtimeApi;
  readonly table: dynamodb.ITable;
  /** Where a sweep that failed is recorded (the next one runs a minute later regardless). */
  readonly failures: FailedInvocations;
}

/**
 * Expiring sockets: every minute (and again half a minute later, inside the same run) the sweeper closes every
 * connection whose credential expired, after telling it why. It reads the byExpiry index: only what is due.
 */
export class ConnectionSweeper extends Construct {
  readonly handler: NodejsFunction;

  constructor(scope: Construct, id: string, props: ConnectionSweeperProps) {
    super(scope, id);
    this.handler = handlerFunction(this, 'Handler', {
      entry: 'sweeper.ts',
      environment: props.realtime.realtimeEnvironment,
      logRetention: props.realtime.logRetention,
      timeout: Duration.seconds(55),
    });
    props.realtime.grantStoreAccess(this.handler, props.table);
    props.realtime.grantManageConnections(this.handler);
    // No retries: the next scheduled run comes within a minute and looks back half an hour. A failure is recorded.
    props.failures.capture(this.handler, { retryAttempts: 0, maxEventAge: Duration.minutes(5) });
    new events.Rule(this, 'EveryMinute', {
      description: 'Close WebSocket connections whose credential expired',
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [new targets.LambdaFunction(this.handler, { retryAttempts: 0 })],
    });
  }
}
