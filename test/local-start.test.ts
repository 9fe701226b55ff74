/**
 * `npm start` as a terminal runs it: its own process group (npm, the system's Node process, cognito-local), stopped by Ctrl-C,
 * which a terminal sends to the whole group. Every time, everything must be gone within 5 s: no process of the group
 * left, every port it printed free again, and the CLI's description of the system removed.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import WebSocket from 'ws';
import { signInWithPassword } from '@gatehouse/client/node';
import type { LocalConfig } from '../protocol';
import { groupCommands, npmStart, portFree, READY } from './support/npm-start';
import { waitUntil } from './support/wait';

const RUNS = 20;
const DEADLINE_MS = 5_000;

const npmStartWithConfig = (config: string) =>
  npmStart(['--port', '0', '--cognito-port', '0', '--dynamo-port', '0', '--quiet', '--config', config], { viaNpm: true });

/** Live sockets of a signed-in user, so that stopping has $disconnects to deliver. */
async function connectSockets(configFile: string, n: number): Promise<WebSocket[]> {
  const config = JSON.parse(readFileSync(configFile, 'utf8')) as LocalConfig;
  const cognito = new CognitoIdentityProviderClient({ region: config.region, endpoint: config.cognitoEndpoint, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  const user = config.users[0];
  const { accessToken } = await signInWithPassword(cognito, config.clientId, user.email, user.password);
  cognito.destroy();
  return Promise.all(
    Array.from({ length: n }, () => {
      const ws = new WebSocket(config.websocketUrl, { headers: { Authorization: `Bearer ${accessToken}` } });
      ws.on('error', () => undefined);
      return new Promise<WebSocket>((resolve, reject) => {
        ws.once('open', () => resolve(ws));
        ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake ${res.statusCode}`)));
      });
    }),
  );
}

describe('npm start and Ctrl-C', () => {
  it(`stops everything within 5 s, ports freed, ${RUNS} times in a row`, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-start-'));
    const took: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const config = path.join(dir, `local-${i}.json`);
      const run = npmStartWithConfig(config);
      await run.printed(READY, 60_000);
      expect(existsSync(config)).toBe(true);
      const ports = [...run.output.matchAll(/http:\/\/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
      expect(new Set(ports).size).toBeGreaterThanOrEqual(3); // the gateway, Cognito, DynamoDB
      const sockets = await connectSockets(config, 3);
      took.push(await run.ctrlC(DEADLINE_MS));
      // Each was closed by the server as it stopped, not left to time out.
      expect(sockets.map((ws) => ws.readyState)).toEqual([WebSocket.CLOSED, WebSocket.CLOSED, WebSocket.CLOSED]);
      expect(run.output).toContain('Stopped.');
      for (const port of new Set(ports)) expect(await portFree(port)).toBe(true);
      expect(existsSync(config)).toBe(false);
    }
    expect(took.filter((ms) => ms > DEADLINE_MS)).toEqual([]);
    // eslint-disable-next-line no-console -- the measured stop times are reported for the README
    console.log(`Ctrl-C to gone (ms): ${took.join(', ')}`);
  }, 300_000);

  it.each([
    ['one readable line per function log', [], /^\d\d:\d\d:\d\d\.\d{3} connect +info +connected +tenantId=acme userId=\S+ connectionId=\S+ category=audit source=header$/m, /^\{|"time"|RealtimeConnect/m],
    ['the raw JSON lines with --json', ['--json'], /^\{"time":"[^"]+","level":"info","event":"connected","component":"connect",/m, /^\d\d:\d\d:\d\d\.\d{3} connect /m],
  ])('prints %s', async (_what, flags, printed, notPrinted) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-start-'));
    const config = path.join(dir, 'local.json');
    const run = npmStart(['--port', '0', '--cognito-port', '0', '--dynamo-port', '0', '--config', config, ...flags]);
    try {
      await run.printed(READY, 60_000);
      const sockets = await connectSockets(config, 1);
      await run.printed(printed, 10_000);
      expect(run.output).not.toMatch(notPrinted);
      sockets.forEach((ws) => ws.close());
    } finally {
      await run.ctrlC(DEADLINE_MS);
    }
  }, 60_000);

  it('serves the inspector with --inspect, at the URL the banner prints', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-start-'));
    const config = path.join(dir, 'local.json');
    const run = npmStart(['--port', '0', '--cognito-port', '0', '--dynamo-port', '0', '--quiet', '--inspect', '--config', config]);
    try {
      await run.printed(READY, 60_000);
      const url = /Inspector\s+(http:\/\/127\.0\.0\.1:\d+\/)/.exec(run.output)?.[1];
      expect(url).toBeDefined();
      const sockets = await connectSockets(config, 1);
      await waitUntil(async () => ((await (await fetch(`${url}state.json`)).json()) as { connections: unknown[] }).connections.length === 1, 5_000, 'the connection on the inspector');
      expect((await fetch(url!)).headers.get('content-security-policy')).toContain("default-src 'none'");
      sockets.forEach((ws) => ws.close());
    } finally {
      await run.ctrlC(DEADLINE_MS);
    }
  }, 60_000);

  it('stops cleanly when whatever read its output went away (EPIPE on the stop message is not a crash)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-start-'));
    const run = npmStart(['--port', '0', '--cognito-port', '0', '--dynamo-port', '0', '--quiet', '--config', path.join(dir, 'local.json')]);
    await run.printed(READY, 60_000);
    run.process.stdout!.destroy(); // as `npm start | head` does once head has its lines
    await run.ctrlC(DEADLINE_MS);
    expect(await run.exited).toEqual({ code: 0, signal: null });
    expect(run.output).not.toMatch(/EPIPE|Error/);
  }, 60_000);

  it('leaves no cognito-local behind when its process is killed outright (no exit handler runs)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-start-'));
    const run = npmStart(['--port', '0', '--cognito-port', '0', '--dynamo-port', '0', '--quiet', '--config', path.join(dir, 'local.json')]);
    await run.printed(READY, 60_000);
    expect(groupCommands(run.pgid).filter((c) => c.includes('cognito-local'))).toHaveLength(1);
    process.kill(run.pgid, 'SIGKILL'); // the Node process only, as the OOM killer or `kill -9` would
    await waitUntil(() => !groupCommands(run.pgid).length, 5_000, `the group to be gone: ${groupCommands(run.pgid).join('; ')}`);
  }, 60_000);

  it('says how long a synth has been running, and stops within 5 s when Ctrl-C comes during it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-start-'));
    // An empty cloud assembly folder: this start must synthesize (into it, leaving the shared cdk.out alone).
    const cdkOut = path.join(dir, 'cdk.out');
    const run = npmStart(['--port', '0', '--cognito-port', '0', '--dynamo-port', '0', '--quiet', '--config', path.join(dir, 'local.json')], { env: { GATEHOUSE_CDK_OUT: cdkOut } });
    await run.printed(/^… synthesizing the CDK app \(sources changed since the last synth\)$/m, 30_000);
    // The progress line with the time so far: the synth is under way (a child of the group), and Ctrl-C comes now.
    await run.printed(/^… synthesizing the CDK app \(sources changed since the last synth\) \(5 s\)$/m, 30_000);
    expect(groupCommands(run.pgid).some((c) => c.includes('local/synth.ts'))).toBe(true);
    await run.ctrlC(DEADLINE_MS);
    expect(run.output).toContain('SIGINT during startup: stopped.');
    expect(run.output).not.toContain('failed');
    expect(await run.exited).toEqual({ code: 130, signal: null });
    // Nothing claims a finished synth: the next start synthesizes again.
    expect(existsSync(path.join(cdkOut, '.gatehouse-sources'))).toBe(false);
  }, 60_000);

  it('stops within 5 s when Ctrl-C comes during startup, leaving no cognito-local behind', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-start-'));
    const config = path.join(dir, 'local.json');
    const run = npmStartWithConfig(config);
    // The moment cognito-local runs: the system is starting, the banner not printed yet.
    await waitUntil(() => groupCommands(run.pgid).some((c) => c.includes('cognito-local')), 30_000, 'cognito-local to start');
    await run.ctrlC(DEADLINE_MS);
    expect(run.output).not.toContain(READY); // it was a Ctrl-C during startup
    expect(existsSync(config)).toBe(false);
  }, 60_000);
});
