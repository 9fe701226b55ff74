/**
 * Function logs as `npm start` prints them: one readable line per JSON log line (common/log.ts), with the time,
 * the function, the level, the event and the rest as key=value; `--json` prints the lines as they are.
 *
 *   20:01:02.345 RealtimeAuthorizer  info  connect_allowed  tenantId=acme userId=8f2e2bfd-… source=header
 *
 * The functions already redact credential fields; this redacts them again, by the same rule, whatever wrote the line.
 */
import { isSecretField } from '../common/log';

/** Fields every line shows in a column of its own, or that say nothing locally. */
const COLUMNS = new Set(['time', 'level', 'component']);
/** Where the line says what happened: the first of these it has. */
const EVENT_KEYS = ['event', 'msg', 'message'];
/** The fields that identify what a line is about, first; the rest follow in their order. */
const FIRST = ['category', 'tenantId', 'room', 'userId', 'connectionId', 'reason', 'error', 'durationMs'];
const MAX_VALUE = 80;
const NAME_WIDTH = 20;

/** CDK's logical ids end in an 8-hex hash: RealtimeMessage1A2B3C4D is RealtimeMessage. */
export const functionName = (source: string): string => source.replace(/[0-9A-F]{8}$/, '');

/** Local wall-clock time, to the millisecond: what a developer compares with what they just did. */
export const clock = (date: Date): string =>
  `${[date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':')}.${String(date.getMilliseconds()).padStart(3, '0')}`;

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
  return ordered.map((k) => `${k}=${isSecretField(k) ? '[redacted]' : value(record[k])}`).join(' ');
}

/** One line of a function's output, readable; `now` stamps lines that carry no time of their own. */
export function formatLogLine(source: string, line: string, now: () => Date = () => new Date()): string {
  const name = functionName(source).padEnd(NAME_WIDTH);
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    record = undefined;
  }
  if (!record || typeof record !== 'object' || Array.isArray(record)) return `${clock(now())} ${name} ${line}`;
  const r = record as Record<string, unknown>;
  const time = typeof r.time === 'string' && !Number.isNaN(Date.parse(r.time)) ? new Date(r.time) : now();
  const level = typeof r.level === 'string' ? r.level : 'info';
  const eventKey = EVENT_KEYS.find((k) => typeof r[k] === 'string');
  const event = eventKey ? String(r[eventKey]) : '';
  const rest = fields(r, eventKey);
  return `${clock(time)} ${name} ${level.padEnd(5)} ${event}${rest ? `  ${rest}` : ''}`;
}
