import { useMemo } from 'react';
import { HISTORY_PAGE_MAX } from '@gatehouse/client';
import { useRoom, type ShownMessage } from '@gatehouse/client/react';

const JOBS_ROOM = 'jobs';
/** Updates kept (so, jobs shown): far more than a page, since the list is made from them. */
const KEEP = 5000;

interface Job {
  job: string;
  percent: number;
  label?: string;
  status: 'running' | 'done' | 'failed';
  /** Why it failed, when the service said. */
  reason?: string;
  /** Seq of the update shown: history and live updates interleave, and an older one must not undo a newer. */
  seq: number;
  /** Seq of the first update seen: the list's order, which then never changes. */
  first: number;
}

const text = (v: unknown) => (typeof v === 'string' && v.trim() ? v : undefined);

/** The job list with one published update applied (anything that is not a service's job update changes nothing). */
export function applyJobUpdate(jobs: Record<string, Job>, m: ShownMessage): Record<string, Job> {
  // Only services publish progress (the server sets the sender); a user's message in the room is not a job.
  if (m.room !== JOBS_ROOM || !('service' in m.sender)) return jobs;
  const data = (m.data ?? {}) as { job?: unknown; percent?: unknown; label?: unknown; error?: unknown; message?: unknown; reason?: unknown };
  if (typeof data.job !== 'string' && typeof data.job !== 'number') return jobs;
  const id = String(data.job);
  const known = jobs[id];
  if (known && known.seq >= m.seq) return jobs;
  const status = m.kind === 'job.done' ? 'done' : m.kind === 'job.failed' ? 'failed' : 'running';
  const given = Math.max(0, Math.min(100, Number(data.percent) || 0));
  // A failure keeps the progress it reached unless it says otherwise.
  const percent = status === 'done' ? 100 : status === 'failed' && data.percent === undefined ? (known?.percent ?? 0) : given;
  const label = text(data.label) ?? known?.label;
  const reason = status === 'failed' ? (text(data.error) ?? text(data.message) ?? text(data.reason)) : undefined;
  return {
    ...jobs,
    [id]: { job: id, percent, status, seq: m.seq, first: known?.first ?? m.seq, ...(label ? { label } : {}), ...(reason ? { reason } : {}) },
  };
}

/**
 * Tenant-wide job progress, fed by server-side publishing to the `jobs` room
 * (`npx gatehouse publish --tenant acme --room jobs --type job.progress --payload '{"job":"42","percent":50}'`;
 * `job.done` completes a job, `job.failed` fails it, with an optional `error`). What was published before this page
 * opened comes from the room's history (as do updates missed while offline that the replay could not bring).
 */
export function Jobs() {
  const { messages } = useRoom(JOBS_ROOM, { pageSize: HISTORY_PAGE_MAX, keep: KEEP });
  // Ascending by seq, each once: folding them gives every job its latest update.
  const list = useMemo(() => Object.values(messages.reduce(applyJobUpdate, {})).sort((a, b) => b.first - a.first), [messages]);
  return (
    <div className="jobs">
      <h2>Job progress</h2>
      {list.length === 0 ? (
        <p className="muted">No jobs yet. Backend services publish progress to this tenant's <code>jobs</code> room.</p>
      ) : (
        <ul className="job-list">
          {list.map((j) => (
            <li key={j.job} data-job={j.job} data-status={j.status} className={j.status}>
              <div className="job-head">
                <span>{j.label ?? `Job ${j.job}`}</span>
                <span>{j.status === 'done' ? 'Done' : j.status === 'failed' ? 'Failed' : `${j.percent}%`}</span>
              </div>
              <progress max={100} value={j.percent} aria-label={`Job ${j.job} progress`} />
              {j.status === 'failed' && (
                <p className="error small" role="status">
                  {j.label ?? `Job ${j.job}`} failed{j.reason ? `: ${j.reason}` : '.'}
                </p>
              )}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
