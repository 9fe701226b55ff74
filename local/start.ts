/**
 * `npm start`: synthesizes if the sources changed, starts the local system, prints where everything is and who can
 * sign in, and stops cleanly on Ctrl-C (sockets closed with $disconnect, child processes ended, ports freed).
 *
 * Ctrl-C always ends it within STOP_DEADLINE_MS: during startup at once, after it gracefully, and if any part of
 * the graceful stop hangs, by exiting anyway (the process's 'exit' kills cognito-local; the kernel frees the
 * ports of everything in process). The synth and the web build run in a child process for that reason: done in
 * this one, they would hold the event loop for up to a minute, and no signal handler could run until they ended.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { LOCAL_CONFIG, writeLocalConfig } from './config';
import { synthIsCurrent } from './synth';
import { startInspector, type Inspector } from './inspect';
import { createLogPrinter } from './log-format';
import { exactOrigin, startLocalSystem, type LocalSystem } from './system';
import { ROOT } from './paths';
import { WEB_DIST, webBuildIsCurrent } from '../web/build';

/** The longest a Ctrl-C waits for the graceful stop before the process leaves anyway. */
const STOP_DEADLINE_MS = 4_000;

const HELP = `Usage: npm start -- [options]

  --port <n>            gateway port: WebSocket API, @connections, EventBridge (default 8787)
  --cognito-port <n>    cognito-local port (default 9229)
  --dynamo-port <n>     dynalite port (default 8000)
  --state <dir>         keep DynamoDB and Cognito state in <dir> (default: in memory, gone on exit)
  --idle-timeout <s>    close sockets idle this long (API Gateway: 600)
  --max-connection <s>  close sockets this old (API Gateway: 7200)
  --no-disconnect       never deliver $disconnect (stale-connection mode)
  --token-seconds <n>   issue access tokens that live n seconds (to watch sockets expire; default: the template's)
  --sweep-seconds <n>   run the expiry sweeper every n seconds (default 60, twice per run, as deployed)
  --index-lag <ms>      how late DynamoDB's indexes see a write (default 200; 0 for none)
  --config <file>       where to write the description the CLI reads (default .gatehouse/local.json)
  --web-auth token      the web app signs in with Amplify in the browser (default: session, an HttpOnly cookie)
  --allow-origin <o>    also let pages from origin <o> (e.g. http://localhost:5173) open sockets; repeatable
  --quiet               do not print function logs
  --inspect             serve a debugging page on loopback: live connections and recent deliveries
  --json                print function logs as the JSON lines they write (default: one readable line each)
`;

function banner(system: LocalSystem, startupMs: number, synthesized: boolean, webAuthMode: string, inspector?: string): string {
  const users = system.users
    .map((u) => `    ${u.email.padEnd(20)} ${u.password.padEnd(16)} tenants: ${u.tenants.join(', ')}${u.admin ? '  (admin)' : ''}`)
    .join('\n');
  return `
Gatehouse is running locally (${synthesized ? 'synthesized, then ' : ''}started in ${(startupMs / 1000).toFixed(1)} s)

  Web app           ${system.urls.edge}   (the local CloudFront: same paths as deployed; ${webAuthMode} sign-in)
  Realtime          ${system.urls.realtime}
  Speech            ${system.urls.speech}   (local speech provider)
  WebSocket API     ${system.urls.websocket}   (API Gateway's own stage URL)
  @connections      ${system.urls.connections}/@connections/{id}
  EventBridge       ${system.urls.events}   (bus ${system.eventBusName})
  Cognito           ${system.urls.cognito}   (pool ${system.userPoolId}, client ${system.clientId})
  DynamoDB          ${system.urls.dynamodb}
${inspector ? `  Inspector         ${inspector}   (live connections and recent deliveries)\n` : ''}
  Demo users (password flow):
${users}

  Try it:
    npx gatehouse connect --user alice@acme.test --room general
    npx gatehouse publish --tenant acme --room jobs --type job.progress --payload '{"job":"42","percent":50}'

  Cookie sign-in (as the web app does it): POST ${system.urls.edge}/api/login {"email","password"} from the app origin.

  Ctrl-C stops everything.
`;
}

/** How often a step in progress says how long it has taken so far (a terminal's line is rewritten every second). */
const PROGRESS_EVERY_MS = 5_000;

/**
 * Runs `script` (a synth or a build that is stale) in a child Node process, saying what it is doing and for how
 * long, and returns once it succeeded; its output is shown only if it failed. `running.step` is the child while it
 * runs, for the signal handler to stop.
 */
async function step(label: string, script: string, running: { step?: ChildProcess }): Promise<void> {
  const began = Date.now();
  const seconds = () => `${((Date.now() - began) / 1000).toFixed(0)} s`;
  const tty = process.stdout.isTTY === true;
  process.stdout.write(tty ? `… ${label}` : `… ${label}\n`);
  const ticker = setInterval(() => process.stdout.write(tty ? `\r… ${label} (${seconds()})` : `… ${label} (${seconds()})\n`), tty ? 1_000 : PROGRESS_EVERY_MS);
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, script)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  running.step = child;
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('close', (c, sig) => resolve([c, sig])));
  clearInterval(ticker);
  running.step = undefined;
  if (code !== 0) {
    if (tty) process.stdout.write('\n');
    // Ended by a terminal's Ctrl-C, which reached this process too: its handler exits and says so (a moment is
    // enough for it to run; a signal to the child alone ends in the error below).
    if (signal === 'SIGINT' || signal === 'SIGTERM') await new Promise((resolve) => setTimeout(resolve, 1_000));
    throw new Error(`${label} failed (${signal ?? `exit code ${code}`}):\n${output.trimEnd()}`);
  }
  process.stdout.write(`${tty ? '\r' : ''}✓ ${label} (${((Date.now() - began) / 1000).toFixed(1)} s)\n`);
}

