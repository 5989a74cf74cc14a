// Messages of the checkout workflow, importable by the API without pulling in workflow code.
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { CheckoutSnapshot } from '../domain/index.js';

/**
 * Returns once the checkout knows whether its stock is held (or is sold out, or failed before
 * that). The API sends it with update-with-start, so `POST /v1/checkouts` answers the buyer
 * synchronously in one round trip, and a repeated request attaches to the same execution.
 */
export const reservationUpdate = defineUpdate<CheckoutSnapshot>('reservation');

/** The checkout's current state as the workflow sees it. */
export const statusQuery = defineQuery<CheckoutSnapshot>('status');
