/**
 * Small hand-written templates and Lambda bundles for the emulator's own tests: they exercise one AWS rule each,
 * independently of Gatehouse's stack (the emulator knows nothing of Gatehouse, and neither do these).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Resource, Template } from '../../local/emulator/template';

/** A cloud assembly folder holding bundles, each a single index.js. */
export class Assembly {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'emulator-assembly-'));

  /** Writes a bundle and returns the `Code` property a template points at it with. */
  bundle(source: string): { S3Bucket: string; S3Key: string } {
    const hash = createHash('sha256').update(source).digest('hex');
    mkdirSync(path.join(this.dir, `asset.${hash}`), { recursive: true });
    writeFileSync(path.join(this.dir, `asset.${hash}`, 'index.js'), source);
    return { S3Bucket: 'assets', S3Key: `${hash}.zip` };
  }
}

export function lambdaFunction(assembly: Assembly, source: string, properties: Record<string, unknown> = {}): Resource {
  return {
    Type: 'AWS::Lambda::Function',
    Properties: { Code: assembly.bundle(source), Handler: 'index.handler', Runtime: 'nodejs24.x', Timeout: 5, MemorySize: 256, Role: { 'Fn::GetAtt': ['FnRole', 'Arn'] }, ...properties },
  };
}

/** A role and its inline policy statements. */
export function role(statements: unknown[]): Resource {
  return {
    Type: 'AWS::IAM::Role',
    Properties: {
      AssumeRolePolicyDocument: { Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }] },
      Policies: [{ PolicyName: 'inline', PolicyDocument: { Version: '2012-10-17', Statement: statements } }],
    },
  };
}

export const table = (properties: Record<string, unknown> = {}): Resource => ({
  Type: 'AWS::DynamoDB::Table',
  Properties: {
    AttributeDefinitions: [
      { AttributeName: 'pk', AttributeType: 'S' },
      { AttributeName: 'byColour', AttributeType: 'S' },
    ],
    KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
    GlobalSecondaryIndexes: [{ IndexName: 'colour', KeySchema: [{ AttributeName: 'byColour', KeyType: 'HASH' }], Projection: { ProjectionType: 'ALL' } }],
    TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
    BillingMode: 'PAY_PER_REQUEST',
    ...properties,
  },
});

export const template = (resources: Record<string, Resource>): Template => ({ Resources: resources });

export { waitUntil as eventually } from '../support/wait';
