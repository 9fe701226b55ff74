import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { LEGACY_INDEXES, TABLE } from '../common/table-schema';

export type LegacyIndex = keyof typeof LEGACY_INDEXES;

export interface ConnectionTableProps {
  /**
   * What happens to the table when the stack is deleted. Its items are short-lived (every one has a TTL of hours
   * at most), so deleting it loses nothing a reconnect does not rebuild. @default RemovalPolicy.DESTROY
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Indexes of the earlier layout (byUser, byTenant, byRoom) to keep defined, unused, while a stack deployed with
   * them is upgraded: CloudFormation deletes at most one global secondary index per update. @default none
   */
  readonly legacyIndexes?: LegacyIndex[];
}

/**
 * The store: one on-demand table (connections, room members, users' connections, room counters and history,
 * sessions, tickets, revocations) with TTL and point-in-time recovery. Guarantees rest on strongly consistent
 * reads of the table itself; the one index, by credential expiry, only points the sweeper at candidates.
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
    const indexes = [
      ...Object.values(TABLE.indexes),
      ...(props.legacyIndexes ?? []).map((name) => ({ name, sortKey: 'connectionId', ...LEGACY_INDEXES[name] })),
    ];
    for (const index of indexes) {
      this.table.addGlobalSecondaryIndex({
        indexName: index.name,
        partitionKey: { name: index.partitionKey, type: S },
        sortKey: { name: index.sortKey, type: S },
        // The connection id (the index sort key), the TTL (to skip expired items) and what the reader needs.
        projectionType: dynamodb.ProjectionType.INCLUDE,
        nonKeyAttributes: [TABLE.ttlAttribute, ...index.include],
      });
    }
  }
}
