/**
 * The web app in a real browser: Debian's chromium, driven by playwright-core, against `npm start` (spawned as a
 * user runs it), in both sign-in modes. Each test saves a screenshot in artifacts/screenshots.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { AdminCreateUserCommand, CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { chromium, type Browser, type BrowserContext, type Page, type WebSocket } from 'playwright-core';
import { createNodeClient, sessionTokenProvider, writeWav, type GatehouseClient } from '@gatehouse/client/node';
import { PUBLISH_DETAIL_TYPE, type Json, type LocalConfig, type MessageEvent } from '../protocol';
import { syntheticSpeech } from '../speech/providers/local';
import { npmStart as startLocal, READY, type NpmStart } from './support/npm-start';

jest.setTimeout(90_000);

const ROOT = path.join(__dirname, '..');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'artifacts', 'screenshots');
const PASSWORD = 'Demo-Passw0rd!';
// Access tokens this short make the app renew them within the run (a minute before they expire).
const TOKEN_SECONDS = 75;

if (!existsSync(CHROMIUM)) {
  throw new Error(`Chromium not found at ${CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH.`);
}

interface Running {
  url: string;
  configFile: string;
  users: string[];
  run: NpmStart;
}

/** `npm start` with free ports (or the edge on `port`) and its own CLI config file; resolves once it prints its banner. */
async function npmStart(mode: 'session' | 'token', dir: string, port = '0'): Promise<Running> {
  const configFile = path.join(dir, `local-${mode}.json`);
  const run = startLocal(['--port', port, '--cognito-port', '0', '--dynamo-port', '0', '--quiet', '--web-auth', mode, '--config', configFile, '--token-seconds', String(TOKEN_SECONDS)]);
  await run.printed(READY, 60_000);
  const url = /Web app\s+(http:\/\/\S+)/.exec(run.output)![1];
  // The demo accounts, as a new user reads them off the banner.
  const users = [...run.output.matchAll(/^\s+(\S+@\S+)\s+Demo-Passw0rd!/gm)].map((m) => m[1]);
  return { url, configFile, users, run };
}

/** Ctrl-C, as a terminal sends it: to the whole group. */
async function stop(running: Running): Promise<void> {
  await running.run.ctrlC();
}

/** Page errors, CSP violations and server errors, from every page: each test ends with none. */
const problems: string[] = [];

/** A page with every WebSocket it opens recorded. */
async function newPage(context: BrowserContext): Promise<{ page: Page; sockets: WebSocket[] }> {
  const page = await context.newPage();
  const sockets: WebSocket[] = [];
  page.on('websocket', (ws) => sockets.push(ws));
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (m) => /Content Security Policy/i.test(m.text()) && problems.push(m.text()));
  page.on('response', (r) => r.status() >= 500 && problems.push(`${r.status()} from ${r.url()}`));
  return { page, sockets };
}

async function signIn(page: Page, url: string, email: string, password = PASSWORD): Promise<void> {
  await page.goto(url);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Keyboard only: the email field has focus on load, Tab moves to the password, Enter submits. */
async function signInWithKeyboard(page: Page, url: string, email: string): Promise<void> {
  await page.goto(url);
  await page.getByLabel('Email').waitFor();
  await page.keyboard.type(email);
  await page.keyboard.press('Tab');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
}

async function live(page: Page): Promise<void> {
  await page.locator('.topbar [role="status"][data-state="open"]').waitFor();
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

const openSockets = (sockets: WebSocket[]) => sockets.filter((s) => !s.isClosed());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const LOCAL_KEYS = { accessKeyId: 'local', secretAccessKey: 'local' };
const localConfig = (running: Running) => JSON.parse(readFileSync(running.configFile, 'utf8')) as LocalConfig;

/** Users outside the browser (the shared client in Node, as the CLI connects): closed after each test. */
const nodeClients: Array<{ client: GatehouseClient; cognito: CognitoIdentityProviderClient }> = [];
async function nodeUser(running: Running, email: string): Promise<GatehouseClient> {
  const local = localConfig(running);
  const cognito = new CognitoIdentityProviderClient({ endpoint: local.cognitoEndpoint, region: local.region, credentials: LOCAL_KEYS });
  const client = createNodeClient({ url: local.websocketUrl, token: sessionTokenProvider(cognito, local.clientId, email, PASSWORD), reconnect: false });
  nodeClients.push({ client, cognito });
  await client.connect();
  await client.whoami();
  return client;
}

/** Publishes as a backend service does: an event on the bus. */
async function publish(running: Running, room: string, type: string, payload: Json): Promise<void> {
  const local = localConfig(running);
  const events = new EventBridgeClient({ endpoint: local.eventsEndpoint, region: local.region, credentials: LOCAL_KEYS });
  const detail = { tenantId: 'acme', room, type, payload };
  const result = await events.send(new PutEventsCommand({ Entries: [{ EventBusName: local.eventBusName, Source: 'jobs.service', DetailType: PUBLISH_DETAIL_TYPE, Detail: JSON.stringify(detail) }] }));
  events.destroy();
  expect(result.FailedEntryCount ?? 0).toBe(0);
}

/** Resolves with the first message in `room` that `match` accepts. */
const received = (client: GatehouseClient, room: string, match: (m: MessageEvent) => boolean) =>
  new Promise<void>((resolve) => {
    const off = client.on('message', (m) => {
      if (m.room !== room || !match(m)) return;
      off();
      resolve();
    });
  });

/** The text of an element, once `accept` holds for it. */
async function textWhen(page: Page, selector: string, accept: (text: string) => boolean): Promise<string> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const text = (await page.locator(selector).first().textContent()) ?? '';
    if (accept(text)) return text;
    if (Date.now() > deadline) throw new Error(`${selector} never matched; last text: ${JSON.stringify(text)}`);
    await sleep(100);
  }
}

