/**
 * Lambda's Invoke API as the emulator serves it to functions that call other functions: the three invocation types,
 * function errors (a throw, a timeout) as 200 with X-Amz-Function-Error, 404 for an unknown function, the 6 MB and
 * 1 MB payload quotas, SigV4 and `lambda:InvokeFunction` on the target's ARN, and the target's own concurrency.
 *
 * Requests are signed with the AWS SDK's own signer (@smithy/signature-v4) and sent as the SDK sends them, and a
 * function calls another through `@aws-sdk/client-lambda`'s InvokeCommand, configured by its environment alone.
 */
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Iam, OPERATOR_CREDENTIALS, type Credentials } from '../../local/emulator/iam';
import { AccountConcurrency, LocalFunction, type FunctionSpec } from '../../local/emulator/lambda';
import { LambdaApi, MAX_ASYNC_PAYLOAD_BYTES, MAX_SYNC_PAYLOAD_BYTES, parseFunctionName } from '../../local/emulator/lambda-api';
import { Resolver, type Resource } from '../../local/emulator/template';
import { Assembly, eventually, lambdaFunction, role, template } from './fixtures';

const region = 'eu-west-1';
const account = '000000000000';
const arnOf = (name: string) => `arn:aws:lambda:${region}:${account}:function:${name}`;
const assembly = new Assembly();

// The target: echoes, throws, sleeps, returns nothing or too much, as the event asks.
const TARGET = `
exports.handler = async (event) => {
  if (event.log) console.log(JSON.stringify({ ran: event.log }));
  if (event.fail) throw Object.assign(new Error(event.fail), { name: 'HookError' });
  if (event.sleepMs) await new Promise((r) => setTimeout(r, event.sleepMs));
  if (event.nothing) return undefined;
  if (event.hugeMb) return 'x'.repeat(event.hugeMb * 1024 * 1024);
  return { echo: event, at: new Date(0) };
};`;

/** A function that invokes another through the Invoke API with its own environment, as an SDK client would. */
const callerSource = (sdk: string) => `
const { SignatureV4 } = require(${JSON.stringify(require.resolve('@smithy/signature-v4'))});
const { Sha256 } = require(${JSON.stringify(require.resolve('@aws-crypto/sha256-js'))});
const sdkPath = ${JSON.stringify(sdk)};
exports.handler = async ({ target, payload, viaSdk }) => {
  const endpoint = new URL(process.env.AWS_ENDPOINT_URL_LAMBDA);
  if (viaSdk) {
    const { LambdaClient, InvokeCommand } = require(sdkPath);
    const client = new LambdaClient({ maxAttempts: 1 });
    try {
      const out = await client.send(new InvokeCommand({ FunctionName: target, Payload: new TextEncoder().encode(JSON.stringify(payload)) }));
      return { status: out.StatusCode, functionError: out.FunctionError ?? null, payload: JSON.parse(new TextDecoder().decode(out.Payload)) };
    } catch (err) {
      return { error: err.name, status: err.$metadata && err.$metadata.httpStatusCode, message: err.message };
    }
  }
  const signer = new SignatureV4({
    service: 'lambda', region: process.env.AWS_REGION, sha256: Sha256,
    credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY },
  });
  const path = '/2015-03-31/functions/' + encodeURIComponent(target) + '/invocations';
  const body = JSON.stringify(payload);
  const signed = await signer.sign({ method: 'POST', protocol: endpoint.protocol, hostname: endpoint.hostname, port: Number(endpoint.port), path, query: {},
    headers: { host: endpoint.host, 'content-type': 'application/json' }, body });
  const answer = await fetch(endpoint.origin + path, { method: 'POST', headers: signed.headers, body });
  return { status: answer.status, functionError: answer.headers.get('x-amz-function-error'), payload: await answer.json() };
};`;

const sdkPath = require.resolve('@aws-sdk/client-lambda');

