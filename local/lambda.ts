/**
 * Runs a Lambda's bundled asset from cdk.out the way the Lambda runtime would: loaded once into its own isolate
 * (a worker thread with its own module cache and its own process.env, i.e. a warm container), invoked with an
 * event and a context, bounded by the function's timeout. A timed-out or crashed container is replaced.
 */
import { randomUUID } from 'node:crypto';
import { Worker } from 'node:worker_threads';

export interface FunctionSpec {
  /** Logical id in the template; also the function name locally. */
  name: string;
  /** Folder of the bundle (cdk.out/asset.<hash>). */
  dir: string;
  /** `file.export`, as in the template (NodejsFunction: `index.handler`). */
  handler: string;
  env: Record<string, string>;
  timeoutMs: number;
}

export type LogSink = (source: string, line: string) => void;

// Plain JavaScript: it runs inside the worker, before any TypeScript tooling. It mirrors the Lambda Node.js
// runtime: require the handler once, then answer invocations with a context object.
const HOST = `
const { parentPort, workerData } = require('node:worker_threads');
const path = require('node:path');
const dot = workerData.handler.lastIndexOf('.');
let handler, initError;
try {
  handler = require(path.join(workerData.dir, workerData.handler.slice(0, dot)))[workerData.handler.slice(dot + 1)];
  if (typeof handler !== 'function') throw new Error('Handler ' + workerData.handler + ' is not a function');
} catch (err) { initError = err; }
parentPort.on('message', async ({ id, event, deadline }) => {
  const context = {
    awsRequestId: id, functionName: workerData.name, functionVersion: '$LATEST', memoryLimitInMB: '512',
    invokedFunctionArn: 'arn:aws:lambda:local:000000000000:function:' + workerData.name,
    callbackWaitsForEmptyEventLoop: true, getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
  try {
    if (initError) throw initError;
    parentPort.postMessage({ id, result: await handler(event, context) });
  } catch (err) {
    parentPort.postMessage({ id, error: { name: (err && err.name) || 'Error', message: String((err && err.message) || err) } });
  }
});
`;

export class FunctionError extends Error {
  constructor(
    readonly functionName: string,
    name: string,
    message: string,
  ) {
    super(message);
    this.name = name;
  }
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class LocalFunction {
  private worker?: Worker;
  private readonly pending = new Map<string, Pending>();

  constructor(
    readonly spec: FunctionSpec,
    private readonly log: LogSink,
  ) {}

  private start(): Worker {
    const worker = new Worker(HOST, {
      eval: true,
      env: this.spec.env,
      workerData: { dir: this.spec.dir, handler: this.spec.handler, name: this.spec.name },
      stdout: true,
      stderr: true,
    });
    for (const stream of [worker.stdout, worker.stderr]) {
      let buffered = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        buffered += chunk;
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const line of lines) if (line.trim()) this.log(this.spec.name, line);
      });
    }
    worker.on('message', (msg: { id: string; result?: unknown; error?: { name: string; message: string } }) => {
      const call = this.pending.get(msg.id);
      if (!call) return;
      this.pending.delete(msg.id);
      clearTimeout(call.timer);
      if (msg.error) call.reject(new FunctionError(this.spec.name, msg.error.name, msg.error.message));
      else call.resolve(msg.result);
    });
    worker.on('error', (err) => this.fail(worker, err));
    worker.on('exit', (code) => this.fail(worker, new Error(`${this.spec.name} exited with code ${code}`)));
    worker.unref();
    return worker;
  }

  /** The container died: every invocation in it fails, the next one starts a fresh container. */
  private fail(worker: Worker, err: Error): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    for (const [id, call] of this.pending) {
      clearTimeout(call.timer);
      call.reject(new FunctionError(this.spec.name, err.name, err.message));
      this.pending.delete(id);
    }
  }

  invoke(event: unknown): Promise<unknown> {
    this.worker ??= this.start();
    const worker = this.worker;
    const id = randomUUID();
    const deadline = Date.now() + this.spec.timeoutMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(worker, new Error(`Task timed out after ${(this.spec.timeoutMs / 1000).toFixed(2)} seconds`));
        void worker.terminate();
      }, this.spec.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      worker.postMessage({ id, event, deadline });
    });
  }

  async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }
}