async function main(): Promise<void> {
  // Node 20 is supported here; the SDK's notice about its future Node 22 requirement would only add noise.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const started = Date.now();
  // Handled from the first moment: a Ctrl-C during startup must not leave cognito-local running on its port.
  const running: { system?: LocalSystem; configFile?: string; inspector?: Inspector; step?: ChildProcess } = {};
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) process.exit(130); // a second Ctrl-C: leave now
    stopping = true;
    const { system } = running;
    if (!system) {
      // A synth or build in progress: its child is ended too (a terminal's Ctrl-C reaches it anyway; a kill of this
      // process alone does not), and its half-written output is redone by the next start (the stamp comes last).
      running.step?.kill('SIGKILL');
      process.stdout.write(`\n${signal} during startup: stopped.\n`);
      process.exit(130);
    }
    process.stdout.write(`\n${signal}: closing sockets and stopping services...\n`);
    setTimeout(() => {
      process.stderr.write(`The services did not stop within ${STOP_DEADLINE_MS / 1000} s; leaving anyway.\n`);
      process.exit(1);
    }, STOP_DEADLINE_MS).unref();
    await running.inspector?.stop();
    await system.stop();
    process.stdout.write('Stopped.\n');
    process.exit(0);
  };
  // The terminal or pipe reading us went away (`npm start | head`, a closed tab): printing fails with EPIPE, which
  // must not turn a graceful stop into a crash.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
    });
  }
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  // However the process ends, the CLI must not find a description of a system that is gone.
  process.on('exit', () => running.configFile && rmSync(running.configFile, { force: true }));

  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '8787' },
      'cognito-port': { type: 'string', default: '9229' },
      'dynamo-port': { type: 'string', default: '8000' },
      state: { type: 'string' },
      'idle-timeout': { type: 'string' },
      'max-connection': { type: 'string' },
      'no-disconnect': { type: 'boolean', default: false },
      'token-seconds': { type: 'string' },
      'sweep-seconds': { type: 'string' },
      'index-lag': { type: 'string', default: '200' },
      'web-auth': { type: 'string', default: 'session' },
      'allow-origin': { type: 'string', multiple: true, default: [] },
      config: { type: 'string', default: LOCAL_CONFIG },
      quiet: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      inspect: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const webAuthMode = values['web-auth'];
  if (webAuthMode !== 'session' && webAuthMode !== 'token') throw new Error(`--web-auth must be "session" or "token", not "${webAuthMode}".`);
  const seconds = (v: string | undefined) => (v === undefined ? undefined : Number(v) * 1000);
  const indexLagMs = Number(values['index-lag']);
  if (!Number.isInteger(indexLagMs) || indexLagMs < 0) throw new Error(`--index-lag takes milliseconds (0 or more), not "${values['index-lag']}".`);
  const allowedOrigins = values['allow-origin'].map(exactOrigin);
  const printLog = createLogPrinter({ json: values.json });

  // The synth builds the web app too, as an asset; a current synth may still find the build stale (its own inputs).
  const synthesized = !synthIsCurrent();
  if (synthesized) await step('synthesizing the CDK app (sources changed since the last synth)', 'local/synth.ts', running);
  if (!webBuildIsCurrent()) await step('building the web app', 'web/build.ts', running);
  const webDir = WEB_DIST;
  const system = await startLocalSystem({
    webDir,
    port: Number(values.port),
    cognitoPort: Number(values['cognito-port']),
    dynamoPort: Number(values['dynamo-port']),
    ...(values.state ? { stateDir: path.resolve(values.state) } : {}),
    ...(values['idle-timeout'] ? { idleTimeoutMs: seconds(values['idle-timeout']) } : {}),
    ...(values['max-connection'] ? { maxConnectionMs: seconds(values['max-connection']) } : {}),
    deliverDisconnect: !values['no-disconnect'],
    indexLagMs,
    webAuthMode,
    allowedOrigins,
    ...(values['token-seconds'] ? { accessTokenSeconds: Number(values['token-seconds']) } : {}),
    ...(values['sweep-seconds'] ? { scheduleIntervalMs: Number(values['sweep-seconds']) * 1000, functionEnv: { SWEEP_EVERY_SECONDS: '60' } } : {}),
    log: (source, line) => {
      // cognito-local's own chatter says nothing a developer of Gatehouse needs.
      if (values.quiet || source === 'cognito') return;
      process.stdout.write(`${printLog(source, line)}\n`);
    },
  });

  const configFile = path.resolve(values.config);
  writeLocalConfig(system, configFile);
  running.configFile = configFile;
  running.system = system;
  if (values.inspect) running.inspector = await startInspector(system);
  process.stdout.write(banner(system, Date.now() - started, synthesized, webAuthMode, running.inspector?.url));
}

main().catch((err: Error) => {
  process.stderr.write(`npm start failed: ${err.message}\n`);
  if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') process.stderr.write('A port is in use: pass --port, --cognito-port or --dynamo-port.\n');
  process.exit(1);
});
