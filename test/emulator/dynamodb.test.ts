/**
 * The emulated DynamoDB refuses and does what DynamoDB refuses and does: TTL deletion that really happens, index
 * reads that lag writes, SigV4 and IAM on every call.
 */
import { CreateTableCommand, DescribeTimeToLiveCommand, DynamoDBClient, ListTablesCommand, UpdateTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { createTables, engineFailure, startDynamo, tableDefinitions, type LocalDynamo } from '../../local/emulator/dynamodb';
import { Iam } from '../../local/emulator/iam';
import { Resolver } from '../../local/emulator/template';
import { eventually, role, table, template } from './fixtures';

const DAY = 86_400_000;
const seconds = (ms: number) => Math.floor(ms / 1000);

describe('TTL', () => {
  let dynamo: LocalDynamo;
  beforeAll(async () => {
    dynamo = await startDynamo();
    await createTables(dynamo.client, tableDefinitions(template({ Items: table() }), (id) => id));
  });
  afterAll(() => dynamo.close());

  const put = (pk: string, expiresAt: unknown) => dynamo.doc.send(new PutCommand({ TableName: 'Items', Item: { pk, byColour: 'red', expiresAt } }));
  const get = async (pk: string) => (await dynamo.doc.send(new GetCommand({ TableName: 'Items', Key: { pk }, ConsistentRead: true }))).Item;

  it('is on as the template says, and refuses a second change within the hour (API_UpdateTimeToLive)', async () => {
    const { TimeToLiveDescription } = await dynamo.client.send(new DescribeTimeToLiveCommand({ TableName: 'Items' }));
    expect(TimeToLiveDescription).toEqual({ TimeToLiveStatus: 'ENABLED', AttributeName: 'expiresAt' });
    await expect(
      dynamo.client.send(new UpdateTimeToLiveCommand({ TableName: 'Items', TimeToLiveSpecification: { Enabled: false, AttributeName: 'expiresAt' } })),
    ).rejects.toMatchObject({ name: 'ValidationException', message: expect.stringContaining('multiple times') });
  });

  it('keeps an expired item readable until the reaper runs, then deletes it (expired items "still show up in reads")', async () => {
    const now = dynamo.clock.now();
    await put('expired', seconds(now) - 10);
    expect(await get('expired')).toBeDefined();
    expect(await dynamo.ttl.reap()).toBeGreaterThanOrEqual(1);
    expect(await get('expired')).toBeUndefined();
  });

  it('deletes what a later clock finds expired: advancing the clock two days reaps a two-day TTL', async () => {
    const now = dynamo.clock.now();
    await put('two-days', seconds(now + 2 * DAY));
    await put('a-week', seconds(now + 7 * DAY));
    await dynamo.ttl.reap();
    expect(await get('two-days')).toBeDefined();
    dynamo.clock.advance(2 * DAY + 1000);
    await dynamo.ttl.reap();
    expect(await get('two-days')).toBeUndefined();
    expect(await get('a-week')).toBeDefined();
  });

  it('never deletes items whose TTL is not a number, or more than five years in the past, as DynamoDB documents', async () => {
    const now = dynamo.clock.now();
    await put('string-ttl', String(seconds(now) - 10));
    await put('ancient', seconds(now - 6 * 365 * DAY));
    await dynamo.ttl.reap();
    expect(await get('string-ttl')).toBeDefined();
    expect(await get('ancient')).toBeDefined();
  });

  it('refuses to advance the clock backwards', () => {
    expect(() => dynamo.clock.advance(-1)).toThrow(/non-negative/);
  });
});

describe('global secondary indexes', () => {
  let dynamo: LocalDynamo;
  beforeAll(async () => {
    dynamo = await startDynamo({ indexLagMs: 300 });
    await createTables(dynamo.client, tableDefinitions(template({ Items: table() }), (id) => id));
  });
  afterAll(() => dynamo.close());

  const byColour = async (colour: string) =>
    (
      await dynamo.doc.send(
        new QueryCommand({ TableName: 'Items', IndexName: 'colour', KeyConditionExpression: 'byColour = :c', ExpressionAttributeValues: { ':c': colour } }),
      )
    ).Items ?? [];

  it('see a write only after the index lag, while the table itself sees it at once ("within a fraction of a second")', async () => {
    await dynamo.doc.send(new PutCommand({ TableName: 'Items', Item: { pk: 'a', byColour: 'blue' } }));
    expect((await dynamo.doc.send(new GetCommand({ TableName: 'Items', Key: { pk: 'a' }, ConsistentRead: true }))).Item).toBeDefined();
    expect(await byColour('blue')).toEqual([]);
    await eventually(async () => (await byColour('blue')).length === 1, 2000, 'the index to catch up');
  });

  it('show a deleted or changed item as it was, until the lag has passed', async () => {
    await dynamo.doc.send(new PutCommand({ TableName: 'Items', Item: { pk: 'b', byColour: 'green' } }));
    await eventually(async () => (await byColour('green')).length === 1, 2000);
    await dynamo.doc.send(new PutCommand({ TableName: 'Items', Item: { pk: 'b', byColour: 'yellow' } }));
    expect(await byColour('green')).toEqual([{ pk: 'b', byColour: 'green' }]);
    await eventually(async () => (await byColour('green')).length === 0 && (await byColour('yellow')).length === 1, 2000);
  });

  it("show each write a full lag after it was made, in order, even when the next write to the item follows at once", async () => {
    await dynamo.doc.send(new PutCommand({ TableName: 'Items', Item: { pk: 'c', byColour: 'teal' } }));
    await eventually(async () => (await byColour('teal')).length === 1, 2000);
    const t0 = Date.now();
    await dynamo.doc.send(new PutCommand({ TableName: 'Items', Item: { pk: 'c', byColour: 'navy' } }));
    await new Promise((r) => setTimeout(r, 200));
    // An unrelated update of the same item, 200 ms later: it must not carry the first change through early.
    await dynamo.doc.send(new UpdateCommand({ TableName: 'Items', Key: { pk: 'c' }, UpdateExpression: 'SET n = :n', ExpressionAttributeValues: { ':n': 1 } }));
    await new Promise((r) => setTimeout(r, Math.max(0, t0 + 250 - Date.now())));
    expect(await byColour('navy')).toEqual([]);
    expect(await byColour('teal')).toHaveLength(1);
    await eventually(async () => (await byColour('navy')).length === 1, 2000);
    await eventually(async () => ((await byColour('navy'))[0] as { n?: number }).n === 1, 2000, 'the second write');
  });

  it('refuse strongly consistent reads, with DynamoDB\'s ValidationException', async () => {
    await expect(
      dynamo.doc.send(new QueryCommand({ TableName: 'Items', IndexName: 'colour', ConsistentRead: true, KeyConditionExpression: 'byColour = :c', ExpressionAttributeValues: { ':c': 'x' } })),
    ).rejects.toMatchObject({ name: 'ValidationException', message: 'Consistent reads are not supported on global secondary indexes' });
  });

  it('keep the replica out of sight: ListTables and Scan of the table show only the table', async () => {
    const { TableNames } = await dynamo.client.send(new ListTablesCommand({}));
    expect(TableNames).toEqual(['Items']);
    const scanned = await dynamo.doc.send(new ScanCommand({ TableName: 'Items', IndexName: 'colour' }));
    expect(JSON.stringify(scanned)).not.toContain('replica');
  });
});

describe('IAM', () => {
  const resources = {
    Items: table(),
    Reader: role([{ Effect: 'Allow', Action: ['dynamodb:GetItem', 'dynamodb:Query'], Resource: { 'Fn::GetAtt': ['Items', 'Arn'] } }]),
    Denied: role([
      { Effect: 'Allow', Action: 'dynamodb:*', Resource: '*' },
      { Effect: 'Deny', Action: 'dynamodb:PutItem', Resource: '*' },
    ]),
  };
  const iam = new Iam({
    template: template(resources),
    resolver: new Resolver({ Items: { ref: 'Items', attrs: { Arn: 'arn:aws:dynamodb:eu-west-1:000000000000:table/Items' } } }, {}),
    accountId: '000000000000',
  });
  let dynamo: LocalDynamo;
  beforeAll(async () => {
    dynamo = await startDynamo({ iam });
    await createTables(dynamo.client, tableDefinitions(template({ Items: table() }), (id) => id));
  });
  afterAll(() => dynamo.close());

  it('refuses an unsigned request and an unknown key, as AWS does before anything else', async () => {
    const unsigned = await fetch(dynamo.endpoint, { method: 'POST', headers: { 'x-amz-target': 'DynamoDB_20120810.ListTables', 'content-type': 'application/x-amz-json-1.0' }, body: '{}' });
    expect(unsigned.status).toBe(400);
    expect(await unsigned.json()).toMatchObject({ __type: expect.stringContaining('MissingAuthenticationTokenException') });
    const stranger = new DynamoDBClient({ endpoint: dynamo.endpoint, region: 'eu-west-1', credentials: { accessKeyId: 'AKIASTRANGER', secretAccessKey: 'x' } });
    await expect(stranger.send(new CreateTableCommand({ TableName: 'Nope', AttributeDefinitions: [], KeySchema: [] }))).rejects.toMatchObject({ name: 'UnrecognizedClientException' });
  });

  it('refuses a request whose signature does not match (a wrong secret)', async () => {
    const { accessKeyId } = iam.credentialsOf('Reader');
    const forger = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: dynamo.endpoint, region: 'eu-west-1', credentials: { accessKeyId, secretAccessKey: 'guessed' } }));
    await expect(forger.send(new GetCommand({ TableName: 'Items', Key: { pk: 'x' } }))).rejects.toMatchObject({ name: 'InvalidSignatureException' });
  });

  it("allows a role what its policies grant, on the table named, and nothing else: not its indexes, not other actions", async () => {
    const reader = dynamo.docFor(iam.credentialsOf('Reader'));
    await expect(reader.send(new GetCommand({ TableName: 'Items', Key: { pk: 'x' } }))).resolves.toBeDefined();
    await expect(reader.send(new PutCommand({ TableName: 'Items', Item: { pk: 'x' } }))).rejects.toMatchObject({
      name: 'AccessDeniedException',
      message: expect.stringMatching(/is not authorized to perform: dynamodb:PutItem on resource: arn:aws:dynamodb:eu-west-1:000000000000:table\/Items because no identity-based policy allows/),
    });
    await expect(
      reader.send(new QueryCommand({ TableName: 'Items', IndexName: 'colour', KeyConditionExpression: 'byColour = :c', ExpressionAttributeValues: { ':c': 'x' } })),
    ).rejects.toMatchObject({ name: 'AccessDeniedException', message: expect.stringContaining('table/Items/index/colour') });
  });

  it('authorizes an operation on no table (ListTables) against "*": a role granted only its table may not list', async () => {
    const reader = dynamo.clientFor(iam.credentialsOf('Reader'));
    await expect(reader.send(new ListTablesCommand({}))).rejects.toMatchObject({ name: 'AccessDeniedException', message: expect.stringContaining('dynamodb:ListTables on resource: *') });
  });

  it('lets an explicit Deny win over any Allow', async () => {
    const denied = dynamo.docFor(iam.credentialsOf('Denied'));
    await expect(denied.send(new GetCommand({ TableName: 'Items', Key: { pk: 'x' } }))).resolves.toBeDefined();
    await expect(denied.send(new PutCommand({ TableName: 'Items', Item: { pk: 'x' } }))).rejects.toMatchObject({ message: expect.stringContaining('explicit deny') });
  });
});

