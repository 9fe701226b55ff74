/**
 * Lambda's Invoke API (`POST /2015-03-31/functions/{FunctionName}/invocations`), for functions that call other
 * functions with `@aws-sdk/client-lambda` (every function's environment points AWS_ENDPOINT_URL_LAMBDA here). It
 * follows the API reference, "Invoke" (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html):
 *
 * - **Invocation types.** `RequestResponse` (the default) runs the function and answers 200 with its JSON result; a
 *   function that throws, times out or whose environment dies is still 200, with `X-Amz-Function-Error: Unhandled`
 *   and the runtime's error payload `{errorType, errorMessage, trace}` ("The status code in the API response doesn't
 *   reflect function errors"). `Event` queues the event on the function's asynchronous queue (its retries and
 *   on-failure destination, lambda.ts) and answers 202; `DryRun` checks the parameters and the caller's permission
 *   and answers 204.
 * - **Payload quotas.** "For synchronous invocations, the maximum payload size is 6 MB. For asynchronous
 *   invocations, the maximum payload size is 1 MB." (same page; Lambda quotas,
 *   https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html): a larger request is 413
 *   RequestEntityTooLargeException, with the messages Lambda's front end answers; a synchronous result over the
 *   quota is a function error, Function.ResponseSizeTooLarge. A body that is not JSON is 400
 *   InvalidRequestContentException.
 * - **Names.** FunctionName is a name (locally the template's logical id, which is also what `Ref` and so CDK's
 *   `fn.functionName` resolve to), a partial ARN (`<account>:function:<name>`) or an ARN, each with an optional
 *   `:<qualifier>`; only `$LATEST` exists here. Anything else is 404 ResourceNotFoundException.
 * - **Signed and authorized.** With an `iam`, the request must be SigV4-signed for `lambda` and the caller allowed
 *   `lambda:InvokeFunction` on the function's ARN (with its qualifier when one is named) by its identity-based
 *   policies, else 403 AccessDeniedException (IAM is checked before the function is looked up, as AWS does, so a
 *   caller without the permission cannot tell which functions exist). Resource-based policies
 *   (AWS::Lambda::Permission) grant nothing to a caller here: stricter than AWS when one names a role.
 * - **Concurrency.** A synchronous invocation is the target's own LocalFunction invocation: beyond its reserved
 *   concurrency or the account's it is 429 TooManyRequestsException with Lambda's `Reason`.
 *
 * Not emulated: `X-Amz-Log-Type: Tail` (no `X-Amz-Log-Result`), the client context, versions and aliases,
 * response streaming.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Iam } from './iam';
import { FunctionError, ThrottleError, type LocalFunction } from './lambda';
import { verifySignature } from './sigv4';

/** "Request must be smaller than 6291456 bytes for the InvokeFunction operation": 6 MiB. */
export const MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024;
/** The asynchronous quota, 1 MB (1,048,576 bytes). */
export const MAX_ASYNC_PAYLOAD_BYTES = 1024 * 1024;
/** What Lambda's Function.ResponseSizeTooLarge names as the largest response: "(6291556 bytes)". */
export const MAX_RESPONSE_BYTES = 6_291_556;

const PATH = /^\/2015-03-31\/functions\/([^/?]+)\/invocations(?:\?(.*))?$/;

export interface LambdaApiOptions {
  functions: Map<string, LocalFunction>;
  region: string;
  accountId: string;
  /** Require SigV4 and `lambda:InvokeFunction`. @default any caller is allowed */
  iam?: Iam;
  log?: (event: string, fields: Record<string, unknown>) => void;
}

export class LambdaApi {
  constructor(private readonly options: LambdaApiOptions) {}

