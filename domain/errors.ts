// Failure type names shared by activities (which throw them), workflows (which decide on them) and
// the API (which maps them to responses). Workflows match on these types, never on messages or
// class names.

export const FailureType = {
  /** The card network declined the card; retrying cannot help. */
  CardDeclined: 'CardDeclined',
  /** The card network rejected the request itself (bad amount, unknown authorization, ...). */
  CardNetworkRejected: 'CardNetworkRejected',
  /** A SKU in the checkout does not exist for this merchant. */
  ProductNotFound: 'ProductNotFound',
  /** Items of one checkout are priced in different currencies. */
  CurrencyMismatch: 'CurrencyMismatch',
  /** A request (capture, cancel, confirm, refund) does not fit the checkout's current status. */
  InvalidCheckoutState: 'InvalidCheckoutState',
  /** A capture or refund amount is out of range (zero, or above what can be captured/refunded). */
  InvalidAmount: 'InvalidAmount',
  /** A request (cancel) does not fit the payout's current status. */
  InvalidPayoutState: 'InvalidPayoutState',
  /** A ledger debit (posted or held) would take an account that may not overdraw below zero. */
  InsufficientFunds: 'InsufficientFunds',
  /** A transfer id was reused with different fields, or a pending transfer was already resolved differently. */
  LedgerConflict: 'LedgerConflict',
  /** The bank refused a transfer (closed or unknown account). */
  BankRejected: 'BankRejected',
  /** The API started a checkout but never placed its order (it died, or gave up): nothing was held. */
  OrderNotPlaced: 'OrderNotPlaced',
} as const;

export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** Failure types an activity retry cannot fix; listed in every activity profile. */
export const NON_RETRYABLE_FAILURES: FailureType[] = Object.values(FailureType);

/**
 * How a run fails before it does anything: workflow failures, never thrown by activities, so they
 * stay out of NON_RETRYABLE_FAILURES (every activity profile lists those, and recorded histories
 * hold the lists as they were).
 */
export const WorkflowFailureType = {
  /** A checkout, top-up, payout or webhook delivery started with an input its workflow cannot run. */
  InvalidWorkflowInput: 'InvalidWorkflowInput',
  /** A reconciliation started with an input it cannot run (a bad date, an unbounded wait, ...). */
  InvalidReconciliationInput: 'InvalidReconciliationInput',
  /** Another reconciliation of the same scope (the platform, or the merchant) is running: its id is in the details. */
  ReconciliationAlreadyRunning: 'ReconciliationAlreadyRunning',
} as const;

export type WorkflowFailureType = (typeof WorkflowFailureType)[keyof typeof WorkflowFailureType];
