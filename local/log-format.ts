/**
 * Function logs as `npm start` prints them: one readable line per JSON log line (common/log.ts), with the time,
 * the function, the level, the event and the rest as key=value; `--json` prints the JSON lines as they are.
 *
 *   20:01:02.345 authorizer  info  connect_allowed  tenantId=acme userId=8f2e2bfd-… source=header
 *
 * A function is named by the `component` its logger writes (`connect`, `authorizer`, `message`), learned from its
 * first such line, before that by its logical id without CDK's hash. Lines that are not JSON objects pass through,
 * stamped with the time and the function.
 *
 * Invariant: nothing printed holds a credential. The functions already redact credential fields (top level, by
 * name); this redacts again by the same rule, at every depth, and masks what looks like a credential in any text
 * (a JWT, a `Bearer` value, `password: …`), whatever wrote the line. In `--json` a line that needed none of that is
 * printed byte for byte.
 */
import { isSecretField } from '../common/log';

/** Fields every line shows in a column of its own, or that say nothing locally. */
const COLUMNS = new Set(['time', 'level', 'component']);
/** Where the line says what happened: the first of these it has. */
const EVENT_KEYS = ['event', 'msg', 'message'];
/** The fields that identify what a line is about, first; the rest follow in their order. */
const FIRST = ['tenantId', 'room', 'userId', 'connectionId', 'reason', 'error', 'durationMs'];
const MAX_VALUE = 80;
const NAME_WIDTH = 11;
const REDACTED = '[redacted]';

/** CDK's logical ids end in an 8-hex hash: RealtimeMessage1A2B3C4D is RealtimeMessage. */
export const functionName = (source: string): string => source.replace(/[0-9A-F]{8}$/, '');

/** Local wall-clock time, to the millisecond: what a developer compares with what they just did. */
export const clock = (date: Date): string =>
  `${[date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':')}.${String(date.getMilliseconds()).padStart(3, '0')}`;

/** A JWT (three base64url parts, the first a JSON header: `eyJ`), or what follows `Bearer`. */
const TOKEN_TEXT = /\beyJ[\w-]*\.[\w-]*\.[\w-]*|\bBearer\s+[\w\-.~+/=]+/g;
/** `name: value`, `name=value`, `"name":"value"` (as console.log(obj), a URL or a header prints it): a name, then a
 * quoted string or a bare value (an auth scheme and its value together). */
const NAMED_TEXT = /([A-Za-z_$][\w$-]*)(["']?\s*[:=]\s*)("[^"]*"|'[^']*'|(?:(?:Bearer|Basic|Digest)\s+)?[^"'\s,;}&]+)/g;

/** Text with whatever looks like a credential replaced by [redacted]. */
export function maskCredentials(text: string): string {
  return text
    .replace(TOKEN_TEXT, (match: string) => (match.startsWith('Bearer') ? `Bearer ${REDACTED}` : REDACTED))
    .replace(NAMED_TEXT, (match: string, name: string, sep: string, v: string) => {
      if (!isSecretField(name)) return match;
      const quote = v[0] === '"' || v[0] === "'" ? v[0] : '';
      return `${name}${sep}${quote}${REDACTED}${quote}`;
    });
}

/** A log record with credential fields replaced at every depth and credential-like text masked. */
export function redact(value: unknown): unknown {
  if (typeof value === 'string') return maskCredentials(value);
  if (Array.isArray(value)) return value.map(redact);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, isSecretField(k) ? REDACTED : redact(v)]));
}

/** An error as the logger writes it ({name, message}) reads as `Name: message`. */
const isError = (v: unknown): v is { name: string; message: string } =>
  !!v && typeof v === 'object' && typeof (v as { name?: unknown }).name === 'string' && typeof (v as { message?: unknown }).message === 'string';

