// Named activity-option profiles: every activity call in a workflow picks one, so timeouts, retry
// policies and what a cancel does are decided here, in one place, per kind of external system.
//
// Every profile waits for a canceled activity to confirm that it stopped
// (WAIT_CANCELLATION_COMPLETED). The SDK's effective default reports a cancel at once, while the
// call may still be acting; an undo that ran then could look a key up before the call it undoes
// had even reached the network. (The legacy workflows keep their own, recorded, options.)
import { ActivityCancellationType, type ActivityOptions, type LocalActivityOptions } from '@temporalio/workflow';
import { NON_RETRYABLE_FAILURES } from '../domain/index.js';

const waitForCancellation = { cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED };

/** Short transactions on our own PostgreSQL. Retried indefinitely: the database comes back. */
export const databaseWrite: ActivityOptions = {
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '200 ms', backoffCoefficient: 2, maximumInterval: '10 seconds', nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
  ...waitForCancellation,
};

/**
 * The same, run as local activities: for the steps a buyer's answer waits on, and the short writes
 * on the main path, this saves the server round trips of scheduling an activity task.
 */
export const localDatabaseWrite: LocalActivityOptions = {
  startToCloseTimeout: '10 seconds',
  retry: databaseWrite.retry,
  ...waitForCancellation,
};

/**
 * Calls to the card network: slow (seconds) and flaky. Retries reuse the step's idempotency key,
 * so they are safe however many there are. They heartbeat, so a canceled call is aborted within
 * the heartbeat throttle (4/5 of the heartbeat timeout).
 */
export const cardNetworkCall: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  heartbeatTimeout: '5 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', nonRetryableErrorTypes: NON_RETRYABLE_FAILURES },
  ...waitForCancellation,
};

/** Calls to banks: like the card network, slow and flaky, and safe to retry with the same key. */
export const bankCall: ActivityOptions = cardNetworkCall;

/**
 * Undo steps. A few quick retries, then the workflow's own loop takes over (Saga.compensate in
 * saga.ts): it makes a stubborn failure visible and keeps retrying with a growing pause,
 * because an undo must eventually happen. No heartbeat timeout: most undos are database writes
 * that never heartbeat, and one that outlived it would fail for nothing (a slow database is
 * exactly when undos take long).
 */
export const compensation: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 5 },
  ...waitForCancellation,
};
