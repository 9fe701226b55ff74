/**
 * The emulated Lambda runs each execution environment one invocation at a time, starts a new one (module scope run
 * again) when all are busy, throttles beyond reserved concurrency, and retries asynchronous invocations as Lambda
 * does before giving the event to the on-failure destination.
 */
import { AccountConcurrency, LocalFunction, type FunctionSpec, type InvocationRecord } from '../../local/emulator/lambda';
import { Assembly, eventually } from './fixtures';

const assembly = new Assembly();
const started: LocalFunction[] = [];

function fn(source: string, spec: Partial<FunctionSpec> = {}): LocalFunction {
  const code = assembly.bundle(source);
  const f = new LocalFunction(
    { name: 'Fn', dir: `${assembly.dir}/asset.${code.S3Key.replace('.zip', '')}`, handler: 'index.handler', env: {}, timeoutMs: 2000, ...spec },
    () => undefined,
    new AccountConcurrency(),
  );
  started.push(f);
  return f;
}
afterAll(() => Promise.all(started.map((f) => f.stop())));

// Module scope runs once per environment: its id and in-flight count belong to that environment alone.
const COUNTING = `
const id = Math.random().toString(36).slice(2);
let inFlight = 0, most = 0;
exports.handler = async (event) => {
  inFlight++; most = Math.max(most, inFlight);
  await new Promise((r) => setTimeout(r, event.ms ?? 100));
  inFlight--;
  return { id, most };
};`;

