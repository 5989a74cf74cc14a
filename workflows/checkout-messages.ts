// Messages of the checkout workflow, importable by the API without pulling in workflow code.
// Updates that do not fit the checkout's status are rejected by their validators with an
// ApplicationFailure of type InvalidCheckoutState or InvalidAmount (domain/errors.ts), before
// anything is written to history; the API answers those 409 and 400.
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { CheckoutSnapshot, RefundSnapshot } from '../domain/index.js';

/**
 * Returns once the checkout knows whether its stock is held (or is sold out, or failed before
 * that). Runs started with update-with-start before the API placed orders itself sent it so
 * `POST /v1/checkouts` answered in one round trip; it stays for their histories.
 */
export const reservationUpdate = defineUpdate<CheckoutSnapshot>('reservation');

/** Manual capture of a `requires_capture` checkout, optionally of less than was authorized. */
export const captureUpdate = defineUpdate<CheckoutSnapshot, [{ amount?: string }]>('capture');

/**
 * Cancels a checkout before capture: voids the authorization and releases the stock. Returns the
 * checkout once it has settled down, which is `canceled` unless a capture won the race.
 */
export const cancelUpdate = defineUpdate<CheckoutSnapshot, []>('cancel');

/** The customer's 3-D Secure outcome for a `requires_action` checkout. */
export const confirmUpdate = defineUpdate<CheckoutSnapshot, [{ result: 'succeeded' | 'failed' }]>('confirm');

/**
 * Refunds part or all of what was captured. `refundId` is chosen by the caller (the API derives
 * it from the request's Idempotency-Key) and is also the update id, so a retried request joins
 * the first one instead of refunding twice.
 */
export const refundUpdate = defineUpdate<RefundSnapshot, [{ refundId: string; amount?: string }]>('refund');

/** The checkout's current state as the workflow sees it. */
export const statusQuery = defineQuery<CheckoutSnapshot>('status');
