/**
 * `npm run bench`: every benchmark, one after the other (never two at once: they would measure each other), each in
 * a process of its own (one section's heap and leftover work must not weigh on the next one's latencies), then
 * docs/BENCHMARKS.md rewritten with the method, command, machine and results of each.
 *
 *   npm run bench                     the quick set (a few minutes on 2 cores)
 *   npm run bench -- --full           longer runs and larger populations
 *   npm run bench -- --only verify    some sections only (comma-separated ids); prints, leaves the file alone
 *   npm run bench -- --only x --write those sections measured anew in docs/BENCHMARKS.md, the others kept
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { bigRoomBench } from './bigroom';
import { broadcastBench } from './broadcast';
import { coldStartBench } from './cold-start';
import { conversationBench } from './conversation';
import { costBench } from './cost';
import { loadBench } from './load';
import { postsBench } from './posts';
import { machine, type Bench, type Section } from './report';
import { speechBench } from './speech';
import { verifyBench } from './verify';

export const BENCHES: Array<[string, Bench]> = [
  ['verify', verifyBench],
  ['cold-start', coldStartBench],
  ['broadcast', broadcastBench],
  ['posts', postsBench],
  ['bigroom', bigRoomBench],
  ['conversation', conversationBench],
  ['cost', costBench],
  ['load', loadBench],
  ['speech', speechBench],
];

export const REPORT = path.join(__dirname, '..', 'docs', 'BENCHMARKS.md');

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n');
}

export function render(sections: Section[], info: { full: boolean; seconds: number; date: string }): string {
  const command = `npm run bench${info.full ? ' -- --full' : ''}`;
  return `# Gatehouse benchmarks

Written by \`${command}\` on ${info.date} in ${Math.round(info.seconds)} s. Do not edit: run it again.

**Machine:** ${machine()}.

Every figure sits next to an alternative measured in the same run, on the same machine, and is read as a ratio:
absolute times on a shared machine drift, ratios hold. The local system stands in for AWS (dynalite for DynamoDB, a
WebSocket gateway for API Gateway, worker threads for Lambda), so absolute latencies here are not AWS latencies; what
carries over is how the costs compare and how they grow.

## Summary

${sections.map((s) => `- **${s.title}**: ${s.headline}`).join('\n')}

${sections.map((s) => renderSection(s, info.full)).join('\n')}`;
}

function renderSection(s: Section, full: boolean): string {
  return `## ${s.title}

${s.method}

Command: \`npm run bench -- --only ${s.id}${full ? ' --full' : ''}\`

${table(s.head, s.rows)}
${(s.tables ?? []).map((t) => `\n${t.caption}\n\n${table(t.head, t.rows)}\n`).join('')}${s.notes?.length ? `\n${s.notes.map((n) => `- ${n}`).join('\n')}\n` : ''}`;
}

/**
 * The report with some sections measured anew (`--only x --write`): each replaces its namesake (or is added), with
 * its summary line; the rest stay as they were, and the header says which sections are newer than the full run.
 */
