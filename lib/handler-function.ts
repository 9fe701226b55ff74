import * as path from 'node:path';
import { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { LogLevel, NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';

const ROOT = path.join(__dirname, '..');

export interface HandlerFunctionProps {
  /** Handler file under lambda/. */
  readonly entry: string;
  readonly environment: Record<string, string>;
  readonly logRetention: logs.RetentionDays;
  /** @default 10 seconds */
  readonly timeout?: Duration;
  /** Invocations at once, at most, reserved from the account's concurrency. @default none: the account's pool */
  readonly reservedConcurrency?: number;
  /** Whether Lambda may let the function invoke itself in a chain (see RoomFanout). @default Terminate: Lambda stops loops */
  readonly recursiveLoop?: lambda.RecursiveLoop;
}

/**
 * One Gatehouse Lambda: bundled by the local esbuild (minified, source maps, AWS SDK left to the runtime), arm64,
 * its own log group, and a role that can write to that log group and nothing else until granted more.
 */
export function handlerFunction(scope: Construct, id: string, props: HandlerFunctionProps): NodejsFunction {
  const logGroup = new logs.LogGroup(scope, `${id}Logs`, { retention: props.logRetention });
  const role = new iam.Role(scope, `${id}Role`, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  role.addToPolicy(
    new iam.PolicyStatement({
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [logGroup.logGroupArn],
    }),
  );
  return new NodejsFunction(scope, id, {
    entry: path.join(ROOT, 'lambda', props.entry),
    projectRoot: ROOT,
    depsLockFilePath: path.join(ROOT, 'package-lock.json'),
    runtime: lambda.Runtime.NODEJS_24_X,
    architecture: lambda.Architecture.ARM_64,
    memorySize: 512,
    timeout: props.timeout ?? Duration.seconds(10),
    ...(props.reservedConcurrency !== undefined ? { reservedConcurrentExecutions: props.reservedConcurrency } : {}),
    ...(props.recursiveLoop ? { recursiveLoop: props.recursiveLoop } : {}),
    role,
    logGroup,
    environment: { ...props.environment, NODE_OPTIONS: '--enable-source-maps' },
    bundling: {
      minify: true,
      sourceMap: true,
      sourcesContent: false,
      target: 'node24',
      logLevel: LogLevel.WARNING,
      // The Node.js runtime ships AWS SDK v3; bundling it again would only slow cold starts.
      externalModules: ['@aws-sdk/*'],
    },
  });
}
