/**
 * Keeps cdk.out current: the local system runs the bundles and reads the template that `cdk synth` produces, so it
 * re-synthesizes (same app, cdk-nag included) whenever a source file changed since the last synth. Run as a script
 * (`node --import tsx local/synth.ts`), it synthesizes when stale: `npm start` runs it so, in a child process, so
 * that a Ctrl-C during a long synth is handled at once.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { hashSources } from '../web/build';
import { CDK_OUT, ROOT } from './paths';

/** The stack the local system runs. */
export const LOCAL_STACK = 'Gatehouse';

// Everything that shapes the template or its assets: infrastructure, Lambda code and the contracts it imports, the
// speech image, the web app and the client package it is built with.
const SOURCES = ['bin', 'lib', 'lambda', 'common', 'protocol', 'packages/client/src', 'packages/client/package.json', 'speech', 'web', 'package-lock.json', 'cdk.json'];
const STAMP = path.join(CDK_OUT, '.gatehouse-sources');

/** The sources' hash when cdk.out holds no synth of `stackName` from them as they are now; undefined when it does. */
function staleHash(stackName: string): string | undefined {
  const hash = hashSources(SOURCES);
  const current = existsSync(path.join(CDK_OUT, `${stackName}.template.json`)) && existsSync(STAMP) && readFileSync(STAMP, 'utf8') === hash;
  return current ? undefined : hash;
}

/** Whether cdk.out holds a synth of `stackName` from the sources as they are now. */
export const synthIsCurrent = (stackName: string = LOCAL_STACK): boolean => staleHash(stackName) === undefined;

/**
 * Synthesizes when stale (a source changed since the last synth, or no template); returns whether it did.
 * `starting` is called first when it will, so that a caller can say why the next half-minute is quiet.
 */
export function ensureSynth(stackName: string = LOCAL_STACK, starting?: () => void): boolean {
  const hash = staleHash(stackName);
  if (hash === undefined) return false;
  starting?.();
  // Loaded only when needed: aws-cdk-lib is large and a current cdk.out does not need it.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { App } = require('aws-cdk-lib') as typeof import('aws-cdk-lib');
  const { buildApp } = require('../bin/app') as typeof import('../bin/app');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const cdkJson = JSON.parse(readFileSync(path.join(ROOT, 'cdk.json'), 'utf8')) as { context: Record<string, unknown> };
  const app = new App({ outdir: CDK_OUT, context: { ...cdkJson.context, stackName } });
  buildApp(app);
  app.synth();
  writeFileSync(STAMP, hash);
  return true;
}

if (require.main === module) ensureSynth(LOCAL_STACK);
