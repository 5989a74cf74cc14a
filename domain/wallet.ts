import type { Money } from './money.js';

/** Workflow ids (and resource ids) of the wallet flows, built from the merchant's idempotency key. */
export const topupId = (merchantId: string, idempotencyKey: string) => `topup-${merchantId}-${idempotencyKey}`;
export const payoutId = (merchantId: string, idempotencyKey: string) => `payout-${merchantId}-${idempotencyKey}`;

export type TopupStatus = 'processing' | 'succeeded' | 'failed';

export interface TopupInput {
  topupId: string;
  merchantId: string;
  customerId: string;
  idempotencyKey: string;
  amount: Money;
  payment: { method: 'card'; token: string };
}

export interface TopupSnapshot {
  topupId: string;
  status: TopupStatus;
  amount: Money;
  failure?: { code: string; message: string };
}

/** `pending`: held, waiting for scheduledAt; `processing`: at the bank; then paid | failed | canceled. */
export type PayoutStatus = 'pending' | 'processing' | 'paid' | 'failed' | 'canceled';

export interface PayoutInput {
  payoutId: string;
  merchantId: string;
  customerId: string;
  idempotencyKey: string;
  amount: Money;
  bankAccount: { bankCode: string; accountNumber: string };
  /** ISO time; the workflow sleeps until then on a durable timer. */
  scheduledAt: string;
}

export interface PayoutSnapshot {
  payoutId: string;
  status: PayoutStatus;
  amount: Money;
  scheduledAt: string;
  failure?: { code: string; message: string };
}
