import type { Money } from './money.js';

/** Task queue shared by the payment workers. */
export const PAYMENTS_TASK_QUEUE = 'payments';

/**
 * The checkout's id and workflow id. The merchant's idempotency key is part of it, so a retried
 * `POST /v1/checkouts` can only ever reach the same execution and never charge twice.
 */
export function checkoutId(merchantId: string, idempotencyKey: string): string {
  return `checkout-${merchantId}-${idempotencyKey}`;
}

/**
 * Statuses, in the order a checkout moves through them (see the README's state machine):
 * - `pending`: created, stock not yet reserved.
 * - `sold_out`: terminal; not enough stock, nothing held, nothing charged.
 * - `processing`: stock held, the card is being authorized.
 * - `authorized`: the card network approved; the order is being confirmed and captured.
 * - `captured`: terminal for this version; money taken, stock sold.
 * - `failed`: terminal; declined or failed, every hold released, nothing charged.
 */
export const CHECKOUT_STATUSES = ['pending', 'sold_out', 'processing', 'authorized', 'captured', 'failed'] as const;
export type CheckoutStatus = (typeof CHECKOUT_STATUSES)[number];

export const TERMINAL_CHECKOUT_STATUSES: readonly CheckoutStatus[] = ['sold_out', 'captured', 'failed'];

export interface LineItem {
  sku: string;
  quantity: number;
}

export interface CardPayment {
  method: 'card';
  /** Card-network token (`tok_visa`, ...). Never logged. */
  token: string;
}

export type PaymentMethod = CardPayment;

export interface CheckoutInput {
  checkoutId: string;
  merchantId: string;
  customerId: string;
  idempotencyKey: string;
  items: LineItem[];
  payment: PaymentMethod;
}

/** What a buyer learns synchronously: whether the stock is theirs, and what it costs. */
export interface CheckoutSnapshot {
  checkoutId: string;
  status: CheckoutStatus;
  amount: Money;
  failure?: { code: string; message: string };
}

/** Idempotency key for one step of one checkout at an external system (convention 6). */
export function stepKey(checkoutId: string, step: 'authorize' | 'capture' | 'void' | 'refund'): string {
  return `${checkoutId}:${step}`;
}
