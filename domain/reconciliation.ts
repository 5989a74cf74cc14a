// Reconciliation: our records compared with the card network's, the bank's and the ledger's.
// Shared by the workflow, its activities, the schedule and the API.

export const reconciliationId = (suffix: string) => `reconciliation-${suffix}`;

/** Records younger than this are in flight, not disagreements: the default leaves them alone. */
export const DEFAULT_RECONCILIATION_OLDER_THAN_MS = 15 * 60_000;

export interface ReconciliationInput {
  /** ISO 8601; only records created at or after it. Default: from the beginning. */
  since?: string;
  /** ISO 8601; only records created before it. Never later than now - olderThanMs. */
  until?: string;
  olderThanMs?: number;
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
