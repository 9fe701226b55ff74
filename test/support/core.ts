/**
 * Configuration for tests of the realtime core: every limit out of the way unless a test sets it (the limits have
 * tests of their own, which pass their values as overrides).
 */
import { realtimeConfig, type RealtimeConfig } from '../../lambda/core/config';

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
