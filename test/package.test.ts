/**
 * @gatehouse/client as its users get it: `npm pack` makes the tarball, a scratch project installs it from there
 * (nothing of this checkout on its resolution path), and the package's own examples run against the local system:
 * the Node example as it is, the page example bundled by esbuild into a page that Debian's chromium opens. Both
 * connect, send, receive and see presence; the package's types compile in a consumer (ESM and CommonJS), and its
 * `gatehouse` bin runs.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { signInWithPassword } from '@gatehouse/client/node';
import { writeLocalConfig } from '../local/config';
import { freshRoom, startTestSystem, waitUntil, type TestSystem } from './support/system';

const ROOT = path.join(__dirname, '..');
const PACKAGE = path.join(ROOT, 'packages', 'client');
const EXAMPLES = path.join(PACKAGE, 'examples');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const run = promisify(execFile);
/** What the page example's own server serves (filled by its test). */
const files: Record<string, [type: string, body: string]> = {};
const pageServer: Server = createServer((req, res) => {
  const file = files[req.url ?? ''];
  res.writeHead(file ? 200 : 404, { 'content-type': file?.[0] ?? 'text/plain' }).end(file?.[1] ?? 'not found');
});
let pageOrigin = '';

jest.setTimeout(180_000);

let t: TestSystem;
let scratch: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  scratch = mkdtempSync(path.join(tmpdir(), 'gatehouse-consumer-'));
  // npm pack runs the package's prepack (the build): what is tested is what would be published.
  const packed = JSON.parse((await run('npm', ['pack', '--json', '--pack-destination', scratch], { cwd: PACKAGE, maxBuffer: 16 << 20 })).stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const tarball = path.join(scratch, packed[0].filename);
  expect(packed[0].files.map((f) => f.path)).not.toContain('src/index.ts'); // the sources stay home
  writeFileSync(path.join(scratch, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball, '@aws-sdk/client-cognito-identity-provider@3.1169.0', 'react@19.3.1'], { cwd: scratch, maxBuffer: 16 << 20 });
  for (const file of ['node.mjs', 'page.js', 'page.html']) copyFileSync(path.join(EXAMPLES, file), path.join(scratch, file));
  // The page's own server is another origin than the local edge's: allowed as `npm start --allow-origin` does.
  await new Promise<void>((resolve) => pageServer.listen(0, '127.0.0.1', resolve));
  pageOrigin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;
  t = await startTestSystem({ allowedOrigins: [pageOrigin] });
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await t?.stop();
  pageServer.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

const user = (email: string) => {
  const u = t.system.users.find((x) => x.email === email);
  if (!u) throw new Error(`no demo user ${email}`);
  return u;
};

test('installs from the tarball, with the package (not this checkout) on the resolution path', () => {
  const resolved = execFileSync(process.execPath, ['--input-type=module', '-e', "console.log(import.meta.resolve('@gatehouse/client/node'))"], { cwd: scratch, encoding: 'utf8' });
  expect(resolved.trim()).toBe(`file://${path.join(scratch, 'node_modules', '@gatehouse', 'client', 'dist', 'node.mjs')}`);
  // One class across entries and module systems: a client made by ./node is the GatehouseClient of the root entry.
  const same = execFileSync(process.execPath, ['-e', "const a = require('@gatehouse/client'); const b = require('@gatehouse/client/node'); process.stdout.write(String(a.GatehouseClient === b.GatehouseClient && typeof b.createNodeClient === 'function'))"], { cwd: scratch, encoding: 'utf8' });
  expect(same).toBe('true');
  const react = execFileSync(process.execPath, ['--input-type=module', '-e', "const r = await import('@gatehouse/client/react'); const c = await import('@gatehouse/client'); const hooks = r.createGatehouseHooks(); process.stdout.write(JSON.stringify([typeof r.useRoom, typeof r.GatehouseProvider, hooks.useRoom === r.useRoom, typeof c.GatehouseClient]))"], { cwd: scratch, encoding: 'utf8' });
  expect(JSON.parse(react)).toEqual(['function', 'function', true, 'function']);
  // The React entry imports the core from the package rather than carrying a copy of it.
  expect(readFileSync(path.join(scratch, 'node_modules', '@gatehouse', 'client', 'dist', 'react.mjs'), 'utf8')).not.toContain('class GatehouseClient');
});

test("the Node example connects, sends, receives and sees presence", async () => {
  const room = freshRoom('pkg-node');
  const bob = await t.connect('bob@acme.test');
  await bob.client.join(room);
  const alice = user('alice@acme.test');
  const child = spawn(process.execPath, ['node.mjs', room], {
    cwd: scratch,
    env: {
      PATH: process.env.PATH,
      GATEHOUSE_URL: t.system.urls.websocket,
      COGNITO_CLIENT_ID: t.system.clientId,
      COGNITO_ENDPOINT: t.system.urls.cognito,
      AWS_REGION: t.system.region,
      GATEHOUSE_USER: alice.email,
      GATEHOUSE_PASSWORD: alice.password,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));

  // Bob hears the example's hello; the example sees Bob present and hears his answer.
  await waitUntil(() => bob.messages.some((m) => JSON.stringify(m.data).includes('hello from Node, Alice Liddell')), 20_000, `the example's hello (output: ${out})`);
  await waitUntil(() => /present in .*: Alice Liddell \(you\), Bob Marley/.test(out), 5000, `presence in the example's output: ${out}`);
  await bob.client.send(room, { text: 'hi Node' });
  await waitUntil(() => out.includes('"text":"hi Node"'), 5000, `Bob's message in the example's output: ${out}`);
  expect(out).toContain('state open');
  expect(out).not.toContain('error');
  child.kill('SIGINT');
  await new Promise((resolve) => child.once('exit', resolve));
});

test('the page example, bundled by esbuild from the installed package, works in chromium', async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH.`);
  // Bundled as an application would: the browser condition, the package from the scratch project's node_modules.
  const esbuild = path.join(ROOT, 'node_modules', '.bin', 'esbuild');
  await run(esbuild, ['page.js', '--bundle', '--format=esm', '--platform=browser', '--outfile=page.bundle.js', '--log-level=warning'], { cwd: scratch });
  const bundle = readFileSync(path.join(scratch, 'page.bundle.js'), 'utf8');
  expect(bundle).not.toMatch(/require\(["']ws["']\)|node:/); // nothing of Node in a page

  const room = freshRoom('pkg-page');
  const bob = await t.connect('bob@acme.test');
  await bob.client.join(room);
  const alice = user('alice@acme.test');
  const { accessToken } = await signInWithPassword(t.system.cognito.client, t.system.clientId, alice.email, alice.password);
  Object.assign(files, {
    '/page.html': ['text/html', readFileSync(path.join(scratch, 'page.html'), 'utf8')],
    '/page.bundle.js': ['text/javascript', bundle],
    // How this page gets its token is the application's choice; here its server hands it over.
    '/gatehouse.json': ['application/json', JSON.stringify({ url: t.system.urls.websocket, token: accessToken, room })],
  });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    const consoleLines: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => consoleLines.push(m.text()));
    await page.goto(`${pageOrigin}/page.html`);
    await page
      .waitForFunction(() => document.getElementById('state')?.textContent === 'open', undefined, { timeout: 15_000 })
      .catch((err: Error) => {
        throw new Error(`${err.message}\npage errors: ${errors.join('; ')}\nconsole: ${consoleLines.join('; ')}`);
      });
    await waitUntil(() => bob.messages.some((m) => JSON.stringify(m.data).includes('hello from the browser')), 10_000, "the page's hello");
    await page.waitForFunction(() => /Alice Liddell \(you\), Bob Marley/.test(document.getElementById('presence')?.textContent ?? ''), undefined, { timeout: 5000 });
    await bob.client.send(room, { text: '<b>hi page</b>' });
    await page.waitForFunction(() => [...document.querySelectorAll('#messages li')].some((li) => li.textContent?.includes('Bob Marley: <b>hi page</b>')), undefined, { timeout: 5000 });
    expect(await page.locator('#messages b').count()).toBe(0); // rendered as text
    expect(errors).toEqual([]);
  } finally {
    await browser.close();
  }
});

test('its types compile in a consumer, ESM and CommonJS, with typed rooms', async () => {
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const source = `import { GatehouseClient, type MessageEvent } from '@gatehouse/client';
import { createNodeClient } from '@gatehouse/client/node';
type Rooms = { jobs: { job: string; percent: number }; 'chat:*': { text: string } };
const client: GatehouseClient<Rooms> = createNodeClient<Rooms>({ url: 'ws://x', token: () => 't' });
void client.send('chat:general', { text: 'hi' });
// @ts-expect-error a chat message has text
void client.send('chat:general', { percent: 1 });
// @ts-expect-error no such room
void client.send('elsewhere', { text: 'hi' });
client.on('message', (m) => {
  if (m.room === 'jobs') { const p: number = m.data.percent; void p; }
});
const any: MessageEvent | undefined = undefined;
void any;
`;
  writeFileSync(path.join(scratch, 'consumer.mts'), source);
  writeFileSync(path.join(scratch, 'consumer.cts'), source.replace(/^import (.*) from '(.*)';$/gm, 'import $1 from "$2";'));
  const options = ['--noEmit', '--strict', '--skipLibCheck', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--lib', 'es2022,dom', '--types', 'node'];
  // @types/node from this checkout (a consumer installs its own).
  await expect(run(process.execPath, [tsc, ...options, '--typeRoots', path.join(ROOT, 'node_modules', '@types'), 'consumer.mts', 'consumer.cts'], { cwd: scratch })).resolves.toBeDefined();
  // And a typing mistake is caught there, so the check above is not vacuous.
  writeFileSync(path.join(scratch, 'wrong.mts'), `import { GatehouseClient } from '@gatehouse/client';\nconst c = new GatehouseClient<{ jobs: { percent: number } }>({ url: 'ws://x', token: () => 't' });\nvoid c.send('jobs', { percent: 'ten' });\n`);
  const wrong = await run(process.execPath, [tsc, ...options, '--typeRoots', path.join(ROOT, 'node_modules', '@types'), 'wrong.mts'], { cwd: scratch }).catch((err: { stdout: string }) => err);
  expect((wrong as { stdout: string }).stdout).toMatch(/wrong\.mts.*TS2322/);
});

test('its gatehouse bin runs from the consumer and finds the local system through GATEHOUSE_CONFIG', async () => {
  const config = path.join(scratch, 'local.json');
  writeLocalConfig(t.system, config);
  const bin = path.join(scratch, 'node_modules', '.bin', 'gatehouse');
  const help = await run(bin, ['--help'], { cwd: scratch });
  expect(help.stdout).toContain('Usage: npx gatehouse <command>');
  const token = await run(bin, ['token', '--user', 'alice@acme.test'], { cwd: scratch, env: { ...process.env, GATEHOUSE_CONFIG: config } });
  expect(token.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
  const missing = await run(bin, ['token', '--user', 'alice@acme.test'], { cwd: scratch, env: { PATH: process.env.PATH } }).catch((err: { code: number; stderr: string }) => err);
  expect(missing).toMatchObject({ code: 1, stderr: expect.stringContaining('No local system found') });
});
