// The creating request of a wallet flow (top-up, payout), as POST /v1/checkouts does it: one
// update-with-start that starts the workflow under the Idempotency-Key's id and waits for its first
// answer, then the row the workflow wrote before answering. A retried or concurrent request with
// the same key reaches the same execution (USE_EXISTING), and once that has closed the key can never
// start a second one (REJECT_DUPLICATE): that would be a second charge or a second payout.
import type { Client } from '@temporalio/client';
import type { Logger } from '../../platform/logger.js';
import { asError, errorName, startError, type StartErrorContext } from '../temporal-errors.js';

export interface StartFlow<Row, Snapshot> {
  temporal: Client;
  /** How long the request waits for the workflow's answer before a 503 (the retry is safe). */
  timeoutMs: number;
  log: Logger;
  resource: StartErrorContext['resource'];
  retrySafety: string;
  /** The update-with-start call. */
  run: () => Promise<Snapshot>;
  /** The flow's row for this key, if it exists. */
  findRow: () => Promise<Row | null>;
}

export type StartedFlow<Row, Snapshot> =
  /** The workflow answered this request: `created` for the client (201). */
  | { row: Row; snapshot: Snapshot; replayed: false }
  /** The call failed but the row exists: an earlier request made it (200, from the row). */
  | { row: Row; snapshot: undefined; replayed: true };

export async function startFlow<Row, Snapshot>(f: StartFlow<Row, Snapshot>): Promise<StartedFlow<Row, Snapshot>> {
  const signal = AbortSignal.timeout(f.timeoutMs);
  let snapshot: Snapshot;
  try {
    snapshot = await f.temporal.withAbortSignal(signal, f.run);
  } catch (err) {
    // Whatever went wrong, a stored row is the truth the client needs (the run had already closed,
    // or the answer was lost after the row was written).
    const row = await f.findRow();
    if (row) {
      f.log.info(`${f.resource} found after failed update-with-start`, { error: errorName(err) });
      return { row, snapshot: undefined, replayed: true };
    }
    throw startError(err, { signal, log: f.log, resource: f.resource, retrySafety: f.retrySafety }) ?? asError(err);
  }
  // The workflow writes its row before it answers, and the row is what GET shows later.
  const row = await f.findRow();
  if (!row) {
    f.log.error(`${f.resource} answered without its row`);
    throw new Error(`${f.resource} row missing after the accepted update`);
  }
  return { row, snapshot, replayed: false };
}
