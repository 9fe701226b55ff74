/**
 * End-to-end fixture: the local system that `npm start` runs, started in-process on free ports, and clients that
 * sign in through its Cognito and connect through its API Gateway emulator.
 */
import { sessionTokenProvider } from '@gatehouse/client/node';
import { createNodeClient, type ClientOptions, type GatehouseClient, type Transport } from '@gatehouse/client/node';
import type { MessageEvent, ServerEvent } from '../../protocol';
import { startLocalSystem, type LocalSystem, type LocalSystemOptions } from '../../local/system';
import { waitUntil } from './wait';

export { waitUntil };

let rooms = 0;
/** A room name of its own for each test: rooms, their presence and member lists outlive a test's sockets. */
export const freshRoom = (what: string) => `${what}-${++rooms}-${Date.now().toString(36)}`;

/** Every frame a client receives from now on. */
export function framesOf(c: TestClient): ServerEvent[] {
  const seen: ServerEvent[] = [];
  c.client.on('event', (e) => seen.push(e));
  return seen;
}

export interface TestSystem {
  system: LocalSystem;
  /** Every log line the functions and emulators wrote. */
  logs: string[];
  connect(email: string, options?: ConnectOptions): Promise<TestClient>;
  stop(): Promise<void>;
}

export interface ConnectOptions extends Partial<Omit<ClientOptions, 'url' | 'token' | 'socket'>> {
  transport?: Transport;
  tenant?: string;
}

export interface TestClient {
  client: GatehouseClient;
  messages: MessageEvent[];
  /** Resolves when `count` messages have arrived (or fails after `ms`). */
  waitFor(count: number, ms?: number): Promise<MessageEvent[]>;
}

export async function startTestSystem(options: LocalSystemOptions = {}): Promise<TestSystem> {
  const logs: string[] = [];
  const system = await startLocalSystem({ log: (source, line) => logs.push(`[${source}] ${line}`), ...options });
  const clients: GatehouseClient[] = [];
  return {
    system,
    logs,
    async connect(email, { transport = 'header', tenant, ...rest } = {}) {
      const user = system.users.find((u) => u.email === email);
      if (!user) throw new Error(`No demo user ${email}`);
      const client = createNodeClient({
        url: tenant ? `${system.urls.websocket}?tenant=${tenant}` : system.urls.websocket,
        token: sessionTokenProvider(system.cognito.client, system.clientId, email, user.password),
        transport,
        ...rest,
      });
      const messages: MessageEvent[] = [];
      client.on('message', (m) => messages.push(m));
      await client.connect();
      clients.push(client);
      return {
        client,
        messages,
        async waitFor(count, ms = 5000) {
          await waitUntil(() => messages.length >= count, ms, `${count} messages for ${email} (have ${messages.length})`);
          return messages;
        },
      };
    },
    async stop() {
      await Promise.all(clients.map((c) => c.close()));
      await system.stop();
    },
  };
}
