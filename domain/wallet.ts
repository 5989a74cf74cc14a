import type { Money } from './money.js';

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