const resources: Record<string, Resource> = {
  Target: lambdaFunction(assembly, TARGET),
  Other: lambdaFunction(assembly, TARGET),
  Single: lambdaFunction(assembly, TARGET, { ReservedConcurrentExecutions: 1 }),
  Caller: lambdaFunction(assembly, callerSource(sdkPath), { Role: { 'Fn::GetAtt': ['CallerRole', 'Arn'] } }),
  Outsider: lambdaFunction(assembly, callerSource(sdkPath), { Role: { 'Fn::GetAtt': ['OutsiderRole', 'Arn'] } }),
  // What CDK's grantInvoke writes: the function's ARN and its qualified ARNs.
  CallerRole: role([{ Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: [{ 'Fn::GetAtt': ['Target', 'Arn'] }, { 'Fn::Join': ['', [{ 'Fn::GetAtt': ['Target', 'Arn'] }, ':*']] }] }]),
  OutsiderRole: role([{ Effect: 'Allow', Action: 'lambda:GetFunction', Resource: '*' }]),
  Denied: role([
    { Effect: 'Allow', Action: 'lambda:*', Resource: '*' },
    { Effect: 'Deny', Action: 'lambda:InvokeFunction', Resource: { 'Fn::GetAtt': ['Other', 'Arn'] } },
  ]),
};
const fnIds = ['Target', 'Other', 'Single', 'Caller', 'Outsider'];
const resolver = new Resolver(Object.fromEntries(fnIds.map((id) => [id, { ref: id, attrs: { Arn: arnOf(id) } }])), {});
const iam = new Iam({ template: template(resources), resolver, accountId: account });
const lines: string[] = [];
const functions = new Map<string, LocalFunction>();
let server: Server;
let endpoint: string;

beforeAll(async () => {
  await new Promise<void>((resolve) => {
    server = createServer((req, res) => {
      if (!api.handleRequest(req, res)) res.writeHead(404).end();
    });
    server.listen(0, '127.0.0.1', resolve);
  });
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const concurrency = new AccountConcurrency();
  for (const id of fnIds) {
    const p = resources[id].Properties!;
    const roleId = p.Role['Fn::GetAtt'][0] as string;
    const credentials = resources[roleId] ? iam.credentialsOf(roleId) : { accessKeyId: 'ASIANOROLE', secretAccessKey: 'none' };
    const spec: FunctionSpec = {
      name: id,
      dir: `${assembly.dir}/asset.${(p.Code as { S3Key: string }).S3Key.replace('.zip', '')}`,
      handler: 'index.handler',
      // The environment the emulator gives every function (index.ts): the role's key and the Invoke API's origin.
      env: { AWS_REGION: region, AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey, AWS_ENDPOINT_URL_LAMBDA: endpoint, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
      timeoutMs: id === 'Target' ? 1000 : 5000,
      ...(p.ReservedConcurrentExecutions !== undefined ? { reservedConcurrency: Number(p.ReservedConcurrentExecutions) } : {}),
      arn: arnOf(id),
    };
    functions.set(id, new LocalFunction(spec, (_s, l) => lines.push(l), concurrency));
  }
});
const api = new LambdaApi({ functions, region, accountId: account, iam });
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await Promise.all([...functions.values()].map((f) => f.stop()));
});

const signer = (credentials: Credentials) => new SignatureV4({ service: 'lambda', region, credentials, sha256: Sha256 });

interface Invocation {
  status: number;
  headers: Headers;
  text: string;
  json: () => any;
}

/** One Invoke request, signed as the SDK signs it (unsigned when `credentials` is null). */
async function invoke(
  name: string,
  payload: unknown = {},
  options: { type?: 'RequestResponse' | 'Event' | 'DryRun' | string; qualifier?: string; credentials?: Credentials | null; raw?: string } = {},
): Promise<Invocation> {
  const url = new URL(endpoint);
  const path = `/2015-03-31/functions/${encodeURIComponent(name)}/invocations`;
  const body = options.raw ?? JSON.stringify(payload);
  const headers: Record<string, string> = { host: url.host, 'content-type': 'application/json', ...(options.type ? { 'x-amz-invocation-type': options.type } : {}) };
  const query: Record<string, string> = options.qualifier ? { Qualifier: options.qualifier } : {};
  const request = { method: 'POST', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path, query, headers, body };
  const signed = options.credentials === null ? request : await signer(options.credentials ?? OPERATOR_CREDENTIALS).sign(request);
  const answer = await fetch(`${endpoint}${path}${options.qualifier ? `?Qualifier=${encodeURIComponent(options.qualifier)}` : ''}`, { method: 'POST', headers: signed.headers, body });
  const text = await answer.text();
  return { status: answer.status, headers: answer.headers, text, json: () => JSON.parse(text) };
}

