/**
 * The emulated EventBridge takes only signed and authorized PutEvents, delivers to a Lambda target asynchronously
 * and only with the function's permission (else to the target's dead-letter queue), and can deliver an event twice
 * on purpose, as EventBridge occasionally does.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { LocalEventBus } from '../../local/emulator/eventbridge';
import { Iam, OPERATOR_CREDENTIALS } from '../../local/emulator/iam';
import { AccountConcurrency, LocalFunction } from '../../local/emulator/lambda';
import { LocalQueues } from '../../local/emulator/sqs';
import { Resolver, type Resource } from '../../local/emulator/template';
import { Assembly, eventually, lambdaFunction, role, template } from './fixtures';

const assembly = new Assembly();
const RECORD = `exports.handler = async (event) => { console.log(JSON.stringify({ got: event.id, detail: event.detail })); return 'ok'; };`;
const region = 'eu-west-1';
const account = '000000000000';
const busArn = `arn:aws:events:${region}:${account}:event-bus/bus`;
const ruleArn = (id: string) => `arn:aws:events:${region}:${account}:rule/bus/${id}`;
const queueArn = `arn:aws:sqs:${region}:${account}:Dlq`;

const rule = (target: string): Resource => ({
  Type: 'AWS::Events::Rule',
  Properties: {
    EventBusName: { Ref: 'Bus' },
    EventPattern: { 'detail-type': [target] },
    Targets: [{ Id: 't', Arn: { 'Fn::GetAtt': [target, 'Arn'] }, DeadLetterConfig: { Arn: { 'Fn::GetAtt': ['Dlq', 'Arn'] } } }],
  },
});
const resources: Record<string, Resource> = {
  Bus: { Type: 'AWS::Events::EventBus', Properties: { Name: 'bus' } },
  Dlq: { Type: 'AWS::SQS::Queue' },
  Permitted: lambdaFunction(assembly, RECORD),
  Forgotten: lambdaFunction(assembly, RECORD),
  ToPermitted: rule('Permitted'),
  ToForgotten: rule('Forgotten'),
  Permission: { Type: 'AWS::Lambda::Permission', Properties: { Action: 'lambda:InvokeFunction', FunctionName: { 'Fn::GetAtt': ['Permitted', 'Arn'] }, Principal: 'events.amazonaws.com', SourceArn: { 'Fn::GetAtt': ['ToPermitted', 'Arn'] } } },
  Publisher: role([{ Effect: 'Allow', Action: 'events:PutEvents', Resource: busArn }]),
  Bystander: role([{ Effect: 'Allow', Action: 'sqs:SendMessage', Resource: '*' }]),
};
const resolver = new Resolver(
  {
    Bus: { ref: 'bus', attrs: { Arn: busArn, Name: 'bus' } },
    Dlq: { ref: 'dlq-url', attrs: { Arn: queueArn } },
    ToPermitted: { ref: 'ToPermitted', attrs: { Arn: ruleArn('ToPermitted') } },
    ToForgotten: { ref: 'ToForgotten', attrs: { Arn: ruleArn('ToForgotten') } },
    Permitted: { ref: 'Permitted', attrs: { Arn: `arn:aws:lambda:${region}:${account}:function:Permitted` } },
    Forgotten: { ref: 'Forgotten', attrs: { Arn: `arn:aws:lambda:${region}:${account}:function:Forgotten` } },
  },
  {},
);
const iam = new Iam({ template: template(resources), resolver, accountId: account });
const lines: string[] = [];
const functions = new Map<string, LocalFunction>();
const queues = new LocalQueues(template(resources), (id) => resolver.getAtt(id, 'Arn'));
let bus: LocalEventBus;
let server: Server;
let endpoint: string;

beforeAll(async () => {
  const concurrency = new AccountConcurrency();
  for (const id of ['Permitted', 'Forgotten']) {
    const key = (resources[id].Properties!.Code as { S3Key: string }).S3Key.replace('.zip', '');
    functions.set(id, new LocalFunction({ name: id, dir: `${assembly.dir}/asset.${key}`, handler: 'index.handler', env: {}, timeoutMs: 3000 }, (_s, l) => lines.push(l), concurrency));
  }
  bus = new LocalEventBus({ template: template(resources), resolver, functions, region, accountId: account, log: () => undefined, iam, queues });
  server = createServer((req, res) => {
    if (!bus.handleRequest(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  bus.stop();
  await new Promise((resolve) => server.close(resolve));
  await Promise.all([...functions.values()].map((f) => f.stop()));
});

const client = (credentials = OPERATOR_CREDENTIALS) => new EventBridgeClient({ endpoint, region, credentials, maxAttempts: 1 });
const entry = (detailType: string, detail: unknown = { n: 1 }) => ({ EventBusName: 'bus', Source: 'test', DetailType: detailType, Detail: JSON.stringify(detail) });
const got = () => lines.map((l) => JSON.parse(l) as { got: string }).map((l) => l.got);

describe('PutEvents', () => {
  it('is refused unsigned (403 MissingAuthenticationTokenException)', async () => {
    const answer = await fetch(endpoint, { method: 'POST', headers: { 'x-amz-target': 'AWSEvents.PutEvents', 'content-type': 'application/x-amz-json-1.1' }, body: '{"Entries":[]}' });
    expect(answer.status).toBe(403);
    expect(await answer.json()).toMatchObject({ __type: 'MissingAuthenticationTokenException' });
  });

  it('accepts entries from a principal allowed events:PutEvents on the bus, and refuses the entries of one that is not', async () => {
    const ok = await client(iam.credentialsOf('Publisher')).send(new PutEventsCommand({ Entries: [entry('Nobody')] }));
    expect(ok.FailedEntryCount).toBe(0);
    const denied = await client(iam.credentialsOf('Bystander')).send(new PutEventsCommand({ Entries: [entry('Nobody')] }));
    expect(denied).toMatchObject({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'AccessDeniedException', ErrorMessage: expect.stringContaining('events:PutEvents') }] });
  });

  it('refuses more than 10 entries, and malformed or oversize ones entry by entry', async () => {
    await expect(client().send(new PutEventsCommand({ Entries: Array.from({ length: 11 }, () => entry('Nobody')) }))).rejects.toMatchObject({ name: 'ValidationException' });
    const answer = await client().send(new PutEventsCommand({ Entries: [{ ...entry('Nobody'), Detail: '{nope' }, entry('Nobody', { big: 'x'.repeat(260 * 1024) }), entry('Nobody')] }));
    expect(answer.FailedEntryCount).toBe(2);
    expect(answer.Entries?.map((e) => e.ErrorCode)).toEqual(['MalformedDetail', 'InvalidArgument', undefined]);
  });
});

describe('delivery to Lambda', () => {
  it('invokes a function its resource policy lets EventBridge invoke, asynchronously', async () => {
    const { Entries } = await client().send(new PutEventsCommand({ Entries: [entry('Permitted')] }));
    await eventually(() => got().includes(Entries![0].EventId!), 3000, 'the delivery');
  });

  it("sends the event to the target's dead-letter queue when the function's policy does not allow EventBridge", async () => {
    const { Entries } = await client().send(new PutEventsCommand({ Entries: [entry('Forgotten')] }));
    await eventually(() => queues.messages('Dlq').length > 0, 3000, 'the dead letter');
    const [dead] = queues.messages('Dlq');
    expect(JSON.parse(dead.body).id).toBe(Entries![0].EventId);
    expect(dead.attributes).toMatchObject({ ERROR_CODE: 'AccessDeniedException', RULE_ARN: ruleArn('ToForgotten') });
    expect(got()).not.toContain(Entries![0].EventId);
  });

  it('delivers every event twice when asked to (at-least-once delivery, made to happen)', async () => {
    bus.duplicateDeliveries = true;
    try {
      const { Entries } = await client().send(new PutEventsCommand({ Entries: [entry('Permitted')] }));
      await eventually(() => got().filter((id) => id === Entries![0].EventId).length === 2, 3000, 'two deliveries');
    } finally {
      bus.duplicateDeliveries = false;
    }
  });
});
