import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { TABLE } from '../common/table-schema';

export interface ConnectionTableProps {
  /**
   * What happens to the table when the stack is deleted. Its items are short-lived (every one has a TTL of hours
   * at most), so deleting it loses nothing a reconnect does not rebuild. @default RemovalPolicy.DESTROY
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The store: one on-demand table (connections, room memberships and history, sessions, tickets, revocations) with
 * TTL, point-in-time recovery, one sparse index per fan-out audience (user, tenant, room), and one by expiry.
 */
export class ConnectionTable extends Construct {
  readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: ConnectionTableProps = {}) {
    super(scope, id);
    const S = dynamodb.AttributeType.STRING;
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: TABLE.partitionKey, type: S },
      sortKey: { name: TABLE.sortKey, type: S },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: TABLE.ttlAttribute,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.DESTROY,
    });
    for (const index of Object.values(TABLE.indexes)) {
      this.table.addGlobalSecondaryIndex({
        indexName: index.name,
        partitionKey: { name: index.partitionKey, type: S },
        sortKey: { name: index.sortKey, type: S },
        // Fan-out needs the connection id (the index sort key) and the TTL (to skip expired items), plus what
        // the index's own reader needs (the sign-in of a user's sockets, the expiry of due ones): nothing more.
        projectionType: dynamodb.ProjectionType.INCLUDE,
        nonKeyAttributes: [TABLE.ttlAttribute, ...index.include],
      });
    }
  }
}
