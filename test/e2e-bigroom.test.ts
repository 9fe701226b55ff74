/**
 * Big rooms end to end, against the local system from the synthesized template: with the inline limit lowered to
 * 2 connections, a room of 6 sockets is delivered by the fan-out worker function, invoked asynchronously through
 * Lambda's Invoke API with IAM enforced (the message and publishing functions may invoke it, nobody else), and the
 * sender's `sent` comes before any delivery. Every socket gets each message once, sent by a user or published.
 */
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { PUBLISH_DETAIL_TYPE } from '../protocol';
import { freshRoom, startTestSystem, waitUntil, type TestClient, type TestSystem } from './support/system';

let t: TestSystem;
beforeAll(async () => {
  t = await startTestSystem({ functionEnv: { INLINE_DELIVERY_MAX: '2' } });
});
afterAll(() => t.stop());

/** The fan-out worker's own log lines (its component is `fanout`). */
const workerLines = (room: string) =>
  t.logs
    .map((l) => l.slice(l.indexOf('{')))
    .filter((l) => l.startsWith('{') && l.includes('"component":"fanout"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((e) => e.room === room);

async function crowd(room: string): Promise<TestClient[]> {
  const sockets: TestClient[] = [];
  for (const email of ['alice@acme.test', 'alice@acme.test', 'bob@acme.test', 'bob@acme.test', 'dana@acme.test', 'dana@acme.test']) {
    const c = await t.connect(email);
    await c.client.join(room);
    sockets.push(c);
  }
  return sockets;
}

test('a room past the inline limit: `sent` answers pending, the worker function delivers to every socket once', async () => {
  const room = freshRoom('crowd');
  const sockets = await crowd(room);
  const sent = await sockets[0].client.request({ action: 'send', room, data: { text: 'to the crowd' } });
  expect(sent).toMatchObject({ type: 'sent', room, pending: true, delivered: 0 });
  for (const c of sockets) expect((await c.waitFor(1)).map((m) => [m.seq, m.data])).toEqual([[sent.seq, { text: 'to the crowd' }]]);
  await waitUntil(() => workerLines(room).some((e) => e.event === 'fanout_delivered'), 5000, 'the worker to log its delivery');
  expect(workerLines(room).find((e) => e.event === 'fanout_delivered')).toMatchObject({ level: 'info', shard: 0, delivered: 6, gone: 0, failed: 0 });
  await new Promise((r) => setTimeout(r, 300));
  for (const c of sockets) expect(c.messages).toHaveLength(1); // once
  await Promise.all(sockets.map((c) => c.client.close()));
});

test('a published event to a big room goes through the same workers', async () => {
  const room = freshRoom('broadcast');
  const sockets = await crowd(room);
  const events = new EventBridgeClient({ endpoint: t.system.urls.events, region: t.system.region, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  const put = await events.send(
    new PutEventsCommand({
      Entries: [{ EventBusName: t.system.eventBusName, Source: 'jobs.service', DetailType: PUBLISH_DETAIL_TYPE, Detail: JSON.stringify({ tenantId: 'acme', room, type: 'job.done', payload: { job: '9' } }) }],
    }),
  );
  events.destroy();
  expect(put.FailedEntryCount).toBe(0);
  for (const c of sockets) expect((await c.waitFor(1)).map((m) => m.kind)).toEqual(['job.done']);
  await waitUntil(() => workerLines(room).some((e) => e.event === 'fanout_delivered'), 5000, 'the worker to log its delivery');
  await Promise.all(sockets.map((c) => c.client.close()));
});
