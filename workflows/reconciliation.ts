// Reconciliation: one pass over a fixed window of records comparing ours with the card network's,
// the bank's and the ledger's (activities/reconciliation.ts). The window ends olderThanMs before
// the run starts, so payments still in flight are never mistaken for disagreements. Checks run one
// after another: each is idempotent, and a failed run is marked failed with what it found so far.
import { CancellationScope, log, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import {
  DEFAULT_RECONCILIATION_OLDER_THAN_MS,
  type ReconciliationCounts,
  type ReconciliationInput,
  type ReconciliationResult,
  type ReconciliationWindow,
} from '../domain/index.js';
import { databaseWrite } from './activity-profiles.js';

const db = proxyActivities<Activities>(databaseWrite);
/** A check lists and compares a whole window: minutes, not seconds. Retries are safe (idempotent). */
const check = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 5 },
});

export async function reconciliationWorkflow(input: ReconciliationInput = {}): Promise<ReconciliationResult> {
  const reconciliationId = workflowInfo().workflowId;
  const cutoff = Date.now() - (input.olderThanMs ?? DEFAULT_RECONCILIATION_OLDER_THAN_MS);
  const until = new Date(input.until !== undefined ? Math.min(Date.parse(input.until), cutoff) : cutoff).toISOString();
  const window: ReconciliationWindow = { reconciliationId, until, ...(input.since !== undefined ? { since: input.since } : {}) };

  await db.startReconciliation(window);
  try {
    await check.reconcileAuthorizations(window);
    await check.reconcileReservations(window);
    await check.reconcileTopups(window);
    await check.reportCaptures(window);
    await check.reportPayouts(window);
    // Patched: runs started before this check existed replay without it.
    if (patched('reconciliation-refunds')) await check.reportRefunds(window);
    await check.reportLedger(window);
  } catch (err) {
    await CancellationScope.nonCancellable(() => db.finishReconciliation({ reconciliationId, status: 'failed' }));
    throw err;
  }
  const counts: ReconciliationCounts = await db.finishReconciliation({ reconciliationId, status: 'completed' });
  log.info('reconciliation completed', { ...window, repaired: counts.repaired, reported: counts.reported });
  return { reconciliationId, status: 'completed', counts };
}
