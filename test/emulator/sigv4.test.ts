/**
 * The emulator's SigV4 verification against requests the AWS SDK itself signs (the real signer, not a copy of
 * it), and IAM policy evaluation against the rules of AWS's evaluation logic.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiGatewayManagementApiClient, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { evaluate, wildcard } from '../../local/emulator/iam';
import { MAX_CLOCK_SKEW_MS, verifySignature, type RawRequest } from '../../local/emulator/sigv4';

const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const secretOf = (id: string) => (id === credentials.accessKeyId ? credentials.secretAccessKey : undefined);

/** Captures the next request the SDK sends (answering 200), exactly as it arrived. */
async function capture(send: (endpoint: string) => Promise<unknown>): Promise<RawRequest> {
  let captured: RawRequest | undefined;
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      captured = { method: req.method ?? 'GET', url: req.url ?? '/', rawHeaders: req.rawHeaders, body: Buffer.concat(chunks) };
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' }).end('{"FailedEntryCount":0,"Entries":[]}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await send(`http://127.0.0.1:${(server.address() as AddressInfo).port}`).catch(() => undefined);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
  return captured!;
}

const postToConnection = (connectionId: string) =>
  capture((endpoint) =>
    new ApiGatewayManagementApiClient({ endpoint: `${endpoint}/live`, region: 'eu-west-1', credentials }).send(
      new PostToConnectionCommand({ ConnectionId: connectionId, Data: new TextEncoder().encode('{"hello":"world"}') }),
    ),
  );

describe('SigV4 verification of SDK-signed requests', () => {
  it.each(['Aj8dweybtocIdw==', 'a+b/c=d', 'plain'])('accepts @connections posts to connection id %s (path segments encoded twice)', async (id) => {
    const request = await postToConnection(id);
    expect(verifySignature(request, { service: 'execute-api', region: 'eu-west-1', secretOf })).toEqual({ ok: true, accessKeyId: credentials.accessKeyId });
  });

  it('accepts an EventBridge PutEvents (JSON protocol, body signed)', async () => {
    const request = await capture((endpoint) =>
      new EventBridgeClient({ endpoint, region: 'eu-west-1', credentials }).send(new PutEventsCommand({ Entries: [{ Source: 's', DetailType: 'd', Detail: '{}' }] })),
    );
    expect(verifySignature(request, { service: 'events', region: 'eu-west-1', secretOf })).toMatchObject({ ok: true });
  });

  it('refuses a request changed after signing: body, path or a signed header', async () => {
    const request = await postToConnection('abc');
    const verify = (r: RawRequest) => verifySignature(r, { service: 'execute-api', region: 'eu-west-1', secretOf });
    expect(verify({ ...request, body: Buffer.from('{"hello":"mallory"}') })).toMatchObject({ ok: false, reason: 'signature_mismatch' });
    expect(verify({ ...request, url: request.url.replace('abc', 'abd') })).toMatchObject({ ok: false, reason: 'signature_mismatch' });
    const headers = [...request.rawHeaders];
    const date = headers.findIndex((h) => h.toLowerCase() === 'x-amz-date');
    headers[date + 1] = headers[date + 1].replace(/\d(?=Z$)/, (d) => String((Number(d) + 1) % 10));
    expect(verify({ ...request, rawHeaders: headers })).toMatchObject({ ok: false, reason: 'signature_mismatch' });
  });

  it('refuses no signature, an unknown key, another region or service, and a signing time five minutes off', async () => {
    const request = await postToConnection('abc');
    const options = { service: 'execute-api', region: 'eu-west-1', secretOf };
    expect(verifySignature({ ...request, rawHeaders: [] }, options)).toMatchObject({ ok: false, reason: 'missing_authentication', message: 'Missing Authentication Token' });
    expect(verifySignature(request, { ...options, secretOf: () => undefined })).toMatchObject({ ok: false, reason: 'unknown_access_key' });
    expect(verifySignature(request, { ...options, region: 'us-east-1' })).toMatchObject({ ok: false, reason: 'wrong_region' });
    expect(verifySignature(request, { ...options, service: 'events' })).toMatchObject({ ok: false, reason: 'wrong_service' });
    const later = Date.now() + MAX_CLOCK_SKEW_MS + 60_000;
    expect(verifySignature(request, { ...options, now: () => later })).toMatchObject({ ok: false, reason: 'signature_expired' });
  });
});

describe('IAM policy evaluation', () => {
  const arn = 'arn:aws:dynamodb:eu-west-1:000000000000:table/Items';
  it('matches actions without regard to case and resources exactly, with * and ? wildcards', () => {
    expect(wildcard('dynamodb:Get*', 'dynamodb:getitem', true)).toBe(true);
    expect(wildcard('arn:aws:dynamodb:*:*:table/Items', arn)).toBe(true);
    expect(wildcard('arn:aws:dynamodb:*:*:table/items', arn)).toBe(false);
    expect(wildcard('arn:aws:dynamodb:*:*:table/Item?', arn)).toBe(true);
    expect(wildcard('arn:aws:dynamodb:*:*:table/Items', `${arn}/index/byUser`)).toBe(false);
  });

  it('denies by default, allows what a statement allows, and lets an explicit Deny win', () => {
    expect(evaluate([], 'dynamodb:GetItem', arn)).toEqual({ allowed: false, explicit: false });
    const allow = { Effect: 'Allow' as const, Action: 'dynamodb:GetItem', Resource: arn };
    expect(evaluate([allow], 'dynamodb:GetItem', arn)).toEqual({ allowed: true });
    expect(evaluate([allow, { Effect: 'Deny', Action: '*', Resource: '*' }], 'dynamodb:GetItem', arn)).toEqual({ allowed: false, explicit: true });
  });

  it('honours NotAction and NotResource', () => {
    expect(evaluate([{ Effect: 'Allow', NotAction: 'dynamodb:DeleteItem', Resource: '*' }], 'dynamodb:PutItem', arn)).toEqual({ allowed: true });
    expect(evaluate([{ Effect: 'Allow', NotAction: 'dynamodb:DeleteItem', Resource: '*' }], 'dynamodb:DeleteItem', arn).allowed).toBe(false);
    expect(evaluate([{ Effect: 'Allow', Action: '*', NotResource: arn }], 'dynamodb:PutItem', arn).allowed).toBe(false);
  });

  it('grants nothing through an Allow whose condition it cannot evaluate (stricter than AWS, never looser)', () => {
    const conditional = { Effect: 'Allow' as const, Action: '*', Resource: '*', Condition: { StringEquals: { 'aws:SourceVpc': 'vpc-1' } } };
    expect(evaluate([conditional], 'dynamodb:PutItem', arn).allowed).toBe(false);
  });
});
