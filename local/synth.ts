/**
 * Keeps cdk.out current: the local system runs the bundles and reads the template that `cdk synth` produces, so it
 * re-synthesizes (in process, same app, cdk-nag included) whenever a source file changed since the last synth.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { CDK_OUT, ROOT } from './template';

// Everything that shapes the template or its assets: infrastructure, Lambda code, the speech image, the web app.
const SOURCES = ['bin', 'lib', 'lambda', 'common', 'speech', 'web'];
const SKIP = new Set(['node_modules', 'dist', '.vite']);
const FILES = ['package-lock.json', 'cdk.json'];
const STAMP = path.join(CDK_OUT, '.gatehouse-sources');

function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    if (SKIP.has(name)) return [];
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? walk(full) : [full];
  });
}

/** A hash of everything the synthesized output depends on. */
export function sourceHash(): string {
  const hash = createHash('sha256');
  const files = [...SOURCES.flatMap((d) => walk(path.join(ROOT, d))), ...FILES.map((f) => path.join(ROOT, f))].sort();
  for (const file of files) {
    hash.update(path.relative(ROOT, file));
    hash.update(readFileSync(file));
  }
  return hash.digest('hex');
}

export function isSynthCurrent(stackName: string): boolean {
  return (
    existsSync(path.join(CDK_OUT, `${stackName}.template.json`)) &&
    existsSync(STAMP) &&
    readFileSync(STAMP, 'utf8') === sourceHash()
  );
}

/** Synthesizes when stale; returns whether it did. */
export function ensureSynth(stackName: string): boolean {
  if (isSynthCurrent(stackName)) return false;
  const hash = sourceHash();
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
