/**
 * DynamoDB on loopback: dynalite (a real engine: tables, GSIs, conditions, pagination) behind a front end that adds
 * what dynalite leaves out and DynamoDB does, so that code which works here works against the service:
 *
 * - **TTL deletion.** UpdateTimeToLive/DescribeTimeToLive are answered here, and a reaper really deletes items whose
 *   TTL attribute (a Number, epoch seconds) has passed on the emulator's clock, which tests can advance. Between
 *   expiry and reaping, expired items stay readable, as they do in DynamoDB, which "deletes expired items within a
 *   few days of their expiration time" and whose reads return expired items until then
 *   (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TTL.html). Items whose TTL is more than five
 *   years in the past are never deleted, as DynamoDB documents.
 * - **Index lag.** "Changes to the table data are propagated to the global secondary indexes within a fraction of a
 *   second, under normal conditions" (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html):
 *   with `indexLagMs` set, every Query or Scan of a GSI reads a replica of the table that receives each write that
 *   much later, so code that reads an index as if it were strongly consistent fails here too. (ConsistentRead on a
 *   GSI is refused by dynalite itself with DynamoDB's ValidationException.)
 * - **IAM.** With an `iam`, every request must be SigV4-signed and the signer's policies must allow the action on
 *   the table (and `table/<name>/index/<index>` for index reads).
 * - **Faults.** Tests can make the next matching requests fail as DynamoDB can fail (a throttle, an internal error).
 *
 * In memory by default; on disk under `path` when given. dynalite itself listens on a loopback port of its own that
 * only this front end is told of: everything the code under test is given points at the front end.
 */
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { CreateTableCommand, DynamoDBClient, ListTablesCommand, UpdateTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import dynalite from 'dynalite';
import { Agent, createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Clock } from './clock';
import { OPERATOR_CREDENTIALS, type Credentials, type Iam } from './iam';
import { verifySignature } from './sigv4';
import type { Template } from './template';

/** CreateTable inputs (and TTL settings) for every AWS::DynamoDB::Table in the template. */
export function tableDefinitions(template: Template, tableName: (logicalId: string) => string): Array<CreateTableCommandInput & { ttlAttribute?: string }> {
  return Object.entries(template.Resources)
    .filter(([, r]) => r.Type === 'AWS::DynamoDB::Table')
    .map(([logicalId, { Properties: p = {} }]) => ({
      TableName: tableName(logicalId),
      AttributeDefinitions: p.AttributeDefinitions,
      KeySchema: p.KeySchema,
      BillingMode: 'PAY_PER_REQUEST',
      ...(p.GlobalSecondaryIndexes
        ? {
            GlobalSecondaryIndexes: p.GlobalSecondaryIndexes.map((g: any) => ({
              IndexName: g.IndexName,
              KeySchema: g.KeySchema,
              Projection: g.Projection,
            })),
          }
        : {}),
      ...(p.TimeToLiveSpecification?.Enabled ? { ttlAttribute: String(p.TimeToLiveSpecification.AttributeName) } : {}),
    }));
}

export interface Fault {
  /** Operation name, e.g. 'PutItem'. @default any */
  operation?: string;
  /** @default any table */
  table?: string;
  /** Further condition on the request body. @default always */
  when?: (input: Record<string, any>) => boolean;
  /** @default 'InternalServerError' (HTTP 500), as DynamoDB answers a transient failure */
  error?: 'InternalServerError' | 'ProvisionedThroughputExceededException' | 'ThrottlingException';
  /** How many matching requests fail. @default 1 */
  times?: number;
}

export interface DynamoOptions {
  /** @default 0 (a free port) */
  port?: number;
  /** Keep tables on disk here. @default in memory */
  path?: string;
  /** @default 'eu-west-1' */
  region?: string;
  /** @default '000000000000' */
  accountId?: string;
  /** The clock TTL deletion follows. @default wall time */
  clock?: Clock;
  /** Delay before a write reaches the table's global secondary indexes. @default 0 */
  indexLagMs?: number;
  /** Run the TTL reaper this often (0: only when `ttl.reap()` is called). @default 0 */
  reapIntervalMs?: number;
  /** Require SigV4 and evaluate IAM. @default none: any caller is allowed */
  iam?: Iam;
  /** Credentials of the `client` and `doc` this returns. @default the operator's */
  credentials?: Credentials;
}

export interface LocalDynamo {
  endpoint: string;
  client: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  clock: Clock;
  ttl: {
    /** Deletes every item whose TTL has passed on the clock; returns how many. */
    reap(): Promise<number>;
  };
  /** Makes matching requests fail; returns a function that removes the fault. */
  injectFault(fault: Fault): () => void;
  /** Writes not yet visible in the indexes. */
  readonly pendingIndexWrites: number;
  /** A client signing with other credentials (a role's), against this endpoint. */
  clientFor(credentials: Credentials): DynamoDBClient;
  docFor(credentials: Credentials): DynamoDBDocumentClient;
  close(): Promise<void>;
}

const TARGET_PREFIX = 'DynamoDB_20120810.';
const REPLICA_PREFIX = '__index_replica__.';
const FIVE_YEARS_SECONDS = 5 * 365 * 24 * 3600;
const WRITES = new Set(['PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem']);

type Json = Record<string, any>;
type Answer = { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer };

function crc32(data: Buffer): number {
  let crc = -1;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return (crc ^ -1) >>> 0;
}

function answer(res: ServerResponse, status: number, body: Json, requestId = `local-${Date.now()}`): void {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, {
    'content-type': 'application/x-amz-json-1.0',
    'x-amzn-requestid': requestId,
    'x-amz-crc32': String(crc32(bytes)),
    'content-length': String(bytes.length),
  });
  res.end(bytes);
}

