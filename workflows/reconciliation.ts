// Reconciliation: one pass over a fixed window of records comparing ours with the card network's,
// the bank's and the ledger's (activities/reconciliation.ts). The window ends olderThanMs before
// the run starts, so payments still in flight are never mistaken for disagreements. Checks run one
// after another: each is idempotent, and a failed run is marked failed with what it found so far.
//
// A window may hold any number of records, so each check is read page by page: one activity call
// reads up to PAGES_PER_CALL pages and returns the cursor where it stopped, and the workflow calls
// again until the check is done. After `pagesPerRun` pages (or when Temporal suggests it) the run
// continues as new with the same window and the check and cursor it reached, so no history grows
// without bound. The reconciliation id is the workflow id, which continue-as-new keeps, and the
// counts come from the recorded items, so a chain of runs reports as one.
//
// A run covers every merchant, or one (input.merchantId: only that merchant's records are read and
// repaired, and the platform's own ledger check is left to platform runs). One run per scope at a
// time: a run whose scope is taken fails at once with ReconciliationAlreadyRunning, naming the run
// that holds it. An input the run cannot use fails it at once with InvalidReconciliationInput.
import {
  ApplicationFailure,
  CancellationScope,
  continueAsNew,
  log,
  patched,
  proxyActivities,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import {
  DEFAULT_RECONCILIATION_OLDER_THAN_MS,
  DEFAULT_RECONCILIATION_PAGE_SIZE,
  DEFAULT_RECONCILIATION_PAGES_PER_RUN,
  MAX_RECONCILIATION_PAGE_SIZE,
  MAX_RECONCILIATION_PAGES_PER_RUN,
  WorkflowFailureType,
  isRecord,
  reconciliationChecksOf,
  reconciliationInputProblem,
  reconciliationScope,
  type InputProblem,
  type ReconciliationCounts,
  type ReconciliationInput,
  type ReconciliationPosition,
  type ReconciliationResult,
  type ReconciliationWindow,
} from '../domain/index.js';
import { databaseWrite } from './activity-profiles.js';
import { refuseInput } from './failures.js';

const db = proxyActivities<Activities>(databaseWrite);
/** The first workflow's: one whole check per call, minutes not seconds. Retries are safe (idempotent). */
const check = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 5 },
});
/**
 * One call of a check: a few pages, heartbeating the cursor of every record it judged, so a worker
 * that dies is noticed within a minute and the retry resumes where it was.
 */
const checkPages = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 5 },
});
/** Pages one activity call reads at most: each call returns its cursor often enough. */
const PAGES_PER_CALL = 10;

/**
 * `resume` is only ever passed by the run's own continue-as-new: the window it fixed, and the
 * check and cursor to go on from.
 */
export async function reconciliationWorkflowV2(input: ReconciliationInput = {}, resume?: ReconciliationPosition): Promise<ReconciliationResult> {
  // Patched, as is the claim below: runs recorded before they existed replay without them. Such a
  // run with a date that did not parse, or a wait longer than Date can go back, threw inside
  // workflow code and failed its workflow task forever.
  if (patched('reconciliation-input-checked')) refuseInput(reconciliationInputProblem(input), WorkflowFailureType.InvalidReconciliationInput);
  const { pageSize, pagesPerRun } = pagingOf(input);
  const reconciliationId = workflowInfo().workflowId;
  const window = resume?.window ?? windowOf(input, reconciliationId);

  if (!resume) {
    if (patched('reconciliation-one-per-scope')) await claimScope(window);
    await db.startReconciliation(window);
  }
  let reached: ReconciliationPosition | undefined;
  try {
    reached = await runChecks(window, resume, pageSize, pagesPerRun);
  } catch (err) {
    await CancellationScope.nonCancellable(() => db.finishReconciliation({ reconciliationId, status: 'failed' }));
    throw err;
  }
  if (reached) {
    log.info('reconciliation continues as new', { reconciliationId, check: reached.check });
    return continueAsNew<typeof reconciliationWorkflowV2>(input, reached);
  }
  const counts: ReconciliationCounts = await db.finishReconciliation({ reconciliationId, status: 'completed' });
  log.info('reconciliation completed', { ...window, repaired: counts.repaired, reported: counts.reported });
  return { reconciliationId, status: 'completed', counts };
}

