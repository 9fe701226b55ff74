/**
 * The local inspector (`npm start --inspect`): a debugging page on 127.0.0.1 showing the running system's live
 * connections and recent room deliveries. `GET /` is the page (rendered here, reloading itself every 2 s), `GET
 * /state.json` the same data as JSON.
 *
 * Where the data comes from, so that it shows what the system does rather than what it was meant to do:
 * - connections and their rooms: the connection table itself (connection items and room-member items, layout in
 *   common/table-schema.ts), scanned at each request, skipping items past their TTL as the store does; `open` says
 *   whether the gateway still holds the socket (false: a stale item, as `--no-disconnect` leaves behind);
 * - last activity and deliveries: the API Gateway emulator's observation hook (`gateway.observe`), which sees every
 *   inbound frame and every @connections post. A post whose body is a Gatehouse `message` event is one recipient
 *   of that message; posts of one message (room, seq and messageId) are one delivery with a count. A join's replay
 *   is posted too, and counts as such. Activity is known from the moment the inspector starts.
 *
 * Invariants: memory is bounded (the last MAX_DELIVERIES deliveries; activity only for sockets the gateway holds,
 * dropped when they close); every value from the system reaches the page HTML-escaped, by one function (display
 * names are attacker-controlled), under a CSP that allows the page's one nonce'd style and no script at all; the
 * server answers only requests addressed to loopback by name (a DNS-rebinding page gets 421).
 *
 * Over 300 lines because a quarter of it is the page itself, kept beside the state it renders.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { keys, TABLE } from '../common/table-schema';
import { clock } from './log-format';
import type { MessageEvent, Sender } from '../protocol';
import type { GatewayEvent } from './emulator/index';
import { resourcesOfType } from './emulator/template';
import type { LocalSystem } from './system';

export interface InspectorOptions {
  /** Port on 127.0.0.1. @default 0 (a free port) */
  port?: number;
}

export interface Inspector {
  /** `http://127.0.0.1:<port>/` */
  url: string;
  stop(): Promise<void>;
}

export interface InspectedConnection {
  connectionId: string;
  userId: string;
  /** The display name others see (the connection item's), or null. */
  name: string | null;
  tenantId: string;
  /** Rooms the connection is a member of (its room-member items). */
  rooms: string[];
  /** Epoch milliseconds. */
  connectedAt: number;
  /** Last frame in or post out seen since the inspector started (epoch ms), or null. */
  lastActivityAt: number | null;
  lastActivity: 'in' | 'out' | null;
  /** The gateway holds an open socket for it. */
  open: boolean;
}

export interface InspectedDelivery {
  /** When the first post of it was seen (epoch ms). */
  at: number;
  /** The recipients' tenant (from their connection item), or null while unknown. */
  tenantId: string | null;
  room: string;
  seq: number;
  messageId: string;
  sender: Sender;
  /** Connections it was posted to. */
  posted: number;
}

export interface InspectorState {
  now: number;
  connections: InspectedConnection[];
  /** Newest first. */
  deliveries: InspectedDelivery[];
}

export const MAX_DELIVERIES = 100;

interface Activity {
  at: number;
  direction: 'in' | 'out';
  /** The connection's tenant once looked up (deliveries need it: a message event does not carry it). */
  tenant?: Promise<string | null>;
}

function asMessageEvent(data: string): MessageEvent | undefined {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  const e = value as Partial<MessageEvent> | null;
  if (e?.type !== 'message' || typeof e.room !== 'string' || !Number.isSafeInteger(e.seq) || typeof e.messageId !== 'string') return undefined;
  if (typeof e.sender !== 'object' || e.sender === null) return undefined;
  return e as MessageEvent;
}

/** What the gateway reports, kept: activity per open socket and the last deliveries. */
class Observations {
  readonly activity = new Map<string, Activity>();
  private readonly deliveries = new Map<string, InspectedDelivery>();
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly tenantOf: (connectionId: string) => Promise<string | null>) {}

  readonly record = (event: GatewayEvent): void => {
    if (event.kind === 'close') {
      this.activity.delete(event.connectionId);
      return;
    }
    if (event.kind === 'open') return;
    const direction = event.kind === 'message' ? 'in' : 'out';
    let activity = this.activity.get(event.connectionId);
    if (activity) Object.assign(activity, { at: event.at, direction });
    else this.activity.set(event.connectionId, (activity = { at: event.at, direction }));
    if (event.kind === 'post') this.post(event.connectionId, event.at, event.data, activity);
  };

  private post(connectionId: string, at: number, data: string, activity: Activity): void {
    const message = asMessageEvent(data);
    if (!message) return;
    const key = JSON.stringify([message.room, message.seq, message.messageId]);
    const known = this.deliveries.get(key);
    if (known) {
      known.posted += 1;
      return;
    }
    const delivery: InspectedDelivery = { at, tenantId: null, room: message.room, seq: message.seq, messageId: message.messageId, sender: message.sender, posted: 1 };
    this.deliveries.set(key, delivery);
    // A Map iterates in insertion order: the first key is the oldest delivery.
    if (this.deliveries.size > MAX_DELIVERIES) this.deliveries.delete(this.deliveries.keys().next().value as string);
    activity.tenant ??= this.tenantOf(connectionId).catch(() => null);
    const lookup = activity.tenant.then((tenant) => (delivery.tenantId = tenant));
    this.pending.add(lookup);
    void lookup.finally(() => this.pending.delete(lookup));
  }

  /** The deliveries, newest first, once the tenants being looked up are known. */
  async recent(): Promise<InspectedDelivery[]> {
    await Promise.all(this.pending);
    return [...this.deliveries.values()].reverse().map((d) => ({ ...d }));
  }
}

