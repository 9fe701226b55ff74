import { useEffect, useState } from 'react';
import type { GatehouseClient } from '../../client/index';

interface Job {
  job: string;
  percent: number;
  label?: string;
  done: boolean;
  updated: number;
}

/**
 * Tenant-wide job progress, fed by server-side publishing to the `jobs` room
 * (`npm run gatehouse -- publish --tenant acme --room jobs --type job.progress --payload '{"job":"42","percent":50}'`).
 */
export function Jobs({ client, live }: { client: GatehouseClient; live: boolean }) {
  const [jobs, setJobs] = useState<Record<string, Job>>({});

  useEffect(
    () =>
      client.on('message', (m) => {
        // Only services publish progress (the server sets the sender); a user's message in the room is not a job.
        if (m.room !== 'jobs' || !('service' in m.sender)) return;
        const data = (m.data ?? {}) as { job?: unknown; percent?: unknown; label?: unknown };
        if (typeof data.job !== 'string' && typeof data.job !== 'number') return;
        const id = String(data.job);
        const done = m.kind === 'job.done';
        const percent = done ? 100 : Math.max(0, Math.min(100, Number(data.percent) || 0));
        setJobs((all) => ({ ...all, [id]: { job: id, percent, done, updated: m.ts, ...(typeof data.label === 'string' ? { label: data.label } : {}) } }));
      }),
    [client],
  );

  useEffect(() => {
    if (live && !client.joinedRooms.includes('jobs')) void client.join('jobs').catch(() => undefined);
  }, [live, client]);

  const list = Object.values(jobs).sort((a, b) => b.updated - a.updated);
  return (
    <div className="jobs">
      <h2>Job progress</h2>
      {list.length === 0 ? (
        <p className="muted">No jobs yet. Backend services publish progress to this tenant's <code>jobs</code> room.</p>
      ) : (
        <ul className="job-list">
          {list.map((j) => (
            <li key={j.job} data-job={j.job}>
              <div className="job-head">
                <span>{j.label ?? `Job ${j.job}`}</span>
                <span>{j.done ? 'Done' : `${j.percent}%`}</span>
              </div>
              <progress max={100} value={j.percent} aria-label={`Job ${j.job} progress`} />
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