/** How a request to the engine fails when the engine never answered it (a reset or refused connection). */
const TRANSPORT_ERRORS = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT']);

/**
 * What the front answers when a request fails on its way through: the engine's own answer as it gave it (a
 * ConditionalCheckFailedException stays a 400 of that name); a request the engine never answered (a reset or
 * refused connection) is DynamoDB's InternalServerError, a 500 that the SDK retries, as DynamoDB lets it
 * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html). Anything else is a
 * fault of this emulator: a 400 `EmulatorFault` that no SDK retries, so it shows instead of being retried away.
 */
export function engineFailure(err: unknown): [status: number, type: string, message: string] {
  const e = err as { name?: unknown; message?: unknown; status?: unknown; code?: unknown };
  if (typeof e?.status === 'number' && typeof e.name === 'string' && e.name) return [e.status, e.name, String(e.message ?? '')];
  if (typeof e?.code === 'string' && TRANSPORT_ERRORS.has(e.code)) return [500, 'InternalServerError', 'Internal server error'];
  return [400, 'EmulatorFault', `DynamoDB emulator fault: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`];
}

const error = (res: ServerResponse, status: number, type: string, message: string) =>
  answer(res, status, { __type: `com.amazonaws.dynamodb.v20120810#${type}`, message });

/** The table names an operation touches, with whether it reads an index. */
function tablesOf(operation: string, input: Json): Array<{ table: string; index?: string }> {
  if (operation === 'BatchWriteItem' || operation === 'BatchGetItem') return Object.keys(input.RequestItems ?? {}).map((table) => ({ table }));
  if (typeof input.TableName !== 'string') return [];
  return [{ table: input.TableName, ...(typeof input.IndexName === 'string' ? { index: input.IndexName } : {}) }];
}

