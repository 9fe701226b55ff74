/**
 * Restarts: ids derived from names, not cognito-local's random ones, so two starts that each seed a pool afresh agree
 * on the pool, app client and user ids and accept each other's access tokens (refresh tokens are the pool's state,
 * and do not survive a fresh one); and a CLI left running across an `npm start` restart on the same ports
 * reconnects, rejoins and sends, by itself.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import WebSocket from 'ws';
import type { LocalConfig } from '../protocol';
import { writeLocalConfig } from '../local/config';
import { ROOT } from '../local/paths';
import { startLocalSystem } from '../local/system';
import { freePort, npmStart, READY, type NpmStart } from './support/npm-start';
import { waitUntil } from './support/wait';

jest.setTimeout(180_000);

let dir: string;
const running: NpmStart[] = [];
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-restart-'));
});
afterAll(async () => {
  for (const run of running) await run.ctrlC().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

const claims = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8')) as { sub: string; client_id: string };

test('two starts that each seed a pool afresh write the same pool and client ids, and a token of the first opens a socket on the second', async () => {
  // A state folder each: nothing is shared, not even the seed cache, so each start seeds its own pool.
  const start = (name: string) => startLocalSystem({ stateDir: path.join(dir, name), log: () => undefined });
  const first = await start('state-1');
  const tokens = await first.signIn('alice@acme.test');
  const before = writeLocalConfig(first, path.join(dir, 'first.json'));
  await first.stop();

  const second = await start('state-2');
  try {
    const after = writeLocalConfig(second, path.join(dir, 'second.json'));
    expect({ pool: after.userPoolId, client: after.clientId }).toEqual({ pool: before.userPoolId, client: before.clientId });
    expect(after.clientId).toMatch(/^[a-z0-9]{26}$/); // Cognito's form
    expect(claims((await second.signIn('alice@acme.test')).accessToken)).toMatchObject({ sub: claims(tokens.accessToken).sub, client_id: after.clientId });

    // The access token from before the restart: same issuer, client, user and signing key, so the authorizer takes it.
    const socket = new WebSocket(second.urls.websocket, { headers: { Authorization: `Bearer ${tokens.accessToken}` } });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('unexpected-response', (_req, res) => reject(new Error(`handshake ${res.statusCode}`)));
      socket.once('error', reject);
    });
    socket.close();
    // Its refresh token was the first pool's: a client signs in again.
    await expect(second.cognito.refresh(tokens.refreshToken)).rejects.toThrow("Invalid Refresh Token");
  } finally {
    await second.stop();
  }
});

test('a running `connect` reconnects after npm start is stopped and started again, with the same pool and client ids', async () => {
  const config = path.join(dir, 'local.json');
  const ports = ['--port', String(await freePort()), '--cognito-port', String(await freePort()), '--dynamo-port', String(await freePort())];
  const start = async () => {
    const run = npmStart([...ports, '--quiet', '--config', config]);
    running.push(run);
    await run.printed(READY);
    return { run, config: JSON.parse(readFileSync(config, 'utf8')) as LocalConfig };
  };

  const first = await start();
  const cli = spawn(path.join(ROOT, 'node_modules', '.bin', 'gatehouse'), ['connect', '--user', 'alice@acme.test', '--room', 'general', '--config', config], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  cli.stdout.on('data', (d: Buffer) => (out += d.toString()));
  cli.stderr.on('data', (d: Buffer) => (out += d.toString()));
  let exit: number | null | undefined;
  cli.once('exit', (code) => (exit = code));
  try {
    await waitUntil(() => out.includes('* joined general'), 20_000, `the CLI joined general: ${out}`);

    await first.run.ctrlC();
    await waitUntil(() => out.includes('* reconnecting'), 10_000, `the CLI noticed the system went away: ${out}`);
    const before = out.length;

    const second = await start();
    expect({ pool: second.config.userPoolId, client: second.config.clientId }).toEqual({ pool: first.config.userPoolId, client: first.config.clientId });

    // Backoff doubles to at most 30 s; a few attempts land within this.
    await waitUntil(() => out.slice(before).includes('* open'), 60_000, `the CLI reconnected: ${out}`);
    // Typed the moment it is back: the line must wait for the rejoin, not be refused by a server that has not seen it.
    cli.stdin.write('back after the restart\n');
    await waitUntil(() => /\[general #\d+\] Alice Liddell: back after the restart/.test(out.slice(before)), 10_000, `the message went through the new system: ${out}`);
    expect(out).not.toMatch(/^gatehouse: /m);
    expect(exit).toBeUndefined();
    cli.stdin.write('/quit\n');
    await waitUntil(() => exit !== undefined, 10_000, 'the CLI quit');
    expect(exit).toBe(0);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nnpm start (the second run):\n${running[1]?.output.slice(-4000) ?? 'not started'}`, { cause: err });
  } finally {
    cli.kill('SIGKILL');
  }
});
