/**
 * DynamoDB on loopback: dynalite, a real engine (tables, GSIs, conditions, pagination), with every table created
 * from the synthesized CloudFormation template, so the local schema cannot drift from the deployed one.
 * In memory by default; on disk under `path` when given.
 */
import type { AddressInfo } from 'node:net';
import { CreateTableCommand, DynamoDBClient, ListTablesCommand, type CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import dynalite from 'dynalite';

import type { Template } from './template';

/** CreateTable inputs for every AWS::DynamoDB::Table in the template (billing and TTL are not emulated). */
export function tableDefinitions(template: Template, tableName: (logicalId: string) => string): CreateTableCommandInput[] {
  return Object.entries(template.Resources)
    .filter(([, r]) => r.Type === 'AWS::DynamoDB::Table')
    .map(([logicalId, { Properties: p = {} }]) => ({
      TableName: tableName(logicalId),
      AttributeDefinitions: p.AttributeDefinitions,
      KeySchema: p.KeySchema,
      BillingMode: 'PAY_PER_REQUEST',
      ...(p.GlobalSecondaryIndexes
        ? {
            GlobalSecondaryIndexes: p.GlobalSecondaryIndexes.map((g: any) => ({
              IndexName: g.IndexName,
              KeySchema: g.KeySchema,
              Projection: g.Projection,
            })),
          }
        : {}),
    }));
}

export interface LocalDynamo {
  endpoint: string;
  client: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  close(): Promise<void>;
}

export async function startDynamo(options: { port?: number; path?: string; region?: string } = {}): Promise<LocalDynamo> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, ...(options.path ? { path: options.path } : {}) });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = new DynamoDBClient({
    endpoint,
    region: options.region ?? 'eu-west-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  return {
    endpoint,
    client,
    doc: DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } }),
    async close() {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Creates each table unless it exists (a persistent state folder keeps them between runs). */
export async function createTables(client: DynamoDBClient, definitions: CreateTableCommandInput[]): Promise<void> {
  const { TableNames = [] } = await client.send(new ListTablesCommand({}));
  for (const definition of definitions) {
    if (!TableNames.includes(definition.TableName!)) await client.send(new CreateTableCommand(definition));
  }
}
