#!/usr/bin/env node
// The `gatehouse` command. Installed from the package it runs the build (dist/cli.cjs); inside the Gatehouse
// checkout, where the sources are, it runs them through tsx, so the CLI there is never an out-of-date build.
const { existsSync } = require('node:fs');
const path = require('node:path');

const source = path.join(__dirname, '..', 'src', 'cli.ts');
if (existsSync(source)) {
  require('tsx/cjs/api').register();
  require(source);
} else {
  require('../dist/cli.cjs');
}
