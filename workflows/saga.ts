// The one compensation mechanism every flow uses. A step registers its undo *before* it runs (the
// step may act even when its call fails or is canceled); when the flow cannot go on, the undos run
// newest first, shielded from cancellation, each retried until it succeeds. An undo that keeps
// failing is made visible while it does (PaymentStatus=compensation_failing in the Web UI, an
// error log with the flow's ids, `stalled` for the status query) and retried with a growing pause,
// because an undo must eventually happen: a void that never happens holds a customer's money.
import { CancellationScope, log, sleep, upsertSearchAttributes } from '@temporalio/workflow';
import { PaymentStatus } from '../domain/index.js';

/** First pause after a failed undo; it doubles up to the maximum. */
const FIRST_PAUSE_MS = 10_000;
const MAX_PAUSE_MS = 10 * 60_000;

export class Saga {
  private readonly undos: Array<{ step: string; run: () => Promise<unknown> }> = [];
  /** The undo that keeps failing, while it does. */
  stalled: string | undefined;

  constructor(private readonly logFields: Record<string, unknown>) {}

  /** Registers the undo of a step that is about to run. */
  add(step: string, run: () => Promise<unknown>): void {
    this.undos.push({ step, run });
  }

  /**
   * The steps so far succeeded for good (a checkout's capture): their undos no longer apply and are
   * forgotten. What may still be undone later is registered anew (a refund of what is left).
   */
  done(): void {
    this.undos.length = 0;
  }

  /** Runs every registered undo, newest first, each until it succeeds; then forgets them. */
  compensate(): Promise<void> {
    return CancellationScope.nonCancellable(async () => {
      while (this.undos.length > 0) {
        const { step, run } = this.undos[this.undos.length - 1]!;
        await this.untilDone(step, run);
        this.undos.pop();
      }
    });
  }

  private async untilDone(step: string, run: () => Promise<unknown>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await run();
        if (this.stalled === step) {
          log.info('compensation recovered', { ...this.logFields, step, attempts: attempt });
          this.stalled = undefined;
        }
        return;
      } catch (err) {
        this.stalled = step;
        upsertSearchAttributes([{ key: PaymentStatus, value: 'compensation_failing' }]);
        log.error('compensation failing; will retry', { ...this.logFields, step, attempt, error: err instanceof Error ? err.message : String(err) });
        await sleep(Math.min(FIRST_PAUSE_MS * 2 ** (attempt - 1), MAX_PAUSE_MS));
      }
    }
  }
}