function value(v: unknown): string {
  const structured = !isError(v) && typeof v === 'object' && v !== null;
  const text = isError(v) ? `${v.name}: ${v.message}` : typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
  const flat = text.replace(/\s+/g, ' ');
  const shown = flat.length > MAX_VALUE ? `${flat.slice(0, MAX_VALUE - 1)}…` : flat;
  // Text is quoted when a space or a quote would make the line ambiguous (key=value splits at the first "=");
  // objects and arrays print as their JSON.
  return !structured && (/[\s"]/.test(shown) || shown === '') ? JSON.stringify(shown) : shown;
}

function fields(record: Record<string, unknown>, eventKey: string | undefined): string {
  const keys = Object.keys(record).filter((k) => !COLUMNS.has(k) && k !== eventKey && record[k] !== undefined);
  const ordered = [...FIRST.filter((k) => keys.includes(k)), ...keys.filter((k) => !FIRST.includes(k))];
  return ordered.map((k) => `${k}=${value(record[k])}`).join(' ');
}

function parseRecord(line: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(line);
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** One redacted record as one readable line. */
function readable(name: string, r: Record<string, unknown>, now: () => Date): string {
  const time = typeof r.time === 'string' && !Number.isNaN(Date.parse(r.time)) ? new Date(r.time) : now();
  const level = typeof r.level === 'string' ? r.level : 'info';
  const eventKey = EVENT_KEYS.find((k) => typeof r[k] === 'string');
  const event = eventKey ? String(r[eventKey]) : '';
  const rest = fields(r, eventKey);
  return `${clock(time)} ${name.padEnd(NAME_WIDTH)} ${level.padEnd(5)} ${event}${rest ? `  ${rest}` : ''}`;
}

export interface LogPrinterOptions {
  /** Print JSON lines as JSON (redacted only where they hold a credential). @default false: one readable line each */
  json?: boolean;
  /** Stamps lines that carry no time of their own. @default the current time */
  now?: () => Date;
}

/**
 * A CloudWatch embedded-metric-format line (common/metrics.ts) as a log record: `metrics` and the values, at the
 * line's own timestamp and in its component's name; other records as they are.
 */
function asRecord(record: Record<string, unknown>): Record<string, unknown> {
  const meta = record._aws as { Timestamp?: unknown; CloudWatchMetrics?: Array<{ Dimensions?: string[][] }> } | undefined;
  if (!meta || typeof meta !== 'object' || !Array.isArray(meta.CloudWatchMetrics)) return record;
  const dimensions = new Set(meta.CloudWatchMetrics.flatMap((m) => m.Dimensions?.flat() ?? []));
  const values = Object.fromEntries(Object.entries(record).filter(([k]) => k !== '_aws' && !dimensions.has(k)));
  const component = [...dimensions].map((d) => record[d]).find((v) => typeof v === 'string');
  return {
    ...(typeof meta.Timestamp === 'number' ? { time: new Date(meta.Timestamp).toISOString() } : {}),
    level: 'info',
    event: 'metrics',
    ...(component ? { component } : {}),
    ...values,
  };
}

/** Formats each line a source (a function's logical id, or an emulator's name) writes, as `npm start` prints it. */
export function createLogPrinter({ json = false, now = () => new Date() }: LogPrinterOptions = {}): (source: string, line: string) => string {
  const names = new Map<string, string>();
  return (source, line) => {
    const parsed = parseRecord(line);
    const record = parsed && asRecord(parsed);
    if (typeof record?.component === 'string' && record.component) names.set(source, record.component);
    const name = names.get(source) ?? functionName(source);
    if (!record) return `${clock(now())} ${name.padEnd(NAME_WIDTH)} ${maskCredentials(line)}`;
    if (!json) return readable(name, redact(record) as Record<string, unknown>, now);
    // --json: the line as written (the metrics as CloudWatch would get them), redacted only if it had to be.
    const clean = JSON.stringify(redact(parsed));
    return clean === JSON.stringify(parsed) ? line : clean;
  };
}
