/**
 * EventBridge for the buses and rules of the template: a PutEvents endpoint that `@aws-sdk/client-eventbridge`
 * reaches unchanged, pattern matching (exact values, nested objects), and delivery to Lambda targets the way
 * EventBridge delivers:
 *
 * - **Asynchronously.** "EventBridge invokes your function asynchronously"
 *   (https://docs.aws.amazon.com/lambda/latest/dg/services-cloudwatchevents.html): the event joins the function's
 *   async queue, whose retries and on-failure destination are Lambda's (see lambda.ts), not the rule's.
 * - **Only with permission.** EventBridge needs the function's resource-based policy (AWS::Lambda::Permission for
 *   events.amazonaws.com from that rule); without it the delivery fails for good and goes to the target's
 *   dead-letter queue, if any (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html).
 * - **At least once.** "In rare cases ... the same target can be invoked more than once for a given triggered rule"
 *   (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-troubleshooting.html): `duplicateDeliveries`
 *   delivers every event twice, so idempotency can be tested.
 * - **Signed and authorized.** With an `iam`, PutEvents must be SigV4-signed by a principal allowed
 *   `events:PutEvents` on the bus; at most 10 entries of at most 256 KB each are accepted.
 *
 * Scheduled rules (`rate(...)`) run on their schedule; cron expressions are not emulated.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Iam } from './iam';
import type { LocalFunction } from './lambda';
import { verifySignature } from './sigv4';
import type { LocalQueues } from './sqs';
import { referencedIds, resourcesOfType, type Resolver, type Template } from './template';

interface Target {
  functionId: string;
  deadLetterArn?: string;
}

interface Rule {
  id: string;
  arn: string;
  busName: string;
  pattern?: Record<string, unknown>;
  /** `rate(N unit)` rules, in milliseconds. */
  everyMs?: number;
  targets: Target[];
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
  /** Require SigV4 and evaluate IAM on PutEvents. @default any caller is allowed */
  iam?: Iam;
  /** Where dead-lettered deliveries go. */
  queues?: LocalQueues;
  /** Deliver every event twice (EventBridge's at-least-once delivery, made to happen). @default false */
  duplicateDeliveries?: boolean;
}

interface Entry {
  Source?: string;
  DetailType?: string;
  Detail?: string;
  EventBusName?: string;
  Resources?: string[];
}

const MAX_ENTRIES = 10;
const MAX_ENTRY_BYTES = 256 * 1024;

export class LocalEventBus {
  private readonly rules: Rule[];
  private readonly timers: NodeJS.Timeout[] = [];
  /** Function logical id -> the rule ARNs allowed to invoke it (AWS::Lambda::Permission). */
  private readonly permissions = new Map<string, string[]>();
  duplicateDeliveries: boolean;