describe('execution environments', () => {
  it('run one invocation at a time: five at once need five environments, each with its own module scope', async () => {
    const f = fn(COUNTING);
    const results = (await Promise.all(Array.from({ length: 5 }, () => f.invoke({})))) as Array<{ id: string; most: number }>;
    expect(new Set(results.map((r) => r.id)).size).toBe(5);
    expect(results.every((r) => r.most === 1)).toBe(true);
    expect(f.stats).toMatchObject({ environments: 5, coldStarts: 5 });
    // Later invocations are warm: no new environment.
    for (let i = 0; i < 5; i++) await f.invoke({ ms: 1 });
    expect(f.stats.coldStarts).toBe(5);
  });

  it('throttle a synchronous invocation beyond reserved concurrency with TooManyRequestsException', async () => {
    const f = fn(COUNTING, { reservedConcurrency: 2 });
    const outcomes = await Promise.allSettled([f.invoke({ ms: 300 }), f.invoke({ ms: 300 }), f.invoke({ ms: 300 })]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(2);
    expect(outcomes.find((o) => o.status === 'rejected')).toMatchObject({ reason: { name: 'TooManyRequestsException', reason: 'ReservedFunctionConcurrentInvocationLimitExceeded' } });
  });

  it('throttle beyond the account concurrency, whichever function asks', async () => {
    const account = new AccountConcurrency(1);
    const code = assembly.bundle(COUNTING);
    const dir = `${assembly.dir}/asset.${code.S3Key.replace('.zip', '')}`;
    const [a, b] = ['A', 'B'].map((name) => new LocalFunction({ name, dir, handler: 'index.handler', env: {}, timeoutMs: 2000 }, () => undefined, account));
    started.push(a, b);
    const first = a.invoke({ ms: 300 });
    await expect(b.invoke({})).rejects.toMatchObject({ name: 'TooManyRequestsException', reason: 'ConcurrentInvocationLimitExceeded' });
    await first;
  });

  it('are discarded when an invocation times out; the next one starts a new environment', async () => {
    const f = fn(COUNTING, { timeoutMs: 200 });
    // Lambda's error type for a timeout, and its message ("Troubleshoot invocation issues in Lambda").
    await expect(f.invoke({ ms: 1000 })).rejects.toMatchObject({ name: 'Sandbox.Timedout', message: expect.stringMatching(/^RequestId: \S+ Error: Task timed out after 0\.20 seconds$/) });
    const before = f.stats.coldStarts;
    await expect(f.invoke({ ms: 1 })).resolves.toMatchObject({ most: 1 });
    expect(f.stats.coldStarts).toBe(before + 1);
  });

  it("have a main thread's stack, not a worker's larger one: recursion that overflows in Node overflows here", async () => {
    // Deep enough for Node's main thread (about 10,000 frames here) to overflow, not a default worker's (about 48,000).
    const depth = 20_000;
    const recurse = (n: number): number => (n === 0 ? 0 : 1 + recurse(n - 1));
    expect(() => recurse(depth)).toThrow(RangeError);
    const f = fn(`const recurse = (n) => (n === 0 ? 0 : 1 + recurse(n - 1)); exports.handler = async ({ depth }) => recurse(depth);`);
    await expect(f.invoke({ depth })).rejects.toMatchObject({ name: 'RangeError' });
    await expect(f.invoke({ depth: 1000 })).resolves.toBe(1000);
  });

  it('bound the heap by the function\'s memory: an invocation that needs more fails, and its environment is replaced', async () => {
    const f = fn(`exports.handler = async ({ mb }) => { const keep = []; for (let i = 0; i < mb; i++) keep.push(new Array(131072).fill(i)); return keep.length; };`, { memoryMb: 128 });
    await expect(f.invoke({ mb: 16 })).resolves.toBe(16);
    await expect(f.invoke({ mb: 400 })).rejects.toMatchObject({ name: 'Runtime.OutOfMemory', message: expect.stringMatching(/^RequestId: \S+ Error: Runtime exited with error/) });
    const before = f.stats.coldStarts;
    await expect(f.invoke({ mb: 1 })).resolves.toBe(1);
    expect(f.stats.coldStarts).toBe(before + 1);
  });

  it('hand the function its context: request id, remaining time, memory and ARN', async () => {
    const f = fn(`exports.handler = async (_e, c) => ({ id: c.awsRequestId, left: c.getRemainingTimeInMillis(), memory: c.memoryLimitInMB, arn: c.invokedFunctionArn });`, {
      memoryMb: 512,
      arn: 'arn:aws:lambda:eu-west-1:000000000000:function:Fn',
    });
    const context = (await f.invoke({})) as { id: string; left: number; memory: string; arn: string };
    expect(context).toMatchObject({ memory: '512', arn: 'arn:aws:lambda:eu-west-1:000000000000:function:Fn' });
    expect(context.left).toBeGreaterThan(1000);
    expect(context.left).toBeLessThanOrEqual(2000);
  });
});

describe('asynchronous invocation', () => {
  // Fails the first `failures` attempts of each event (counted across environments through the event's own id).
  const FLAKY = `
const seen = globalThis.seen ??= new Map();
exports.handler = async (event) => {
  const n = (seen.get(event.id) ?? 0) + 1;
  seen.set(event.id, n);
  if (n <= event.failures) throw Object.assign(new Error('attempt ' + n + ' failed'), { name: 'Flaky' });
  return 'ok';
};`;

  it('retries a function error twice, at the configured delays, then sends Lambda\'s record to the on-failure destination', async () => {
    const f = fn(FLAKY);
    const records: InvocationRecord[] = [];
    const attempts: number[] = [];
    f.configureAsync({ retryDelaysMs: [100, 200], onFailure: async (r) => void records.push(r) });
    const t0 = Date.now();
    const invoke = f.invoke.bind(f);
    f.invoke = (event) => (attempts.push(Date.now() - t0), invoke(event));
    f.invokeAsync({ id: 'e1', failures: 5 });
    await eventually(() => records.length === 1, 3000, 'the failure record');
    expect(attempts).toHaveLength(3);
    expect(attempts[1] - attempts[0]).toBeGreaterThanOrEqual(95);
    expect(attempts[2] - attempts[1]).toBeGreaterThanOrEqual(195);
    expect(records[0]).toMatchObject({
      version: '1.0',
      requestContext: { condition: 'RetriesExhausted', approximateInvokeCount: 3 },
      requestPayload: { id: 'e1', failures: 5 },
      responseContext: { functionError: 'Unhandled' },
      responsePayload: { errorType: 'Flaky', errorMessage: 'attempt 3 failed' },
    });
  });

  it('delivers nothing to the destination when a retry succeeds', async () => {
    const f = fn(FLAKY);
    const records: InvocationRecord[] = [];
    f.configureAsync({ retryDelaysMs: [50, 50], onFailure: async (r) => void records.push(r) });
    f.invokeAsync({ id: 'e2', failures: 1 });
    await new Promise((r) => setTimeout(r, 400));
    expect(records).toEqual([]);
  });

  it('honours MaximumRetryAttempts 0 and the maximum event age', async () => {
    const f = fn(FLAKY);
    const records: InvocationRecord[] = [];
    f.configureAsync({ maxRetries: 0, retryDelaysMs: [50, 50], onFailure: async (r) => void records.push(r) });
    f.invokeAsync({ id: 'e3', failures: 1 });
    await eventually(() => records.length === 1, 2000);
    expect(records[0].requestContext).toMatchObject({ condition: 'RetriesExhausted', approximateInvokeCount: 1 });

    const aged = fn(FLAKY);
    const old: InvocationRecord[] = [];
    aged.configureAsync({ maxEventAgeMs: 150, retryDelaysMs: [200, 200], onFailure: async (r) => void old.push(r) });
    aged.invokeAsync({ id: 'e4', failures: 5 });
    await eventually(() => old.length === 1, 2000);
    expect(old[0].requestContext.condition).toBe('EventAgeExceeded');
  });

  it('puts a throttled event back in the queue and runs it once there is room, without counting it as a retry', async () => {
    const f = fn(COUNTING, { reservedConcurrency: 1 });
    const records: InvocationRecord[] = [];
    const outcomes: string[] = [];
    f.configureAsync({ maxRetries: 0, onFailure: async (r) => void records.push(r) });
    const invoke = f.invoke.bind(f);
    f.invoke = (event) => invoke(event).then((r) => (outcomes.push('ran'), r), (err: Error) => (outcomes.push(err.name), Promise.reject(err)));
    const busy = f.invoke({ ms: 400 });
    f.invokeAsync({ ms: 1 });
    await busy;
    // Throttled while the environment was busy, then run (Lambda's backoff starts at one second).
    await eventually(() => outcomes.filter((o) => o === 'ran').length === 2, 4000, 'the queued event to run');
    expect(outcomes).toContain('TooManyRequestsException');
    expect(records).toEqual([]);
  });
});
