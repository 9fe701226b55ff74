/**
 * The speech service process (the container's entry point): configuration from the environment, the provider it
 * names, the server, a session-count metric for autoscaling, and ECS's shutdown order (SIGTERM after the target
 * was deregistered and its delay ran: drain, exit).
 */
import { BedrockAgentRuntimeClient, RetrieveCommand } from '@aws-sdk/client-bedrock-agent-runtime';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttp2Handler } from '@smithy/node-http-handler';
import { createLogger, type Logger } from '../common/log';
import { METRICS_NAMESPACE_ENV, SPEECH_LOAD_METRIC } from '../common/metrics';
import { createAuth } from '../common/auth';
import { speechConfig, type SpeechConfig } from './config';
import type { SpeechProvider } from './provider';
import { LocalSpeechProvider } from './providers/local';
import { NovaSonicProvider } from './providers/nova-sonic';
import { SpeechServer } from './server';

export function createProvider(config: SpeechConfig): SpeechProvider {
  if (config.provider === 'local') return new LocalSpeechProvider();
  const region = config.bedrockRegion;
  const client = new BedrockRuntimeClient({
    ...(region ? { region } : {}),
    // The bidirectional stream needs HTTP/2; one connection carries many sessions' streams.
    requestHandler: new NodeHttp2Handler({ requestTimeout: 300_000, sessionTimeout: 300_000, disableConcurrentStreams: false, maxConcurrentStreams: 20 }),
  });
  const kb = config.knowledgeBaseId;
  const agent = kb ? new BedrockAgentRuntimeClient(region ? { region } : {}) : undefined;
  return new NovaSonicProvider({
    client,
    modelId: config.modelId,
    voiceId: config.voiceId,
    systemPrompt: config.systemPrompt,
    renewAfterMs: config.renewAfterSeconds * 1000,
    renewDeadlineMs: (config.renewAfterSeconds + 30) * 1000,
    ...(kb && agent
      ? {
          retrieve: async (query: string) => {
            const { retrievalResults = [] } = await agent.send(
              new RetrieveCommand({
                knowledgeBaseId: kb,
                retrievalQuery: { text: query.slice(0, 1000) },
                retrievalConfiguration: { vectorSearchConfiguration: { numberOfResults: 3 } },
              }),
            );
            return retrievalResults.map((r) => r.content?.text ?? '').join('\n---\n').slice(0, 4000);
          },
        }
      : {}),
  });
}

/** CloudWatch embedded-metric-format line: the autoscaling policy tracks ActiveSessions per task (SPEECH_LOAD_METRIC). */
export function emitSessionMetric(sessions: number, service: string, write = (line: string) => process.stdout.write(line + '\n')): void {
  const { namespace, name, dimension } = SPEECH_LOAD_METRIC;
  write(
    JSON.stringify({
      _aws: { Timestamp: Date.now(), CloudWatchMetrics: [{ Namespace: namespace, Dimensions: [[dimension]], Metrics: [{ Name: name, Unit: 'Count' }] }] },
      [dimension]: service,
      [name]: sessions,
    }),
  );
}

export async function runSpeechService(
  env: Record<string, string | undefined>,
  log: Logger,
  options: { host?: string; metrics?: boolean; clients?: Parameters<typeof createAuth>[1] } = {},
): Promise<SpeechServer> {
  const config = speechConfig(env);
  const server = new SpeechServer(config, {
    provider: createProvider(config),
    auth: createAuth(config.auth, options.clients),
    log,
  });
  const port = await server.listen(config.port, options.host);
  log.info('speech_listening', {
    port,
    provider: config.provider,
    modelId: config.modelId,
    maxSessions: config.maxSessions,
    maxSessionsPerUser: config.maxSessionsPerUser,
    maxSessionsPerTenant: config.maxSessionsPerTenant,
    maxStartsPerMinute: config.maxStartsPerMinute,
  });
  if (options.metrics ?? true) {
    const service = env.SERVICE_NAME ?? 'speech';
    const timer = setInterval(() => emitSessionMetric(server.sessionCount, service), config.metricsIntervalMs);
    timer.unref();
    server.http.once('close', () => clearInterval(timer));
  }
  return server;
}

/** Starts the service in this process and stops it in ECS's order: SIGTERM drains, then the process exits. */
export function startSpeechProcess(): void {
  // Node 20 is supported here; the SDK's notice about its future Node 22 requirement would only add noise.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const level = (process.env.LOG_LEVEL as 'info' | undefined) ?? 'info';
  const log = createLogger({ component: 'speech' }, { level, metricsNamespace: process.env[METRICS_NAMESPACE_ENV] });
  // One session's failure must never take down the others: log what escaped its handler and carry on.
  process.on('unhandledRejection', (reason) => log.error('unhandled_rejection', { error: reason as Error }));
  runSpeechService(process.env, log)
    .then((server) => {
      const stop = (signal: string) => {
        log.info('speech_stopping', { signal, sessions: server.sessionCount });
        void server.shutdown().then(() => {
          log.info('speech_stopped', {});
          process.exit(0);
        });
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    })
    .catch((err: Error) => {
      log.error('speech_start_failed', { error: err });
      process.exit(1);
    });
}
