/**
 * Cold start: each Lambda's bundle, and the time a fresh Node process takes to load it and answer a first
 * invocation against the local stand-ins, next to the same entry bundled without minification and tree-shaking.
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { build } from 'esbuild';
import { SESSION_COOKIE } from '../common/credentials';
import { PUBLISH_DETAIL_TYPE } from '../protocol';
import { ConnectionStore } from '../lambda/core/store';
import { LocalFunction, type FunctionSpec } from '../local/emulator/lambda';
import { ensureSynth } from '../local/synth';
import { startLocalSystem, type LocalSystem } from '../local/system';
import { CDK_OUT, ROOT } from '../local/paths';
import { kib, median, num, ratio, sleep, type Bench, type Section } from './report';

const LAMBDA_DIR = path.join(ROOT, 'lambda');
const USER = 'alice@acme.test';

// Plain JavaScript, run by a bare `node` (no TypeScript loader, nothing preloaded). Timestamps are milliseconds
// since the process started (performance.timeOrigin); the figures go to fd 3 so the function's own log lines on
// stdout cannot mix with them. The bundle's external modules (the AWS SDK) are required first, from the bundle's
// own location, so that the load splits into the SDK (the same code for both variants) and the bundle itself.
const HARNESS = `'use strict';
const { writeSync } = require('node:fs');
const { createRequire } = require('node:module');
const [file, name, eventJson, externalsJson] = process.argv.slice(2);
const event = JSON.parse(eventJson);
const externals = JSON.parse(externalsJson);
const context = {
  awsRequestId: 'cold-start', functionName: process.env.AWS_LAMBDA_FUNCTION_NAME, functionVersion: '$LATEST',
  memoryLimitInMB: '512', callbackWaitsForEmptyEventLoop: true, getRemainingTimeInMillis: () => 10000,
};
const bundleRequire = createRequire(file);
const boot = performance.now();
for (const id of externals) bundleRequire(id);
const sdk = performance.now();
const handler = bundleRequire(file)[name];
const loaded = performance.now();
Promise.resolve()
  .then(() => handler(event, context))
  .then(
    (result) => {
      const answered = performance.now();
      writeSync(3, JSON.stringify({ boot, sdk, loaded, answered, result }));
      process.exit(0);
    },
    (err) => {
      writeSync(3, JSON.stringify({ error: String((err && err.stack) || err) }));
      process.exit(1);
    },
  );
`;

interface Run {
  /** Process start to harness running: Node's own boot, the same for both variants. */
  boot: number;
  /** require() of the bundle's external modules (the AWS SDK). */
  sdk: number;
  /** require() of the bundle itself: its own module init (AWS clients created, configuration read). */
  load: number;
  /** The first invocation, from call to resolved answer. */
  invoke: number;
  /** Process start to answer. */
  total: number;
  result: unknown;
}

interface Variant {
  /** The file to require and the export to call. */
  file: string;
  exportName: string;
  bytes: number;
  /** The modules it leaves to the runtime. */
  externals: string[];
}

