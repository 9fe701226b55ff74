/**
 * End to end with API Gateway's clocks shortened: the idle timeout, the maximum connection duration and the replay
 * window, and the mode in which $disconnect is never delivered.
 */
import WebSocket from 'ws';
import { startTestSystem, waitUntil, type TestSystem } from './support/system';

describe('with shortened timeouts (idle 1 s, maximum 4 s, replay window 1 s)', () => {
  let t: TestSystem;
  beforeAll(async () => {
    t = await startTestSystem({
      idleTimeoutMs: 1000,
      maxConnectionMs: 4000,
      functionEnv: { HISTORY_RETENTION_SECONDS: '1' },
    });
  });
  afterAll(() => t.stop());

  it('closes a silent socket at the idle timeout with 1001, and the heartbeat keeps a live session open past it', async () => {
    const { accessToken } = await t.system.signIn('alice@acme.test');
    const silent = new WebSocket(t.system.urls.websocket, { headers: { Authorization: `Bearer ${accessToken}` } });
    const silentClosed = new Promise<number>((resolve) => silent.on('close', (code) => resolve(code)));

    const alive = await t.connect('bob@acme.test', { heartbeatMs: 300 });
    const states: string[] = [];
    alive.client.on('state', ({ state }) => states.push(state));
    const idBefore = (await alive.client.whoami()).connectionId;

    expect(await silentClosed).toBe(1001);
    await new Promise((r) => setTimeout(r, 2500)); // 2.5 idle timeouts
    expect(alive.client.state).toBe('open');
    expect(states).toEqual([]);
    expect((await alive.client.whoami()).connectionId).toBe(idBefore);
    await alive.client.close();
  });

  it('reconnects by itself when API Gateway ends the connection at its maximum duration', async () => {
    const alice = await t.connect('alice@acme.test', { heartbeatMs: 300, reconnect: { initialDelayMs: 100, jitter: 0 } });
    await alice.client.join('long');
    const first = (await alice.client.whoami()).connectionId;
    const states: string[] = [];
    alice.client.on('state', ({ state }) => states.push(state));
    await waitUntil(() => states.includes('reconnecting'), 6000, 'the maximum duration to end the connection');
    await waitUntil(() => alice.client.state === 'open', 3000, 'the reconnect');
    const second = (await alice.client.whoami()).connectionId;
    expect(second).not.toBe(first);
    expect(alice.client.joinedRooms).toEqual(['long']);
    await alice.client.close();
  });

  it('tells a reconnecting client about messages older than the replay window (a gap), and resumes after it', async () => {
    const alice = await t.connect('alice@acme.test', { heartbeatMs: 300, reconnect: { initialDelayMs: 2500, jitter: 0 } });
    const bob = await t.connect('bob@acme.test', { heartbeatMs: 300 });
    await alice.client.join('window');
    await bob.client.join('window');
    await bob.client.send('window', 'seen');
    await alice.waitFor(1);
    const gaps: unknown[] = [];
    alice.client.on('gap', (g) => gaps.push(g));

    t.system.gateway.drop((await alice.client.whoami()).connectionId);
    await bob.client.send('window', 'missed-1');
    await bob.client.send('window', 'missed-2');
    await new Promise((r) => setTimeout(r, 2200)); // both expire from history before alice is back
    await waitUntil(() => gaps.length === 1, 5000, 'the gap report');
    expect(gaps).toEqual([{ room: 'window', from: 2, to: 3 }]);

    await bob.client.send('window', 'after');
    const messages = await alice.waitFor(2);
    expect(messages.map((m) => [m.seq, m.data])).toEqual([
      [1, 'seen'],
      [4, 'after'],
    ]);
    await alice.client.close();
    await bob.client.close();
  });
});

describe('with $disconnect never delivered', () => {
  let t: TestSystem;
  beforeAll(async () => {
    t = await startTestSystem({ deliverDisconnect: false });
  });
  afterAll(() => t.stop());

  it('leaves closed connections in the store until a broadcast finds them gone and purges them', async () => {
    const alice = await t.connect('alice@acme.test');
    const bob = await t.connect('bob@acme.test', { reconnect: false });
    const carol = await t.connect('carol@globex.test', { reconnect: false });
    await alice.client.join('cleanup');
    await bob.client.join('cleanup');
    await carol.client.join('cleanup');
    await bob.client.close();
    await carol.client.close();
    await new Promise((r) => setTimeout(r, 200));
    await alice.client.send('cleanup', 'hello?');
    await waitUntil(() => t.logs.some((l) => l.includes('stale_connection_removed')), 3000, 'the purge');
    const purged = t.logs.filter((l) => l.includes('stale_connection_removed'));
    // Only bob shared alice's tenant room; carol's stale connection is in another tenant and is not touched.
    expect(purged).toHaveLength(1);
    expect(t.logs.some((l) => l.includes('"event":"disconnected"'))).toBe(false);
    await alice.client.close();
  });
});
