// FROZEN. The compensation loop the legacy workflows in this folder were recorded with; the
// current flows use workflows/saga.ts. Changing it would change the timers their runs replay.
//
// Compensations shared by the flows. Each step registers its undo *before* it runs (the step may
// act even when its call fails); on failure the undos run newest first, shielded from
// cancellation, each retried until it succeeds. An undo that keeps failing is made visible
// (PaymentStatus=compensation_failing, an error log, `stalled` for the status query) instead of
// failing silently, and retried with a growing pause.
import { CancellationScope, log, sleep, upsertSearchAttributes } from '@temporalio/workflow';
import { PaymentStatus } from '../../domain/index.js';

export class Saga {
  private readonly undos: Array<{ step: string; run: () => Promise<unknown> }> = [];
  /** The undo that keeps failing, while it does. */
  stalled: string | undefined;

  constructor(private readonly logFields: Record<string, unknown>) {}

  /** Registers the undo of a step that is about to run. */
  add(step: string, run: () => Promise<unknown>): void {
    this.undos.push({ step, run });
  }

  /** Forgets every undo (the steps turned out to have done nothing). */
  clear(): void {
    this.undos.length = 0;
  }

  compensate(): Promise<void> {
    return CancellationScope.nonCancellable(async () => {
      for (const { step, run } of [...this.undos].reverse()) {
        for (let attempt = 1; ; attempt++) {
          try {
            await run();
            break;
          } catch (err) {
            this.stalled = step;
            upsertSearchAttributes([{ key: PaymentStatus, value: 'compensation_failing' }]);
            log.error('compensation failing; will retry', { ...this.logFields, step, attempt, error: err instanceof Error ? err.message : String(err) });
            await sleep(Math.min(attempt * 60_000, 15 * 60_000));
          }
        }
      }
      this.undos.length = 0;
      this.stalled = undefined;
    });
  }
}