/** The external modules a bundle requires, read from its text (esbuild keeps `require("<id>")` as written). */
const externalsOf = (file: string) => [...new Set([...readFileSync(file, 'utf8').matchAll(/require\("(@aws-sdk\/[^"]+)"\)/g)].map((m) => m[1]))].sort();

/** One function of the stack: how to give its first invocation real work, and how to tell it succeeded. */
interface Case {
  label: string;
  /** Extra environment for the measured process. */
  env?: Record<string, string>;
  /** Prepares the state the invocation needs and returns its event. */
  event(): Promise<unknown>;
  /** Throws unless the answer is the expected success: a cold start that ends in an error path measures nothing. */
  check(result: unknown, event: unknown): Promise<void>;
  /** Undoes what the invocation left behind, so the next run starts from the same state. */
  after?(event: unknown): Promise<void>;
}

function fail(label: string, what: string, result: unknown): never {
  throw new Error(`${label}: ${what}, got ${JSON.stringify(result)}`);
}

const newConnectionId = () => randomBytes(10).toString('base64');

/** The lambda/ entry a deployed bundle was built from, read from its source map; undefined for CDK's own functions. */
function entryOf(spec: FunctionSpec): string | undefined {
  const file = `${spec.handler.slice(0, spec.handler.lastIndexOf('.'))}.js`;
  const map = path.join(spec.dir, `${file}.map`);
  if (!existsSync(map)) return undefined;
  const { sources, sourceRoot } = JSON.parse(readFileSync(map, 'utf8')) as { sources: string[]; sourceRoot?: string };
  const entries = sources.map((s) => path.resolve(spec.dir, sourceRoot ?? '', s)).filter((s) => path.dirname(s) === LAMBDA_DIR && s.endsWith('.ts'));
  if (entries.length > 1) throw new Error(`Function ${spec.name} bundles several entries: ${entries.join(', ')}`);
  return entries[0] && path.basename(entries[0], '.ts');
}

/** A fresh process that loads one bundle and answers one event. */
function coldRun(harness: string, variant: Variant, env: Record<string, string>, event: unknown, label: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [harness, variant.file, variant.exportName, JSON.stringify(event), JSON.stringify(variant.externals)], {
      env,
      cwd: path.dirname(variant.file),
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    let output = '';
    let figures = '';
    child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    (child.stdio[3] as Readable).on('data', (c: Buffer) => (figures += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let parsed: { boot: number; sdk: number; loaded: number; answered: number; result: unknown; error?: string } | undefined;
      try {
        parsed = figures ? JSON.parse(figures) : undefined;
      } catch {
        parsed = undefined;
      }
      if (code !== 0 || !parsed || parsed.error) {
        reject(new Error(`${label} (${variant.file}) failed (${signal ?? `exit ${code}`}): ${parsed?.error ?? ''}\n${output.slice(-2000)}`));
        return;
      }
      resolve({ boot: parsed.boot, sdk: parsed.sdk - parsed.boot, load: parsed.loaded - parsed.sdk, invoke: parsed.answered - parsed.loaded, total: parsed.answered, result: parsed.result });
    });
  });
}

/** The events and checks of the seven functions, keyed by their entry in lambda/. */
async function cases(system: LocalSystem, byEntry: Map<string, FunctionSpec>, warm: (entry: string) => LocalFunction): Promise<Record<string, Case>> {
  const spec = (entry: string) => byEntry.get(entry)!;
  const store = new ConnectionStore(system.dynamo.doc, spec('connect').env.TABLE_NAME);
  const { accessToken } = await system.signIn(USER);
  const host = new URL(system.urls.edge).host;
  const methodArn = `arn:aws:execute-api:${system.region}:000000000000:localapi/${system.stage}/$connect`;

  // What API Gateway puts in every WebSocket event, for one connection.
  const wsEvent = (connectionId: string, routeKey: string, eventType: string, extra: Record<string, unknown> = {}) => ({
    headers: { Host: host, 'User-Agent': 'gatehouse-bench' },
    multiValueHeaders: { Host: [host], 'User-Agent': ['gatehouse-bench'] },
    requestContext: {
      routeKey,
      eventType,
      stage: system.stage,
      connectionId,
      requestId: randomUUID(),
      domainName: host,
      apiId: 'localapi',
      connectedAt: Date.now(),
      requestTimeEpoch: Date.now(),
      identity: { sourceIp: '127.0.0.1', userAgent: 'gatehouse-bench' },
      ...extra,
    },
    isBase64Encoded: false,
  });
  const authorizerEvent = () => ({
    type: 'REQUEST',
    methodArn,
    headers: { Host: host, Authorization: `Bearer ${accessToken}` },
    multiValueHeaders: { Host: [host], Authorization: [`Bearer ${accessToken}`] },
    queryStringParameters: {},
    multiValueQueryStringParameters: {},
    stageVariables: {},
    requestContext: wsEvent(newConnectionId(), '$connect', 'CONNECT').requestContext,
  });

  // The identity every later route sees: the authorizer's own answer (from a warm container), as API Gateway
  // passes it on (strings, principal id beside them).
  const allowed = (await warm('authorizer').invoke(authorizerEvent())) as { principalId: string; context?: Record<string, unknown> };
  if (!allowed?.context?.tenantId) fail('setup', 'the authorizer should allow the user', allowed);
  const authorizer: Record<string, string> = { principalId: allowed.principalId, ...Object.fromEntries(Object.entries(allowed.context).map(([k, v]) => [k, String(v)])) };
  const connectEvent = (connectionId: string, identity = authorizer) => wsEvent(connectionId, '$connect', 'CONNECT', { authorizer: identity });
  /** Opens a connection through the connect function itself, in a warm container. */
  const connect = async (identity = authorizer) => {
    const connectionId = newConnectionId();
    const answer = (await warm('connect').invoke(connectEvent(connectionId, identity))) as { statusCode?: number };
    if (answer?.statusCode !== 200) fail('setup', 'connect should answer 200', answer);
    return connectionId;
  };
  const connectionIdOf = (event: unknown) => (event as { requestContext: { connectionId: string } }).requestContext.connectionId;

  const messageConnection = await connect();

  // The session API's cookie: a real sign-in through the local HTTP API.
  const login = await fetch(`${system.urls.edge}/api/login`, {
    method: 'POST',
    headers: { origin: system.urls.edge, 'content-type': 'application/json' },
    body: JSON.stringify({ email: USER, password: system.users.find((u) => u.email === USER)?.password }),
  });
  const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).find((c) => c.startsWith(`${SESSION_COOKIE}=`));
  if (login.status !== 200 || !cookie) fail('setup', 'POST /api/login should set the session cookie', { status: login.status, body: await login.text() });

  return {
    authorizer: {
      label: 'Realtime authorizer',
      event: async () => authorizerEvent(),
      check: async (result, event) => {
        const r = result as { principalId?: string; policyDocument?: { Statement?: Array<{ Effect?: string; Resource?: string }> } };
        const statement = r?.policyDocument?.Statement?.[0];
        if (statement?.Effect !== 'Allow' || statement.Resource !== (event as { methodArn: string }).methodArn || r.principalId !== authorizer.principalId) {
          fail('authorizer', 'an Allow policy for the user', result);
        }
      },
    },
    connect: {
      label: '$connect',
      event: async () => connectEvent(newConnectionId()),
      check: async (result, event) => {
        if ((result as { statusCode?: number })?.statusCode !== 200) fail('connect', 'statusCode 200', result);
        if (!(await store.getConnection(connectionIdOf(event)))) fail('connect', 'the connection to be stored', result);
      },
      // A user may hold only so many connections: remove it, through the disconnect function.
      after: async (event) => void (await warm('disconnect').invoke(wsEvent(connectionIdOf(event), '$disconnect', 'DISCONNECT', { authorizer }))),
    },
    disconnect: {
      label: '$disconnect',
      event: async () =>
        wsEvent(await connect(), '$disconnect', 'DISCONNECT', { authorizer, disconnectStatusCode: 1000, disconnectReason: 'Normal closure' }),
      check: async (result, event) => {
        if ((result as { statusCode?: number })?.statusCode !== 200) fail('disconnect', 'statusCode 200', result);
        if (await store.getConnection(connectionIdOf(event))) fail('disconnect', 'the connection to be removed', result);
      },
    },
    message: {
      label: 'Message routes',
      event: async () => ({
        ...wsEvent(messageConnection, 'whoami', 'MESSAGE', { authorizer, messageId: randomUUID(), messageDirection: 'IN' }),
        body: JSON.stringify({ action: 'whoami', id: 'cold-start' }),
      }),
      check: async (result) => {
        const r = result as { statusCode?: number; body?: string };
        const reply = r?.body ? (JSON.parse(r.body) as { type?: string; userId?: string }) : undefined;
        if (r?.statusCode !== 200 || reply?.type !== 'whoami' || reply.userId !== authorizer.principalId) fail('message', 'a whoami reply', result);
      },
    },
    api: {
      label: 'Session API',
      event: async () => {
        const now = Date.now();
        return {
          version: '2.0',
          routeKey: 'GET /api/session',
          rawPath: '/api/session',
          rawQueryString: '',
          cookies: [cookie],
          headers: { host, 'user-agent': 'gatehouse-bench' },
          requestContext: {
            accountId: '000000000000',
            apiId: 'localhttpapi',
            domainName: host,
            http: { method: 'GET', path: '/api/session', protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'gatehouse-bench' },
            requestId: randomUUID(),
            routeKey: 'GET /api/session',
            stage: '$default',
            time: new Date(now).toISOString(),
            timeEpoch: now,
          },
          isBase64Encoded: false,
        };
      },
      check: async (result) => {
        const r = result as { statusCode?: number; body?: string };
        if (r?.statusCode !== 200 || !(JSON.parse(r.body ?? '{}') as { signedIn?: boolean }).signedIn) fail('api', 'GET /api/session: 200, signed in', result);
      },
    },
    sweeper: {
      label: 'Expiry sweeper',
      // One sweep per invocation (a scheduled minute runs two, half a minute apart: waiting, not work).
      env: { SWEEP_EVERY_SECONDS: '60' },
      event: async () => {
        // A connection whose credential just expired: the sweep tells it, finds it gone and removes it.
        await connect({ ...authorizer, tokenExpiresAt: String(Math.floor(Date.now() / 1000) - 5) });
        // The sweeper finds it through the expiry index, which sees the write a moment later (as DynamoDB's does).
        while (system.dynamo.pendingIndexWrites > 0) await sleep(10);
        return { version: '0', id: randomUUID(), 'detail-type': 'Scheduled Event', source: 'aws.events', account: '000000000000', time: new Date().toISOString(), region: system.region, resources: [], detail: {} };
      },
      check: async (result) => {
        const r = result as { closed?: number; gone?: number };
        if (!((r?.closed ?? 0) + (r?.gone ?? 0) >= 1)) fail('sweeper', 'the expired connection swept', result);
      },
    },
    fanout: {
      label: 'Room fan-out worker',
      // A big room's delivery task, as the message function hands it on; the room has no members left, so the
      // worker claims the shard, reads the room's partition and records it delivered.
      event: async () => ({
        kind: 'room',
        tenantId: authorizer.tenantId,
        room: `cold-start-fanout-${randomUUID()}`,
        seq: 1,
        event: JSON.stringify({ type: 'message', room: 'cold-start', seq: 1, data: 'tick' }),
      }),
      check: async (_result, event) => {
        const task = event as { tenantId: string; room: string; seq: number };
        const again = await store.fanouts.claim(task.tenantId, task.room, task.seq, 0, Date.now());
        if (again.claimed || !again.done) fail('fanout', 'the shard recorded as delivered', again);
      },
    },
    publish: {
      label: 'Publishing fan-out',
      event: async () => ({
        version: '0',
        id: randomUUID(),
        'detail-type': PUBLISH_DETAIL_TYPE,
        source: 'bench.cold-start',
        account: '000000000000',
        time: new Date().toISOString(),
        region: system.region,
        resources: [],
        detail: { tenantId: authorizer.tenantId, room: 'cold-start', type: 'bench.tick', payload: { at: Date.now() } },
      }),
      check: async (result) => {
        if ((result as { delivered?: boolean })?.delivered !== true) fail('publish', 'delivered: true', result);
      },
    },
  };
}

/** Median absolute deviation: the run-to-run spread, robust to the odd slow run. */
const spread = (samples: number[]) => {
  const m = median(samples);
  return median(samples.map((s) => Math.abs(s - m)));
};

export const coldStartBench: Bench = async ({ full, log }): Promise<Section> => {
  const runs = full ? 30 : 10;
  if (ensureSynth('Gatehouse')) log('synthesized cdk.out');
  // Next to the assets in cdk.out, at the same depth: the external @aws-sdk/* resolve from the same node_modules,
  // through the same number of lookups.
  const tmp = mkdtempSync(path.join(CDK_OUT, '.cold-start-'));
  const harness = path.join(tmp, 'harness.js');
  writeFileSync(harness, HARNESS);
  const warmFunctions = new Map<string, LocalFunction>();
  let system: LocalSystem | undefined;
  try {
    system = await startLocalSystem({
      log: () => undefined,
      // No scheduled sweeps running in the background during the measurements.
      scheduleIntervalMs: 2 ** 31 - 1,
    });

    // Each deployed function, by the entry its bundle was built from; every entry in lambda/ must be deployed.
    const byEntry = new Map<string, FunctionSpec>();
    for (const spec of system.functions.values()) {
      const entry = entryOf(spec);
      if (!entry) continue;
      if (byEntry.has(entry)) throw new Error(`Two functions bundle lambda/${entry}.ts: ${byEntry.get(entry)!.name}, ${spec.name}`);
      byEntry.set(entry, spec);
    }
    const entries = readdirSync(LAMBDA_DIR).filter((f) => f.endsWith('.ts')).map((f) => path.basename(f, '.ts')).sort();
    const missing = entries.filter((e) => !byEntry.has(e));
    if (missing.length) throw new Error(`No deployed function found for lambda/${missing.join('.ts, lambda/')}.ts (read from the bundles' source maps)`);

    const warm = (entry: string) => {
      let fn = warmFunctions.get(entry);
      if (!fn) warmFunctions.set(entry, (fn = new LocalFunction(byEntry.get(entry)!, () => undefined)));
      return fn;
    };
    const all = await cases(system, byEntry, warm);
    const unknown = entries.filter((e) => !all[e]);
    if (unknown.length) throw new Error(`No cold-start case for lambda/${unknown.join('.ts, lambda/')}.ts: add one to bench/cold-start.ts`);

    const rows: string[][] = [];
    const sum = { bytes: [0, 0], mapBytes: 0, sdk: [0, 0], load: [0, 0], invoke: [0, 0], total: [0, 0] };
    const boots: number[] = [];
    const faster: string[] = [];
    /** Functions whose own require is quicker deployed than unminified. */
    let leaner = 0;
    const sdkRatios: number[] = [];
    const cell = (x: number, y: number, format = (n: number) => num(n)) => `${format(x)} / ${format(y)} (${ratio(y, x)})`;
    for (const entry of entries) {
      const spec = byEntry.get(entry)!;
      const c = all[entry];
      const dot = spec.handler.lastIndexOf('.');
      const deployedFile = path.join(spec.dir, `${spec.handler.slice(0, dot)}.js`);
      const exportName = spec.handler.slice(dot + 1);
      // The alternative: the same entry and externals, neither minified nor tree-shaken (the target makes no
      // difference to this code: node20 and node24 give the same output).
      const altFile = path.join(tmp, `${entry}.js`);
      await build({
        entryPoints: [path.join(LAMBDA_DIR, `${entry}.ts`)],
        bundle: true,
        platform: 'node',
        format: 'cjs',
        target: 'node20',
        minify: false,
        treeShaking: false,
        external: ['@aws-sdk/*'],
        outfile: altFile,
        logLevel: 'warning',
      });
      const variants: Variant[] = [deployedFile, altFile].map((file) => ({ file, exportName, bytes: statSync(file).size, externals: externalsOf(file) }));
      if (variants[0].externals.join() !== variants[1].externals.join()) {
        throw new Error(`${c.label}: the variants require different SDK modules (${variants[0].externals.join(', ')} vs ${variants[1].externals.join(', ')})`);
      }
      sum.mapBytes += existsSync(`${deployedFile}.map`) ? statSync(`${deployedFile}.map`).size : 0;
      // The deployed environment, minus NODE_OPTIONS=--enable-source-maps: only the deployed variant has a map.
      const env: Record<string, string> = { ...spec.env, ...c.env, PATH: process.env.PATH ?? '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
      delete env.NODE_OPTIONS;

      const samples: Run[][] = [[], []];
      const once = async (v: number) => {
        const event = await c.event();
        const run = await coldRun(harness, variants[v], env, event, c.label);
        await c.check(run.result, event);
        await c.after?.(event);
        return run;
      };
      // One discarded pair warms the file cache for both; then pairs in alternating order (AB, BA, ...) so drift
      // and any order effect fall on both variants alike.
      await once(0);
      await once(1);
      for (let i = 0; i < runs; i++) {
        for (const v of i % 2 === 0 ? [0, 1] : [1, 0]) samples[v].push(await once(v));
      }
      const [a, b] = samples.map((s) => ({
        sdk: median(s.map((r) => r.sdk)),
        load: median(s.map((r) => r.load)),
        invoke: median(s.map((r) => r.invoke)),
        total: median(s.map((r) => r.total)),
        spread: spread(s.map((r) => r.total)),
      }));
      boots.push(...samples.flat().map((r) => r.boot));
      rows.push([
        `${c.label} (\`lambda/${entry}.ts\`)`,
        cell(variants[0].bytes, variants[1].bytes, kib),
        cell(a.sdk, b.sdk),
        cell(a.load, b.load),
        cell(a.invoke, b.invoke),
        cell(a.total, b.total),
      ]);
      for (const [i, v] of variants.entries()) sum.bytes[i] += v.bytes;
      for (const k of ['sdk', 'load', 'invoke', 'total'] as const) {
        sum[k][0] += a[k];
        sum[k][1] += b[k];
      }
      if (b.total < a.total) faster.push(`${c.label} by ${num(a.total - b.total)} ms (spread ±${num(Math.max(a.spread, b.spread))} ms)`);
      if (a.load < b.load) leaner++;
      sdkRatios.push(b.sdk / a.sdk);
      log(`${c.label}: ${kib(variants[0].bytes)} vs ${kib(variants[1].bytes)}; start → answer ${num(a.total)} vs ${num(b.total)} ms`);
    }
    rows.push([
      `**All ${entries.length}** (sum of medians)`,
      cell(sum.bytes[0], sum.bytes[1], kib),
      cell(sum.sdk[0], sum.sdk[1]),
      cell(sum.load[0], sum.load[1]),
      cell(sum.invoke[0], sum.invoke[1]),
      cell(sum.total[0], sum.total[1]),
    ]);

    const notes = [
      `Start → answer also holds Node's own boot (process start to the harness's first line, ${num(median(boots))} ms median), the same for both variants.`,
      `The AWS SDK is external in both variants (the Lambda runtime provides it; here it loads from node_modules): the same code either way, required before the bundle so that the bundle's own require is measured apart.`,
      `Source maps are off for both: the deployed functions set \`NODE_OPTIONS=--enable-source-maps\`, which also reads and parses the bundle's map (${kib(sum.mapBytes)} for the ${entries.length}) at load; the unminified variant has no map to match it, so that cost is left out.`,
      'The sweeper runs one sweep (`SWEEP_EVERY_SECONDS=60`, not the two of a scheduled minute) that finds one expired connection; the fan-out publishes to a room with no members (sequence, history, member query; no @connections posts).',
      `Times are Node ${process.version} on this machine. A Lambda cold start adds what is not here: fetching and unpacking the code (where the size counts) and the runtime's own start; 512 MB also means a fraction of a vCPU, so expect larger absolute times.`,
      `The SDK column loads identical code in both variants: its ratios (${num(Math.min(...sdkRatios))}× to ${num(Math.max(...sdkRatios))}×) show how far noise alone moves a ratio in this run.`,
    ];
    if (faster.length) {
      notes.push(
        `Start → answer came out lower unminified for ${faster.length} of ${entries.length} functions: ${faster.join(', ')}, the spread being the median absolute deviation of single runs. Such differences are of the size of the noise and come from the SDK load and the invocation (mostly SDK code, and waiting on the stand-ins); the part that differs, the bundle's own require, is quicker deployed for ${leaner} of ${entries.length}.`,
      );
    }
    if (Math.abs(sum.total[1] / sum.total[0] - 1) < 0.05) {
      notes.push(
        `Why minification and tree-shaking barely move the cold start: the bundles' own require is ${num(sum.load[0])} vs ${num(sum.load[1])} ms over all ${entries.length}, against ${num(sum.sdk[0])} ms loading the SDK and ${num(sum.invoke[0])} ms of first invocations that mostly run SDK code and wait on the stand-ins; and the unminified bundle's extra bytes cost little to load, probably because V8 compiles lazily (a function is only pre-parsed until its first call). What minification buys is size: less to download and unpack on a Lambda cold start, which this local measurement does not include.`,
      );
    }
    return {
      id: 'cold-start',
      title: 'Lambda cold start',
      method: [
        `For each of the ${entries.length} functions in the synthesized stack (its entry in \`lambda/\` read from the bundle's source map), a fresh \`node\` process with the function's environment requires the deployed bundle from cdk.out (esbuild, minified, \`@aws-sdk/*\` external) and invokes the handler once, with an event that does real work against the local stand-ins (the authorizer verifies a Cognito access token, fetching the JWKS; $connect stores the connection; the session API reads a cookie session; ...) and an answer checked to be the expected success.`,
        `The alternative is the same entry bundled with the same externals but without minification and tree-shaking (esbuild \`minify: false, treeShaking: false\`): it isolates what those two buy.`,
        `Median of ${runs} processes per variant, interleaved, after one discarded pair. Each cell reads deployed / unminified (unminified ÷ deployed: above 1× the deployed bundle wins).`,
      ].join(' '),
      head: ['Function', 'Bundle', 'AWS SDK require ms', 'Bundle require ms', 'First invocation ms', 'Process start → answer ms'],
      rows,
      headline: `${kib(sum.bytes[0])} of bundles for ${entries.length} functions, ${ratio(sum.bytes[1], sum.bytes[0])} smaller than unminified; cold start (process start → first answer, summed over the ${entries.length}) ${num(sum.total[0])} vs ${num(sum.total[1])} ms unminified (${ratio(sum.total[1], sum.total[0])}), of which the bundles' own require ${num(sum.load[0])} vs ${num(sum.load[1])} ms (${ratio(sum.load[1], sum.load[0])})`,
      notes,
    };
  } finally {
    await Promise.all([...warmFunctions.values()].map((f) => f.stop()));
    await system?.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
};
