/**
 * An EventBridge PutEvents endpoint for the buses and rules in the template: `@aws-sdk/client-eventbridge` reaches
 * it unchanged through its endpoint setting, events are matched against each rule's pattern (exact-value arrays,
 * nested objects) and delivered asynchronously to the rule's Lambda targets, as EventBridge does.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LocalFunction } from './lambda';
import { referencedIds, resourcesOfType, type Resolver, type Template } from './template';

interface Rule {
  name: string;
  busName: string;
  pattern?: Record<string, unknown>;
  /** `rate(N unit)` rules, in milliseconds. */
  everyMs?: number;
  targets: string[];
}

/** Milliseconds of an EventBridge `rate(...)` expression; undefined for anything else (cron is not emulated). */
export function rateMs(expression: unknown): number | undefined {
  const match = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(String(expression ?? ''));
  if (!match) return undefined;
  const unit = { minute: 60_000, minutes: 60_000, hour: 3_600_000, hours: 3_600_000, day: 86_400_000, days: 86_400_000 }[match[2]]!;
  return Number(match[1]) * unit;
}

export interface EventBusOptions {
  template: Template;
  resolver: Resolver;
  functions: Map<string, LocalFunction>;
  region: string;
  accountId: string;
  log: (event: string, fields: Record<string, unknown>) => void;
  /** Run scheduled rules this often instead of their own rate (tests shorten it). */
  scheduleIntervalMs?: number;
}

interface Entry {
  Source?: string;
  DetailType?: string;
  Detail?: string;
  EventBusName?: string;
  Resources?: string[];
}

export class LocalEventBus {
  private readonly rules: Rule[];
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(private readonly options: EventBusOptions) {
    const { template, resolver } = options;
    this.rules = resourcesOfType(template, 'AWS::Events::Rule').map(([name, rule]) => ({
      name,
      busName: rule.Properties?.EventBusName ? String(resolver.resolve(rule.Properties.EventBusName)) : 'default',
      pattern: rule.Properties?.EventPattern,
      everyMs: rateMs(rule.Properties?.ScheduleExpression),
      targets: ((rule.Properties?.Targets ?? []) as Array<{ Arn: unknown }>)
        .flatMap((t) => referencedIds(t.Arn))
        .filter((id) => template.Resources[id]?.Type === 'AWS::Lambda::Function'),
    }));
    // Scheduled rules invoke their targets with a "Scheduled Event", as EventBridge does.
    for (const rule of this.rules.filter((r) => r.everyMs !== undefined)) {
      const timer = setInterval(() => {
        const event = { version: '0', id: randomUUID(), 'detail-type': 'Scheduled Event', source: 'aws.events', account: options.accountId, time: new Date().toISOString(), region: options.region, resources: [], detail: {} };
        for (const target of rule.targets) {
          options.functions.get(target)?.invoke(event).catch((err: Error) => options.log('schedule_invoke_failed', { rule: rule.name, target, error: err.message }));
        }
      }, options.scheduleIntervalMs ?? rule.everyMs);
      timer.unref();
      this.timers.push(timer);
    }
  }

  /** Stops the schedules. */
  stop(): void {
    for (const timer of this.timers) clearInterval(timer);
  }

  /** Answers `AWSEvents.PutEvents` (JSON protocol, POST /); returns false for any other request. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'POST' || req.headers['x-amz-target'] !== 'AWSEvents.PutEvents') return false;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let entries: Entry[];
      try {
        entries = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { Entries: Entry[] }).Entries ?? [];
      } catch {
        res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-ErrorType': 'ValidationException' });
        res.end(JSON.stringify({ message: 'Malformed request body' }));
        return;
      }
      const results = entries.map((entry) => this.put(entry));
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify({ FailedEntryCount: results.filter((r) => 'ErrorCode' in r).length, Entries: results }));
    });
    return true;
  }

  put(entry: Entry): { EventId: string } | { ErrorCode: string; ErrorMessage: string } {
    if (!entry.Source || !entry.DetailType || entry.Detail === undefined) {
      return { ErrorCode: 'MalformedDetail', ErrorMessage: 'Source, DetailType and Detail are required' };
    }
    let detail: unknown;
    try {
      detail = JSON.parse(entry.Detail);
    } catch {
      return { ErrorCode: 'MalformedDetail', ErrorMessage: 'Detail is not valid JSON' };
    }
    const busName = (entry.EventBusName ?? 'default').split('/').pop()!;
    const event = {
      version: '0',
      id: randomUUID(),
      'detail-type': entry.DetailType,
      source: entry.Source,
      account: this.options.accountId,
      time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      region: this.options.region,
      resources: entry.Resources ?? [],
      detail,
    };
    for (const rule of this.rules.filter((r) => r.pattern && r.busName === busName && matches(r.pattern, event))) {
      for (const target of rule.targets) {
        const delivery = this.options.functions
          .get(target)
          ?.invoke(event)
          .catch((err: Error) => this.options.log('event_delivery_failed', { rule: rule.name, target, error: err.message }));
        if (delivery) {
          this.inFlight.add(delivery);
          void delivery.finally(() => this.inFlight.delete(delivery));
        }
      }
    }
    return { EventId: event.id };
  }

  /** Waits for deliveries in progress (shutdown). */
  async drain(): Promise<void> {
    await Promise.all(this.inFlight);
  }
}

/** EventBridge pattern matching for the forms Gatehouse uses: arrays of exact values, nested objects. */
export function matches(pattern: Record<string, unknown>, event: Record<string, unknown>): boolean {
  return Object.entries(pattern).every(([key, expected]) => {
    const actual = event[key];
    if (Array.isArray(expected)) return [actual].flat().some((a) => expected.includes(a));
    if (typeof expected === 'object' && expected !== null) {
      return typeof actual === 'object' && actual !== null && matches(expected as Record<string, unknown>, actual as Record<string, unknown>);
    }
    return false;
  });
}
