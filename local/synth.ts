/**
 * Keeps cdk.out current: the local system runs the bundles and reads the template that `cdk synth` produces, so it
 * re-synthesizes (in process, same app, cdk-nag included) whenever a source file changed since the last synth.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { hashSources } from '../web/build';
import { CDK_OUT, ROOT } from './paths';

// Everything that shapes the template or its assets: infrastructure, Lambda code, the speech image, the web app.
const SOURCES = ['bin', 'lib', 'lambda', 'common', 'client', 'speech', 'web', 'package-lock.json', 'cdk.json'];
const STAMP = path.join(CDK_OUT, '.gatehouse-sources');

/**
 * Synthesizes when stale (a source changed since the last synth, or no template); returns whether it did.
 * `starting` is called first when it will, so that a caller can say why the next half-minute is quiet.
 */
export function ensureSynth(stackName: string, starting?: () => void): boolean {
  const hash = hashSources(SOURCES);
  const current = existsSync(path.join(CDK_OUT, `${stackName}.template.json`)) && existsSync(STAMP) && readFileSync(STAMP, 'utf8') === hash;
  if (current) return false;
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