/** The connection table: the template's table keyed as common/table-schema.ts says. */
function tableName(system: LocalSystem): string {
  const tables = resourcesOfType(system.aws.template, 'AWS::DynamoDB::Table');
  const [name] =
    tables.find(([, t]) => {
      const schema = (t.Properties?.KeySchema ?? []) as Array<{ AttributeName: string; KeyType: string }>;
      return schema.some((k) => k.AttributeName === TABLE.partitionKey && k.KeyType === 'HASH') && schema.some((k) => k.AttributeName === TABLE.sortKey && k.KeyType === 'RANGE');
    }) ?? [];
  if (!name) throw new Error('The template has no table keyed as the connection table');
  return name;
}

const live = (item: Record<string, unknown>, now: number) => {
  const expiresAt = item[TABLE.ttlAttribute];
  return typeof expiresAt !== 'number' || expiresAt * 1000 > now;
};

/** Connection items and room-member items, read from the table as they are now. */
async function scanConnections(system: LocalSystem, table: string, observations: Observations): Promise<InspectedConnection[]> {
  const now = Date.now();
  const connections = new Map<string, Record<string, unknown>>();
  const members: Array<Record<string, unknown>> = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await system.dynamo.doc.send(
      new ScanCommand({
        TableName: table,
        ConsistentRead: true,
        FilterExpression: '#sk = :conn OR (begins_with(#pk, :room) AND begins_with(#sk, :member))',
        ProjectionExpression: '#pk, #sk, connectionId, userId, tenantId, #name, connectedAt, #ttl',
        ExpressionAttributeNames: { '#pk': TABLE.partitionKey, '#sk': TABLE.sortKey, '#name': 'name', '#ttl': TABLE.ttlAttribute },
        ExpressionAttributeValues: { ':conn': keys.connection('').sk, ':room': 'room#', ':member': keys.member('', '', '').sk },
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    for (const item of page.Items ?? []) {
      if (!live(item, now)) continue;
      if (item[TABLE.sortKey] === keys.connection('').sk) connections.set(String(item.connectionId), item);
      else members.push(item);
    }
    start = page.LastEvaluatedKey;
  } while (start);

  const rooms = new Map<string, string[]>();
  for (const item of members) {
    const connectionId = String(item[TABLE.sortKey]).slice(keys.member('', '', '').sk.length);
    const tenantId = connections.get(connectionId)?.tenantId;
    const prefix = keys.roomPartition(String(tenantId), '');
    const pk = String(item[TABLE.partitionKey]);
    if (typeof tenantId !== 'string' || !pk.startsWith(prefix)) continue;
    // A split room's shards are `room#<tenant>#<room>#<k>` (room names hold no `#`): the room is what precedes it.
    const room = pk.slice(prefix.length).split('#')[0];
    rooms.set(connectionId, [...(rooms.get(connectionId) ?? []), room]);
  }
  return [...connections.values()]
    .map((item): InspectedConnection => {
      const connectionId = String(item.connectionId);
      const activity = observations.activity.get(connectionId);
      return {
        connectionId,
        userId: String(item.userId),
        name: typeof item.name === 'string' ? item.name : null,
        tenantId: String(item.tenantId),
        rooms: (rooms.get(connectionId) ?? []).sort(),
        connectedAt: Number(item.connectedAt),
        lastActivityAt: activity?.at ?? null,
        lastActivity: activity?.direction ?? null,
        open: system.gateway.isOpen(connectionId),
      };
    })
    .sort((a, b) => a.connectedAt - b.connectedAt);
}

function send(res: ServerResponse, status: number, headers: Record<string, string>, body: string): void {
  res
    .writeHead(status, {
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
      'cross-origin-resource-policy': 'same-origin',
      'content-length': String(Buffer.byteLength(body)),
      ...headers,
    })
    .end(body);
}

export async function startInspector(system: LocalSystem, options: InspectorOptions = {}): Promise<Inspector> {
  const table = tableName(system);
  const observations = new Observations(async (connectionId) => {
    const { Item } = await system.dynamo.doc.send(new GetCommand({ TableName: table, Key: keys.connection(connectionId), ConsistentRead: true }));
    return typeof Item?.tenantId === 'string' ? Item.tenantId : null;
  });
  const unobserve = system.gateway.observe(observations.record);
  const state = async (): Promise<InspectorState> => {
    const [connections, deliveries] = await Promise.all([scanConnections(system, table, observations), observations.recent()]);
    return { now: Date.now(), connections, deliveries };
  };

  let hosts = new Set<string>();
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!hosts.has(req.headers.host ?? '')) return send(res, 421, { 'content-type': 'text/plain; charset=utf-8' }, 'Misdirected request\n');
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    if (path !== '/' && path !== '/state.json') return send(res, 404, { 'content-type': 'text/plain; charset=utf-8' }, 'Not found\n');
    if (req.method !== 'GET') return send(res, 405, { 'content-type': 'text/plain; charset=utf-8', allow: 'GET' }, 'Method not allowed\n');
    if (path === '/state.json') return send(res, 200, { 'content-type': 'application/json; charset=utf-8' }, JSON.stringify(await state()));
    const nonce = randomBytes(16).toString('base64');
    send(
      res,
      200,
      {
        'content-type': 'text/html; charset=utf-8',
        // No script at all: the page is rendered here and reloads itself.
        'content-security-policy': `default-src 'none'; style-src 'nonce-${nonce}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
      },
      page(await state(), nonce),
    );
  };
  const server = createServer((req, res) => {
    req.resume();
    handle(req, res).catch((err: Error) => {
      if (!res.headersSent) send(res, 500, { 'content-type': 'application/json; charset=utf-8' }, JSON.stringify({ message: err.message }));
    });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
    });
  } catch (err) {
    unobserve();
    throw err;
  }
  const { port } = server.address() as AddressInfo;
  hosts = new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
  return {
    url: `http://127.0.0.1:${port}/`,
    async stop() {
      unobserve();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** Text as HTML text or attribute value: display names, rooms and ids are whatever a user or a caller chose. */
export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => ESCAPES[c]);

const ago = (ms: number) => (ms < 1000 ? 'now' : ms < 60_000 ? `${Math.floor(ms / 1000)} s` : ms < 3_600_000 ? `${Math.floor(ms / 60_000)} min` : `${Math.floor(ms / 3_600_000)} h`);

/** Rows of text cells (each escaped here, and nowhere else), or one dim row saying there are none. */
function rows<T>(items: T[], cells: (item: T) => Array<string | { text: string; className: string }>, empty: string): string {
  if (items.length === 0) return `<tr><td class="dim">${escapeHtml(empty)}</td></tr>`;
  const td = (cell: string | { text: string; className: string }) =>
    typeof cell === 'string' ? `<td>${escapeHtml(cell)}</td>` : `<td class="${escapeHtml(cell.className)}">${escapeHtml(cell.text)}</td>`;
  return items.map((item) => `<tr>${cells(item).map(td).join('')}</tr>`).join('\n');
}

/** The page, rendered from the state; it reloads itself every 2 s. */
function page(state: InspectorState, nonce: string): string {
  const { now } = state;
  const connections = rows(
    state.connections,
    (c) => [
      c.name === null ? c.userId : `${c.name} (${c.userId})`,
      c.tenantId,
      c.rooms.length ? c.rooms.join(', ') : { text: '—', className: 'dim' },
      ago(now - c.connectedAt),
      c.lastActivityAt === null ? { text: '—', className: 'dim' } : `${ago(now - c.lastActivityAt)} (${c.lastActivity === 'in' ? 'frame in' : 'post out'})`,
      c.open ? { text: c.connectionId, className: 'dim' } : { text: `${c.connectionId} (stale: no socket)`, className: 'stale' },
    ],
    'no connections',
  );
  const deliveries = rows(
    state.deliveries,
    (d) => [
      clock(new Date(d.at)),
      d.tenantId ?? '?',
      d.room,
      'service' in d.sender ? `service ${d.sender.service}` : `${d.sender.name} (${d.sender.userId})`,
      String(d.seq),
      `${d.posted} connection${d.posted === 1 ? '' : 's'}`,
    ],
    'no deliveries yet',
  );
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="2">
<title>Gatehouse inspector</title>
<style nonce="${nonce}">
body { font: 14px system-ui, sans-serif; margin: 1.5rem; color: #222; }
table { border-collapse: collapse; margin-bottom: 2rem; }
th, td { text-align: left; padding: 0.25rem 0.75rem; border-bottom: 1px solid #ddd; vertical-align: top; }
th { background: #f4f4f4; }
.dim, #status { color: #888; }
.stale { color: #b00; }
</style>
</head>
<body>
<h1>Gatehouse inspector</h1>
<p id="status">${escapeHtml(`as of ${clock(new Date(now))}; the same data is at /state.json`)}</p>
<h2>Live connections (${state.connections.length})</h2>
<table><thead><tr><th>user</th><th>tenant</th><th>rooms</th><th>age</th><th>last activity</th><th>connection</th></tr></thead>
<tbody id="connections">
${connections}
</tbody></table>
<h2>Recent deliveries (last ${MAX_DELIVERIES})</h2>
<table><thead><tr><th>time</th><th>tenant</th><th>room</th><th>sender</th><th>seq</th><th>posted to</th></tr></thead>
<tbody id="deliveries">
${deliveries}
</tbody></table>
</body>
</html>
`;
}
