/**
 * What every benchmark returns, and the helpers they share: statistics, formatting and the machine description.
 * Each figure is reported next to an alternative measured in the same run, as a ratio: absolute times on a
 * shared machine drift, ratios hold.
 */
import { cpus, totalmem, type as osType, release } from 'node:os';

export interface BenchOptions {
  /** `npm run bench -- --full`: longer runs, larger populations. */
  full: boolean;
  /** Progress lines (stderr), not results. */
  log: (line: string) => void;
}

export interface Section {
  /** Short id, as given to `--only`. */
  id: string;
  title: string;
  /** How it was measured, in a few sentences of Markdown. */
  method: string;
  /** The result table. */
  head: string[];
  rows: string[][];
  /** Further result tables, each under its caption. */
  tables?: Array<{ caption: string; head: string[]; rows: string[][] }>;
  /** One line with the headline figure and its ratio, for the summary and the README. */
  headline: string;
  /** Anything a reader must know to read the figures right (e.g. why one comes out worse than the alternative). */
  notes?: string[];
}

export type Bench = (options: BenchOptions) => Promise<Section>;

export interface Stats {
  count: number;
  mean: number;
  p50: number;
  p99: number;
  min: number;
  max: number;
}

export function stats(samples: number[]): Stats {
  if (samples.length === 0) return { count: 0, mean: NaN, p50: NaN, p99: NaN, min: NaN, max: NaN };
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
  return {
    count: sorted.length,
    mean: sorted.reduce((a, b) => a + b, 0) / sorted.length,
    p50: at(50),
    p99: at(99),
    min: sorted[0],
    max: sorted[sorted.length - 1],
  };
}

export const median = (samples: number[]) => stats(samples).p50;

/** 1234567 -> "1,234,567"; 12.345 -> "12.3" (three significant digits below 100). */
export function num(value: number, digits?: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  const d = digits ?? (Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2);
  return value.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

/** A ratio as "3.4×" (or "0.52×"). */
export const ratio = (value: number, baseline: number) => `${num(value / baseline, value / baseline >= 10 ? 0 : 2)}×`;

export const kib = (bytes: number) => `${num(bytes / 1024, 1)} KiB`;

export function machine(): string {
  const cores = cpus();
  return `${cores.length} × ${cores[0]?.model.trim() ?? 'unknown CPU'}, ${num(totalmem() / 2 ** 30, 1)} GiB RAM, ${osType()} ${release()}, Node ${process.version}`;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
