/**
 * Structured JSON logs, one object per line on stdout (CloudWatch Logs Insights discovers the fields), and the
 * custom metrics as embedded-metric-format lines in the same stream (common/metrics.ts).
 *
 * Callers log facts (reason codes, ids), never credentials. As a second line of defence, fields whose name says
 * they hold a credential are replaced before anything is written.
 */
import { metricsLine, type MetricName } from './metrics';

export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Record<string, unknown>;

export interface Logger {
  debug(event: string, fields?: Fields): void;
  info(event: string, fields?: Fields): void;
  warn(event: string, fields?: Fields): void;
  error(event: string, fields?: Fields): void;
  /** Counts for CloudWatch (nothing is written without a namespace: tests, or a runtime not configured for it). */
  metrics(values: Partial<Record<MetricName, number>>): void;
}

const SECRET_FIELD = /token|authorization|cookie|ticket|password|secret/i;

/** Whether a field's name says it holds a credential (its value is never printed). */
export const isSecretField = (key: string): boolean => SECRET_FIELD.test(key) && !key.endsWith('ExpiresAt');
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function redact(fields: Fields): Fields {
  const out: Fields = {};
  for (const [key, value] of Object.entries(fields)) {
    if (value instanceof Error) out[key] = { name: value.name, message: value.message };
    else out[key] = isSecretField(key) ? '[redacted]' : value;
  }
  return out;
}

export interface LoggerOptions {
  /** @default 'info' */
  level?: Level;
  /** @default a line on stdout */
  write?: (line: string) => void;
  /** CloudWatch namespace of the metrics (METRICS_NAMESPACE_ENV). @default none: metrics are not written */
  metricsNamespace?: string;
}

export function createLogger(base: Fields = {}, options: LoggerOptions = {}): Logger {
  const min = ORDER[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stdout.write(line + '\n'));
  const emit = (level: Level) => (event: string, fields: Fields = {}) => {
    if (ORDER[level] < min) return;
    write(JSON.stringify({ time: new Date().toISOString(), level, event, ...base, ...redact(fields) }));
  };
  const { metricsNamespace } = options;
  const component = typeof base.component === 'string' ? base.component : 'gatehouse';
  return {
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    metrics(values) {
      if (!metricsNamespace) return;
      const line = metricsLine(metricsNamespace, component, values, Date.now());
      if (line) write(line);
    },
  };
}
