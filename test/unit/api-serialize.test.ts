// Rows -> wire shapes (api/serialize.ts), without a database: amounts leave as exact decimal strings
// with the row's currency, times as ISO 8601, and failures only when there is one.
import { describe, expect, it } from 'vitest';
import {
  checkoutResource,
  payoutResource,
  productResource,
  refundFromSnapshot,
  refundResource,
  settingsResource,
  topupResource,
  walletResource,
  type CheckoutRow,
} from '../../api/serialize.js';
import type { Payout, Product, Refund, Topup } from '../../generated/prisma/client.js';

const t0 = new Date('2026-11-29T01:02:03.004Z');
const t1 = new Date('2026-11-30T05:06:07.008Z');
const BIG = 2n ** 53n + 1n;

const refundRow = (over: Partial<Refund> = {}): Refund =>
  ({ id: 're_1', checkoutId: 'co_1', amount: 300n, currency: 'JPY', status: 'succeeded', failureCode: null, createdAt: t1, ...over }) as Refund;

const checkoutRow = (over: Partial<CheckoutRow> = {}): CheckoutRow =>
  ({
    id: 'co_1',
    status: 'captured',
    amount: BIG,
    currency: 'JPY',
    captureMethod: 'manual',
    amountCaptured: 1500n,
    amountRefunded: 300n,
    customerId: 'cus_1',
    createdAt: t0,
    settledAt: null,
    failureCode: null,
    failureMessage: null,
    items: [
      { sku: 'tee', quantity: 2, unitAmount: 500n },
      { sku: 'cap', quantity: 1, unitAmount: 500n },
    ],
    ...over,
  }) as unknown as CheckoutRow;

