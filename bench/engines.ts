/**
 * What the benchmarks run beside the code they measure, each in a process of its own, so that the work it does is
 * not counted as the function's: the DynamoDB engine, and an @connections stand-in that counts copies.
 */
import { spawn } from 'node:child_process';
import { ROOT } from '../local/paths';

/** Runs `node <args>` from the repository's root until stopped; resolves with the first line it prints (its address). */
async function spawnAnnouncing(what: string, args: string[]): Promise<{ line: string; stop: () => void }> {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString().trim()));
    child.once('exit', (c) => reject(new Error(`${what} exited ${c}`)));
  });
  return { line, stop: () => child.kill() };
}

/** A 512 MB function's share of a vCPU: Lambda allocates CPU in proportion to memory, one vCPU at 1,769 MB. */
export const LAMBDA_SHARE = 512 / 1769;

/** An @connections stand-in in its own process (so its CPU is not counted): answers every POST 200 at once and counts each connection's copies. */
export async function startEndpoint() {
  const code = `
    const counts = new Map();
    const server = require('node:http').createServer((req, res) => {
      if (req.method === 'GET') {
        let copies = 0, twice = 0;
        for (const n of counts.values()) { copies += n; if (n > 1) twice += n - 1; }
        return res.end(JSON.stringify({ members: counts.size, copies, duplicates: twice }));
      }
      if (req.method === 'DELETE' && req.url === '/reset') { counts.clear(); return res.end('{}'); }
      const id = decodeURIComponent(req.url.split('/').pop());
      counts.set(id, (counts.get(id) || 0) + 1);
      req.resume();
      req.on('end', () => res.writeHead(200).end());
    });
    server.keepAliveTimeout = 60000;
    server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));`;
  const { line, stop } = await spawnAnnouncing('endpoint', ['-e', code]);
  const port = Number(line);
  const url = `http://127.0.0.1:${port}/live`;
  return {
    url,
    stats: async () => (await (await fetch(`http://127.0.0.1:${port}/`)).json()) as { members: number; copies: number; duplicates: number },
    reset: async () => void (await fetch(`http://127.0.0.1:${port}/reset`, { method: 'DELETE' })),
    stop,
  };
}

/** The DynamoDB engine in a process of its own: what it spends serving a request is DynamoDB's, not the function's. */
export async function startDynamoProcess(): Promise<{ endpoint: string; stop: () => void }> {
  const code = `require('./local/emulator/dynamodb').startDynamo({}).then((d) => process.stdout.write(d.endpoint + '\\n'));`;
  const { line: endpoint, stop } = await spawnAnnouncing('DynamoDB engine', ['--import', 'tsx', '-e', code]);
  return { endpoint, stop };
}
