// Reconciliation: our records compared with the card network's, the bank's and the ledger's.
// Shared by the workflow, its activities, the schedule and the API.
import { isMerchantId } from './ids.js';
import { DAY_MS, firstProblem, isIntegerIn, isRecord, isTimestamp, unless, type InputProblem } from './inputs.js';

export const reconciliationId = (suffix: string) => `reconciliation-${suffix}`;

/** Records younger than this are in flight, not disagreements: the default leaves them alone. */
export const DEFAULT_RECONCILIATION_OLDER_THAN_MS = 15 * 60_000;
/**
 * A year and a day: a longer wait has no use (a record a year old is as settled as it gets), and
 * keeping it bounded keeps `now - olderThanMs` a date.
 */
export const MAX_RECONCILIATION_OLDER_THAN_MS = 366 * DAY_MS;

export interface ReconciliationInput {
  /** ISO 8601; only records created at or after it. Default: from the beginning. */
  since?: string;
  /** ISO 8601; only records created before it. Never later than now - olderThanMs. */
  until?: string;
  /** 0 to MAX_RECONCILIATION_OLDER_THAN_MS. */
  olderThanMs?: number;
  /**
   * Only this merchant's records: its rows, and the network's and the bank's records that its rows
   * account for. Absent: every merchant's, and the platform's own (the ledger check, records no row
   * accounts for).
   */
  merchantId?: string;
  /** Records read per page, from our tables and from the network's and the bank's reports. */
  pageSize?: number;
  /** Pages one workflow run reads before it continues as new, so its history stays small. */
  pagesPerRun?: number;
}

export const DEFAULT_RECONCILIATION_PAGE_SIZE = 100;
/** The most the card network's and the bank's reports give per page. */
export const MAX_RECONCILIATION_PAGE_SIZE = 1000;
export const DEFAULT_RECONCILIATION_PAGES_PER_RUN = 500;
export const MAX_RECONCILIATION_PAGES_PER_RUN = 10_000;

/**
 * The checks of a run, in the order it runs them. Payout holds come before the payout report: a
 * hold resolved from the bank's answer is then no longer reported as paid but not posted.
 */
export const RECONCILIATION_CHECKS = ['authorizations', 'reservations', 'topups', 'payout_holds', 'captures', 'payouts', 'refunds', 'ledger'] as const;
export type ReconciliationCheck = (typeof RECONCILIATION_CHECKS)[number];

/** The checks of one merchant's run: the ledger's invariants hold over every account, so they are the platform's. */
export const MERCHANT_RECONCILIATION_CHECKS: readonly ReconciliationCheck[] = RECONCILIATION_CHECKS.filter((c) => c !== 'ledger');

/** The checks a run over `window` makes, in order. */
export const reconciliationChecksOf = (window: { merchantId?: string }): readonly ReconciliationCheck[] =>
  window.merchantId === undefined ? RECONCILIATION_CHECKS : MERCHANT_RECONCILIATION_CHECKS;

/**
 * Where a check is: its phase (each check reads one or more lists, one after the other) and the
 * opaque keyset cursor of the last record judged in it, absent at the phase's start.
 */
export interface CheckCursor {
  phase: number;
  after?: string;
}

/** Where a run continued as new: the same window, and the check and cursor to go on from. */
export interface ReconciliationPosition {
  window: ReconciliationWindow;
  check: ReconciliationCheck;
  cursor?: CheckCursor;
}

/** The window one run looks at, fixed by the workflow when it starts. */
export interface ReconciliationWindow {
  reconciliationId: string;
  since?: string;
  until: string;
  /** One merchant's run (ReconciliationInput.merchantId); absent: every merchant's. */
  merchantId?: string;
}

/**
 * What a run is over, for the one-run-at-a-time rule: `platform` (every merchant) or
 * `merchant:<id>`. A platform run and a merchant's may overlap: every repair is idempotent.
 */
export const reconciliationScope = (merchantId: string | undefined) => (merchantId === undefined ? 'platform' : `merchant:${merchantId}`);

/** Whether the run may go ahead, or which run of its scope is running already. */
export type ReconciliationClaim = { claimed: true } | { claimed: false; runningId: string };

/**
 * The first problem of a reconciliation's input, if any. The API refuses such an input with a 400
 * naming `param`; the workflow fails at once with InvalidReconciliationInput.
 */
export function reconciliationInputProblem(input: unknown): InputProblem | undefined {
  if (input === undefined) return undefined;
  if (!isRecord(input)) return { param: 'input', message: 'must be an object' };
  const { since, until, olderThanMs, pageSize, pagesPerRun, merchantId } = input;
  const timestamp = 'must be an ISO 8601 date-time with a time zone, such as 2026-11-29T00:00:00Z';
  return firstProblem(
    () => unless(since === undefined || isTimestamp(since), 'since', timestamp),
    () => unless(until === undefined || isTimestamp(until), 'until', timestamp),
    () => unless(since === undefined || until === undefined || Date.parse(since as string) < Date.parse(until as string), 'until', 'must be later than since'),
    () => unless(olderThanMs === undefined || isIntegerIn(olderThanMs, 0, MAX_RECONCILIATION_OLDER_THAN_MS), 'olderThanMs', `must be an integer from 0 to ${MAX_RECONCILIATION_OLDER_THAN_MS} (366 days)`),
    () => unless(pageSize === undefined || isIntegerIn(pageSize, 1, MAX_RECONCILIATION_PAGE_SIZE), 'pageSize', `must be an integer from 1 to ${MAX_RECONCILIATION_PAGE_SIZE}`),
    () => unless(pagesPerRun === undefined || isIntegerIn(pagesPerRun, 1, MAX_RECONCILIATION_PAGES_PER_RUN), 'pagesPerRun', `must be an integer from 1 to ${MAX_RECONCILIATION_PAGES_PER_RUN}`),
    () => unless(merchantId === undefined || (typeof merchantId === 'string' && isMerchantId(merchantId)), 'merchantId', 'must be a merchant id: 1 to 64 letters, digits, _ or -'),
  );
}

export type ReconciliationStatus = 'running' | 'completed' | 'failed';
export type ReconciliationAction = 'repaired' | 'reported';

/** What one disagreement is; the first three and payout_hold_not_resolved are repaired, the rest only reported. */
export type ReconciliationKind =
  | 'authorization_not_voided'
  | 'reservation_not_released'
  | 'topup_not_credited'
  | 'authorization_of_captured_checkout'
  | 'reservation_of_captured_checkout'
  | 'checkout_captured_without_network_capture'
  | 'network_capture_without_captured_checkout'
  | 'network_capture_unknown_reference'
  | 'payout_paid_not_posted'
  | 'payout_posted_without_bank_transfer'
  | 'ledger_check_failed'
  | 'refund_without_network_refund'
  | 'network_refund_without_refund'
  | 'refund_stuck_pending'
  | 'payout_hold_not_resolved'
  | 'topup_status_not_final'
  | 'checkout_status_not_final';

/** Per action, then per kind. */
export interface ReconciliationCounts {
  repaired: number;
  reported: number;
  byKind: Partial<Record<ReconciliationKind, number>>;
}

export interface ReconciliationResult {
  reconciliationId: string;
  status: ReconciliationStatus;
  counts: ReconciliationCounts;
}

/** The merchant of a scope (reconciliationScope), or undefined for the platform's. */
export const merchantOfScope = (scope: string): string | undefined => (scope.startsWith('merchant:') ? scope.slice('merchant:'.length) : undefined);