export function merge(existing: string, fresh: Section[], info: { full: boolean; date: string }): string {
  const [head, ...blocks] = existing.split(/^(?=## )/m);
  const summary = blocks.find((b) => b.startsWith('## Summary')) ?? '## Summary\n\n';
  let sections = blocks.filter((b) => !b.startsWith('## Summary'));
  let bullets = summary.split('\n').filter((l) => l.startsWith('- **'));
  for (const s of fresh) {
    const block = `${renderSection(s, info.full)}\n`;
    const at = sections.findIndex((b) => b.startsWith(`## ${s.title}\n`));
    sections = at >= 0 ? sections.map((b, i) => (i === at ? block : b)) : [...sections, block];
    const bullet = `- **${s.title}**: ${s.headline}`;
    const bAt = bullets.findIndex((l) => l.startsWith(`- **${s.title}**:`));
    bullets = bAt >= 0 ? bullets.map((l, i) => (i === bAt ? bullet : l)) : [...bullets, bullet];
  }
  // One line per re-run; an earlier line keeps the sections that were not measured again since.
  const ids = new Set(fresh.map((s) => s.id));
  const earlier = [...head.matchAll(/^Re-run on (\S+), apart from the rest: (.*)\.$/gm)]
    .map(([, date, list]) => [date, list.split(', ').filter((id) => !ids.has(id))] as const)
    .filter(([, list]) => list.length > 0)
    .map(([date, list]) => `Re-run on ${date}, apart from the rest: ${list.join(', ')}.`);
  const notes = [...earlier, `Re-run on ${info.date}, apart from the rest: ${[...ids].join(', ')}.`];
  const header = head.replace(/^Re-run on .*\n+/gm, '').replace(/\n*$/, '\n\n') + `${notes.join('\n\n')}\n\n`;
  return `${header}## Summary\n\n${bullets.join('\n')}\n\n${sections.join('')}`.replace(/\n{3,}/g, '\n\n');
}

/** Marks the line of a section's output that carries its report (anything else it prints is passed over). */
const SECTION_MARK = '@@gatehouse-bench-section ';

/** Runs one section in a fresh process (this file with `--section`), its report on stdout as JSON. */
function runSection(id: string, full: boolean): Promise<Section> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, __filename, '--section', id, ...(full ? ['--full'] : [])], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: process.env,
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith(SECTION_MARK));
      if (code === 0 && line) resolve(JSON.parse(line.slice(SECTION_MARK.length)) as Section);
      else reject(new Error(`benchmark ${id} failed (exit ${code})`));
    });
  });
}

async function main(): Promise<void> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { values } = parseArgs({
    options: { full: { type: 'boolean', default: false }, only: { type: 'string' }, section: { type: 'string' }, write: { type: 'boolean', default: false } },
  });
  if (values.section) {
    const bench = BENCHES.find(([name]) => name === values.section)?.[1];
    if (!bench) throw new Error(`Unknown benchmark ${values.section}`);
    const section = await bench({ full: values.full, log: (line) => process.stderr.write(`   ${line}\n`) });
    process.stdout.write(`\n${SECTION_MARK}${JSON.stringify(section)}\n`);
    return;
  }
  const only = values.only?.split(',').map((s) => s.trim());
  const unknown = only?.filter((id) => !BENCHES.some(([name]) => name === id));
  if (unknown?.length) throw new Error(`Unknown benchmark ${unknown.join(', ')}: choose from ${BENCHES.map(([n]) => n).join(', ')}.`);

  const started = Date.now();
  const sections: Section[] = [];
  for (const [id] of BENCHES) {
    if (only && !only.includes(id)) continue;
    const t0 = Date.now();
    process.stderr.write(`\n== ${id}\n`);
    const section = await runSection(id, values.full);
    sections.push(section);
    process.stderr.write(`   ${section.headline} (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
  }
  const markdown = render(sections, { full: values.full, seconds: (Date.now() - started) / 1000, date: new Date().toISOString().slice(0, 10) });
  if (only && values.write) {
    writeFileSync(REPORT, merge(readFileSync(REPORT, 'utf8'), sections, { full: values.full, date: new Date().toISOString().slice(0, 10) }));
    process.stderr.write(`\nUpdated ${only.join(', ')} in ${path.relative(process.cwd(), REPORT)}.\n`);
    return;
  }
  if (only) {
    process.stdout.write(markdown);
    return;
  }
  writeFileSync(REPORT, markdown);
  process.stderr.write(`\nWrote ${path.relative(process.cwd(), REPORT)} in ${((Date.now() - started) / 1000).toFixed(0)} s.\n`);
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err: Error) => {
      process.stderr.write(`npm run bench failed: ${err.stack ?? err.message}\n`);
      process.exit(1);
    },
  );
}