describe('RequestResponse', () => {
  it('answers 200 with the JSON result (as the runtime serializes it), by name, partial ARN or ARN', async () => {
    for (const name of ['Target', `${account}:function:Target`, arnOf('Target'), `${arnOf('Target')}:$LATEST`]) {
      const answer = await invoke(name, { n: 1 });
      expect(answer.status).toBe(200);
      expect(answer.headers.get('x-amz-function-error')).toBeNull();
      expect(answer.headers.get('x-amz-executed-version')).toBe('$LATEST');
      expect(answer.json()).toEqual({ echo: { n: 1 }, at: '1970-01-01T00:00:00.000Z' });
    }
    expect((await invoke('Target', { nothing: true })).text).toBe('null');
  });

  it('answers a function that throws with 200, X-Amz-Function-Error: Unhandled and the error payload', async () => {
    const answer = await invoke('Target', { fail: 'no way' });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-amz-function-error')).toBe('Unhandled');
    expect(answer.json()).toMatchObject({ errorType: 'HookError', errorMessage: 'no way', trace: expect.arrayContaining([expect.stringContaining('no way')]) });
  });

  it('answers a timeout as a function error too (Sandbox.Timedout)', async () => {
    const answer = await invoke('Target', { sleepMs: 3000 });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-amz-function-error')).toBe('Unhandled');
    expect(answer.json()).toEqual({ errorType: 'Sandbox.Timedout', errorMessage: expect.stringMatching(/^RequestId: \S+ Error: Task timed out after 1\.00 seconds$/) });
  });

  it('answers a result over 6 MB as Function.ResponseSizeTooLarge', async () => {
    const answer = await invoke('Target', { hugeMb: 7 });
    expect(answer.headers.get('x-amz-function-error')).toBe('Unhandled');
    expect(answer.json()).toMatchObject({ errorType: 'Function.ResponseSizeTooLarge' });
  });

  it("throttles beyond the target's reserved concurrency (429 TooManyRequestsException)", async () => {
    const answers = await Promise.all([invoke('Single', { sleepMs: 400 }), invoke('Single', { sleepMs: 400 })]);
    expect(answers.map((a) => a.status).sort()).toEqual([200, 429]);
    const throttled = answers.find((a) => a.status === 429)!;
    expect(throttled.headers.get('x-amzn-errortype')).toBe('TooManyRequestsException');
    expect(throttled.json()).toMatchObject({ Reason: 'ReservedFunctionConcurrentInvocationLimitExceeded' });
  });
});

describe('Event and DryRun', () => {
  it('Event answers 202 and runs the function asynchronously', async () => {
    const answer = await invoke('Target', { log: 'async-1' }, { type: 'Event' });
    expect(answer.status).toBe(202);
    await eventually(() => lines.some((l) => l.includes('async-1')), 3000, 'the asynchronous invocation');
  });

  it('DryRun answers 204 and runs nothing', async () => {
    const answer = await invoke('Target', { log: 'dry-1' }, { type: 'DryRun' });
    expect(answer.status).toBe(204);
    await new Promise((r) => setTimeout(r, 200));
    expect(lines.some((l) => l.includes('dry-1'))).toBe(false);
  });

  it('refuses an unknown invocation type', async () => {
    expect((await invoke('Target', {}, { type: 'Later' })).status).toBe(400);
  });
});

describe('refusals', () => {
  it('404 ResourceNotFoundException for an unknown function, a version or alias, or another account', async () => {
    for (const [name, qualifier] of [['Nope', undefined], ['Target:live', undefined], ['Target', '3'], ['111111111111:function:Target', undefined]] as const) {
      const answer = await invoke(name, {}, qualifier ? { qualifier } : {});
      expect(answer.status).toBe(404);
      expect(answer.headers.get('x-amzn-errortype')).toBe('ResourceNotFoundException');
      expect(answer.json().message).toMatch(/^Function not found: arn:aws:lambda:/);
    }
  });

  it('413 RequestEntityTooLargeException over 6 MB, and over 1 MB for Event', async () => {
    const big = await invoke('Target', undefined, { raw: JSON.stringify('x'.repeat(MAX_SYNC_PAYLOAD_BYTES)) });
    expect(big.status).toBe(413);
    expect(big.headers.get('x-amzn-errortype')).toBe('RequestEntityTooLargeException');
    const event = await invoke('Target', undefined, { type: 'Event', raw: JSON.stringify('x'.repeat(MAX_ASYNC_PAYLOAD_BYTES)) });
    expect(event.status).toBe(413);
    expect(event.json().message).toMatch(/byte payload is too large for the Event invocation type \(limit 1048576 bytes\)/);
    // Within the synchronous quota it runs.
    expect((await invoke('Target', undefined, { raw: JSON.stringify({ pad: 'x'.repeat(2 * 1024 * 1024) }) })).status).toBe(200);
  });

  it('400 InvalidRequestContentException for a body that is not JSON', async () => {
    const answer = await invoke('Target', undefined, { raw: '{nope' });
    expect(answer.status).toBe(400);
    expect(answer.headers.get('x-amzn-errortype')).toBe('InvalidRequestContentException');
  });
});