describe('serialized resources', () => {
  it('a product: price with its currency, stock counters, creation time', () => {
    const row = { sku: 'tee', name: 'Tee', priceAmount: 1500n, currency: 'JPY', available: 5, reserved: 2, sold: 3, createdAt: t0 } as unknown as Product;
    expect(productResource(row)).toEqual({
      sku: 'tee',
      name: 'Tee',
      price: { amount: '1500', currency: 'JPY' },
      stock: { available: 5, reserved: 2, sold: 3 },
      createdAt: '2026-11-29T01:02:03.004Z',
    });
  });

  it('a checkout: every amount in its currency, exact beyond 2^53; no failure, attempts or refunds unless the row has them', () => {
    const resource = checkoutResource(checkoutRow());
    expect(resource).toEqual({
      id: 'co_1',
      status: 'captured',
      amount: { amount: '9007199254740993', currency: 'JPY' },
      captureMethod: 'manual',
      amountCaptured: { amount: '1500', currency: 'JPY' },
      amountRefunded: { amount: '300', currency: 'JPY' },
      items: [
        { sku: 'tee', quantity: 2, unitAmount: { amount: '500', currency: 'JPY' } },
        { sku: 'cap', quantity: 1, unitAmount: { amount: '500', currency: 'JPY' } },
      ],
      customerId: 'cus_1',
      createdAt: '2026-11-29T01:02:03.004Z',
      settledAt: null,
    });
    expect(Object.keys(resource)).not.toContain('failure');
    expect(Object.keys(resource)).not.toContain('paymentAttempts');
    expect(Object.keys(resource)).not.toContain('refunds');
  });

  it('a checkout with its failure, settlement time, payment attempts and refunds (which do not repeat its id)', () => {
    const resource = checkoutResource(
      checkoutRow({
        status: 'failed',
        settledAt: t1,
        failureCode: 'card_declined',
        failureMessage: 'The card was declined.',
        paymentAttempts: [{ operation: 'authorize', status: 'declined', amount: 1500n, currency: 'JPY', declineCode: 'insufficient_funds', createdAt: t0 }],
        refunds: [refundRow()],
      } as Partial<CheckoutRow>),
    );
    expect(resource).toMatchObject({
      settledAt: '2026-11-30T05:06:07.008Z',
      failure: { code: 'card_declined', message: 'The card was declined.' },
      paymentAttempts: [{ operation: 'authorize', status: 'declined', amount: { amount: '1500', currency: 'JPY' }, declineCode: 'insufficient_funds', createdAt: '2026-11-29T01:02:03.004Z' }],
      refunds: [{ id: 're_1', amount: { amount: '300', currency: 'JPY' }, status: 'succeeded', failureCode: null, createdAt: '2026-11-30T05:06:07.008Z' }],
    });
    expect(resource.refunds?.[0]).not.toHaveProperty('checkoutId');
    // A failure code without a message still shows a failure.
    expect(checkoutResource(checkoutRow({ failureCode: 'expired', failureMessage: null })).failure).toEqual({ code: 'expired', message: '' });
  });

  it('a refund, and one known only from the workflow (timed at the answer)', () => {
    expect(refundResource(refundRow({ status: 'failed', failureCode: 'card_expired' }))).toEqual({
      id: 're_1',
      checkoutId: 'co_1',
      amount: { amount: '300', currency: 'JPY' },
      status: 'failed',
      failureCode: 'card_expired',
      createdAt: '2026-11-30T05:06:07.008Z',
    });
    expect(refundFromSnapshot('co_1', { refundId: 're_2', amount: { amount: '5', currency: 'USD' }, status: 'pending' }, t0)).toEqual({
      id: 're_2',
      checkoutId: 'co_1',
      amount: { amount: '5', currency: 'USD' },
      status: 'pending',
      failureCode: null,
      createdAt: '2026-11-29T01:02:03.004Z',
    });
    expect(refundFromSnapshot('co_1', { refundId: 're_3', amount: { amount: '5', currency: 'USD' }, status: 'failed', failureCode: 'x' }, t0).failureCode).toBe('x');
  });

  it('settings show only the checkout timings', () => {
    const merchant = { id: 'demo', name: 'Demo', reservationTimeoutSeconds: 1, actionTimeoutSeconds: 2, authorizationTtlSeconds: 3, settlementDelaySeconds: 4, refundWindowSeconds: 5 };
    expect(settingsResource(merchant)).toEqual({ reservationTimeoutSeconds: 1, actionTimeoutSeconds: 2, authorizationTtlSeconds: 3, settlementDelaySeconds: 4, refundWindowSeconds: 5 });
  });

  it('a top-up, with its failure only when it has one', () => {
    const row = { id: 'tu_1', customerId: 'cus_1', amount: 1000n, currency: 'JPY', status: 'succeeded', failureCode: null, failureMessage: null, createdAt: t0 } as unknown as Topup;
    expect(topupResource(row)).toEqual({ id: 'tu_1', customerId: 'cus_1', amount: { amount: '1000', currency: 'JPY' }, status: 'succeeded', createdAt: '2026-11-29T01:02:03.004Z' });
    expect(topupResource({ ...row, status: 'failed', failureCode: 'card_declined', failureMessage: 'Declined' })).toMatchObject({ status: 'failed', failure: { code: 'card_declined', message: 'Declined' } });
    expect(topupResource({ ...row, status: 'failed', failureCode: 'card_declined', failureMessage: null }).failure).toEqual({ code: 'card_declined', message: '' });
  });

  it('a payout, with its bank account and schedule', () => {
    const row = {
      id: 'po_1',
      customerId: 'cus_1',
      amount: 700n,
      currency: 'JPY',
      bankCode: '0001',
      accountNumber: '1234567',
      scheduledAt: t1,
      status: 'pending',
      failureCode: null,
      failureMessage: null,
      createdAt: t0,
    } as unknown as Payout;
    expect(payoutResource(row)).toEqual({
      id: 'po_1',
      customerId: 'cus_1',
      amount: { amount: '700', currency: 'JPY' },
      bankAccount: { bankCode: '0001', accountNumber: '1234567' },
      scheduledAt: '2026-11-30T05:06:07.008Z',
      status: 'pending',
      createdAt: '2026-11-29T01:02:03.004Z',
    });
    expect(payoutResource({ ...row, status: 'failed', failureCode: 'account_closed', failureMessage: 'Closed' }).failure).toEqual({ code: 'account_closed', message: 'Closed' });
  });

  it('a wallet: available and held balances in the asked currency', () => {
    expect(walletResource('cus_1', 'JPY', { available: BIG, held: 0n })).toEqual({
      customerId: 'cus_1',
      available: { amount: '9007199254740993', currency: 'JPY' },
      held: { amount: '0', currency: 'JPY' },
    });
  });
});
