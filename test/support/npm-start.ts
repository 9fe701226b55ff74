/**
 * `npm start` as a developer runs it, in a process group of its own as a terminal's foreground job, so Ctrl-C can be
 * sent to the whole group the way a terminal does: through npm itself, or `node --import tsx local/start.ts` (what
 * the npm script runs; never tsx's runner, which relays signals and kills the program 30 ms later).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { ROOT } from '../../local/paths';

/** The banner's last line: everything is up. */
export const READY = 'Ctrl-C stops everything';

export interface NpmStart {
  process: ChildProcess;
  /** Everything it printed so far, stdout and stderr. */
  readonly output: string;
  /** The process group (its pid). */
  pgid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when the output contains `text` (from any point of the run). */
  printed(text: string | RegExp, ms?: number): Promise<void>;
  /** Ctrl-C to the whole group; resolves with how long until no process of it is left (SIGKILL after `deadlineMs`). */
  ctrlC(deadlineMs?: number): Promise<number>;
}

export function npmStart(args: string[], { viaNpm = false, env = {} as Record<string, string> } = {}): NpmStart {
  const [command, ...prefix] = viaNpm ? ['npm', 'start', '--'] : [process.execPath, '--import', 'tsx', 'local/start.ts'];
  const child = spawn(command, [...prefix, ...args], {
    cwd: ROOT,
    detached: true,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  /** Pending `printed` waits: each checks the output, or fails. */
  const waiting = new Map<() => void, (why: string) => void>();
  const append = (chunk: Buffer) => {
    output += chunk.toString();
    for (const check of waiting.keys()) check();
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => {
      for (const fail of waiting.values()) fail('npm start exited first');
      resolve({ code, signal });
    }),
  );
  const run: NpmStart = {
    process: child,
    get output() {
      return output;
    },
    pgid: child.pid!,
    exited,
    printed: (text, ms = 60_000) =>
      new Promise((resolve, reject) => {
        const done = (error?: string) => {
          waiting.delete(check);
          clearTimeout(timer);
          if (error) reject(new Error(`${error}: no ${String(text)} in:\n${output}`));
          else resolve();
        };
        const check = () => {
          if (typeof text === 'string' ? output.includes(text) : text.test(output)) done();
        };
        const timer = setTimeout(() => done(`${ms} ms passed`), ms);
        waiting.set(check, done);
        check();
      }),
    async ctrlC(deadlineMs = 5_000) {
      const sent = Date.now();
      if (!groupAlive(run.pgid)) throw new Error(`npm start had already exited (${JSON.stringify(await exited)}):\n${output}`);
      process.kill(-run.pgid, 'SIGINT');
      while (groupAlive(run.pgid)) {
        if (Date.now() - sent > deadlineMs) {
          process.kill(-run.pgid, 'SIGKILL');
          throw new Error(`still running ${deadlineMs} ms after Ctrl-C:\n${output}`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
      await exited;
      return Date.now() - sent;
    },
  };
  return run;
}

/** The command lines of the group's processes. */
export function groupCommands(pgid: number): string[] {
  const ps = spawnSync('ps', ['-o', 'args=', '-g', String(pgid)], { encoding: 'utf8' });
  return ps.stdout.split('\n').filter(Boolean);
}

export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

export const portFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });

/** A port that was free a moment ago (for a system that must come back on the same ports). */
export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
