/**
 * A CLI left running across an `npm start` restart: the system comes back on the same ports with the same user pool
 * and app client ids (cognito-local's are random; the local system keeps its seeded pool), so the CLI's token is
 * still good there and `connect` reconnects, rejoins and sends, by itself.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { LocalConfig } from '../protocol';
import { ROOT } from '../local/paths';
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
