/**
 * Lambda as its concurrency model has it (https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html):
 * each execution environment (here a worker thread with its own module cache and process.env) runs one invocation
 * at a time; when every environment is busy a new one is created, which loads the bundle again (a cold start, module
 * scope re-run), up to the function's reserved concurrency, beyond which a synchronous invocation is throttled with
 * TooManyRequestsException (HTTP 429). A timed-out or crashed environment is discarded.
 *
 * Asynchronous invocations (how EventBridge invokes functions) follow "Error handling and automatic retries"
 * (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html): a function error is retried
 * twice by default, one minute and then two minutes later; a throttle goes back to the queue and is retried with
 * backoff; an event that runs out of retries or exceeds its maximum age goes to the on-failure destination with
 * Lambda's invocation record (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html), or
 * is dropped. The template's AWS::Lambda::EventInvokeConfig sets the retries, the age and the destination; tests
 * shorten the delays.
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
  /** @default 128 (Lambda's default MemorySize) */
  memoryMb?: number;
  /** ReservedConcurrentExecutions. @default unreserved (only the account limit applies) */
  reservedConcurrency?: number;
  /** The function's ARN, as the invocation context and destination records carry it. */
  arn?: string;
}

export interface AsyncConfig {
  /** MaximumRetryAttempts (0-2). @default 2 */
  maxRetries: number;
  /** MaximumEventAgeInSeconds, in ms. @default 6 hours */
  maxEventAgeMs: number;
  /** Waits before the first and second retry. @default one and two minutes, as Lambda */
  retryDelaysMs: [number, number];
  /** Receives Lambda's invocation record of an event that failed for good. @default none: the event is dropped */
  onFailure?: (record: InvocationRecord) => Promise<void>;
}

export interface InvocationRecord {
  version: '1.0';
  timestamp: string;
  requestContext: { requestId: string; functionArn: string; condition: 'RetriesExhausted' | 'EventAgeExceeded'; approximateInvokeCount: number };
  requestPayload: unknown;
  responseContext: { statusCode: number; executedVersion: '$LATEST'; functionError: 'Unhandled' };
  responsePayload: { errorType: string; errorMessage: string };
}

export type LogSink = (source: string, line: string) => void;

