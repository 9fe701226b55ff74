/**
 * Configuration and dependencies for tests of the realtime core: every limit out of the way unless a test sets it
 * (the limits have tests of their own, which pass their values as overrides).
 */
import { authConfig, createAuth } from '../../common/auth';
import type { Logger } from '../../common/log';
import { realtimeConfig, type RealtimeConfig } from '../../lambda/core/config';
import type { MessageDeps } from '../../lambda/core/messages';
import type { ConnectionsEndpoint } from './connections-endpoint';
import type { StoreFixture } from './store';

export function coreConfig(tableName: string, connectionsUrl: string, overrides: Record<string, string> = {}): RealtimeConfig {
  return realtimeConfig({
    TABLE_NAME: tableName,
    CONNECTIONS_URL: connectionsUrl,
    RATE_LIMIT_PER_SECOND: '1000',
    RATE_LIMIT_BURST: '1000',
    USER_RATE_LIMIT_PER_SECOND: '1000',
    USER_RATE_LIMIT_BURST: '1000',
    MAX_CONNECTIONS_PER_USER: '1000',
    ...overrides,
  });
}

/** The message handler's dependencies over a test store and @connections stand-in (no JWKS: tokens are not verified here). */
export function coreDeps(fx: StoreFixture, endpoint: ConnectionsEndpoint, log: Logger, overrides: Record<string, string> = {}): MessageDeps {
  return {
    store: fx.store,
    api: endpoint.client,
    log,
    config: coreConfig(fx.tableName, endpoint.url, overrides),
    auth: createAuth(authConfig({ USER_POOL_ID: 'eu-west-1_TestPool1', USER_POOL_CLIENT_ID: 'test', TABLE_NAME: fx.tableName }, { allowQueryToken: false }), { db: fx.dynamo.doc }),
  };
}