describe('IAM', () => {
  it('refuses an unsigned request (403 MissingAuthenticationTokenException)', async () => {
    const answer = await invoke('Target', {}, { credentials: null });
    expect(answer.status).toBe(403);
    expect(answer.headers.get('x-amzn-errortype')).toBe('MissingAuthenticationTokenException');
  });

  it("allows a role granted lambda:InvokeFunction on the target's ARN, and no other function", async () => {
    const caller = iam.credentialsOf('CallerRole');
    expect((await invoke('Target', { n: 2 }, { credentials: caller })).status).toBe(200);
    const other = await invoke('Other', {}, { credentials: caller });
    expect(other.status).toBe(403);
    expect(other.headers.get('x-amzn-errortype')).toBe('AccessDeniedException');
    expect(other.json().message).toBe(
      `User: arn:aws:iam::${account}:assumed-role/CallerRole is not authorized to perform: lambda:InvokeFunction on resource: ${arnOf('Other')} because no identity-based policy allows the lambda:InvokeFunction action`,
    );
  });

  it('checks IAM before it looks the function up, for every invocation type; an explicit Deny wins', async () => {
    const outsider = iam.credentialsOf('OutsiderRole');
    for (const type of ['RequestResponse', 'Event', 'DryRun']) expect((await invoke('Target', {}, { type, credentials: outsider })).status).toBe(403);
    expect((await invoke('Nope', {}, { credentials: outsider })).status).toBe(403);
    const denied = iam.credentialsOf('Denied');
    expect((await invoke('Target', {}, { credentials: denied })).status).toBe(200);
    expect((await invoke('Other', {}, { credentials: denied })).json().message).toContain('explicit deny');
  });
});

describe('a function invoking another', () => {
  it("signs with its role's key at AWS_ENDPOINT_URL_LAMBDA: allowed with the permission, refused without", async () => {
    const functionsOf = (id: string) => functions.get(id)!;
    await expect(functionsOf('Caller').invoke({ target: 'Target', payload: { hello: 'hook' } })).resolves.toEqual({
      status: 200,
      functionError: null,
      payload: { echo: { hello: 'hook' }, at: '1970-01-01T00:00:00.000Z' },
    });
    await expect(functionsOf('Caller').invoke({ target: arnOf('Target'), payload: { fail: 'denied by hook' } })).resolves.toMatchObject({
      status: 200,
      functionError: 'Unhandled',
      payload: { errorType: 'HookError', errorMessage: 'denied by hook' },
    });
    await expect(functionsOf('Outsider').invoke({ target: 'Target', payload: {} })).resolves.toMatchObject({ status: 403, payload: { message: expect.stringContaining('lambda:InvokeFunction') } });
  });

  it('through @aws-sdk/client-lambda InvokeCommand, unchanged', async () => {
    const caller = functions.get('Caller')!;
    await expect(caller.invoke({ viaSdk: true, target: 'Target', payload: { via: 'sdk' } })).resolves.toEqual({
      status: 200,
      functionError: null,
      payload: { echo: { via: 'sdk' }, at: '1970-01-01T00:00:00.000Z' },
    });
    await expect(caller.invoke({ viaSdk: true, target: arnOf('Target'), payload: { fail: 'boom' } })).resolves.toMatchObject({ status: 200, functionError: 'Unhandled', payload: { errorType: 'HookError' } });
    await expect(caller.invoke({ viaSdk: true, target: 'Other', payload: {} })).resolves.toMatchObject({ error: 'AccessDeniedException', status: 403 });
    await expect(functions.get('Outsider')!.invoke({ viaSdk: true, target: 'Nope', payload: {} })).resolves.toMatchObject({ status: 403 });
  });
});

describe('function names', () => {
  it('parses names, partial ARNs and ARNs with their qualifiers', () => {
    expect(parseFunctionName('Fn', region, account)).toEqual({ name: 'Fn', region, accountId: account });
    expect(parseFunctionName('Fn:live', region, account)).toEqual({ name: 'Fn', qualifier: 'live', region, accountId: account });
    expect(parseFunctionName(`123456789012:function:Fn`, region, account)).toEqual({ name: 'Fn', region, accountId: '123456789012' });
    expect(parseFunctionName('arn:aws:lambda:us-east-1:123456789012:function:Fn:$LATEST', region, account)).toEqual({ name: 'Fn', qualifier: '$LATEST', region: 'us-east-1', accountId: '123456789012' });
    expect(parseFunctionName('no/slashes', region, account)).toBeUndefined();
  });
});