  constructor(private readonly options: EventBusOptions) {
    const { template, resolver } = options;
    this.duplicateDeliveries = options.duplicateDeliveries ?? false;
    const tryResolve = (value: unknown) => {
      try {
        return String(resolver.resolve(value));
      } catch {
        return undefined;
      }
    };
    for (const [, permission] of resourcesOfType(template, 'AWS::Lambda::Permission')) {
      const p = permission.Properties ?? {};
      if (p.Principal !== 'events.amazonaws.com' || (p.Action !== 'lambda:InvokeFunction' && p.Action !== 'lambda:*')) continue;
      const source = p.SourceArn === undefined ? '*' : tryResolve(p.SourceArn);
      for (const fn of referencedIds(p.FunctionName)) if (source) this.permissions.set(fn, [...(this.permissions.get(fn) ?? []), source]);
    }
    this.rules = resourcesOfType(template, 'AWS::Events::Rule').map(([id, rule]) => ({
      id,
      arn: resolver.getAtt(id, 'Arn'),
      busName: rule.Properties?.EventBusName ? String(resolver.resolve(rule.Properties.EventBusName)) : 'default',
      pattern: rule.Properties?.EventPattern,
      everyMs: rateMs(rule.Properties?.ScheduleExpression),
      targets: ((rule.Properties?.Targets ?? []) as Array<{ Arn: unknown; DeadLetterConfig?: { Arn: unknown } }>).flatMap((t) => {
        const functionId = referencedIds(t.Arn).find((ref) => template.Resources[ref]?.Type === 'AWS::Lambda::Function');
        const deadLetterArn = t.DeadLetterConfig ? tryResolve(t.DeadLetterConfig.Arn) : undefined;
        return functionId ? [{ functionId, ...(deadLetterArn ? { deadLetterArn } : {}) }] : [];
      }),
    }));
    // Scheduled rules deliver a "Scheduled Event", as EventBridge does.
    for (const rule of this.rules.filter((r) => r.everyMs !== undefined)) {
      const timer = setInterval(() => {
        const event = { version: '0', id: randomUUID(), 'detail-type': 'Scheduled Event', source: 'aws.events', account: options.accountId, time: isoSeconds(), region: options.region, resources: [rule.arn], detail: {} };
        for (const target of rule.targets) this.deliver(rule, target, event);
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
    if (req.method !== 'POST' || !String(req.headers['x-amz-target'] ?? '').startsWith('AWSEvents.')) return false;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const fail = (status: number, type: string, message: string) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-ErrorType': type }).end(JSON.stringify({ __type: type, message }));
      };
      if (req.headers['x-amz-target'] !== 'AWSEvents.PutEvents') return fail(400, 'UnknownOperationException', 'Only PutEvents is emulated.');
      let accessKeyId: string | undefined;
      if (this.options.iam) {
        const verified = verifySignature({ method: 'POST', url: req.url ?? '/', rawHeaders: req.rawHeaders, body }, {
          service: 'events',
          region: this.options.region,
          secretOf: this.options.iam.secretOf,
        });
        if (!verified.ok) {
          const type = { missing_authentication: 'MissingAuthenticationTokenException', unknown_access_key: 'UnrecognizedClientException', incomplete_signature: 'IncompleteSignatureException' }[verified.reason as string] ?? 'InvalidSignatureException';
          return fail(type === 'MissingAuthenticationTokenException' ? 403 : 400, type, verified.message);
        }
        accessKeyId = verified.accessKeyId;
      }
      let entries: Entry[];
      try {
        entries = (JSON.parse(body.toString('utf8')) as { Entries: Entry[] }).Entries ?? [];
      } catch {
        return fail(400, 'SerializationException', 'Malformed request body');
      }
      if (!Array.isArray(entries) || entries.length < 1 || entries.length > MAX_ENTRIES) {
        return fail(400, 'ValidationException', `1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length less than or equal to ${MAX_ENTRIES}`);
      }
      const results = entries.map((entry) => this.put(entry, accessKeyId));
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify({ FailedEntryCount: results.filter((r) => 'ErrorCode' in r).length, Entries: results }));
    });
    return true;
  }

  put(entry: Entry, accessKeyId?: string): { EventId: string } | { ErrorCode: string; ErrorMessage: string } {
    const busName = (entry.EventBusName ?? 'default').split('/').pop()!;
    const busArn = `arn:aws:events:${this.options.region}:${this.options.accountId}:event-bus/${busName}`;
    if (this.options.iam && accessKeyId !== undefined) {
      const decision = this.options.iam.authorize(accessKeyId, 'events:PutEvents', busArn);
      if (!decision.allowed) {
        return { ErrorCode: 'AccessDeniedException', ErrorMessage: this.options.iam.denialMessage(decision.principal, 'events:PutEvents', busArn, decision.explicit) };
      }
    }
    if (!entry.Source || !entry.DetailType || entry.Detail === undefined) {
      return { ErrorCode: 'InvalidArgument', ErrorMessage: 'Parameters Source, DetailType and Detail are required.' };
    }
    // Entry size as EventBridge counts it: 14 bytes of Time, and the UTF-8 lengths of the rest.
    const size = 14 + [entry.Source, entry.DetailType, entry.Detail, ...(entry.Resources ?? [])].reduce((n, s) => n + Buffer.byteLength(s), 0);
    if (size > MAX_ENTRY_BYTES) return { ErrorCode: 'InvalidArgument', ErrorMessage: `Total size of the entries in the request is over the limit (${MAX_ENTRY_BYTES} bytes).` };
    let detail: unknown;
    try {
      detail = JSON.parse(entry.Detail);
    } catch {
      return { ErrorCode: 'MalformedDetail', ErrorMessage: 'Detail is malformed.' };
    }
    const event = {
      version: '0',
      id: randomUUID(),
      'detail-type': entry.DetailType,
      source: entry.Source,
      account: this.options.accountId,
      time: isoSeconds(),
      region: this.options.region,
      resources: entry.Resources ?? [],
      detail,
    };
    for (const rule of this.rules.filter((r) => r.pattern && r.busName === busName && matches(r.pattern, event))) {
      for (const target of rule.targets) this.deliver(rule, target, event);
    }
    return { EventId: event.id };
  }

  private deliver(rule: Rule, target: Target, event: { id: string }): void {
    const fn = this.options.functions.get(target.functionId);
    const allowed = this.permissions.get(target.functionId)?.some((source) => source === '*' || source === rule.arn);
    if (!fn || !allowed) {
      const [code, message] = !fn
        ? ['ResourceNotFoundException', `Function not found: ${target.functionId}`]
        : ['AccessDeniedException', `EventBridge is not allowed to invoke ${target.functionId} (no AWS::Lambda::Permission for rule ${rule.id})`];
      this.options.log('event_delivery_failed', { rule: rule.id, target: target.functionId, eventId: event.id, error: code });
      if (target.deadLetterArn) {
        this.options.queues?.send(target.deadLetterArn, JSON.stringify(event), { ERROR_CODE: code, ERROR_MESSAGE: message, RULE_ARN: rule.arn, TARGET_ARN: target.functionId });
      }
      return;
    }
    fn.invokeAsync(event);
    if (this.duplicateDeliveries) fn.invokeAsync(event);
  }
}

const isoSeconds = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

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
