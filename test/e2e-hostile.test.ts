/**
 * 1,000 malformed or schema-invalid frames through the real path (the API Gateway emulator, the bundled message
 * Lambda, DynamoDB): each gets an error event (a ping, whatever it carries, API Gateway's pong), nothing is stored,
 * nothing crashes, and the socket keeps working.
 */
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import WebSocket from 'ws';
import { loadTemplate, resourcesOfType } from '../local/emulator/template';
import { CDK_OUT } from '../local/paths';
import { startTestSystem, waitUntil, type TestSystem } from './support/system';

let t: TestSystem;
beforeAll(async () => {
  // The rate limiter has its own tests; here it must not be what answers.
  t = await startTestSystem({ functionEnv: { RATE_LIMIT_PER_SECOND: '100000', RATE_LIMIT_BURST: '100000', USER_RATE_LIMIT_PER_SECOND: '100000', USER_RATE_LIMIT_BURST: '100000' } });
});
afterAll(() => t.stop());

/** A deterministic generator of hostile frames (all under API Gateway's 32 KB frame limit). */
function hostileFrames(count: number): string[] {
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const pick = <T>(list: T[]) => list[Math.floor(rand() * list.length)];
  const text = (n: number) => Array.from({ length: n }, () => String.fromCharCode(32 + Math.floor(rand() * 95))).join('');
  const generators: Array<() => string> = [
    () => text(1 + Math.floor(rand() * 200)), // noise
    () => `{"action":"send","room":"general","data":${text(5)}`, // truncated JSON
    () => pick(['', '{', '}', '[]', 'null', 'true', '0', '"join"', '[{"action":"ping"}]', '{"action":"join",}']),
    () => `${'['.repeat(2000)}${']'.repeat(2000)}`, // deep nesting
    () => JSON.stringify({ action: text(1 + Math.floor(rand() * 20)) }), // unknown actions
    () => JSON.stringify({ action: pick(['toString', '__proto__', 'constructor', 'hasOwnProperty', '$connect', '$default', 'JOIN', ' join']) }),
    () => JSON.stringify({ action: 'join' }), // missing field
    () => JSON.stringify({ action: 'join', room: pick([5, null, [], {}, true, '', 'a#b', 'tenant:other', 'x'.repeat(65), '../etc', 'a b']) }),
    () => JSON.stringify({ action: 'send', room: 'general' }), // no data
    () => JSON.stringify({ action: 'send', room: 'general', data: 'x'.repeat(17_000) }), // over the data limit
    () => JSON.stringify({ action: 'join', room: 'general', tenantId: 'globex' }), // a client-chosen tenant
    () => '{"action":"join","room":"general","__proto__":{"admin":true}}',
    () => JSON.stringify({ action: 'join', room: 'general', after: pick([-1, 1.5, '3', 1e308]) }),
    () => JSON.stringify({ action: 'ping', id: pick(['has space', '', 'x'.repeat(65), 7]) }),
    () => JSON.stringify({ action: 'refresh', token: pick(['', 12, null]) }),
    () => JSON.stringify({ action: 'logout', everywhere: pick(['yes', 1, null]) }),
  ];
  return Array.from({ length: count }, () => pick(generators)());
}

async function storedItems(): Promise<string[]> {
  const [tableName] = resourcesOfType(loadTemplate(CDK_OUT, 'Gatehouse'), 'AWS::DynamoDB::Table')[0];
  const { Items = [] } = await t.system.dynamo.doc.send(new ScanCommand({ TableName: tableName }));
  // The rate limiter's bookkeeping on the connection item is the only thing a bad frame may touch.
  return Items.map(({ rlTat: _t, rlStrikes: _s, ...item }) => JSON.stringify(item)).sort();
}

it('answers 1,000 malformed or schema-invalid frames with an error each (a ping with a pong), stores nothing and stays up', async () => {
  const { accessToken } = await t.system.signIn('alice@acme.test');
  const ws = new WebSocket(t.system.urls.realtime, ['gatehouse.v1', `bearer.${accessToken}`]);
  const replies: Array<{ type: string; code?: string }> = [];
  let replied: (() => void) | undefined;
  ws.on('message', (data) => {
    replies.push(JSON.parse(data.toString()));
    replied?.();
  });
  await new Promise((resolve) => ws.on('open', resolve));
  ws.send(JSON.stringify({ action: 'join', room: 'general' }));
  await waitUntil(() => replies.length === 1, 3000, 'the join');
  const before = await storedItems();

  const frames = hostileFrames(1000);
  // One at a time: each frame is answered before the next is sent.
  for (const frame of frames) {
    const answered = new Promise<void>((resolve, reject) => {
      replied = resolve;
      setTimeout(() => reject(new Error(`No reply to ${frame.slice(0, 60)}`)), 5000).unref();
    });
    ws.send(frame);
    await answered;
  }
  const answers = replies.slice(1);
  expect(answers).toHaveLength(1000);
  // A ping, whatever else it carries, is answered by API Gateway's mock route: a pong, and no function runs.
  const isPing = (frame: string) => {
    try {
      return (JSON.parse(frame) as { action?: unknown } | null)?.action === 'ping';
    } catch {
      return false;
    }
  };
  const pings = frames.flatMap((frame, i) => (isPing(frame) ? [i] : []));
  expect(pings.length).toBeGreaterThan(0);
  expect(pings.map((i) => answers[i].type)).toEqual(pings.map(() => 'pong'));
  expect(answers.filter((r, i) => r.type !== 'error' && !pings.includes(i))).toEqual([]);
  const codes = new Set(answers.filter((r) => r.type === 'error').map((r) => r.code));
  // forbidden: a well-formed room in a namespace nobody decides (tenant:other), refused before anything is written.
  expect([...codes].sort()).toEqual(['forbidden', 'invalid_message', 'malformed_json', 'too_large', 'unknown_action']);
  expect(await storedItems()).toEqual(before);
  expect(t.logs.some((l) => /integration_failed|message_failed|exited with code/.test(l))).toBe(false);

  ws.send(JSON.stringify({ action: 'whoami' }));
  await waitUntil(() => replies.length === 1002, 3000, 'whoami after the storm');
  expect(replies[1001]).toMatchObject({ type: 'whoami', tenantId: 'acme' });
  ws.close();
}, 120_000); // a thousand round trips through the emulator: a correctness test, not a timed one
