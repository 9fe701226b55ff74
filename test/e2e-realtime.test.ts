/**
 * End to end, over real sockets, against the system `npm start` runs: cognito-local for sign-in, the API Gateway
 * emulator running the synthesized bundles, dynalite with the synthesized schema, the EventBridge endpoint.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createPrivateKey, sign } from 'node:crypto';
import { ApiGatewayManagementApiClient, DeleteConnectionCommand, GetConnectionCommand, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import WebSocket from 'ws';
import { decodeWav, parseWav, writeWav } from '@gatehouse/client/node';
import { PUBLISH_DETAIL_TYPE } from '../protocol';
import { syntheticSpeech } from '../speech/providers/local';
import { writeLocalConfig } from '../local/config';
import { loadTemplate, resourcesOfType } from '../local/emulator/template';
import { CDK_OUT, ROOT } from '../local/paths';
import { startTestSystem, waitUntil, type TestSystem } from './support/system';

let t: TestSystem;
const local = { accessKeyId: 'local', secretAccessKey: 'local' };

beforeAll(async () => {
  t = await startTestSystem();
});
afterAll(() => t.stop());

/** A description of the system under test for the CLI's --config. */
function cliConfig(): string {
  const config = path.join(mkdtempSync(path.join(tmpdir(), 'gatehouse-cli-')), 'local.json');
  writeLocalConfig(t.system, config);
  return config;
}

