// Rows -> wire shapes. BigInt columns leave as decimal strings, since JSON numbers lose precision
// past 2^53 and money must never pass through a float; nothing here sees a float.
import type { Checkout, CheckoutItem, Merchant, PaymentAttempt, Payout, Product, Refund, Topup } from '../generated/prisma/client.js';
import {
  money,
  type CaptureMethod,
  type CheckoutStatus,
  type Money,
  type PayoutStatus,
  type RefundSnapshot,
  type RefundStatus,
  type TopupStatus,
} from '../domain/index.js';

export interface ProductResource {
  sku: string;
  name: string;
  price: Money;
  stock: { available: number; reserved: number; sold: number };
  createdAt: string;
}

export function productResource(p: Product): ProductResource {
  return {
    sku: p.sku,
    name: p.name,
    price: money(p.priceAmount, p.currency),
    stock: { available: p.available, reserved: p.reserved, sold: p.sold },
    createdAt: p.createdAt.toISOString(),
  };
}

export interface CheckoutResource {
  id: string;
  status: CheckoutStatus;
  amount: Money;
  captureMethod: CaptureMethod;
  amountCaptured: Money;
  amountRefunded: Money;
  items: Array<{ sku: string; quantity: number; unitAmount: Money }>;
  customerId: string;
  createdAt: string;
  /** When the settlement timer fired; null until then. */
  settledAt: string | null;
  failure?: { code: string; message: string };
  paymentAttempts?: Array<{ operation: string; status: string; amount: Money; declineCode: string | null; createdAt: string }>;
  refunds?: Array<Omit<RefundResource, 'checkoutId'>>;
}

export type CheckoutRow = Checkout & { items: CheckoutItem[]; paymentAttempts?: PaymentAttempt[]; refunds?: Refund[] };

export function checkoutResource(c: CheckoutRow): CheckoutResource {
  return {
    id: c.id,
    // The workflow is the only writer of this column and writes only CheckoutStatus values.
    status: c.status as CheckoutStatus,
    amount: money(c.amount, c.currency),
    // Only the workflow writes this column, from the request's validated captureMethod.
    captureMethod: c.captureMethod as CaptureMethod,
    amountCaptured: money(c.amountCaptured, c.currency),
    amountRefunded: money(c.amountRefunded, c.currency),
    items: c.items.map((i) => ({ sku: i.sku, quantity: i.quantity, unitAmount: money(i.unitAmount, c.currency) })),
    customerId: c.customerId,
    createdAt: c.createdAt.toISOString(),
    settledAt: c.settledAt?.toISOString() ?? null,
    ...(c.failureCode !== null ? { failure: { code: c.failureCode, message: c.failureMessage ?? '' } } : {}),
    ...(c.paymentAttempts
      ? {
          paymentAttempts: c.paymentAttempts.map((a) => ({
            operation: a.operation,
            status: a.status,
            amount: money(a.amount, a.currency),
            declineCode: a.declineCode,
            createdAt: a.createdAt.toISOString(),
          })),
        }
      : {}),
    // Nested under its checkout, a refund does not repeat the checkout's id.
    ...(c.refunds ? { refunds: c.refunds.map((r) => withoutCheckoutId(refundResource(r))) } : {}),
  };
}

export interface RefundResource {
  id: string;
  checkoutId: string;
  amount: Money;
  status: RefundStatus;
  failureCode: string | null;
  createdAt: string;
}

export function refundResource(r: Refund): RefundResource {
  return {
    id: r.id,
    checkoutId: r.checkoutId,
    amount: money(r.amount, r.currency),
    // Only the workflow writes this column, and only RefundStatus values.
    status: r.status as RefundStatus,
    failureCode: r.failureCode,
    createdAt: r.createdAt.toISOString(),
  };
}

function withoutCheckoutId({ checkoutId: _checkoutId, ...rest }: RefundResource): Omit<RefundResource, 'checkoutId'> {
  return rest;
}

