import { Duration } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { Construct } from 'constructs';
import { ENV } from '../lambda/core/config';
import { FANOUT_RESERVE_MS } from '../lambda/core/fanout';
import type { FailedInvocations } from './failed-invocations';
import { handlerFunction } from './handler-function';
import type { RealtimeApi } from './realtime-api';

export interface RoomFanoutProps {
  readonly realtime: RealtimeApi;
  readonly table: dynamodb.ITable;
  readonly failures: FailedInvocations;
  /**
   * Workers running at once, at most (reserved concurrency). It is also what they can take from the account's
   * concurrency: a storm of big-room messages queues here (Lambda keeps asynchronous events up to 6 hours) instead
   * of starving the authorizer and the message function. A room of 100,000 takes 16 at once. @default 50
   */
  readonly reservedConcurrency?: number;
  /**
   * A worker's time limit; a shard that needs longer is handed on to a fresh invocation. At least 40 s: a worker
   * keeps about 25 s in hand for one post's every retry and its records. @default 60 seconds
   */
  readonly timeout?: Duration;
  /** Lambda's retries of a failed task before it lands in the failed-invocations queue (0-2). @default 2 */
  readonly retryAttempts?: number;
}

/**
 * The fan-out workers (lambda/core/fanout.ts): big rooms' deliveries, a shard of members per invocation, invoked
 * asynchronously by the functions that deliver to rooms (`useFrom`) and by themselves (the other shards, and a shard
 * that runs out of time). Each task is idempotent (one record per shard), so Lambda's retries and duplicate
 * deliveries post to nobody twice; what fails for good lands in the failed-invocations queue.
 *
 * Why asynchronous invocations rather than a queue or Step Functions: all of a big room's shards start at once
 * (Lambda scales asynchronous invocations of a function up to its reserved concurrency within seconds, where an SQS
 * event source starts at a few concurrent batches and adds more per minute), retries and a failure destination come
 * with them, and nothing is billed while nothing is sent. Step Functions would add a state transition per shard
 * and its own quotas for no gain below a room of about a million.
 */
export class RoomFanout extends Construct {
  readonly worker: NodejsFunction;

  constructor(scope: Construct, id: string, props: RoomFanoutProps) {
    super(scope, id);
    const timeout = props.timeout ?? Duration.seconds(60);
    if (timeout.toMilliseconds() < FANOUT_RESERVE_MS + 15_000) {
      throw new Error(`fanout.timeout must be at least ${Math.ceil((FANOUT_RESERVE_MS + 15_000) / 1000)} seconds: a worker keeps ${Math.ceil(FANOUT_RESERVE_MS / 1000)} s in hand for one post's every retry.`);
    }
    this.worker = handlerFunction(this, 'Worker', {
      entry: 'fanout.ts',
      environment: props.realtime.realtimeEnvironment,
      logRetention: props.realtime.logRetention,
      timeout,
      reservedConcurrency: props.reservedConcurrency ?? 50,
      // The workers invoke themselves on purpose (other shards, continuations), in chains bounded by the room's size:
      // Lambda's recursive-loop detection must not stop a long shard's continuations at its 16th link.
      recursiveLoop: lambda.RecursiveLoop.ALLOW,
    });
    props.realtime.grantStoreAccess(this.worker, props.table);
    props.realtime.grantManageConnections(this.worker);
    props.failures.capture(this.worker, { retryAttempts: props.retryAttempts ?? 2, maxEventAge: Duration.hours(6) });
    // Invoking itself (other shards, continuations): a policy of its own, apart from the role's default policy, which
    // the function depends on (granting through it would make the function depend on its own ARN).
    new iam.Policy(this, 'InvokeItself', {
      roles: [this.worker.role!],
      statements: [new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [this.worker.functionArn] })],
    });
  }

  /** Lets `fn` hand big rooms to the workers: it is told their function, and may invoke it (and nothing else of Lambda). */
  useFrom(fn: lambda.Function): void {
    fn.addEnvironment(ENV.fanoutFunction, this.worker.functionArn);
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [this.worker.functionArn] }));
  }
}