/** Runs the CLI against the system under test. Asynchronous on purpose: the system runs in this process. */
function cli(...args: string[]) {
  const config = cliConfig();
  return new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    execFile(path.join(ROOT, 'node_modules/.bin/gatehouse'), [...args, '--config', config], (err, stdout, stderr) =>
      resolve({ status: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const sessions: ChildProcess[] = [];
afterAll(() => sessions.forEach((child) => child.exitCode === null && child.kill()));

/**
 * A CLI left running with its input open (an interactive `connect`): type lines, wait for output, see how it ends.
 * Against the system under test unless the arguments name a --config.
 */
function cliSession(...args: string[]) {
  const config = args.includes('--config') ? [] : ['--config', cliConfig()];
  const child = spawn(path.join(ROOT, 'node_modules/.bin/gatehouse'), [...args, ...config], { stdio: 'pipe' });
  sessions.push(child);
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const exited = new Promise<{ status: number; stdout: string; stderr: string; at: number }>((resolve) =>
    child.on('exit', (code) => resolve({ status: code ?? 1, ...out, at: Date.now() })),
  );
  return {
    out,
    exited,
    type: (line: string) => child.stdin.write(`${line}\n`),
    printed: (text: string, ms = 15_000) => waitUntil(() => out.stdout.includes(text), ms, `the CLI to print "${text}" (it printed ${JSON.stringify(out)})`),
  };
}

/** The HTTP status of a WebSocket handshake (101 when it was accepted), and the socket when it was. */
function handshake(url: string, options: { protocols?: string[]; headers?: Record<string, string> } = {}) {
  return new Promise<{ status: number; ws?: WebSocket; protocol?: string }>((resolve) => {
    const ws = new WebSocket(url, options.protocols ?? [], { headers: options.headers });
    ws.on('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0 });
      ws.terminate();
    });
    ws.on('open', () => resolve({ status: 101, ws, protocol: ws.protocol }));
    ws.on('error', () => undefined);
  });
}

/** A token minted with cognito-local's own signing key: valid signature, chosen claims. */
function cognitoLocalToken(claims: Record<string, unknown>): string {
  const { pem } = JSON.parse(readFileSync(path.join(ROOT, 'node_modules/cognito-local/lib/keys/cognitoLocal.private.json'), 'utf8'));
  const key = createPrivateKey(pem);
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64({ alg: 'RS256', typ: 'JWT', kid: 'CognitoLocal' })}.${b64(claims)}`;
  return `${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`;
}

/** The embedded-metric-format lines the functions wrote (common/metrics.ts), parsed. */
const metricLines = () =>
  t.logs
    .map((l) => l.slice(l.indexOf('{')))
    .filter((l) => l.startsWith('{"_aws"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('connecting', () => {
  it.each([
    ['the Authorization header', 'header'],
    ['the subprotocol list (as a browser does)', 'subprotocol'],
  ] as const)('signs in through Cognito and connects with the token in %s', async (_name, transport) => {
    const { client } = await t.connect('alice@acme.test', { transport });
    const me = await client.whoami();
    expect(me).toMatchObject({ type: 'whoami', tenantId: 'acme', groups: ['tenant:acme'] });
    await client.close();
  });

  it('connects with ?token= and echoes the subprotocol the browser offered', async () => {
    const { accessToken } = await t.system.signIn('bob@acme.test');
    const query = await handshake(`${t.system.urls.websocket}?token=${accessToken}`);
    expect(query.status).toBe(101);
    query.ws!.close();
    const browser = await handshake(t.system.urls.websocket, { protocols: ['gatehouse.v1', `bearer.${accessToken}`] });
    expect(browser).toMatchObject({ status: 101, protocol: 'gatehouse.v1' });
    browser.ws!.close();
  });

  it('lets a member of two tenants choose one with ?tenant=', async () => {
    const acme = await t.connect('erin@both.test', { tenant: 'acme' });
    const globex = await t.connect('erin@both.test', { tenant: 'globex' });
    expect((await acme.client.whoami()).tenantId).toBe('acme');
    expect((await globex.client.whoami()).tenantId).toBe('globex');
    const { accessToken } = await t.system.signIn('erin@both.test');
    expect((await handshake(t.system.urls.websocket, { headers: { Authorization: `Bearer ${accessToken}` } })).status).toBe(403);
    expect((await handshake(`${t.system.urls.websocket}?tenant=initech`, { headers: { Authorization: `Bearer ${accessToken}` } })).status).toBe(403);
    await acme.client.close();
    await globex.client.close();
  });

  it('refuses a forged, an expired or an ID token at the upgrade (403), and no token at all (401)', async () => {
    const { accessToken, idToken } = await t.system.signIn('alice@acme.test');
    const claims = JSON.parse(Buffer.from(accessToken.split('.')[1], 'base64url').toString()) as Record<string, unknown>;
    const [h, p] = accessToken.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, 'cognito:groups': ['tenant:globex'] })).toString('base64url')}.${accessToken.split('.')[2]}`;
    const now = Math.floor(Date.now() / 1000);
    const expired = cognitoLocalToken({ ...claims, iat: now - 1000, exp: now - 100 });
    const bearer = (token: string) => handshake(t.system.urls.websocket, { headers: { Authorization: `Bearer ${token}` } });

    expect((await bearer(forged)).status).toBe(403);
    expect((await bearer(expired)).status).toBe(403);
    expect((await bearer(idToken)).status).toBe(403);
    expect((await bearer(`${h}.${p}.`)).status).toBe(403);
    expect((await handshake(t.system.urls.websocket)).status).toBe(401);
    // The minted token is sound apart from its expiry: the same key and claims, unexpired, get in.
    expect((await bearer(cognitoLocalToken({ ...claims, iat: now, exp: now + 600 }))).status).toBe(101);

    const reasons = t.logs.filter((l) => l.includes('connect_denied')).map((l) => JSON.parse(l.slice(l.indexOf('{'))).reason);
    // Each refusal is counted for the AuthorizerDenials alarm, in the stack's namespace.
    const denials = metricLines().filter((m) => m.Component === 'authorizer' && m.AuthorizerDenied === 1);
    expect(denials.length).toBeGreaterThanOrEqual(5);
    expect((denials[0]._aws as { CloudWatchMetrics: Array<{ Namespace: string }> }).CloudWatchMetrics[0].Namespace).toBe('Gatehouse/Gatehouse');
    expect(reasons).toEqual(expect.arrayContaining(['bad_signature', 'expired', 'wrong_token_use', 'non_canonical_encoding', 'missing_token']));
    for (const secret of [accessToken, idToken, forged, expired]) {
      expect(t.logs.some((l) => l.includes(secret.split('.')[2]))).toBe(false);
    }
  });

  it('rejects the socket when $connect answers non-2xx (a browser offering only unknown subprotocols)', async () => {
    const { accessToken } = await t.system.signIn('alice@acme.test');
    expect((await handshake(t.system.urls.websocket, { protocols: ['chat'], headers: { Authorization: `Bearer ${accessToken}` } })).status).toBe(400);
  });
});