export async function startDynamo(options: DynamoOptions = {}): Promise<LocalDynamo> {
  const region = options.region ?? 'eu-west-1';
  const accountId = options.accountId ?? '000000000000';
  const clock = options.clock ?? new Clock();
  const lag = options.indexLagMs ?? 0;
  const engine: Server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, ...(options.path ? { path: options.path } : {}) });
  await new Promise<void>((resolve, reject) => {
    engine.once('error', reject);
    engine.listen(0, '127.0.0.1', resolve);
  });
  // The front reuses its connections to the engine; a server's default 5 s keep-alive timeout would close one just
  // as the front sends on it (a reset request, never seen by the engine). Only the front talks to it: no timeout.
  engine.keepAliveTimeout = 0;
  const enginePort = (engine.address() as AddressInfo).port;
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });

  const ttl = new Map<string, { attribute: string; changedAt: number }>();
  const tables = new Map<string, { schema: string[]; indexKeys: Set<string> }>();
  const replicas = new Set<string>();
  /** Keys each table's replica holds (or will once a pending write lands). */
  const replicated = new Map<string, Set<string>>();
  /** Per key, the last write on its way to the replica (the next one waits for it). */
  const queues = new Map<string, Promise<void>>();
  const faults: Array<Required<Pick<Fault, 'times'>> & Fault> = [];
  const pending = new Set<Promise<unknown>>();

  const send = (operation: string, input: Json): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const body = Buffer.from(JSON.stringify(input));
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: enginePort,
          method: 'POST',
          path: '/',
          agent,
          headers: {
            'content-type': 'application/x-amz-json-1.0',
            'x-amz-target': `${TARGET_PREFIX}${operation}`,
            'content-length': body.length,
            // dynalite checks that a request is signed, not the signature: that is done above it.
            authorization: `AWS4-HMAC-SHA256 Credential=${OPERATOR_CREDENTIALS.accessKeyId}/20000101/${region}/dynamodb/aws4_request, SignedHeaders=host, Signature=${'0'.repeat(64)}`,
            'x-amz-date': '20000101T000000Z',
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 500, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const call = async (operation: string, input: Json): Promise<Json> => {
    const result = await send(operation, input);
    const parsed = JSON.parse(result.body.toString('utf8') || '{}') as Json;
    if (result.status !== 200) {
      throw Object.assign(new Error(parsed.message ?? parsed.Message ?? 'DynamoDB error'), { name: String(parsed.__type ?? '').split('#').pop(), status: result.status });
    }
    return parsed;
  };

  /** A table's key attributes, and the attributes its indexes are keyed on. */
  const tableInfo = async (table: string): Promise<{ schema: string[]; indexKeys: Set<string> }> => {
    let info = tables.get(table);
    if (!info) {
      const { Table } = await call('DescribeTable', { TableName: table });
      const names = (keys: Array<{ AttributeName: string }>) => keys.map((k) => k.AttributeName);
      info = {
        schema: names(Table.KeySchema),
        indexKeys: new Set(((Table.GlobalSecondaryIndexes ?? []) as Array<{ KeySchema: Array<{ AttributeName: string }> }>).flatMap((g) => names(g.KeySchema))),
      };
      tables.set(table, info);
    }
    return info;
  };
  const keySchema = async (table: string) => (await tableInfo(table)).schema;
  const keyOf = (item: Json, schema: string[]) => Object.fromEntries(schema.map((name) => [name, item[name]]));

  /**
   * The replica holds only what an index would: items with an index key attribute (the indexes are sparse). A
   * write is replicated when it can change that: it writes such an attribute, or the item is in the replica now.
   * Each write's own result (its snapshot) reaches the replica `lag` after it was made, and a key's writes arrive in
   * the order they were made: the indexes show the table exactly as it was a moment ago.
   */
  const inReplica = (table: string) => {
    let set = replicated.get(table);
    if (!set) replicated.set(table, (set = new Set()));
    return set;
  };
  const replicate = (table: string, key: Json, snapshot: Json | undefined) => {
    const replica = REPLICA_PREFIX + table;
    if (!replicas.has(replica)) return;
    const id = JSON.stringify(key);
    const tag = `${table}|${id}`;
    const due = Date.now() + lag;
    inReplica(table).add(id);
    const task: Promise<void> = (queues.get(tag) ?? Promise.resolve())
      .then(() => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, due - Date.now())).unref()))
      .then(async () => {
        const { indexKeys } = await tableInfo(table);
        if (snapshot && Object.keys(snapshot).some((name) => indexKeys.has(name))) {
          await call('PutItem', { TableName: replica, Item: snapshot });
        } else {
          await call('DeleteItem', { TableName: replica, Key: key });
          if (queues.get(tag) === task) inReplica(table).delete(id);
        }
      })
      .catch(() => undefined); // the table was deleted meanwhile
    queues.set(tag, task);
    pending.add(task);
    void task.finally(() => {
      pending.delete(task);
      if (queues.get(tag) === task) queues.delete(tag);
    });
  };
  /** Whether a write may change what the indexes hold. */
  const touchesIndex = async (table: string, key: Json, written: { item?: Json; expression?: Json }): Promise<boolean> => {
    if (inReplica(table).has(JSON.stringify(key))) return true;
    const { indexKeys } = await tableInfo(table);
    if (written.item) return Object.keys(written.item).some((name) => indexKeys.has(name));
    if (written.expression) {
      const { UpdateExpression = '', ExpressionAttributeNames = {}, AttributeUpdates = {} } = written.expression;
      const names = [...Object.values(ExpressionAttributeNames as Record<string, string>), ...String(UpdateExpression).split(/[^A-Za-z0-9_]+/), ...Object.keys(AttributeUpdates)];
      return names.some((name) => indexKeys.has(name));
    }
    return false;
  };
  /** Queues the snapshots of a successful write: what each item it wrote is now (undefined: deleted). */
  const replicateWrite = async (operation: string, input: Json, output: Json) => {
    if (lag <= 0) return;
    const writes: Array<{ table: string; key: Json; item?: Json; expression?: Json; snapshot: () => Promise<Json | undefined> | Json | undefined }> = [];
    if (operation === 'BatchWriteItem') {
      const unprocessed = new Set(Object.values((output.UnprocessedItems ?? {}) as Record<string, Json[]>).flat().map((r) => JSON.stringify(r)));
      for (const [table, requests] of Object.entries(input.RequestItems ?? {}) as Array<[string, Json[]]>) {
        const schema = await keySchema(table);
        for (const r of requests) {
          if (unprocessed.has(JSON.stringify(r))) continue;
          writes.push(r.PutRequest ? { table, key: keyOf(r.PutRequest.Item, schema), item: r.PutRequest.Item, snapshot: () => r.PutRequest.Item } : { table, key: r.DeleteRequest.Key, snapshot: () => undefined });
        }
      }
    } else if (operation === 'PutItem') {
      writes.push({ table: input.TableName, key: keyOf(input.Item, await keySchema(input.TableName)), item: input.Item, snapshot: () => input.Item });
    } else if (operation === 'DeleteItem') {
      writes.push({ table: input.TableName, key: input.Key, snapshot: () => undefined });
    } else {
      // UpdateItem: its post-image, which the request was made to return (or, if it asked for less, a read now).
      const image = output.Attributes as Json | undefined;
      const full = input.ReturnValues === undefined || input.ReturnValues === 'NONE' || input.ReturnValues === 'ALL_NEW';
      writes.push({
        table: input.TableName,
        key: input.Key,
        expression: input,
        snapshot: async () => (full ? image : (await call('GetItem', { TableName: input.TableName, Key: input.Key, ConsistentRead: true })).Item),
      });
    }
    for (const w of writes) if (await touchesIndex(w.table, w.key, w)) replicate(w.table, w.key, await w.snapshot());
  };
  /** A persisted state's replica: which keys it holds, read once at start. */
  const loadReplicated = async () => {
    for (const replica of replicas) {
      const table = replica.slice(REPLICA_PREFIX.length);
      const schema = await keySchema(table);
      let start: Json | undefined;
      do {
        const page = await call('Scan', { TableName: replica, ...(start ? { ExclusiveStartKey: start } : {}) });
        for (const item of page.Items as Json[]) inReplica(table).add(JSON.stringify(keyOf(item, schema)));
        start = page.LastEvaluatedKey as Json | undefined;
      } while (start);
    }
  };

  const handle = async (operation: string, input: Json, res: ServerResponse): Promise<void> => {
    switch (operation) {
      case 'UpdateTimeToLive': {
        const spec = input.TimeToLiveSpecification ?? {};
        await call('DescribeTable', { TableName: input.TableName });
        const previous = ttl.get(input.TableName);
        // "Any additional UpdateTimeToLive calls for the same table during this one hour duration result in a
        // ValidationException." (API_UpdateTimeToLive)
        if (previous && clock.now() - previous.changedAt < 3600_000) {
          return error(res, 400, 'ValidationException', 'Time to live has been modified multiple times within a fixed interval');
        }
        if (spec.Enabled) ttl.set(input.TableName, { attribute: String(spec.AttributeName), changedAt: clock.now() });
        else ttl.delete(input.TableName);
        return answer(res, 200, { TimeToLiveSpecification: spec });
      }
      case 'DescribeTimeToLive': {
        await call('DescribeTable', { TableName: input.TableName });
        const spec = ttl.get(input.TableName);
        return answer(res, 200, {
          TimeToLiveDescription: spec ? { TimeToLiveStatus: 'ENABLED', AttributeName: spec.attribute } : { TimeToLiveStatus: 'DISABLED' },
        });
      }
      case 'ListTables': {
        const result = await call('ListTables', input);
        return answer(res, 200, { ...result, TableNames: (result.TableNames as string[]).filter((n) => !n.startsWith(REPLICA_PREFIX)) });
      }
    }
    const forwarded = { ...input };
    // An update's post-image is what reaches the index: ask for it when the caller did not ask for anything.
    const imageAdded = operation === 'UpdateItem' && lag > 0 && (input.ReturnValues === undefined || input.ReturnValues === 'NONE');
    if (imageAdded) forwarded.ReturnValues = 'ALL_NEW';
    const readsIndex = (operation === 'Query' || operation === 'Scan') && typeof input.IndexName === 'string';
    const replica = REPLICA_PREFIX + input.TableName;
    if (readsIndex && replicas.has(replica)) forwarded.TableName = replica;
    const result = await send(operation, forwarded);
    let body = result.body;
    if (result.status === 200) {
      if (operation === 'CreateTable' && lag > 0 && input.GlobalSecondaryIndexes?.length) {
        await call('CreateTable', { ...input, TableName: replica });
        replicas.add(replica);
      } else if (operation === 'DeleteTable') {
        ttl.delete(input.TableName);
        tables.delete(input.TableName);
        replicated.delete(input.TableName);
        if (replicas.delete(replica)) await call('DeleteTable', { TableName: replica }).catch(() => undefined);
      } else if (WRITES.has(operation)) {
        const output = JSON.parse(body.toString('utf8') || '{}') as Json;
        await replicateWrite(operation, input, output);
        if (imageAdded) {
          delete output.Attributes;
          body = Buffer.from(JSON.stringify(output));
        }
      }
      if (forwarded.TableName !== input.TableName) body = Buffer.from(body.toString('utf8').split(replica).join(input.TableName));
    }
    res.writeHead(result.status, {
      'content-type': String(result.headers['content-type'] ?? 'application/x-amz-json-1.0'),
      'x-amzn-requestid': String(result.headers['x-amzn-requestid'] ?? ''),
      'x-amz-crc32': String(crc32(body)),
      'content-length': String(body.length),
    });
    res.end(body);
  };

  // A state folder from an earlier run may hold replicas already: use them, and learn what they hold.
  if (lag > 0) {
    const { TableNames = [] } = await call('ListTables', {});
    for (const name of TableNames as string[]) if (name.startsWith(REPLICA_PREFIX)) replicas.add(name);
    await loadReplicated();
  }

  const front = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const target = String(req.headers['x-amz-target'] ?? '');
      if (req.method !== 'POST' || !target.startsWith(TARGET_PREFIX)) return error(res, 400, 'UnknownOperationException', 'An unknown operation was requested.');
      const operation = target.slice(TARGET_PREFIX.length);
      let input: Json;
      try {
        input = JSON.parse(body.toString('utf8') || '{}') as Json;
      } catch {
        return error(res, 400, 'SerializationException', 'Start of structure or map found where not expected.');
      }
      if (options.iam) {
        const verified = verifySignature({ method: req.method, url: req.url ?? '/', rawHeaders: req.rawHeaders, body }, {
          service: 'dynamodb',
          region,
          secretOf: options.iam.secretOf,
        });
        if (!verified.ok) {
          const type = { missing_authentication: 'MissingAuthenticationTokenException', unknown_access_key: 'UnrecognizedClientException' }[verified.reason as string] ?? 'InvalidSignatureException';
          return answer(res, 400, { __type: `com.amazon.coral.service#${type}`, message: verified.message });
        }
        // An operation on no table (ListTables, say) is authorized on "*", as IAM does.
        const targets = tablesOf(operation, input);
        for (const { table, index } of targets.length > 0 ? targets : [{ table: '*' }]) {
          const resource = table === '*' ? '*' : `arn:aws:dynamodb:${region}:${accountId}:table/${table}${index ? `/index/${index}` : ''}`;
          const decision = options.iam.authorize(verified.accessKeyId, `dynamodb:${operation}`, resource);
          if (!decision.allowed) {
            return answer(res, 400, {
              __type: 'com.amazon.coral.service#AccessDeniedException',
              message: options.iam.denialMessage(decision.principal ?? options.iam.principalOf(verified.accessKeyId), `dynamodb:${operation}`, resource, decision.explicit),
            });
          }
        }
      }
      const fault = faults.find(
        (f) => f.times > 0 && (!f.operation || f.operation === operation) && (!f.table || tablesOf(operation, input).some((t) => t.table === f.table)) && (!f.when || f.when(input)),
      );
      if (fault) {
        fault.times--;
        const type = fault.error ?? 'InternalServerError';
        return error(res, type === 'InternalServerError' ? 500 : 400, type, `Injected fault: ${type}`);
      }
      handle(operation, input, res).catch((err: unknown) => {
        if (!res.headersSent) error(res, ...engineFailure(err));
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    front.once('error', reject);
    front.listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  const endpoint = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;

  const reap = async (): Promise<number> => {
    const now = Math.floor(clock.now() / 1000);
    let deleted = 0;
    for (const [table, { attribute }] of ttl) {
      const schema = await keySchema(table);
      let start: Json | undefined;
      do {
        const page = await call('Scan', {
          TableName: table,
          FilterExpression: '#ttl <= :now AND #ttl >= :oldest',
          ExpressionAttributeNames: { '#ttl': attribute },
          ExpressionAttributeValues: { ':now': { N: String(now) }, ':oldest': { N: String(now - FIVE_YEARS_SECONDS) } },
          ...(start ? { ExclusiveStartKey: start } : {}),
        });
        for (const item of page.Items as Json[]) {
          const key = keyOf(item, schema);
          // Deleted only if still expired: a write may have extended it since the scan.
          await call('DeleteItem', {
            TableName: table,
            Key: key,
            ConditionExpression: '#ttl <= :now',
            ExpressionAttributeNames: { '#ttl': attribute },
            ExpressionAttributeValues: { ':now': { N: String(now) } },
          })
            .then(() => {
              deleted++;
              if (inReplica(table).has(JSON.stringify(key))) replicate(table, key, undefined);
            })
            .catch(() => undefined);
        }
        start = page.LastEvaluatedKey as Json | undefined;
      } while (start);
    }
    return deleted;
  };
  const reaper = options.reapIntervalMs ? setInterval(() => void reap().catch(() => undefined), options.reapIntervalMs) : undefined;
  reaper?.unref();

  const clientFor = (credentials: Credentials) => new DynamoDBClient({ endpoint, region, credentials });
  const docFor = (credentials: Credentials) => DynamoDBDocumentClient.from(clientFor(credentials), { marshallOptions: { removeUndefinedValues: true } });
  const client = clientFor(options.credentials ?? OPERATOR_CREDENTIALS);
  return {
    endpoint,
    client,
    doc: DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } }),
    docFor,
    clock,
    ttl: { reap },
    injectFault(fault) {
      const entry = { ...fault, times: fault.times ?? 1 };
      faults.push(entry);
      return () => {
        entry.times = 0;
      };
    },
    get pendingIndexWrites() {
      return pending.size;
    },
    clientFor,
    async close() {
      if (reaper) clearInterval(reaper);
      client.destroy();
      await Promise.all(pending);
      front.closeAllConnections();
      await new Promise<void>((resolve) => front.close(() => resolve()));
      agent.destroy();
      await new Promise<void>((resolve) => engine.close(() => resolve()));
    },
  };
}

/** Creates each table unless it exists (a persistent state folder keeps them), and turns its TTL on. */
export async function createTables(client: DynamoDBClient, definitions: Array<CreateTableCommandInput & { ttlAttribute?: string }>): Promise<void> {
  const { TableNames = [] } = await client.send(new ListTablesCommand({}));
  for (const { ttlAttribute, ...definition } of definitions) {
    if (!TableNames.includes(definition.TableName!)) await client.send(new CreateTableCommand(definition));
    if (ttlAttribute) {
      await client.send(new UpdateTimeToLiveCommand({ TableName: definition.TableName, TimeToLiveSpecification: { Enabled: true, AttributeName: ttlAttribute } }));
    }
  }
}
