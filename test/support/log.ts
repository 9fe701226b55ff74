import { createLogger } from '../../common/log';

/** A logger that keeps every line, so tests can assert on events and on what was never written. */
export function memoryLogger() {
  const lines: string[] = [];
  const log = createLogger({}, { level: 'debug', write: (line) => lines.push(line) });
  const events = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { lines, log, events };
}
