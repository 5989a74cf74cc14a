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
}

/** The window one run looks at, fixed by the workflow when it starts. */
export interface ReconciliationWindow {
  reconciliationId: string;
  since?: string;
  until: string;
}

export type ReconciliationStatus = 'running' | 'completed' | 'failed';
export type ReconciliationAction = 'repaired' | 'reported';

/** What one disagreement is; the first four are repaired, the rest only reported. */
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
  | 'refund_stuck_pending';

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
