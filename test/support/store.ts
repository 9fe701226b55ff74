import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { ConnectionTable } from '../../lib/connection-table';
import { ConnectionStore, type StoreOptions } from '../../lambda/core/store';
import { createTables, startDynamo, tableDefinitions, type LocalDynamo } from '../../local/emulator/dynamodb';

let counter = 0;

/** The connection table exactly as the ConnectionTable construct synthesizes it. */
export function connectionTableTemplate() {
  const stack = new Stack(new App(), 'TableOnly');
  new ConnectionTable(stack, 'Connections');
  return Template.fromStack(stack).toJSON() as Parameters<typeof tableDefinitions>[0];
}

export interface StoreFixture {
  dynamo: LocalDynamo;
  store: ConnectionStore;
  tableName: string;
  /** Waits until the indexes have every write made so far (DynamoDB's "fraction of a second"). */
  indexesCaughtUp(): Promise<void>;
  close(): Promise<void>;
}

export async function startStore(options: StoreOptions = {}): Promise<StoreFixture> {
  // With DynamoDB's index lag: nothing the store guarantees may rest on an index being current.
  const dynamo = await startDynamo({ indexLagMs: 500 });
  const tableName = `connections-${process.pid}-${++counter}`;
  await createTables(dynamo.client, tableDefinitions(connectionTableTemplate(), () => tableName));
  return {
    dynamo,
    tableName,
    store: new ConnectionStore(dynamo.doc, tableName, options),
    async indexesCaughtUp() {
      while (dynamo.pendingIndexWrites > 0) await new Promise((r) => setTimeout(r, 10));
    },
    close: () => dynamo.close(),
  };
}
