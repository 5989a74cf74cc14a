// FROZEN. The activity options the legacy workflows in this folder were recorded with. Their
// cancellation type is the SDK's effective default, TRY_CANCEL (a canceled call is reported at
// once): changing it would change when their runs issue commands after a cancel. One fix applies
// here too because it changes no command: undos have no heartbeat timeout (see ../activity-profiles.ts).
//
// Named activity-option profiles: every activity call in a workflow picks one, so timeouts and
// retry policies are decided here, in one place, per kind of external system.
import type { ActivityOptions, LocalActivityOptions } from '@temporalio/workflow';
import { NON_RETRYABLE_FAILURES } from '../../domain/index.js';

/** Short transactions on our own PostgreSQL. Retried indefinitely: the database comes back. */
export const databaseWrite: ActivityOptions = {
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '200 ms', backoffCoefficient: 2, maximumInterval: '10 seconds', nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
};

/**
 * The same, run as local activities: for the step a buyer's synchronous answer waits on, this
 * saves the server round trips of scheduling an activity task.
 */
export const localDatabaseWrite: LocalActivityOptions = {
  startToCloseTimeout: '10 seconds',
  retry: databaseWrite.retry,
};

/**
 * Calls to the card network: slow (seconds) and flaky. Retries reuse the step's idempotency key,
 * so they are safe however many there are.
 */
export const cardNetworkCall: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  heartbeatTimeout: '5 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
};

/** Calls to banks: like the card network, slow and flaky, and safe to retry with the same key. */
export const bankCall: ActivityOptions = cardNetworkCall;

/**
 * Undo steps. A few quick retries, then the workflow's own loop takes over (Saga.compensate in
 * saga.ts): it makes a stubborn failure visible and keeps retrying with a growing pause,
 * because an undo must eventually happen.
 */
export const compensation: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 5 },
};