  /** Answers the Invoke API; returns false for any other request. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const match = PATH.exec(req.url ?? '');
    if (!match || req.method !== 'POST') return false;
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // What is over the synchronous quota is never read into memory.
      if (size <= MAX_SYNC_PAYLOAD_BYTES) chunks.push(chunk);
    });
    req.on('end', () => {
      this.answer(req, res, match, Buffer.concat(chunks), size).catch((err: Error) => {
        this.options.log?.('invoke_failed', { error: err.message });
        if (!res.headersSent) lambdaError(res, 500, 'ServiceException', err.message);
      });
    });
    return true;
  }

  private async answer(req: IncomingMessage, res: ServerResponse, match: RegExpExecArray, body: Buffer, size: number): Promise<void> {
    const { iam, region, accountId, functions } = this.options;
    if (size > MAX_SYNC_PAYLOAD_BYTES) {
      return lambdaError(res, 413, 'RequestEntityTooLargeException', `Request must be smaller than ${MAX_SYNC_PAYLOAD_BYTES} bytes for the InvokeFunction operation`);
    }
    let accessKeyId: string | undefined;
    if (iam) {
      const verified = verifySignature({ method: 'POST', url: req.url ?? '/', rawHeaders: req.rawHeaders, body }, { service: 'lambda', region, secretOf: iam.secretOf });
      if (!verified.ok) {
        const type = { missing_authentication: 'MissingAuthenticationTokenException', unknown_access_key: 'UnrecognizedClientException', incomplete_signature: 'IncompleteSignatureException' }[verified.reason as string] ?? 'InvalidSignatureException';
        return lambdaError(res, 403, type, verified.message);
      }
      accessKeyId = verified.accessKeyId;
    }

    let rawName: string;
    try {
      rawName = decodeURIComponent(match[1]);
    } catch {
      return lambdaError(res, 400, 'InvalidParameterValueException', 'Invalid function name');
    }
    const query = new URLSearchParams(match[2] ?? '');
    const target = parseFunctionName(rawName, region, accountId);
    if (!target) {
      return lambdaError(res, 400, 'ValidationException', `1 validation error detected: Value '${rawName}' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern`);
    }
    const queryQualifier = query.get('Qualifier') ?? undefined;
    if (target.qualifier !== undefined && queryQualifier !== undefined && target.qualifier !== queryQualifier) {
      return lambdaError(res, 400, 'InvalidParameterValueException', 'The derived qualifier from the function name does not match the specified qualifier.');
    }
    const qualifier = target.qualifier ?? queryQualifier;
    const arn = `arn:aws:lambda:${target.region}:${target.accountId}:function:${target.name}${qualifier !== undefined ? `:${qualifier}` : ''}`;

    if (iam && accessKeyId !== undefined) {
      const decision = iam.authorize(accessKeyId, 'lambda:InvokeFunction', arn);
      if (!decision.allowed) return lambdaError(res, 403, 'AccessDeniedException', iam.denialMessage(decision.principal, 'lambda:InvokeFunction', arn, decision.explicit));
    }

    const fn = target.region === region && target.accountId === accountId && (qualifier === undefined || qualifier === '$LATEST') ? functions.get(target.name) : undefined;
    if (!fn) return lambdaError(res, 404, 'ResourceNotFoundException', `Function not found: ${arn}`);

    const invocationType = header(req, 'x-amz-invocation-type') ?? 'RequestResponse';
    if (!['RequestResponse', 'Event', 'DryRun'].includes(invocationType)) {
      return lambdaError(res, 400, 'ValidationException', `1 validation error detected: Value '${invocationType}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]`);
    }
    if (invocationType === 'Event' && size > MAX_ASYNC_PAYLOAD_BYTES) {
      return lambdaError(res, 413, 'RequestEntityTooLargeException', `${size} byte payload is too large for the Event invocation type (limit ${MAX_ASYNC_PAYLOAD_BYTES} bytes)`);
    }
    // No payload is the empty object, as the console's and the CLI's invocations without one are.
    let event: unknown = {};
    if (body.length > 0) {
      try {
        event = JSON.parse(body.toString('utf8'));
      } catch (err) {
        return lambdaError(res, 400, 'InvalidRequestContentException', `Could not parse request body into json: ${(err as Error).message}`);
      }
    }

    if (invocationType === 'DryRun') return void res.writeHead(204, { 'x-amzn-requestid': requestId() }).end();
    if (invocationType === 'Event') {
      fn.invokeAsync(event);
      return void res.writeHead(202, { 'x-amzn-requestid': requestId() }).end();
    }

    let result: unknown;
    try {
      result = await fn.invoke(event);
    } catch (err) {
      if (err instanceof ThrottleError) {
        return answer(res, 429, { 'x-amzn-errortype': 'TooManyRequestsException' }, { Reason: err.reason, Type: 'User', message: err.message });
      }
      if (err instanceof FunctionError && err.name === 'ResourceNotFoundException') return lambdaError(res, 404, 'ResourceNotFoundException', `Function not found: ${arn}`);
      const failure = err as FunctionError;
      return functionError(res, { errorType: failure.name, errorMessage: failure.message, ...(failure.trace?.length ? { trace: failure.trace } : {}) });
    }
    // The runtime serializes the handler's result as JSON: undefined is null, a Date its ISO string.
    let payload: string;
    try {
      payload = JSON.stringify(result) ?? 'null';
    } catch (err) {
      return functionError(res, { errorType: 'Runtime.MarshalError', errorMessage: `Unable to stringify response body: ${(err as Error).message}` });
    }
    const bytes = Buffer.byteLength(payload);
    if (bytes > MAX_RESPONSE_BYTES) {
      return functionError(res, {
        errorType: 'Function.ResponseSizeTooLarge',
        errorMessage: `Response payload size (${bytes} bytes) exceeded maximum allowed payload size (${MAX_RESPONSE_BYTES} bytes).`,
      });
    }
    answer(res, 200, { 'x-amz-executed-version': '$LATEST' }, payload);
  }
}

/** Name, partial ARN or ARN, with an optional qualifier; undefined when it is none of these. */
export function parseFunctionName(value: string, region: string, accountId: string): { name: string; qualifier?: string; region: string; accountId: string } | undefined {
  const NAME = '([a-zA-Z0-9_-]{1,64})';
  const QUALIFIER = '(?::(\\$LATEST|[a-zA-Z0-9_-]{1,128}))?';
  const arn = new RegExp(`^arn:aws[a-zA-Z-]*:lambda:([a-z]{2}(?:-gov)?-[a-z]+-\\d{1}):(\\d{12}):function:${NAME}${QUALIFIER}$`).exec(value);
  if (arn) return { region: arn[1], accountId: arn[2], name: arn[3], ...(arn[4] !== undefined ? { qualifier: arn[4] } : {}) };
  const partial = new RegExp(`^(\\d{12}):function:${NAME}${QUALIFIER}$`).exec(value);
  if (partial) return { region, accountId: partial[1], name: partial[2], ...(partial[3] !== undefined ? { qualifier: partial[3] } : {}) };
  const plain = new RegExp(`^${NAME}${QUALIFIER}$`).exec(value);
  if (plain) return { region, accountId, name: plain[1], ...(plain[2] !== undefined ? { qualifier: plain[2] } : {}) };
  return undefined;
}

const requestId = () => randomUUID();

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function answer(res: ServerResponse, status: number, headers: Record<string, string>, body: unknown): void {
  res
    .writeHead(status, { 'content-type': 'application/json', 'x-amzn-requestid': requestId(), ...headers })
    .end(typeof body === 'string' ? body : JSON.stringify(body));
}

/** Lambda's REST-JSON error: the type in `x-amzn-ErrorType`, `{Type, message}` in the body. */
function lambdaError(res: ServerResponse, status: number, type: string, message: string): void {
  answer(res, status, { 'x-amzn-errortype': type }, { Type: 'User', message });
}

/** A function error: 200, `X-Amz-Function-Error: Unhandled`, the runtime's error payload. */
function functionError(res: ServerResponse, payload: { errorType: string; errorMessage: string; trace?: string[] }): void {
  answer(res, 200, { 'x-amz-function-error': 'Unhandled', 'x-amz-executed-version': '$LATEST' }, payload);
}
