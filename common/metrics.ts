/**
 * Gatehouse's custom metrics: one home for their names, unit and dimension, shared by the code that emits them (as
 * CloudWatch embedded-metric-format log lines, which CloudWatch Logs turns into metrics with no API call:
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html)
 * and the stack's dashboard and alarms (lib/operations.ts), so an alarm cannot watch a metric nobody writes.
 *
 * Every metric is a count, in the stack's namespace, written twice over: per component (the dimension) and in
 * total (no dimension: what the alarms watch, whichever component wrote it).
 */
export const METRICS = {
  /** Room events posted to a connection. */
  deliveries: 'Deliveries',
  /** Posts answered 410: the socket was gone (its state is removed in the same delivery). */
  gone: 'ConnectionsGone',
  /** Posts still refused with 429 after their retries (the account's post rate, or a client not reading). */
  throttledPosts: 'ThrottledPosts',
  /** Posts that failed otherwise (5xx after retries, a network error, 403). */
  failedPosts: 'FailedPosts',
  /** Frames refused by a connection's or user's rate limit. */
  rateLimited: 'RateLimitedFrames',
  /** Sockets closed by a sign-out. */
  revoked: 'SocketsRevoked',
  /** Expired sockets the sweeper closed, and the ones it found gone already. */
  sweepClosed: 'SweepClosed',
  sweepGone: 'SweepGone',
  /** Handshakes the authorizer refused. */
  authorizerDenied: 'AuthorizerDenied',
  /** Speech sessions started, and speech sockets closed with 1011 (an internal error). */
  speechSessions: 'SpeechSessions',
  speechErrorCloses: 'SpeechErrorCloses',
} as const;

export type MetricName = (typeof METRICS)[keyof typeof METRICS];

/** The environment variable that names the namespace; without it, no metric lines are written. */
export const METRICS_NAMESPACE_ENV = 'METRICS_NAMESPACE';

/** The one dimension: which component (authorizer, message, fanout, speech, ...) emitted the value. */
export const METRIC_DIMENSION = 'Component';

/**
 * One embedded-metric-format line: the values as top-level members, the dimension's value beside them, and the
 * `_aws` metadata that says which members are metrics. Zero values are written too (an alarm on a rate needs them).
 */
export function metricsLine(namespace: string, component: string, values: Partial<Record<MetricName, number>>, nowMs: number): string | undefined {
  const entries = Object.entries(values).filter(([, v]) => typeof v === 'number' && Number.isFinite(v));
  if (entries.length === 0) return undefined;
  return JSON.stringify({
    _aws: {
      Timestamp: nowMs,
      CloudWatchMetrics: [{ Namespace: namespace, Dimensions: [[METRIC_DIMENSION], []], Metrics: entries.map(([Name]) => ({ Name, Unit: 'Count' })) }],
    },
    [METRIC_DIMENSION]: component,
    ...Object.fromEntries(entries),
  });
}

/** A stack's namespace: its metrics apart from another stack's in the same account and region. */
export const metricsNamespaceOf = (stackName: string): string => `Gatehouse/${stackName}`;

/**
 * The speech service's load, per task: what its autoscaling tracks (sessions per task, averaged over the service's
 * tasks), written by each task every `metricsIntervalMs` (speech/main.ts) and read by lib/speech-service.ts and the
 * dashboard. Its dimension is the ECS service, so two stacks' services never mix.
 */
export const SPEECH_LOAD_METRIC = { namespace: 'Gatehouse/Speech', name: 'ActiveSessions', dimension: 'Service' } as const;
