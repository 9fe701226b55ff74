/**
 * The emulator's clock: wall time plus an offset that tests can advance, so that what AWS does "some time later"
 * (DynamoDB's TTL deletions, above all) can be made to happen now. Code under test keeps its own clock: advancing
 * this one is like waiting that long for AWS's background processes only.
 */
export class Clock {
  private offsetMs = 0;

  /** Epoch milliseconds, as AWS's background processes see them. */
  now(): number {
    return Date.now() + this.offsetMs;
  }

  /** Moves the clock forward (never back: AWS's clocks do not run backwards). */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new Error(`Clock.advance takes a non-negative number of milliseconds, got ${ms}`);
    this.offsetMs += ms;
  }
}