/** The run's scope for it alone (a continued run still holds it), or the run fails naming the one that has it. */
async function claimScope(window: ReconciliationWindow): Promise<void> {
  const { reconciliationId, merchantId } = window;
  const claim = await db.claimReconciliation({ reconciliationId, ...(merchantId !== undefined ? { merchantId } : {}) });
  if (claim.claimed) return;
  const scope = reconciliationScope(merchantId);
  throw ApplicationFailure.create({
    type: WorkflowFailureType.ReconciliationAlreadyRunning,
    message: `reconciliation ${claim.runningId} of the same scope (${scope}) is running; one runs at a time`,
    nonRetryable: true,
    details: [{ runningId: claim.runningId, scope }],
  });
}

/** Runs the checks from `from` on; resolves where this run stopped, or undefined when all are done. */
async function runChecks(window: ReconciliationWindow, from: ReconciliationPosition | undefined, pageSize: number, pagesPerRun: number): Promise<ReconciliationPosition | undefined> {
  const checks = reconciliationChecksOf(window);
  const first = from ? checks.indexOf(from.check) : 0;
  if (first < 0) throw ApplicationFailure.create({ type: WorkflowFailureType.InvalidReconciliationInput, message: `no check named ${from?.check}`, nonRetryable: true });
  let pages = 0;
  for (const name of checks.slice(first)) {
    let cursor = name === from?.check ? from.cursor : undefined;
    do {
      if (pages >= pagesPerRun || workflowInfo().continueAsNewSuggested) return { window, check: name, ...(cursor ? { cursor } : {}) };
      const progress = await checkPages.runReconciliationCheck({ window, check: name, cursor, pageSize, maxPages: Math.min(PAGES_PER_CALL, pagesPerRun - pages) });
      pages += progress.pages;
      cursor = progress.next;
    } while (cursor);
  }
  return undefined;
}

function windowOf(input: ReconciliationInput, reconciliationId: string): ReconciliationWindow {
  const cutoff = Date.now() - (input.olderThanMs ?? DEFAULT_RECONCILIATION_OLDER_THAN_MS);
  const until = new Date(input.until !== undefined ? Math.min(Date.parse(input.until), cutoff) : cutoff).toISOString();
  // Platform runs' windows as they always were: their activities' inputs stay the recorded ones.
  return { reconciliationId, until, ...(input.since !== undefined ? { since: input.since } : {}), ...(input.merchantId !== undefined ? { merchantId: input.merchantId } : {}) };
}

function pagingOf(input: ReconciliationInput): { pageSize: number; pagesPerRun: number } {
  const pageSize = input.pageSize ?? DEFAULT_RECONCILIATION_PAGE_SIZE;
  const pagesPerRun = input.pagesPerRun ?? DEFAULT_RECONCILIATION_PAGES_PER_RUN;
  const invalid = (message: string) => ApplicationFailure.create({ type: WorkflowFailureType.InvalidReconciliationInput, message, nonRetryable: true });
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_RECONCILIATION_PAGE_SIZE) throw invalid(`pageSize must be an integer from 1 to ${MAX_RECONCILIATION_PAGE_SIZE}`);
  if (!Number.isInteger(pagesPerRun) || pagesPerRun < 1 || pagesPerRun > MAX_RECONCILIATION_PAGES_PER_RUN) {
    throw invalid(`pagesPerRun must be an integer from 1 to ${MAX_RECONCILIATION_PAGES_PER_RUN}`);
  }
  return { pageSize, pagesPerRun };
}

/**
 * The first reconciliation workflow, frozen: runs started before reconciliationWorkflowV2 existed
 * replay against it, so the commands it issues must not change. Its activities read every page
 * now, one whole check per call.
 */
export async function reconciliationWorkflow(input: ReconciliationInput = {}): Promise<ReconciliationResult> {
  // Patched: runs recorded before it replay without it. New runs of this type are only ever
  // started by hand; one with an input it cannot use fails at once instead of failing its workflow
  // task forever.
  if (patched('reconciliation-input-checked')) refuseInput(legacyInputProblem(input), WorkflowFailureType.InvalidReconciliationInput);
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

/** What the first workflow cannot run: what V2 cannot, and one merchant's run, which it never knew. */
function legacyInputProblem(input: unknown): InputProblem | undefined {
  const problem = reconciliationInputProblem(input);
  if (problem || !isRecord(input) || input.merchantId === undefined) return problem;
  return { param: 'merchantId', message: 'is not supported by reconciliationWorkflow, which runs over every merchant: start reconciliationWorkflowV2' };
}
