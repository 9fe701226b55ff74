import { realtimeRuntime } from './core/clients';
import { sweepExpired } from './core/sweeper';

const runtime = realtimeRuntime('sweeper');
// Scheduled every minute; sweeps every SWEEP_EVERY_SECONDS within the run (default 30: at the start and half a
// minute later), so an expired socket is closed within about that long after its expiry.
const every = Number(process.env.SWEEP_EVERY_SECONDS ?? 30) * 1000;

export const handler = async () => {
  const started = Date.now();
  const total = { closed: 0, gone: 0 };
  for (;;) {
    const { closed, gone } = await sweepExpired(runtime);
    total.closed += closed;
    total.gone += gone;
    const next = started + Math.ceil((Date.now() - started + 1) / every) * every;
    if (next - started >= 50_000) return total;
    await new Promise((resolve) => setTimeout(resolve, next - Date.now()));
  }
};
