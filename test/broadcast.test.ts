import { broadcast } from '../lambda/core/broadcast';
import { startConnectionsEndpoint, type ConnectionsEndpoint } from './support/connections-endpoint';
import { memoryLogger } from './support/log';

let endpoint: ConnectionsEndpoint;

beforeAll(async () => {
  endpoint = await startConnectionsEndpoint();
});
afterAll(() => endpoint.close());
beforeEach(() => {
  endpoint.live.clear();
  endpoint.received.clear();
  endpoint.maxConcurrent = 0;
  endpoint.delayMs = 0;
});

async function* pages(...list: string[][]) {
  for (const page of list) yield page;
}

describe('broadcast', () => {
  it('delivers to every recipient across pages through the real management API client', async () => {
    ['a', 'b', 'c'].forEach((id) => endpoint.live.add(id));
    const removed: string[] = [];
    const result = await broadcast(pages(['a', 'b'], ['c']), JSON.stringify({ hello: 1 }), {
      api: endpoint.client,
      removeConnection: async (id) => removed.push(id),
      log: memoryLogger().log,
      concurrency: 4,
    });
    expect(result).toEqual({ delivered: 3, gone: 0, failed: 0 });
    expect([...endpoint.received.keys()].sort()).toEqual(['a', 'b', 'c']);
    expect(endpoint.received.get('a')).toEqual([{ hello: 1 }]);
    expect(removed).toEqual([]);
  });

  it('removes recipients that answer 410 Gone, in the same broadcast, but never the protected sender', async () => {
    endpoint.live.add('alive');
    const removed: string[] = [];
    const { log, events } = memoryLogger();
    const result = await broadcast(
      pages(['alive', 'gone-1', 'sender', 'gone-2']),
      '{}',
      { api: endpoint.client, removeConnection: async (id) => removed.push(id), log, concurrency: 2 },
      { protect: 'sender' },
    );
    expect(result).toEqual({ delivered: 1, gone: 2, failed: 1 });
    expect(removed.sort()).toEqual(['gone-1', 'gone-2']);
    expect(events().filter((e) => e.event === 'stale_connection_removed').map((e) => e.connectionId).sort()).toEqual([
      'gone-1',
      'gone-2',
    ]);
  });

  it('keeps at most `concurrency` posts in flight', async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `c${i}`);
    ids.forEach((id) => endpoint.live.add(id));
    endpoint.delayMs = 20;
    const result = await broadcast(pages(ids.slice(0, 25), ids.slice(25)), '{}', {
      api: endpoint.client,
      removeConnection: async () => undefined,
      log: memoryLogger().log,
      concurrency: 5,
    });
    expect(result.delivered).toBe(40);
    expect(endpoint.maxConcurrent).toBeLessThanOrEqual(5);
    expect(endpoint.maxConcurrent).toBeGreaterThan(1);
  });

  it('counts a failed cleanup without failing the broadcast', async () => {
    const { log, events } = memoryLogger();
    const result = await broadcast(pages(['gone']), '{}', {
      api: endpoint.client,
      removeConnection: async () => {
        throw new Error('throttled');
      },
      log,
      concurrency: 1,
    });
    expect(result).toEqual({ delivered: 0, gone: 1, failed: 0 });
    expect(events()).toEqual([expect.objectContaining({ event: 'stale_connection_cleanup_failed', connectionId: 'gone' })]);
  });
});