/**
 * A refund the workflow reported but whose row cannot be read (it is written before the card
 * network is called, so this should not happen). `createdAt` is then the time of the answer.
 */
export function refundFromSnapshot(checkoutId: string, r: RefundSnapshot, now: Date): RefundResource {
  return {
    id: r.refundId,
    checkoutId,
    amount: r.amount,
    status: r.status,
    failureCode: r.failureCode ?? null,
    createdAt: now.toISOString(),
  };
}

export type MerchantSettings = Pick<
  Merchant,
  'reservationTimeoutSeconds' | 'actionTimeoutSeconds' | 'authorizationTtlSeconds' | 'settlementDelaySeconds' | 'refundWindowSeconds'
>;

/** The merchant's checkout timings, as `GET /v1/settings` shows them (and only those columns). */
export function settingsResource(m: MerchantSettings): MerchantSettings {
  return {
    reservationTimeoutSeconds: m.reservationTimeoutSeconds,
    actionTimeoutSeconds: m.actionTimeoutSeconds,
    authorizationTtlSeconds: m.authorizationTtlSeconds,
    settlementDelaySeconds: m.settlementDelaySeconds,
    refundWindowSeconds: m.refundWindowSeconds,
  };
}

/** A failure as the row stores it, shown only when there is one (as for checkouts). */
function failureOf(row: { failureCode: string | null; failureMessage: string | null }): { failure?: { code: string; message: string } } {
  return row.failureCode !== null ? { failure: { code: row.failureCode, message: row.failureMessage ?? '' } } : {};
}

export interface TopupResource {
  id: string;
  customerId: string;
  amount: Money;
  status: TopupStatus;
  failure?: { code: string; message: string };
  createdAt: string;
}

export function topupResource(t: Topup): TopupResource {
  return {
    id: t.id,
    customerId: t.customerId,
    amount: money(t.amount, t.currency),
    // Only the top-up workflow writes this column, and only TopupStatus values.
    status: t.status as TopupStatus,
    ...failureOf(t),
    createdAt: t.createdAt.toISOString(),
  };
}

export interface PayoutResource {
  id: string;
  customerId: string;
  amount: Money;
  bankAccount: { bankCode: string; accountNumber: string };
  scheduledAt: string;
  status: PayoutStatus;
  failure?: { code: string; message: string };
  createdAt: string;
}

export function payoutResource(p: Payout): PayoutResource {
  return {
    id: p.id,
    customerId: p.customerId,
    amount: money(p.amount, p.currency),
    bankAccount: { bankCode: p.bankCode, accountNumber: p.accountNumber },
    scheduledAt: p.scheduledAt.toISOString(),
    // Only the payout workflow writes this column, and only PayoutStatus values.
    status: p.status as PayoutStatus,
    ...failureOf(p),
    createdAt: p.createdAt.toISOString(),
  };
}

export interface WalletResource {
  customerId: string;
  available: Money;
  held: Money;
}

export function walletResource(customerId: string, currency: string, balance: { available: bigint; held: bigint }): WalletResource {
  return { customerId, available: money(balance.available, currency), held: money(balance.held, currency) };
}

/** `posted`: the money moved; `held`: reserved on the wallet, not yet moved; `voided`: the hold was released. */
export type WalletTransactionStatus = 'held' | 'posted' | 'voided';

export interface WalletTransactionResource {
  /** The ledger transfer's id (for a hold, the hold's). */
  id: string;
  /** Why the money moved: the transfer code (`topup`, `payout`, `checkout_wallet_payment`, ...). */
  type: string;
  /** From the wallet's side: `credit` adds to it, `debit` takes from it. */
  direction: 'credit' | 'debit';
  amount: Money;
  status: WalletTransactionStatus;
  /** The top-up, payout or checkout the money moved for. */
  reference: string | null;
  createdAt: string;
}