let browser: Browser;
let dir: string;

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-web-'));
  // The microphone: 1.5 s of speech-like sound, then silence (chromium loops the file), at a typical device rate.
  const rate = 48_000;
  const pcm = Buffer.concat([syntheticSpeech(1.5, rate), Buffer.alloc(rate * 2 * 1.5)]);
  const wav = path.join(dir, 'speech.wav');
  writeFileSync(wav, writeWav({ sampleRate: rate, channels: 1, data: pcm }));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      `--use-file-for-fake-audio-capture=${wav}`,
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe.each(['session', 'token'] as const)('the web app in %s mode', (mode) => {
  let gatehouse: Running;
  const contexts: BrowserContext[] = [];
  const context = async () => {
    const c = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    contexts.push(c);
    return c;
  };

  beforeAll(async () => {
    gatehouse = await npmStart(mode, dir);
  });

  afterEach(async () => {
    await Promise.all(contexts.splice(0).map((c) => c.close()));
    await Promise.all(nodeClients.splice(0).map(({ client, cognito }) => client.close().finally(() => cognito.destroy())));
    expect(problems.splice(0)).toEqual([]);
  });

  afterAll(async () => {
    if (gatehouse) await stop(gatehouse);
  });

  it('prints demo accounts, and shows readable errors for a wrong password, an unknown user and a required new password', async () => {
    expect(gatehouse.users).toEqual(expect.arrayContaining(['alice@acme.test', 'bob@acme.test', 'carol@globex.test']));
    const { page, sockets } = await newPage(await context());
    await signIn(page, gatehouse.url, 'alice@acme.test', 'not-the-password');
    await expect(page.getByRole('alert').textContent()).resolves.toBe('Wrong email or password.');
    await shot(page, `${mode}-wrong-password`);
    await page.getByLabel('Email').fill('nobody@acme.test');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Wrong email or password.' }).waitFor();
    // No socket before sign-in.
    expect(sockets).toHaveLength(0);

    // An account an administrator created with a temporary password must set its own first, in both modes: in
    // session mode the session API answers 403 new_password_required, which reaches the page as JSON through the
    // edge (a distribution-wide custom error response would turn it into the app's index.html, with status 200).
    const local = JSON.parse(readFileSync(gatehouse.configFile, 'utf8')) as { cognitoEndpoint: string; userPoolId: string; region: string };
    const cognito = new CognitoIdentityProviderClient({ endpoint: local.cognitoEndpoint, region: local.region, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
    const email = `new-${mode}@acme.test`;
    await cognito.send(
      new AdminCreateUserCommand({ UserPoolId: local.userPoolId, Username: email, TemporaryPassword: 'Temp-Passw0rd!', MessageAction: 'SUPPRESS', UserAttributes: [{ Name: 'email', Value: email }] }),
    );
    cognito.destroy();
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill('Temp-Passw0rd!');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'This account needs a new password' }).waitFor();
    expect(sockets).toHaveLength(0);
  });

  if (mode === 'session') {
    it('treats an answer that is not the API\'s JSON (an HTML page with status 200) as a failure, never as a sign-in', async () => {
      const { page, sockets } = await newPage(await context());
      // What a CloudFront error response would serve in place of the API's refusal.
      const html = { status: 200, contentType: 'text/html', body: '<!doctype html><html><body>app</body></html>' };
      await page.route('**/api/login', (route) => route.fulfill(html));
      await signIn(page, gatehouse.url, 'alice@acme.test');
      await page.getByRole('alert').filter({ hasText: 'does not understand' }).waitFor();
      expect(await page.getByLabel('Email').isVisible()).toBe(true);
      // And on load: a session check answered with HTML is an error on screen, not a signed-in workspace.
      await page.route('**/api/session', (route) => route.fulfill(html));
      await page.reload();
      await page.getByText('does not understand').waitFor();
      expect(await page.locator('.topbar').count()).toBe(0);
      expect(sockets).toHaveLength(0);
      await shot(page, 'session-unexpected-answer');
    });
  }

  it('carries a message within tenant A and never to tenant B, keeps tokens out of storage and URLs, and shows refusals', async () => {
    const alice = await newPage(await context());
    const bob = await newPage(await context());
    const carol = await newPage(await context());
    await Promise.all([
      signInWithKeyboard(alice.page, gatehouse.url, 'alice@acme.test'),
      signIn(bob.page, gatehouse.url, 'bob@acme.test'),
      signIn(carol.page, gatehouse.url, 'carol@globex.test'),
    ]);
    await Promise.all([live(alice.page), live(bob.page), live(carol.page)]);
    expect(await carol.page.locator('.tenant').textContent()).toBe('globex');

    // Everyone is in #general of their own tenant.
    for (const p of [alice.page, bob.page, carol.page]) await p.locator('.room-list button', { hasText: '# general' }).waitFor();
    const text = `hello acme ${Date.now()}`;
    const framesAtCarol: string[] = [];
    for (const ws of carol.sockets) ws.on('framereceived', ({ payload }) => framesAtCarol.push(String(payload)));
    await alice.page.getByLabel('Message to general').fill(text);
    await alice.page.getByLabel('Message to general').press('Enter');
    await bob.page.locator('.messages li', { hasText: text }).waitFor();
    await alice.page.locator('.messages li.mine', { hasText: text }).waitFor();
    // Carol (globex) sends her own message, which comes back to her: by then alice's would have arrived too.
    await carol.page.getByLabel('Message to general').fill('hello globex');
    await carol.page.getByRole('button', { name: 'Send' }).click();
    await carol.page.locator('.messages li', { hasText: 'hello globex' }).waitFor();
    expect(await carol.page.locator('.messages li', { hasText: text }).count()).toBe(0);
    expect(framesAtCarol.some((f) => f.includes(text))).toBe(false);
    expect(await bob.page.locator('.messages li', { hasText: 'hello globex' }).count()).toBe(0);
    await shot(bob.page, `${mode}-rooms`);
    // Responsive: on a phone-sized screen nothing overflows sideways.
    await carol.page.setViewportSize({ width: 390, height: 844 });
    expect(await carol.page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await shot(carol.page, `${mode}-rooms-phone`);

    // A refusal reads as an error: admin:* rooms are for the admin group.
    await bob.page.getByLabel('Join a room').fill('admin:ops');
    await bob.page.getByRole('button', { name: 'Join', exact: true }).click();
    await bob.page.getByRole('alert').filter({ hasText: 'Could not join admin:ops' }).waitFor();
    // An error belongs to the room it happened in: another room starts clean.
    await bob.page.locator('.room-list button', { hasText: '# random' }).click();
    await bob.page.locator('.conversation h2', { hasText: '# random' }).waitFor();
    expect(await bob.page.getByRole('alert').count()).toBe(0);

    // No token in page storage, in a readable cookie or in a socket URL.
    for (const { page, sockets } of [alice, bob, carol]) {
      const stored = await page.evaluate(() => JSON.stringify({ local: { ...localStorage }, cookie: document.cookie }));
      expect(stored).not.toMatch(/eyJ[\w-]+\.eyJ/);
      for (const ws of sockets) expect(ws.url()).not.toMatch(/eyJ|token=/);
      if (mode === 'session') {
        expect(await page.evaluate(() => JSON.stringify({ ...sessionStorage }))).not.toMatch(/eyJ[\w-]+\.eyJ/);
        for (const ws of sockets) expect(ws.url()).not.toContain('?');
      } else {
        for (const ws of sockets) expect(ws.url()).toMatch(/\?ticket=[\w-]+$/);
      }
    }
  });

  it('shows published job progress to tenant A only', async () => {
    const bob = await newPage(await context());
    const carol = await newPage(await context());
    await Promise.all([signIn(bob.page, gatehouse.url, 'bob@acme.test'), signIn(carol.page, gatehouse.url, 'carol@globex.test')]);
    await Promise.all([live(bob.page), live(carol.page)]);
    for (const p of [bob.page, carol.page]) await p.getByRole('button', { name: 'Job progress' }).click();
    // The jobs room is joined once the socket is live; give the join a moment to land before publishing.
    await bob.page.waitForFunction(() => document.querySelector('.jobs') !== null);
    await new Promise((r) => setTimeout(r, 500));

    const job = `report-${mode}`;
    const publish = (percent: number) =>
      spawnSync(path.join(ROOT, 'node_modules', '.bin', 'gatehouse'), ['publish', '--config', gatehouse.configFile, '--tenant', 'acme', '--room', 'jobs', '--type', 'job.progress', '--payload', JSON.stringify({ job, percent, label: 'Monthly report' })], {
        cwd: ROOT,
        encoding: 'utf8',
      });
    const first = publish(40);
    expect(first.status).toBe(0);
    const bar = bob.page.locator(`[data-job="${job}"] progress`);
    await bar.waitFor();
    await bob.page.waitForFunction((j) => (document.querySelector(`[data-job="${j}"] progress`) as HTMLProgressElement | null)?.value === 40, job);
    expect(publish(75).status).toBe(0);
    await bob.page.waitForFunction((j) => (document.querySelector(`[data-job="${j}"] progress`) as HTMLProgressElement | null)?.value === 75, job);
    expect(await bob.page.locator(`[data-job="${job}"]`).textContent()).toContain('Monthly report75%');
    await shot(bob.page, `${mode}-jobs`);
    expect(await carol.page.locator('[data-job]').count()).toBe(0);
    await carol.page.getByText('No jobs yet.').waitFor();
  });

  it('signs out every tab: the other tab closes its socket and returns to sign-in', async () => {
    const ctx = await context();
    const first = await newPage(ctx);
    const second = await newPage(ctx);
    await signIn(first.page, gatehouse.url, 'alice@acme.test');
    await live(first.page);
    if (mode === 'session') {
      // The cookie session is the browser's: a second tab is signed in already.
      await second.page.goto(gatehouse.url);
    } else {
      // Tokens live in this tab's sessionStorage only: the second tab signs in itself.
      await signIn(second.page, gatehouse.url, 'alice@acme.test');
    }
    await live(second.page);
    expect(openSockets(second.sockets)).toHaveLength(1);

    await first.page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await first.page.getByLabel('Email').waitFor();
    await second.page.getByText('You signed out in another tab.').waitFor();
    await second.page.waitForFunction(() => document.querySelector('#email') !== null);
    const deadline = Date.now() + 5_000;
    while (openSockets([...first.sockets, ...second.sockets]).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(openSockets([...first.sockets, ...second.sockets])).toHaveLength(0);
    await shot(second.page, `${mode}-signed-out-elsewhere`);

    // A reload does not bring the session back.
    await second.page.reload();
    await second.page.getByLabel('Email').waitFor();
    expect(openSockets(second.sockets)).toHaveLength(0);
  });

  // Token mode holds the access token in the tab; session mode's server refreshes its tokens itself (tested in
  // e2e-security), and its sockets live as long as the session.
  if (mode === 'token') {
    it('renews the token over the socket before it expires', async () => {
      const { page, sockets } = await newPage(await context());
      await signIn(page, gatehouse.url, 'alice@acme.test');
      await live(page);
      const [socket] = sockets;
      const refreshed = new Promise<string>((resolve) =>
        socket.on('framereceived', ({ payload }) => String(payload).includes('"refreshed"') && resolve(String(payload))),
      );
      // Access tokens live 75 s and the client renews 60 s before expiry: within ~15 s of connecting.
      const event = JSON.parse(await refreshed) as { tokenExpiresAt: number };
      // The old token has about 60 s left at this point; a fresh one has 75.
      expect(event.tokenExpiresAt).toBeGreaterThan(Date.now() / 1000 + 65);
      expect(openSockets(sockets)).toEqual([socket]);
      await live(page);
    });
  }

  it('talks to the speech service: microphone audio in, audio and transcripts back, and a clean stop', async () => {
    const ctx = await context();
    await ctx.grantPermissions(['microphone'], { origin: gatehouse.url });
    const { page, sockets } = await newPage(ctx);
    await signIn(page, gatehouse.url, 'alice@acme.test');
    await live(page);
    await page.getByRole('button', { name: 'Speech' }).click();
    await page.getByRole('button', { name: 'Start talking' }).click();
    await page.locator('[data-state="listening"]').waitFor();
    const speech = sockets.find((s) => s.url().includes('/ws/speech'))!;
    expect(speech).toBeDefined();
    // The local provider answers each utterance with audio and a transcript.
    await page.locator('.transcript li.assistant').first().waitFor({ timeout: 20_000 });
    await page.locator('.transcript li.user').first().waitFor();
    await page.waitForFunction(() => /received [1-9]\d* KiB/.test(document.querySelector('[data-testid="speech-bytes"]')?.textContent ?? ''));
    await shot(page, `${mode}-speech`);
    await page.getByRole('button', { name: 'Stop' }).click();
    await page.locator('[data-state="idle"]').waitFor();
    const deadline = Date.now() + 5_000;
    while (!speech.isClosed() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(speech.isClosed()).toBe(true);
    expect(await page.getByRole('alert').count()).toBe(0);
    // The realtime socket is unaffected.
    expect(openSockets(sockets)).toHaveLength(1);
  });

  it('names senders, shows recent history on join with older pages, who is here and who is typing', async () => {
    const room = `release-${mode}`;
    // Alice (outside the browser) fills a room before Bob opens it: 35 messages, more than one page (30).
    const alice = await nodeUser(gatehouse, 'alice@acme.test');
    await alice.join(room);
    for (let i = 1; i <= 35; i++) {
      await alice.send(room, { text: `Release checklist: step ${i} of 35 done` });
      if (i > 15) await sleep(110); // within the per-connection rate limit (10/s after a burst of 20)
    }
    const aliceName = alice.identity!.name;
    expect(aliceName).toMatch(/^Alice\b/);

    const bob = await newPage(await context());
    await signInWithKeyboard(bob.page, gatehouse.url, 'bob@acme.test');
    await live(bob.page);
    // Focus lands in the compose box once it can be used: a keyboard user types straight away.
    await bob.page.waitForFunction(() => document.activeElement?.matches('.compose input') === true);
    await bob.page.keyboard.type(`bob from the keyboard ${mode}`);
    await bob.page.keyboard.press('Enter');
    const mine = bob.page.locator('.messages li.mine', { hasText: `bob from the keyboard ${mode}` });
    await mine.waitFor();
    const bobName = (await mine.locator('.sender').textContent())!;
    expect(bobName).toMatch(/^Bob\b/);

    await bob.page.getByLabel('Join a room').fill(room);
    await bob.page.getByRole('button', { name: 'Join', exact: true }).click();
    const messages = bob.page.locator(`.messages[data-room="${room}"]`);
    await messages.locator('li[data-seq="35"]').waitFor();
    // The latest page, by name (never "User 1a2b3c4d"), and no false "No messages yet." at any point.
    expect(await messages.locator('li[data-seq]').count()).toBe(30);
    expect(await messages.locator('li[data-seq="35"] .sender').textContent()).toBe(aliceName);
    expect(await messages.getByText('No messages yet.').count()).toBe(0);
    expect(await bob.page.locator('.room-list li').allTextContents()).toEqual(['# general', '# random', `# ${room}`]);

    // Older pages until there are none: each message once, in order.
    await bob.page.getByRole('button', { name: 'Load older messages' }).click();
    await messages.locator('li[data-seq="1"]').waitFor();
    const seqs = await messages.locator('li[data-seq]').evaluateAll((items) => items.map((li) => Number(li.getAttribute('data-seq'))));
    expect(seqs).toEqual(Array.from({ length: 35 }, (_, i) => i + 1));
    expect(await bob.page.getByRole('button', { name: 'Load older messages' }).count()).toBe(0);

    // Who is here: Bob (marked) and Alice; Dana comes and goes.
    const presence = `.presence[data-room="${room}"]`;
    await textWhen(bob.page, presence, (t) => t.includes(`${bobName} (you)`) && t.includes(aliceName));
    const dana = await nodeUser(gatehouse, 'dana@acme.test');
    const danaName = dana.identity!.name;
    await dana.join(room);
    await textWhen(bob.page, presence, (t) => t.includes(danaName) && t.includes('3 here'));

    // Typing: one, then two at once; a message ends its sender's, and the rest expires.
    const typing = '.conversation .typing';
    await dana.typing(room);
    await textWhen(bob.page, typing, (t) => t === `${danaName} is typing…`);
    await alice.typing(room);
    await textWhen(bob.page, typing, (t) => t.includes(' and ') && t.includes(aliceName) && t.includes(danaName) && t.endsWith('are typing…'));
    await shot(bob.page, `${mode}-rooms-people`);
    await dana.send(room, { text: 'Great work, I will announce the release' });
    await textWhen(bob.page, typing, (t) => t === `${aliceName} is typing…`);
    await textWhen(bob.page, typing, (t) => t === '');
    await dana.leave(room);
    await textWhen(bob.page, presence, (t) => !t.includes(danaName) && t.includes('2 here'));

    // And the other way: typing in the browser tells the room.
    const bobTyping = new Promise<string>((resolve) => alice.on('typing', (t) => t.room === room && t.users.length > 0 && resolve(t.users[0].name)));
    await bob.page.getByLabel(`Message to ${room}`).pressSequentially('hi');
    await expect(bobTyping).resolves.toBe(bobName);
  });

  it('edits and deletes own messages at everyone, shows delivery and who has seen it, and offers Delete on others\' messages to admins only', async () => {
    const room = `edits-${mode}`;
    const [alice, bob] = [await newPage(await context()), await newPage(await context())];
    await Promise.all([signIn(alice.page, gatehouse.url, 'alice@acme.test'), signIn(bob.page, gatehouse.url, 'bob@acme.test')]);
    await Promise.all([live(alice.page), live(bob.page)]);
    for (const p of [bob.page, alice.page]) {
      await p.getByLabel('Join a room').fill(room);
      await p.getByRole('button', { name: 'Join', exact: true }).click();
      await p.locator(`.messages[data-room="${room}"][aria-busy="false"]`).waitFor();
    }
    const atAlice = alice.page.locator(`.messages[data-room="${room}"]`);
    const atBob = bob.page.locator(`.messages[data-room="${room}"]`);

    // Sent, delivered to Bob's socket, then read: Bob has the room open, so his app moves his cursor.
    const draft = `first draft ${mode}`;
    await alice.page.getByLabel(`Message to ${room}`).fill(draft);
    await alice.page.getByLabel(`Message to ${room}`).press('Enter');
    const mine = atAlice.locator('li.mine', { hasText: draft });
    await mine.waitFor();
    const seq = Number(await mine.getAttribute('data-seq'));
    await atBob.locator(`li[data-seq="${seq}"]`, { hasText: draft }).waitFor();
    const bobName = (await bob.page.locator('.presence li', { hasText: '(you)' }).first().textContent())!.replace(' (you)', '');
    await textWhen(alice.page, `.messages[data-room="${room}"] li[data-seq="${seq}"] .seen-by`, (t) => t === `Seen by ${bobName}`);
    expect(await mine.locator('.status').getAttribute('data-status')).toBe('read');

    // Bob may neither edit nor delete Alice's message (he is no admin); Alice may do both.
    await atBob.locator(`li[data-seq="${seq}"]`).hover();
    expect(await atBob.getByRole('button', { name: `Edit message ${seq}` }).count()).toBe(0);
    expect(await atBob.getByRole('button', { name: `Delete message ${seq}` }).count()).toBe(0);

    // Edit inline: Bob sees the new text, marked "(edited)".
    await mine.hover();
    await atAlice.getByRole('button', { name: `Edit message ${seq}` }).click();
    const editBox = alice.page.getByLabel('Edit message');
    expect(await editBox.inputValue()).toBe(draft);
    await editBox.fill(`second draft ${mode}`);
    await editBox.press('Enter');
    await textWhen(bob.page, `.messages[data-room="${room}"] li[data-seq="${seq}"]`, (t) => t.includes(`second draft ${mode}`) && t.includes('(edited)'));
    await textWhen(alice.page, `.messages[data-room="${room}"] li[data-seq="${seq}"] .text`, (t) => t === `second draft ${mode}`);
    await shot(alice.page, `${mode}-rooms-edits`);

    // Delete: the content is gone from both pages.
    await atAlice.locator(`li[data-seq="${seq}"]`).hover();
    await atAlice.getByRole('button', { name: `Delete message ${seq}` }).click();
    for (const p of [bob.page, alice.page]) {
      await textWhen(p, `.messages[data-room="${room}"] li[data-seq="${seq}"] .text`, (t) => t === 'Message deleted');
      expect(await p.locator('.messages').first().textContent()).not.toContain('draft');
      expect(await p.getByText(`second draft ${mode}`).count()).toBe(0);
    }
    expect(await atAlice.getByRole('button', { name: `Edit message ${seq}` }).count()).toBe(0);

    if (mode === 'session') {
      // Dana is in the admin group: she gets Delete on Bob's message (and no Edit), and her deletion reaches Bob.
      await bob.page.getByLabel(`Message to ${room}`).fill('an admin will remove this');
      await bob.page.getByLabel(`Message to ${room}`).press('Enter');
      const bobs = atBob.locator('li.mine', { hasText: 'an admin will remove this' });
      await bobs.waitFor();
      const bobSeq = Number(await bobs.getAttribute('data-seq'));
      const dana = await newPage(await context());
      await signIn(dana.page, gatehouse.url, 'dana@acme.test');
      await live(dana.page);
      await dana.page.getByLabel('Join a room').fill(room);
      await dana.page.getByRole('button', { name: 'Join', exact: true }).click();
      const atDana = dana.page.locator(`.messages[data-room="${room}"]`);
      await atDana.locator(`li[data-seq="${bobSeq}"]`).hover();
      expect(await atDana.getByRole('button', { name: `Edit message ${bobSeq}` }).count()).toBe(0);
      await atDana.getByRole('button', { name: `Delete message ${bobSeq}` }).click();
      await textWhen(bob.page, `.messages[data-room="${room}"] li[data-seq="${bobSeq}"] .text`, (t) => t === 'Message deleted');
      expect(await bob.page.getByText('an admin will remove this').count()).toBe(0);
    }
  });

  it('badges rooms with unread messages from others, and clears the badge when the room is opened', async () => {
    const room = `unread-${mode}`;
    const bob = await newPage(await context());
    await signIn(bob.page, gatehouse.url, 'bob@acme.test');
    await live(bob.page);
    await bob.page.getByLabel('Join a room').fill(room);
    await bob.page.getByRole('button', { name: 'Join', exact: true }).click();
    await bob.page.locator(`.messages[data-room="${room}"][aria-busy="false"]`).waitFor();
    await bob.page.locator('.room-list button', { hasText: '# general' }).click();
    await bob.page.locator('.conversation h2', { hasText: '# general' }).waitFor();

    const alice = await nodeUser(gatehouse, 'alice@acme.test');
    await alice.join(room);
    const first = await alice.send(room, { text: `are you there? ${mode}` });
    await alice.send(room, { text: `the release is out ${mode}` });
    const badge = bob.page.locator(`.room-list .badge[data-room="${room}"]`);
    await textWhen(bob.page, `.room-list .badge[data-room="${room}"]`, (t) => t === '2 unread');
    await shot(bob.page, `${mode}-rooms-unread`);
    // Nothing is read until it is shown: Alice's message has no reader yet.
    await alice.receipts(room);
    expect(alice.seenBy(room, first.seq)).toEqual([]);

    // Opening the room clears the badge and marks it read, which Alice's "seen by" learns.
    const seen = new Promise<void>((resolve) => alice.on('receipt', (r) => r.room === room && r.cursor.seq >= first.seq && resolve()));
    await bob.page.locator('.room-list button', { hasText: `# ${room}` }).click();
    await bob.page.locator(`.messages[data-room="${room}"] li`, { hasText: `the release is out ${mode}` }).waitFor();
    await badge.waitFor({ state: 'detached' });
    await seen;
    expect(alice.seenBy(room, first.seq).map((m) => m.name)).toEqual([expect.stringMatching(/^Bob\b/)]);
    // And it stays cleared after going back to another room.
    await bob.page.locator('.room-list button', { hasText: '# general' }).click();
    await sleep(500);
    expect(await badge.count()).toBe(0);
  });

  it('keeps each tenant\'s messages when switching tenants', async () => {
    const { page, sockets } = await newPage(await context());
    await signIn(page, gatehouse.url, 'erin@both.test');
    await live(page);
    const acme = page.locator('[data-tenant="acme"]');
    const globex = page.locator('[data-tenant="globex"]');
    const say = async (tenant: typeof acme, text: string) => {
      await tenant.getByLabel('Message to general').fill(text);
      await tenant.getByLabel('Message to general').press('Enter');
      await tenant.locator('.messages li', { hasText: text }).waitFor();
    };
    await say(acme, `erin in acme ${mode}`);

    await page.getByLabel('Tenant').selectOption('globex');
    await live(page);
    await say(globex, `erin in globex ${mode}`);
    // Meanwhile in acme: the tenant not shown keeps its socket and takes this in.
    const alice = await nodeUser(gatehouse, 'alice@acme.test');
    await alice.join('general');
    await alice.send('general', { text: `while erin is in globex ${mode}` });
    await acme.locator('.messages li', { hasText: `while erin is in globex ${mode}` }).waitFor({ state: 'attached' });

    await page.getByLabel('Tenant').selectOption('acme');
    for (const text of [`erin in acme ${mode}`, `while erin is in globex ${mode}`]) expect(await acme.locator('.messages li', { hasText: text }).isVisible()).toBe(true);
    expect(await acme.locator('.messages li', { hasText: `erin in globex ${mode}` }).count()).toBe(0);
    // One socket per tenant, each named on its URL.
    expect(openSockets(sockets).map((s) => new URL(s.url()).searchParams.get('tenant')).sort()).toEqual(['acme', 'globex']);
    await page.getByLabel('Tenant').selectOption('globex');
    expect(await globex.locator('.messages li', { hasText: `erin in globex ${mode}` }).isVisible()).toBe(true);
  });

  it('shows jobs published before the page opened, and a failed job as failed', async () => {
    const watcher = await nodeUser(gatehouse, 'alice@acme.test');
    await watcher.join('jobs');
    const [early, failed] = [`export-${mode}`, `import-${mode}`];
    // One at a time, each stored before the next: separate events are not ordered among themselves.
    const update = async (type: string, payload: { job: string } & Record<string, Json>) => {
      const stored = received(watcher, 'jobs', (m) => m.kind === type && (m.data as { job?: string }).job === payload.job);
      await publish(gatehouse, 'jobs', type, payload);
      await stored;
    };
    await update('job.progress', { job: early, percent: 30, label: 'Nightly export' });
    await update('job.progress', { job: failed, percent: 60, label: 'Customer import' });
    await update('job.failed', { job: failed, error: 'row 42 has no email address' });

    const { page } = await newPage(await context());
    await signIn(page, gatehouse.url, 'dana@acme.test');
    await live(page);
    await page.getByRole('button', { name: 'Job progress' }).click();
    const row = page.locator(`[data-job="${failed}"][data-status="failed"]`);
    await row.waitFor();
    expect(await row.locator('.job-head').textContent()).toBe('Customer importFailed');
    expect(await row.getByRole('status').textContent()).toBe('Customer import failed: row 42 has no email address');
    expect(await page.locator(`[data-job="${early}"] .job-head`).textContent()).toBe('Nightly export30%');
    // Live updates still land on top of what history brought.
    await publish(gatehouse, 'jobs', 'job.done', { job: early });
    await page.locator(`[data-job="${early}"][data-status="done"]`).waitFor();
    await shot(page, `${mode}-jobs-failed`);
  });

  if (mode === 'session') {
    it('keeps the compose box in view on a phone-width screen, with the room list behind a toggle', async () => {
      const room = 'phone';
      const alice = await nodeUser(gatehouse, 'alice@acme.test');
      await alice.join(room);
      for (let i = 1; i <= 25; i++) {
        await alice.send(room, { text: `a message long enough to wrap on a phone screen, number ${i}` });
        if (i > 15) await sleep(110);
      }
      const c = await browser.newContext({ viewport: { width: 390, height: 844 } });
      contexts.push(c);
      const { page } = await newPage(c);
      await signIn(page, gatehouse.url, 'bob@acme.test');
      await live(page);
      // The room list folds away; its toggle opens it, and choosing a room folds it again.
      expect(await page.locator('.room-list').isVisible()).toBe(false);
      const toggle = page.getByRole('button', { name: 'All rooms' });
      await toggle.click();
      await page.getByLabel('Join a room').fill(room);
      await page.getByRole('button', { name: 'Join', exact: true }).click();
      await page.locator(`.messages[data-room="${room}"] li[data-seq="25"]`).waitFor();
      expect(await page.locator('.room-list').isVisible()).toBe(false);
      expect(await toggle.getAttribute('aria-expanded')).toBe('false');

      // Nothing scrolls but the messages: the compose box and the newest message are on screen.
      const layout = await page.evaluate(() => {
        const box = document.querySelector('.compose input')!.getBoundingClientRect();
        const newest = document.querySelector('.messages li[data-seq="25"]')!.getBoundingClientRect();
        return { top: box.top, bottom: box.bottom, newest: newest.bottom, height: innerHeight, width: document.documentElement.scrollWidth, page: document.documentElement.scrollHeight };
      });
      expect(layout.top).toBeGreaterThan(0);
      expect(layout.bottom).toBeLessThanOrEqual(layout.height);
      expect(layout.newest).toBeLessThanOrEqual(layout.top);
      expect(layout.page).toBeLessThanOrEqual(layout.height);
      expect(layout.width).toBeLessThanOrEqual(390);
      await page.getByLabel(`Message to ${room}`).fill('from a phone');
      await page.getByLabel(`Message to ${room}`).press('Enter');
      await page.locator('.messages li.mine', { hasText: 'from a phone' }).waitFor();
      await shot(page, 'session-phone-compose');
    });
  }

  // Last: it restarts the local system.
  it('ends in "Your session ended" when the server restarts with fresh state, instead of reconnecting forever', async () => {
    const ctx = await context();
    const { page, sockets } = await newPage(ctx);
    await signIn(page, gatehouse.url, 'alice@acme.test');
    await live(page);
    // The same address, but nothing of the old state: no session, no sign-in, a new user pool client. The page is
    // kept off the network meanwhile: a socket it reopened to the system shutting down would hold the shutdown up.
    const port = new URL(gatehouse.url).port;
    await ctx.setOffline(true);
    await stop(gatehouse);
    gatehouse = await npmStart(mode, dir, port);
    await ctx.setOffline(false);
    await page.getByText('Your session ended — sign in again.').waitFor({ timeout: 60_000 });
    await page.getByLabel('Email').waitFor();
    expect(openSockets(sockets)).toHaveLength(0);
    await shot(page, `${mode}-session-ended`);
    // And signing in again works, on the same page: the email is filled in, the password has the focus.
    expect(await page.getByLabel('Email').inputValue()).toBe('alice@acme.test');
    await page.waitForFunction(() => document.activeElement?.id === 'password');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');
    await live(page);
    expect(openSockets(sockets)).toHaveLength(1);
    // A restart may synthesize first (sources changed), and the reconnect backoff has grown meanwhile (up to 30 s).
  }, 150_000);
});
