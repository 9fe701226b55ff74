/**
 * The local inspector (local/inspect.ts) against the running local system: what it lists comes from the table and
 * the gateway (connections with their tenant and rooms, a message's delivery with its recipients counted), the page
 * shows the same, with attacker-controlled display names escaped, under a CSP that allows no script (checked in
 * chromium too), and the server is a loopback-only, GET-only one.
 */
import { request } from 'node:http';
import { networkInterfaces } from 'node:os';
import { chromium } from 'playwright-core';
import { DEMO_USERS, DEMO_PASSWORD } from '../local/demo-users';
import { startInspector, type Inspector, type InspectorState } from '../local/inspect';
import { freshRoom, startTestSystem, waitUntil, type TestSystem } from './support/system';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HOSTILE = `<script>alert(1)</script><img src=x onerror=alert(2)>"'&`;
const HOSTILE_ESCAPED = '&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&quot;&#39;&amp;';

let t: TestSystem;
let inspector: Inspector;
beforeAll(async () => {
  t = await startTestSystem({ users: [...DEMO_USERS, { email: 'mallory@acme.test', name: HOSTILE, password: DEMO_PASSWORD, tenants: ['acme'] }] });
  inspector = await startInspector(t.system);
}, 120_000);
afterAll(async () => {
  await inspector?.stop();
  await t?.stop();
});

const state = async (): Promise<InspectorState> => {
  const answer = await fetch(new URL('/state.json', inspector.url));
  expect(answer.status).toBe(200);
  expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
  expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
  return (await answer.json()) as InspectorState;
};

/** The rows of one of the page's tables, as HTML. */
const tbody = (html: string, id: string) => html.slice(html.indexOf(`<tbody id="${id}">`), html.indexOf('</tbody>', html.indexOf(`<tbody id="${id}">`)));

/** A raw request, so the method and Host header are exactly what the test says. */
const raw = (method: string, path: string, host?: string) =>
  new Promise<{ status: number; allow?: string }>((resolve, reject) => {
    const url = new URL(path, inspector.url);
    const req = request(url, { method, ...(host ? { headers: { host } } : {}) }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, ...(res.headers.allow ? { allow: String(res.headers.allow) } : {}) });
    });
    req.on('error', reject);
    req.end();
  });

test('lists both connections with tenant and room, and a message as one delivery to two connections', async () => {
  const room = freshRoom('inspect');
  const alice = await t.connect('alice@acme.test');
  const bob = await t.connect('bob@acme.test');
  const aliceId = (await alice.client.whoami()).userId;
  const bobId = (await bob.client.whoami()).userId;
  await alice.client.join(room);
  await bob.client.join(room);
  const sent = await alice.client.send(room, { text: 'hello' });
  await Promise.all([alice.waitFor(1), bob.waitFor(1)]);

  const s = await state();
  const mine = s.connections.filter((c) => c.userId === aliceId || c.userId === bobId);
  expect(mine).toHaveLength(2);
  for (const c of mine) {
    expect(c).toMatchObject({ tenantId: 'acme', open: true, lastActivityAt: expect.any(Number) });
    expect(c.rooms).toContain(room);
    expect(s.now - c.connectedAt).toBeGreaterThanOrEqual(0);
  }
  expect(mine.find((c) => c.userId === aliceId)?.name).toBe('Alice Liddell');
  const delivery = s.deliveries.find((d) => d.room === room && d.seq === sent.seq);
  expect(delivery).toMatchObject({ tenantId: 'acme', posted: 2, messageId: sent.messageId, sender: { userId: aliceId, name: 'Alice Liddell' } });
  expect(s.deliveries.filter((d) => d.room === room)).toHaveLength(1);

  // The page shows the same, rendered on the server.
  const html = await (await fetch(inspector.url)).text();
  expect(tbody(html, 'connections')).toContain(`<td>Alice Liddell (${aliceId})</td><td>acme</td><td>${room}</td>`);
  expect(tbody(html, 'connections')).toContain(`(${bobId})</td><td>acme</td><td>${room}</td>`);
  expect(tbody(html, 'deliveries')).toContain(`<td>acme</td><td>${room}</td><td>Alice Liddell (${aliceId})</td><td>${sent.seq}</td><td>2 connections</td>`);

  // A closed connection leaves the list once $disconnect has removed its items.
  await bob.client.close();
  await waitUntil(async () => !(await state()).connections.some((c) => c.userId === bobId), 10_000, "bob's connection to leave the table");
  await alice.client.close();
});

test('serves the page under a CSP without script, a hostile display name escaped', async () => {
  const room = freshRoom('inspect-xss');
  const mallory = await t.connect('mallory@acme.test');
  await mallory.client.join(room);
  await mallory.client.send(room, { text: 'hi' });
  await mallory.waitFor(1);
  expect((await state()).connections.some((c) => c.name === HOSTILE)).toBe(true); // the JSON has it, as data

  const answer = await fetch(inspector.url);
  expect(answer.status).toBe(200);
  expect(answer.headers.get('content-type')).toMatch(/^text\/html/);
  expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
  const csp = answer.headers.get('content-security-policy') ?? '';
  expect(csp).toMatch(/^default-src 'none';/);
  expect(csp).toMatch(/style-src 'nonce-[A-Za-z0-9+/=]+';/);
  expect(csp).not.toMatch(/script-src|unsafe-inline/);
  const html = await answer.text();
  expect(html).not.toMatch(/<script|<img/i);
  expect(tbody(html, 'connections')).toContain(`<td>${HOSTILE_ESCAPED} (`);
  expect(tbody(html, 'deliveries')).toContain(`<td>${room}</td><td>${HOSTILE_ESCAPED} (`); // the sender

  // And a browser shows it as text: nothing runs, nothing is loaded, nothing is refused.
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  try {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('dialog', (d) => {
      problems.push(`dialog: ${d.message()}`);
      void d.dismiss();
    });
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text()); // CSP violations are reported here
    });
    page.on('request', (r) => r.url() !== inspector.url && problems.push(`request: ${r.url()}`));
    await page.goto(inspector.url);
    const cells = await page.locator('#connections td, #deliveries td').allTextContents();
    expect(cells.filter((text) => text.startsWith(`${HOSTILE} (`))).toHaveLength(2);
    expect(await page.locator('script, img').count()).toBe(0);
    expect(problems).toEqual([]);
  } finally {
    await browser.close();
  }
  await mallory.client.close();
});

test('listens on 127.0.0.1 only, answers GET only, and only for loopback host names', async () => {
  const url = new URL(inspector.url);
  expect(url.hostname).toBe('127.0.0.1');
  const external = Object.values(networkInterfaces())
    .flat()
    .filter((i) => i && !i.internal && i.family === 'IPv4')
    .map((i) => i!.address);
  for (const address of external) {
    await expect(fetch(`http://${address}:${url.port}/state.json`)).rejects.toThrow();
  }
  expect(await raw('POST', '/')).toEqual({ status: 405, allow: 'GET' });
  expect(await raw('DELETE', '/state.json')).toEqual({ status: 405, allow: 'GET' });
  expect((await raw('GET', '/nope')).status).toBe(404);
  expect((await raw('GET', '/state.json', `localhost:${url.port}`)).status).toBe(200);
  // A page that rebound its own name to 127.0.0.1 sends its own Host: refused.
  expect((await raw('GET', '/state.json', `attacker.example:${url.port}`)).status).toBe(421);
});