describe('faults', () => {
  it('fail the matching requests as DynamoDB can, as many times as asked, then heal', async () => {
    const dynamo = await startDynamo();
    try {
      await createTables(dynamo.client, tableDefinitions(template({ Items: table() }), (id) => id));
      const heal = dynamo.injectFault({ operation: 'PutItem', error: 'ProvisionedThroughputExceededException', times: 10 });
      const noRetry = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: dynamo.endpoint, region: 'eu-west-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, maxAttempts: 1 }));
      await expect(noRetry.send(new PutCommand({ TableName: 'Items', Item: { pk: 'f' } }))).rejects.toMatchObject({ name: 'ProvisionedThroughputExceededException' });
      await expect(noRetry.send(new GetCommand({ TableName: 'Items', Key: { pk: 'f' } }))).resolves.toBeDefined();
      heal();
      await expect(noRetry.send(new PutCommand({ TableName: 'Items', Item: { pk: 'f' } }))).resolves.toBeDefined();
    } finally {
      await dynamo.close();
    }
  });

  it("answer a failure to reach the engine as DynamoDB's retryable 500, the engine's own refusals as it gave them, and their own faults as faults", async () => {
    // A reset connection is not a refusal of the request: answered as a 400 (as it once was), the SDK gave up on
    // it and a $connect failed under load where DynamoDB would have let the SDK retry.
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    expect(engineFailure(reset)).toEqual([500, 'InternalServerError', 'Internal server error']);
    expect(engineFailure(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))[0]).toBe(500);
    // The emulator's own fault is no DynamoDB error: it shows, and no SDK retries it (a retry could apply a write twice).
    expect(engineFailure(new TypeError('x is undefined'))).toEqual([400, 'EmulatorFault', 'DynamoDB emulator fault: TypeError: x is undefined']);
    const refused = Object.assign(new Error('The conditional request failed'), { name: 'ConditionalCheckFailedException', status: 400 });
    expect(engineFailure(refused)).toEqual([400, 'ConditionalCheckFailedException', 'The conditional request failed']);

    // Through the front: the engine's refusal of a DescribeTimeToLive on no table keeps its name and status.
    const dynamo = await startDynamo();
    try {
      const noRetry = new DynamoDBClient({ endpoint: dynamo.endpoint, region: 'eu-west-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, maxAttempts: 1 });
      await expect(noRetry.send(new DescribeTimeToLiveCommand({ TableName: 'Missing' }))).rejects.toMatchObject({ name: 'ResourceNotFoundException', $metadata: { httpStatusCode: 400 } });
    } finally {
      await dynamo.close();
    }
  });
});