describe('rooms', () => {
  it('sends and receives within a room, with sequence numbers, sender and server time', async () => {
    const alice = await t.connect('alice@acme.test');
    const bob = await t.connect('bob@acme.test');
    await alice.client.join('lobby');
    await bob.client.join('lobby');
    const sent = await alice.client.send('lobby', { text: 'hi bob' });
    const [received] = await bob.waitFor(1);
    const me = await alice.client.whoami();
    expect(received).toEqual({
      type: 'message',
      room: 'lobby',
      seq: sent.seq,
      messageId: sent.messageId,
      sender: { userId: me.userId, name: 'Alice Liddell' },
      ts: expect.any(Number),
      data: { text: 'hi bob' },
    });
    await alice.waitFor(1); // the sender's own socket gets it too
    await expect(alice.client.join('user:someone-else')).rejects.toMatchObject({ code: 'forbidden' });
    await expect(bob.client.send('not-joined', 1)).rejects.toMatchObject({ code: 'not_member' });
  });

  it('isolates tenants: every sender x tenant x room combination, zero cross-tenant deliveries', async () => {
    const people = [
      { label: 'alice', email: 'alice@acme.test', tenant: 'acme' },
      { label: 'bob', email: 'bob@acme.test', tenant: 'acme' },
      { label: 'dana', email: 'dana@acme.test', tenant: 'acme' },
      { label: 'carol', email: 'carol@globex.test', tenant: 'globex' },
      { label: 'erin-acme', email: 'erin@both.test', tenant: 'acme' },
      { label: 'erin-globex', email: 'erin@both.test', tenant: 'globex' },
    ];
    const rooms = ['matrix-a', 'matrix-b'];
    const conns = await Promise.all(people.map(async (p) => ({ ...p, ...(await t.connect(p.email, { tenant: p.tenant })) })));
    for (const c of conns) for (const room of rooms) await c.client.join(room);
    for (const sender of conns) for (const room of rooms) await sender.client.send(room, { from: sender.label, tenant: sender.tenant, room });

    let crossTenant = 0;
    for (const receiver of conns) {
      const expected = conns.filter((s) => s.tenant === receiver.tenant).length * rooms.length;
      await receiver.waitFor(expected);
      await new Promise((r) => setTimeout(r, 100)); // anything extra would have arrived by now
      crossTenant += receiver.messages.filter((m) => (m.data as { tenant: string }).tenant !== receiver.tenant).length;
      expect(receiver.messages).toHaveLength(expected);
      for (const room of rooms) {
        const inRoom = receiver.messages.filter((m) => m.room === room);
        expect(inRoom.every((m) => (m.data as { room: string }).room === room)).toBe(true);
        expect(inRoom.map((m) => m.seq)).toEqual(inRoom.map((_, i) => i + 1)); // per tenant-room sequence, gap-free
      }
    }
    expect(crossTenant).toBe(0);
    await Promise.all(conns.map((c) => c.client.close()));
  });

  it('purges a client that vanished without $disconnect on the next broadcast: the gone id, never the sender', async () => {
    const alice = await t.connect('alice@acme.test');
    const ghost = await t.connect('bob@acme.test', { reconnect: false });
    await alice.client.join('haunted');
    await ghost.client.join('haunted');
    const ghostId = (await ghost.client.whoami()).connectionId;
    const aliceId = (await alice.client.whoami()).connectionId;
    const table = t.system.dynamo.doc;
    const [tableName] = resourcesOfType(loadTemplate(CDK_OUT, 'Gatehouse'), 'AWS::DynamoDB::Table')[0];
    const stored = async (id: string) => (await table.send(new GetCommand({ TableName: tableName, Key: { pk: `conn#${id}`, sk: 'conn' } }))).Item;
    expect(await stored(ghostId)).toBeDefined();

    expect(t.system.gateway.drop(ghostId)).toBe(true); // socket gone, $disconnect never delivered
    await new Promise((r) => setTimeout(r, 100));
    expect(await stored(ghostId)).toBeDefined(); // still there: nobody told the store

    await alice.client.send('haunted', 'anyone?');
    await waitUntil(async () => (await stored(ghostId)) === undefined, 3000, 'the stale connection to be purged');
    expect(await stored(aliceId)).toBeDefined();
    expect(t.logs.some((l) => l.includes('stale_connection_removed') && l.includes(ghostId))).toBe(true);
    // The delivery's counts reach CloudWatch as an embedded-metric line: one delivered (alice), one gone (the ghost).
    expect(metricLines()).toContainEqual(expect.objectContaining({ Component: 'message', Deliveries: 1, ConnectionsGone: 1, ThrottledPosts: 0, FailedPosts: 0 }));
    await alice.client.close();
  });

  it('reconnects after a forced close with a new connection id and gets every missed message exactly once, in order', async () => {
    const alice = await t.connect('alice@acme.test', { reconnect: { initialDelayMs: 1000, jitter: 0 } });
    const bob = await t.connect('bob@acme.test');
    await alice.client.join('resume');
    await bob.client.join('resume');
    await bob.client.send('resume', 1);
    await bob.client.send('resume', 2);
    await alice.waitFor(2);
    const before = (await alice.client.whoami()).connectionId;

    const states: string[] = [];
    alice.client.on('state', ({ state }) => states.push(state));
    const management = new ApiGatewayManagementApiClient({ endpoint: t.system.urls.connections, region: t.system.region, credentials: local });
    await management.send(new DeleteConnectionCommand({ ConnectionId: before }));
    await waitUntil(() => states.includes('reconnecting'), 2000, 'the client to notice');
    for (let i = 3; i <= 7; i++) await bob.client.send('resume', i); // sent while alice is away

    await alice.waitFor(7, 8000);
    await new Promise((r) => setTimeout(r, 200));
    expect(alice.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(alice.messages.map((m) => m.data)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(states.at(-1)).toBe('open');
    expect(states).not.toContain('closed');
    const after = (await alice.client.whoami()).connectionId;
    expect(after).not.toBe(before);
    await alice.client.close();
    await bob.client.close();
    management.destroy();
  });
});

describe('API Gateway behaviour', () => {
  it('serves @connections: POST delivers, GET describes, unknown ids answer 410 GoneException', async () => {
    const alice = await t.connect('alice@acme.test');
    const id = (await alice.client.whoami()).connectionId;
    const events: unknown[] = [];
    alice.client.on('event', (e) => events.push(e));
    const management = new ApiGatewayManagementApiClient({ endpoint: t.system.urls.connections, region: t.system.region, credentials: local });
    const info = await management.send(new GetConnectionCommand({ ConnectionId: id }));
    expect(info.Identity?.SourceIp).toBe('127.0.0.1');
    expect(info.ConnectedAt).toBeInstanceOf(Date);
    await management.send(new PostToConnectionCommand({ ConnectionId: id, Data: new TextEncoder().encode('{"type":"pong","ts":1}') }));
    await waitUntil(() => events.length > 0, 2000, 'the posted frame');
    expect(events[0]).toEqual({ type: 'pong', ts: 1 });
    await expect(management.send(new PostToConnectionCommand({ ConnectionId: 'AAAAAAAAAAAAAA==', Data: new Uint8Array([1]) }))).rejects.toMatchObject({
      name: 'GoneException',
    });
    management.destroy();
    await alice.client.close();
  });

  it('closes a socket with 1009 when a frame exceeds 32 KB', async () => {
    const { accessToken } = await t.system.signIn('alice@acme.test');
    const { ws } = await handshake(t.system.urls.websocket, { headers: { Authorization: `Bearer ${accessToken}` } });
    const closed = new Promise<number>((resolve) => ws!.on('close', (code) => resolve(code)));
    ws!.send(JSON.stringify({ action: 'ping', pad: 'x'.repeat(33 * 1024) }));
    expect(await closed).toBe(1009);
  });

  it('answers a malformed frame with an error event and keeps the socket open', async () => {
    const { accessToken } = await t.system.signIn('alice@acme.test');
    const { ws } = await handshake(t.system.urls.websocket, { headers: { Authorization: `Bearer ${accessToken}` } });
    const frames: string[] = [];
    ws!.on('message', (d) => frames.push(d.toString()));
    ws!.send('{not json');
    ws!.send(JSON.stringify({ action: 'dance' }));
    await waitUntil(() => frames.length === 2, 3000, 'two error frames');
    expect(frames.map((f) => JSON.parse(f).code).sort()).toEqual(['malformed_json', 'unknown_action']);
    expect(ws!.readyState).toBe(WebSocket.OPEN);
    ws!.close();
  });
});

describe('server-side publishing', () => {
  it('delivers a published event to the room in that tenant only, through the EventBridge API', async () => {
    const dana = await t.connect('dana@acme.test');
    const bob = await t.connect('bob@acme.test');
    const carol = await t.connect('carol@globex.test');
    for (const c of [dana, bob, carol]) await c.client.join('jobs');
    const events = new EventBridgeClient({ endpoint: t.system.urls.events, region: t.system.region, credentials: local });
    const put = await events.send(
      new PutEventsCommand({
        Entries: [
          {
            EventBusName: t.system.eventBusName,
            Source: 'jobs.service',
            DetailType: PUBLISH_DETAIL_TYPE,
            Detail: JSON.stringify({ tenantId: 'acme', room: 'jobs', type: 'job.progress', payload: { job: '7', percent: 30 } }),
          },
        ],
      }),
    );
    expect(put.FailedEntryCount).toBe(0);
    for (const c of [dana, bob]) {
      const [m] = await c.waitFor(1);
      expect(m).toMatchObject({ room: 'jobs', sender: { service: 'jobs.service' }, kind: 'job.progress', data: { job: '7', percent: 30 } });
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(carol.messages).toEqual([]);
    events.destroy();
    for (const c of [dana, bob, carol]) await c.client.close();
  });

  it('is what the CLI does: `publish` reaches the room, `token` prints a token the API accepts', async () => {
    const carol = await t.connect('carol@globex.test');
    await carol.client.join('jobs');
    const published = await cli('publish', '--tenant', 'globex', '--room', 'jobs', '--type', 'job.done', '--payload', '{"job":"9"}');
    expect(published.stderr).toBe('');
    expect(published.stdout).toMatch(/^published job\.done to globex\/jobs/);
    const [m] = await carol.waitFor(1);
    expect(m).toMatchObject({ kind: 'job.done', data: { job: '9' }, sender: { service: 'gatehouse.cli' } });

    const token = (await cli('token', '--user', 'carol@globex.test')).stdout.trim();
    const { status, ws } = await handshake(t.system.urls.websocket, { headers: { Authorization: `Bearer ${token}` } });
    expect(status).toBe(101);
    ws!.close();

    const bad = await cli('publish', '--tenant', 'globex', '--room', 'jobs', '--type', 'x', '--payload', 'not json');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('--payload must be JSON');
    await carol.client.close();
  });

  it('answers --help per command, an unknown command and a missing or bad flag with the flag names, publishing nothing', async () => {
    const commands = ['token', 'connect', 'publish', 'speak'];
    const helps = await Promise.all(commands.map((command) => cli(command, '--help')));
    helps.forEach((help, i) => {
      expect({ command: commands[i], ...help }).toMatchObject({ status: 0, stderr: '', stdout: expect.stringContaining(`Usage: npx gatehouse ${commands[i]} [options]`) });
      // One command's help, not every command's.
      for (const other of commands.filter((c) => c !== commands[i])) expect(help.stdout).not.toContain(`npx gatehouse ${other} `);
    });
    const unknown = await cli('pubish', '--tenant', 'acme');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('gatehouse: unknown command "pubish" (the commands: token, connect, publish, speak)');
    const missing = await cli('publish', '--tenant', 'acme', '--room', 'jobs', '--type', 'x');
    expect(missing).toMatchObject({ status: 1, stderr: 'gatehouse: --payload is required (npx gatehouse publish --help)\n' });
    const badTenant = await cli('publish', '--tenant', 'a b', '--room', 'jobs', '--type', 'x', '--payload', '1');
    expect(badTenant).toMatchObject({ status: 1, stderr: 'gatehouse: Not publishable: --tenant must be 1-64 characters of [A-Za-z0-9_-]\n' });
  });

  it('publishes to a tenant no user is in (a typo, or one with no users yet) with a warning on stderr', async () => {
    const dana = await t.connect('dana@acme.test');
    await dana.client.join('jobs');
    const typo = await cli('publish', '--tenant', 'acmee', '--room', 'jobs', '--type', 'job.done', '--payload', '{"job":"typo"}');
    expect(typo).toMatchObject({
      status: 0,
      stderr: 'gatehouse: warning: no user of the local system is in tenant "acmee" (its tenants: acme, globex); publishing anyway\n',
      stdout: expect.stringMatching(/^published job\.done to acmee\/jobs \(event [\w-]+\)\n$/),
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(dana.messages).toEqual([]); // acme's room is another room
    const help = await cli('publish', '--help');
    expect(help.stdout).toContain('a tenant none of its users is in (a typo such as --tenant acmee) gets a warning on stderr');
    await dana.client.close();
  });

  it('names the flag in every refusal, whatever the command, before signing in or publishing', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-flags-'));
    const mp3 = path.join(dir, 'song.wav');
    const pcm = writeWav({ sampleRate: 44_100, channels: 1, data: new Uint8Array(100) });
    new DataView(pcm.buffer).setUint16(20, 0x55, true);
    writeFileSync(mp3, pcm);
    const refusals: Array<[string[], string]> = [
      [['publish', '--tenant', 'acme', '--room', 'bad room', '--type', 'x', '--payload', '1'], 'Not publishable: --room must be 1-64 characters of [A-Za-z0-9_.-]'],
      [['publish', '--tenant', 'acme', '--room', 'jobs', '--type', 'a b', '--payload', '1'], 'Not publishable: --type must be 1-64 characters'],
      [['publish', '--tenant', 'acme', '--room', 'jobs', '--type', 'x', '--payload', JSON.stringify('x'.repeat(17_000))], 'Not publishable: --payload exceeds 16384 bytes'],
      [['token'], '--user <email> is required (npx gatehouse token --help)'],
      [['token', '--usr', 'alice@acme.test'], "Unknown option '--usr'"],
      [['token', '--user', 'nobody@acme.test'], 'No password for --user nobody@acme.test: pass --password <pw> (or set GATEHOUSE_PASSWORD)'],
      [['token', '--user', 'alice@acme.test', '--password', 'wrong-Passw0rd'], 'Cognito refused the sign-in of --user alice@acme.test: Incorrect username or password.'],
      [['connect', '--user', 'alice@acme.test', '--transport', 'pigeon'], '--transport must be header or subprotocol, not "pigeon"'],
      [['connect', '--user', 'alice@acme.test', '--room', 'no room'], '--room must be 1-64 characters'],
      [['speak', '--user', 'bob@acme.test'], '--wav <file> is required (npx gatehouse speak --help)'],
      [['speak', '--user', 'bob@acme.test', '--wav', path.join(dir, 'missing.wav')], `--wav ${path.join(dir, 'missing.wav')}: no such file`],
      [['speak', '--user', 'bob@acme.test', '--wav', mp3], `--wav ${mp3}: Not a PCM WAV: it is MP3 (0x0055)`],
      [['token', '--user', 'alice@acme.test', '--outputs', path.join(dir, 'none.json')], `--outputs ${path.join(dir, 'none.json')}: no such file`],
    ];
    // A few at a time: each is a Node process starting up.
    const results: Array<Awaited<ReturnType<typeof cli>>> = [];
    for (let i = 0; i < refusals.length; i += 4) results.push(...(await Promise.all(refusals.slice(i, i + 4).map(([args]) => cli(...args)))));
    results.forEach((result, i) => {
      expect({ args: refusals[i][0], ...result }).toMatchObject({ status: 1, stdout: '', stderr: expect.stringContaining(`gatehouse: ${refusals[i][1]}`) });
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).not.toMatch(/tenantId|"room"|Field /);
    });
    writeFileSync(path.join(dir, 'outputs.json'), JSON.stringify({ Other: {} }));
    const stack = await cli('token', '--user', 'alice@acme.test', '--outputs', path.join(dir, 'outputs.json'));
    expect(stack.stderr).toBe(`gatehouse: No stack "Gatehouse" in --outputs ${path.join(dir, 'outputs.json')} (it has: Other); choose one with --stack\n`);
  });
});

describe('the local edge (CloudFront paths) and the speech service', () => {
  it('serves the web app and config.json, and routes /ws/realtime through the edge function to the API', async () => {
    const page = await fetch(`${t.system.urls.edge}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>Gatehouse</title>');
    expect(await (await fetch(`${t.system.urls.edge}/config.json`)).json()).toMatchObject({
      userPoolId: t.system.userPoolId,
      userPoolClientId: t.system.clientId,
      authMode: 'session',
    });
    const { accessToken } = await t.system.signIn('alice@acme.test');
    const viaEdge = await handshake(t.system.urls.realtime, { protocols: ['gatehouse.v1', `bearer.${accessToken}`] });
    expect(viaEdge).toMatchObject({ status: 101, protocol: 'gatehouse.v1' });
    viaEdge.ws!.close();
    // The edge function refuses tokens in URLs, on both WebSocket paths.
    expect((await handshake(`${t.system.urls.realtime}?token=${accessToken}`)).status).toBe(400);
    expect((await handshake(`${t.system.urls.speech}?token=${accessToken}`)).status).toBe(400);
  });

  it('streams a WAV file to /ws/speech as a demo user and gets audio and text back (the CLI `speak`)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-speak-'));
    const input = path.join(dir, 'hello.wav');
    const output = path.join(dir, 'answer.wav');
    writeFileSync(input, writeWav({ sampleRate: 16000, channels: 1, data: syntheticSpeech(1.2, 16000) }));
    const run = await cli('speak', '--user', 'bob@acme.test', '--wav', input, '--out', output);
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain('user: (1.2 seconds of speech)');
    expect(run.stdout).toContain('assistant: Turn 1: I heard 1.2 seconds of audio.');
    const answer = parseWav(readFileSync(output));
    expect(answer.sampleRate).toBe(24000);
    expect(answer.data.length / 2 / 24000).toBeGreaterThan(1);
  });

  it.each([
    ['22,050 Hz stereo 24-bit', 22_050, 2, 24, '22050 Hz stereo 24-bit PCM'],
    ['44.1 kHz mono 16-bit', 44_100, 1, 16, '44100 Hz mono 16-bit PCM'],
  ])('resamples a %s WAV to 16 kHz mono itself and is heard the same (the CLI `speak`)', async (_name, rate, channels, bits, described) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-speak-'));
    const input = path.join(dir, 'hello.wav');
    // The same utterance the 16 kHz test sends, recorded at another rate, depth and channel count.
    const speech = syntheticSpeech(1.2, rate);
    const width = bits / 8;
    const data = new Uint8Array((speech.length / 2) * channels * width);
    for (let i = 0; i < speech.length / 2; i++) {
      const sample = speech.readInt16LE(i * 2) * 2 ** (bits - 16);
      for (let c = 0; c < channels; c++) for (let b = 0; b < width; b++) data[(i * channels + c) * width + b] = (sample >> (8 * b)) & 0xff;
    }
    writeFileSync(input, writeWav({ sampleRate: rate, channels, bitsPerSample: bits, data }));
    expect(decodeWav(readFileSync(input))).toMatchObject({ sampleRate: rate, bitsPerSample: bits, channels: { length: channels } });
    const run = await cli('speak', '--user', 'alice@acme.test', '--wav', input, '--out', path.join(dir, 'answer.wav'));
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain(`* ${input}: ${described}, resampled to 16000 Hz mono`);
    expect(run.stdout).toContain('user: (1.2 seconds of speech)');
    expect(run.stdout).toContain('assistant: Turn 1: I heard 1.2 seconds of audio.');
  });

  it('closes a speech socket with a bad token with 1008', async () => {
    const ws = new WebSocket(t.system.urls.speech, ['gatehouse.v1', 'bearer.not-a-token']);
    const closed = await new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    expect(closed).toEqual({ code: 1008, reason: 'unauthorized: malformed_token' });
  });
});

describe('the CLI `connect`', () => {
  it('answers an unknown /command with the list of commands, sending nothing, and quits on /quit', async () => {
    const room = `cli-${Date.now().toString(36)}`;
    const bob = await t.connect('bob@acme.test');
    await bob.client.join(room);
    const alice = cliSession('connect', '--user', 'alice@acme.test', '--room', room);
    await alice.printed(`* joined ${room}`);
    alice.type('/hlep');
    await alice.printed('! unknown command /hlep\nCommands:\n  /join <room>');
    alice.type('/join');
    await alice.printed('! /join needs a room: /join <room>');
    alice.type('hello bob');
    await bob.waitFor(1);
    alice.type('/quit');
    expect(await alice.exited).toMatchObject({ status: 0, stderr: '' });
    expect(bob.messages.map((m) => m.data)).toEqual([{ text: 'hello bob' }]);
    await bob.client.close();
  });

  it('tells a member of several tenants which --tenant to pass instead of a bare 403, and connects with one', async () => {
    const none = await cli('connect', '--user', 'erin@both.test');
    expect(none).toMatchObject({
      status: 1,
      stderr: 'gatehouse: The server refused the connection (HTTP 403): erin@both.test is in 2 tenants: choose one with --tenant acme or --tenant globex\n',
    });
    const other = await cli('connect', '--user', 'erin@both.test', '--tenant', 'initech');
    expect(other.stderr).toBe('gatehouse: The server refused the connection (HTTP 403): erin@both.test is not in tenant "initech": use --tenant acme or --tenant globex\n');
    const single = await cli('connect', '--user', 'carol@globex.test', '--tenant', 'acme');
    expect(single.stderr).toBe('gatehouse: The server refused the connection (HTTP 403): carol@globex.test is not in tenant "acme": use --tenant globex, or leave --tenant out\n');
    const globex = cliSession('connect', '--user', 'erin@both.test', '--tenant', 'globex');
    await globex.printed('tenant globex');
    globex.type('/quit');
    expect((await globex.exited).status).toBe(0);
  });

  it('follows the local system to its new app client when Cognito no longer knows the old one (a restarted `npm start`)', async () => {
    const config = cliConfig();
    const current = readFileSync(config, 'utf8');
    // The Cognito of the system before the restart: it knows no app client any more, and meanwhile the new system
    // has written its description.
    let asked = 0;
    const before = createServer((_req, res) => {
      asked++;
      writeFileSync(config, current);
      res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1' }).end(JSON.stringify({ __type: 'ResourceNotFoundException', message: 'User pool client old does not exist.' }));
    });
    await new Promise<void>((resolve) => before.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(before.address() as AddressInfo).port}`;
    writeFileSync(config, JSON.stringify({ ...JSON.parse(current), clientId: 'old', cognitoEndpoint: endpoint }));
    const alice = cliSession('connect', '--user', 'alice@acme.test', '--config', config);
    await alice.printed('* signed in as Alice Liddell');
    expect(asked).toBe(1);
    alice.type('/quit');
    expect((await alice.exited).status).toBe(0);
    before.close();
  });

  it('exits 1 within seconds, saying why, when its user is signed out everywhere from another session', async () => {
    const dana = cliSession('connect', '--user', 'dana@acme.test');
    await dana.printed('* signed in as Dana Scully');
    const elsewhere = await t.connect('dana@acme.test');
    const started = Date.now();
    // That session's own socket is closed too, maybe before its reply: the reply is not the point.
    await elsewhere.client.request({ action: 'logout', everywhere: true }).catch(() => undefined);
    const ended = await dana.exited;
    expect(ended.at - started).toBeLessThan(5000);
    expect(ended).toMatchObject({
      status: 1,
      stderr: 'gatehouse: Signed out everywhere by the server (a sign-out elsewhere, or the sign-in was revoked): connect again to sign in\n',
    });
    expect(ended.stdout).toContain('* signed_out');
  });
});
