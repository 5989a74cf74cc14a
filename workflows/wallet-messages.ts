// Messages of the top-up and payout workflows, importable by the API without workflow code.
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { PayoutSnapshot, TopupSnapshot } from '../domain/index.js';

/** Returns once the top-up's row exists (sent with update-with-start by `POST /v1/topups`). */
export const topupAcceptedUpdate = defineUpdate<TopupSnapshot>('topupAccepted');
export const topupStatusQuery = defineQuery<TopupSnapshot>('topupStatus');

/**
 * Returns once the payout's amount is held on the wallet (`pending`), or the payout failed because
 * the wallet's available balance is too small (`failed`, code `insufficient_funds`, nothing held).
 */
export const payoutAcceptedUpdate = defineUpdate<PayoutSnapshot>('payoutAccepted');

/** Cancels a payout that has not been sent to the bank yet: the hold is voided, the money is back. */
export const payoutCancelUpdate = defineUpdate<PayoutSnapshot, []>('payoutCancel');
export const payoutStatusQuery = defineQuery<PayoutSnapshot>('payoutStatus');