// Plain JavaScript: it runs inside the worker, before any TypeScript tooling. It mirrors the Lambda Node.js
// runtime: require the handler once (the init phase), then answer invocations with a context object.
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
    awsRequestId: id, functionName: workerData.name, functionVersion: '$LATEST', memoryLimitInMB: String(workerData.memoryMb),
    invokedFunctionArn: workerData.arn,
    callbackWaitsForEmptyEventLoop: true, getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
  try {
    if (initError) throw initError;
    parentPort.postMessage({ id, result: await handler(event, context) });
  } catch (err) {
    const stack = err && typeof err.stack === 'string' ? err.stack.split('\\n') : [];
    parentPort.postMessage({ id, error: { name: (err && err.name) || 'Error', message: String((err && err.message) || err), trace: stack } });
  }
});
`;

export class FunctionError extends Error {
  constructor(
    readonly functionName: string,
    name: string,
    message: string,
    /** The stack as the Node.js runtime reports it (`trace` of the error payload), when the handler threw. */
    readonly trace: string[] = [],
  ) {
    super(message);
    this.name = name;
  }
}

/** Lambda's answer to a synchronous invocation beyond the concurrency limit. */
export class ThrottleError extends FunctionError {
  constructor(functionName: string, readonly reason: 'ReservedFunctionConcurrentInvocationLimitExceeded' | 'ConcurrentInvocationLimitExceeded') {
    super(functionName, 'TooManyRequestsException', 'Rate Exceeded.');
  }
}

/** The account's concurrency, shared by every function of an emulator. */
export class AccountConcurrency {
  inUse = 0;
  /** @param limit concurrent executions across functions (AWS's default quota is 1,000 per region) */
  constructor(readonly limit = 1000) {}
}

interface Environment {
  worker: Worker;
  busy: boolean;
  call?: { id: string; resolve: (value: unknown) => void; reject: (err: Error) => void; timer: NodeJS.Timeout };
}

interface Queued {
  event: unknown;
  requestId: string;
  receivedAt: number;
  attempts: number;
}

/**
 * Execution environments one function may have at once on this machine. Beyond this (and below the function's
 * reserved concurrency and the account limit, where Lambda would start yet another environment) an invocation
 * waits for one to be free: a limit of the machine, not of AWS, which only delays an invocation, never refuses it.
 */
export const MAX_LOCAL_ENVIRONMENTS = 16;

export class LocalFunction {
  private readonly environments = new Set<Environment>();
  /** Invocations waiting for an environment (only beyond MAX_LOCAL_ENVIRONMENTS). */
  private readonly waiting: Array<() => void> = [];
  private readonly queued = new Set<Promise<void>>();
  private coldStartCount = 0;
  private asyncConfig: AsyncConfig = { maxRetries: 2, maxEventAgeMs: 6 * 3600_000, retryDelaysMs: [60_000, 120_000] };
  private stopped = false;
  /** Ends the waits between retries at shutdown. */
  private readonly shutdown = new AbortController();

  constructor(
    readonly spec: FunctionSpec,
    private readonly log: LogSink,
    private readonly account = new AccountConcurrency(),
  ) {}

  /** Execution environments alive now, and how many were ever created (cold starts). */
  get stats(): { environments: number; busy: number; coldStarts: number } {
    return { environments: this.environments.size, busy: [...this.environments].filter((e) => e.busy).length, coldStarts: this.coldStartCount };
  }

  /** The asynchronous invocation settings in force (the template's EventInvokeConfig, or Lambda's defaults). */
  get asyncSettings(): Omit<AsyncConfig, 'onFailure'> & { onFailure: boolean } {
    const { onFailure, ...rest } = this.asyncConfig;
    return { ...rest, onFailure: onFailure !== undefined };
  }

  configureAsync(config: Partial<AsyncConfig>): void {
    this.asyncConfig = { ...this.asyncConfig, ...config };
  }

  private start(): Environment {
    this.coldStartCount++;
    const memoryMb = this.spec.memoryMb ?? 128;
    const worker = new Worker(HOST, {
      eval: true,
      env: this.spec.env,
      workerData: {
        dir: this.spec.dir,
        handler: this.spec.handler,
        name: this.spec.name,
        memoryMb,
        arn: this.spec.arn ?? `arn:aws:lambda:local:000000000000:function:${this.spec.name}`,
      },
      // The function's memory bounds its heap, and the stack is the size of a Node.js main thread's (about 1 MB),
      // not a worker's larger default: deep recursion fails here as it does in Lambda.
      resourceLimits: { maxOldGenerationSizeMb: Math.max(64, Math.floor(memoryMb * 0.9)), stackSizeMb: 1 },
      stdout: true,
      stderr: true,
    });
    const env: Environment = { worker, busy: false };
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
    worker.on('message', (msg: { id: string; result?: unknown; error?: { name: string; message: string; trace?: string[] } }) => {
      const call = env.call;
      if (!call || call.id !== msg.id) return;
      this.release(env);
      clearTimeout(call.timer);
      if (msg.error) call.reject(new FunctionError(this.spec.name, msg.error.name, msg.error.message, msg.error.trace));
      else call.resolve(msg.result);
    });
    // The error types Lambda reports when the environment itself fails ("Troubleshoot invocation issues in Lambda",
    // https://docs.aws.amazon.com/lambda/latest/dg/troubleshooting-invocation.html): the heap exhausted is
    // Runtime.OutOfMemory, any other death of the runtime Runtime.ExitError, each "RequestId: <id> Error: ...".
    worker.on('error', (err: Error & { code?: string }) =>
      err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? this.discard(env, named('Runtime.OutOfMemory', `Runtime exited with error: ${err.message}`), true) : this.discard(env, err),
    );
    worker.on('exit', (code) => this.discard(env, named('Runtime.ExitError', `Runtime exited with error: exit status ${code}`), true));
    worker.unref();
    this.environments.add(env);
    return env;
  }

  private release(env: Environment): void {
    if (env.busy) this.account.inUse--;
    env.busy = false;
    env.call = undefined;
    this.waiting.shift()?.();
  }

  /**
   * The environment died (timeout, crash): its invocation fails, and it is never used again. `withRequestId` prefixes
   * the message as Lambda does for the runtime's own errors ("RequestId: <id> Error: ...").
   */
  private discard(env: Environment, err: Error, withRequestId = false): void {
    if (!this.environments.has(env)) return;
    this.environments.delete(env);
    const call = env.call;
    this.release(env);
    if (call) {
      clearTimeout(call.timer);
      call.reject(new FunctionError(this.spec.name, err.name, withRequestId ? `RequestId: ${call.id} Error: ${err.message}` : err.message));
    }
    void env.worker.terminate();
  }

  /** A synchronous (RequestResponse) invocation. */
  async invoke(event: unknown): Promise<unknown> {
    if (this.stopped) throw new FunctionError(this.spec.name, 'ResourceNotFoundException', `Function not found: ${this.spec.name}`);
    let env = [...this.environments].find((e) => !e.busy);
    if (!env) {
      const reserved = this.spec.reservedConcurrency;
      if (reserved !== undefined && this.environments.size >= reserved) throw new ThrottleError(this.spec.name, 'ReservedFunctionConcurrentInvocationLimitExceeded');
      if (this.account.inUse >= this.account.limit) throw new ThrottleError(this.spec.name, 'ConcurrentInvocationLimitExceeded');
      if (this.environments.size >= MAX_LOCAL_ENVIRONMENTS) {
        await new Promise<void>((resolve) => this.waiting.push(resolve));
        return this.invoke(event);
      }
    }
    env ??= this.start();
    const chosen = env;
    chosen.busy = true;
    this.account.inUse++;
    const id = randomUUID();
    const deadline = Date.now() + this.spec.timeoutMs;
    return await new Promise((resolve, reject) => {
      // A timeout is a function error of type Sandbox.Timedout ("Troubleshoot invocation issues in Lambda", timeouts).
      const timer = setTimeout(
        () => this.discard(chosen, named('Sandbox.Timedout', `Task timed out after ${(this.spec.timeoutMs / 1000).toFixed(2)} seconds`), true),
        this.spec.timeoutMs,
      );
      chosen.call = { id, resolve, reject, timer };
      chosen.worker.postMessage({ id, event, deadline });
    });
  }

  /** An asynchronous (Event) invocation: queued, retried as Lambda retries, then sent to the on-failure destination. */
  invokeAsync(event: unknown): void {
    const entry: Queued = { event, requestId: randomUUID(), receivedAt: Date.now(), attempts: 0 };
    const run = this.runQueued(entry).catch((err: Error) => this.log(this.spec.name, JSON.stringify({ time: new Date().toISOString(), level: 'error', event: 'async_invoke_failed', function: this.spec.name, error: err.message })));
    this.queued.add(run);
    void run.finally(() => this.queued.delete(run));
  }

  private async runQueued(entry: Queued): Promise<void> {
    const { maxRetries, maxEventAgeMs, retryDelaysMs, onFailure } = this.asyncConfig;
    let throttleDelay = 1000;
    let lastError: Error | undefined;
    for (;;) {
      if (this.shutdown.signal.aborted) return;
      if (Date.now() - entry.receivedAt > maxEventAgeMs) return this.fail(entry, 'EventAgeExceeded', lastError, onFailure);
      try {
        await this.invoke(entry.event);
        return;
      } catch (err) {
        if (err instanceof ThrottleError) {
          // Throttles go back to the queue, retried with exponential backoff up to 5 minutes, within the event age.
          await sleep(throttleDelay, this.shutdown.signal);
          throttleDelay = Math.min(throttleDelay * 2, 300_000);
          continue;
        }
        lastError = err as Error;
        entry.attempts++;
        if (entry.attempts > maxRetries) return this.fail(entry, 'RetriesExhausted', lastError, onFailure);
        await sleep(retryDelaysMs[entry.attempts - 1] ?? retryDelaysMs[retryDelaysMs.length - 1], this.shutdown.signal);
      }
    }
  }

  private async fail(entry: Queued, condition: InvocationRecord['requestContext']['condition'], err: Error | undefined, onFailure: AsyncConfig['onFailure']) {
    this.log(this.spec.name, JSON.stringify({ time: new Date().toISOString(), level: 'warn', event: 'async_event_discarded', function: this.spec.name, requestId: entry.requestId, condition, attempts: entry.attempts, destination: Boolean(onFailure) }));
    await onFailure?.({
      version: '1.0',
      timestamp: new Date().toISOString(),
      requestContext: {
        requestId: entry.requestId,
        functionArn: `${this.spec.arn ?? this.spec.name}:$LATEST`,
        condition,
        approximateInvokeCount: entry.attempts,
      },
      requestPayload: entry.event,
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      responsePayload: { errorType: err?.name ?? 'Error', errorMessage: err?.message ?? '' },
    });
  }

  /** Shutdown: lets asynchronous invocations in progress finish, and drops those waiting for a retry. */
  async drain(): Promise<void> {
    this.shutdown.abort();
    while (this.queued.size > 0) await Promise.all(this.queued);
  }

  async stop(): Promise<void> {
    this.shutdown.abort();
    this.stopped = true;
    const environments = [...this.environments];
    this.environments.clear();
    for (const env of environments) {
      if (env.call) clearTimeout(env.call.timer);
      this.release(env);
    }
    await Promise.all(environments.map((e) => e.worker.terminate()));
  }
}

function named(name: string, message: string): Error {
  return Object.assign(new Error(message), { name });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    timer.unref();
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });
}
