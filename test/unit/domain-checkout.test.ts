// A checkout's rules that need no workflow: the status its amounts give, how an order is priced,
// and which inputs a checkout workflow refuses (naming the field) before it does anything.
import { describe, expect, it } from 'vitest';
import {
  CAPTURED_STATUSES,
  CHECKOUT_STATUSES,
  CLOSED_BEFORE_CAPTURE,
  DEFAULT_CHECKOUT_TIMEOUTS,
  MAX_CHECKOUT_DELAY_MS,
  MAX_CHECKOUT_LINES,
  ORDER_NOT_PLACED,
  STOCK_RELEASED_CHANNEL,
  capturedStatus,
  checkoutInputProblem,
  priceOrder,
  stockReleasedPayload,
  type CheckoutInput,
} from '../../domain/index.js';

const DAY = 86_400_000;

describe('checkout statuses', () => {
  it('a captured checkout shows its amounts: captured, settled, partially refunded or refunded', () => {
    expect(capturedStatus(1000n, 0n, false)).toBe('captured');
    expect(capturedStatus(1000n, 0n, true)).toBe('settled');
    expect(capturedStatus(1000n, 1n, false)).toBe('partially_refunded');
    expect(capturedStatus(1000n, 999n, true)).toBe('partially_refunded');
    expect(capturedStatus(1000n, 1000n, false)).toBe('refunded');
    expect(capturedStatus(1000n, 1000n, true)).toBe('refunded');
    // Nothing captured and nothing refunded is not "refunded".
    expect(capturedStatus(0n, 0n, false)).toBe('captured');
  });

  it('captured and closed-before-capture statuses are disjoint parts of the status list', () => {
    expect(CHECKOUT_STATUSES).toEqual(['pending', 'sold_out', 'processing', 'requires_action', 'requires_capture', 'captured', 'settled', 'partially_refunded', 'refunded', 'canceled', 'expired', 'failed']);
    expect(CAPTURED_STATUSES).toEqual(['captured', 'settled', 'partially_refunded', 'refunded']);
    expect(CLOSED_BEFORE_CAPTURE).toEqual(['sold_out', 'canceled', 'expired', 'failed']);
  });

  it('default delays: 10 minutes of hold, 15 of 3-D Secure, 7 days to capture, 2 to settle, 180 for refunds', () => {
    expect(DEFAULT_CHECKOUT_TIMEOUTS).toEqual({
      reservationTimeoutMs: 600_000,
      actionTimeoutMs: 900_000,
      authorizationTtlMs: 7 * DAY,
      settlementDelayMs: 2 * DAY,
      refundWindowMs: 180 * DAY,
    });
  });

  it('stock releases are announced on one channel as merchant TAB sku', () => {
    expect(STOCK_RELEASED_CHANNEL).toBe('stock_released');
    expect(stockReleasedPayload('demo', 'tee-1')).toBe('demo\ttee-1');
    expect(ORDER_NOT_PLACED).toBe('not_placed');
  });
});

const valid = (): CheckoutInput => ({
  checkoutId: 'co_0123456789abcdef0123456789abcdef',
  merchantId: 'demo',
  customerId: 'cus_1',
  idempotencyKey: 'key-1',
  items: [{ sku: 'tee', quantity: 1 }],
  payment: { method: 'card', token: 'tok_visa' },
  captureMethod: 'automatic',
  timeouts: { ...DEFAULT_CHECKOUT_TIMEOUTS },
});

/** The input with `change` applied on top (a value of undefined deletes the field). */
function withChange(change: Record<string, unknown>): unknown {
  const input: Record<string, unknown> = { ...valid() };
  for (const [k, v] of Object.entries(change)) {
    if (v === undefined) delete input[k];
    else input[k] = v;
  }
  return input;
}

describe('checkout workflow input', () => {
  it('accepts what the API builds, card or wallet, automatic or manual, placed by the API or not', () => {
    expect(checkoutInputProblem(valid())).toBeUndefined();
    expect(checkoutInputProblem(withChange({ payment: { method: 'wallet' }, captureMethod: 'manual', placedBy: 'api' }))).toBeUndefined();
    expect(checkoutInputProblem(withChange({ checkoutId: 'x'.repeat(1000), items: Array.from({ length: 50 }, (_, i) => ({ sku: `s${i}`, quantity: Number.MAX_SAFE_INTEGER })) }))).toBeUndefined();
    expect(checkoutInputProblem(withChange({ timeouts: { reservationTimeoutMs: 0, actionTimeoutMs: 0, authorizationTtlMs: MAX_CHECKOUT_DELAY_MS, settlementDelayMs: 0, refundWindowMs: 0 } }))).toBeUndefined();
  });

  it('refuses a non-object input', () => {
    for (const bad of [undefined, null, 'checkout', [valid()]]) expect(checkoutInputProblem(bad)).toEqual({ param: 'input', message: 'must be an object' });
  });

  it('names the first field that is wrong, with the rule it breaks', () => {
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ checkoutId: '' }, 'checkoutId', 'must be a string of 1 to 1000 characters'],
      [{ checkoutId: 'x'.repeat(1001) }, 'checkoutId', 'must be a string of 1 to 1000 characters'],
      [{ merchantId: undefined }, 'merchantId', 'must be a string of 1 to 255 characters'],
      [{ merchantId: 'm'.repeat(256) }, 'merchantId', 'must be a string of 1 to 255 characters'],
      [{ customerId: 7 }, 'customerId', 'must be a string of 1 to 255 characters'],
      [{ idempotencyKey: '' }, 'idempotencyKey', 'must be a string of 1 to 255 characters'],
      [{ items: [] }, 'items', 'must be an array of 1 to 50 lines'],
      [{ items: { 0: { sku: 'a', quantity: 1 } } }, 'items', 'must be an array of 1 to 50 lines'],
      [{ items: Array.from({ length: 51 }, (_, i) => ({ sku: `s${i}`, quantity: 1 })) }, 'items', 'must be an array of 1 to 50 lines'],
      [{ items: [{ sku: 'a', quantity: 1 }, { sku: 'b', quantity: 0 }] }, 'items.1', 'must be { sku, quantity } with a positive integer quantity'],
      [{ items: [{ sku: 'a', quantity: 1.5 }] }, 'items.0', 'must be { sku, quantity } with a positive integer quantity'],
      [{ items: [{ sku: '', quantity: 1 }] }, 'items.0', 'must be { sku, quantity } with a positive integer quantity'],
      [{ items: [null] }, 'items.0', 'must be { sku, quantity } with a positive integer quantity'],
      [{ payment: undefined }, 'payment', 'must be { method: "card", token } or { method: "wallet" }'],
      [{ payment: { method: 'card' } }, 'payment', 'must be { method: "card", token } or { method: "wallet" }'],
      [{ payment: { method: 'card', token: '' } }, 'payment', 'must be { method: "card", token } or { method: "wallet" }'],
      [{ payment: { method: 'bank', token: 't' } }, 'payment', 'must be { method: "card", token } or { method: "wallet" }'],
      [{ captureMethod: 'later' }, 'captureMethod', 'must be "automatic" or "manual"'],
      [{ timeouts: undefined }, 'timeouts', 'must be an object of delays in milliseconds'],
      [{ timeouts: [] }, 'timeouts', 'must be an object of delays in milliseconds'],
      [{ placedBy: 'worker' }, 'placedBy', 'must be "api" or absent'],
    ];
    for (const [change, param, message] of cases) expect(checkoutInputProblem(withChange(change)), JSON.stringify(change)).toEqual({ param, message });
  });

  it('checks every delay: an integer number of milliseconds from 0 to 400 days', () => {
    expect(MAX_CHECKOUT_DELAY_MS).toBe(400 * DAY);
    expect(MAX_CHECKOUT_LINES).toBe(50);
    for (const name of Object.keys(DEFAULT_CHECKOUT_TIMEOUTS)) {
      for (const bad of [-1, 1.5, '60000', undefined, MAX_CHECKOUT_DELAY_MS + 1]) {
        const timeouts = { ...DEFAULT_CHECKOUT_TIMEOUTS, [name]: bad };
        expect(checkoutInputProblem(withChange({ timeouts })), `${name}=${String(bad)}`).toEqual({ param: `timeouts.${name}`, message: `must be an integer from 0 to ${400 * DAY}` });
      }
    }
  });
});

describe('priceOrder', () => {
  const products = new Map([
    ['cap', { priceAmount: 1500n, currency: 'JPY' }],
    ['tee', { priceAmount: 3000n, currency: 'JPY' }],
    ['mug', { priceAmount: 1200n, currency: 'USD' }],
  ]);

  it("prices each line at its product's price, in the products' one currency", () => {
    expect(priceOrder([{ sku: 'cap', quantity: 2 }, { sku: 'tee', quantity: 1 }], products)).toEqual({
      lines: [
        { sku: 'cap', quantity: 2, unitAmount: 1500n },
        { sku: 'tee', quantity: 1, unitAmount: 3000n },
      ],
      total: 6000n,
      currency: 'JPY',
    });
    // Beyond what a double holds exactly.
    expect(priceOrder([{ sku: 'big', quantity: 3 }], new Map([['big', { priceAmount: 2n ** 53n + 1n, currency: 'USD' }]]))).toMatchObject({ total: 3n * (2n ** 53n + 1n) });
  });

  it('names the first line it cannot price, and why', () => {
    expect(priceOrder([{ sku: 'cap', quantity: 1 }, { sku: 'gone', quantity: 1 }], products)).toEqual({ problem: { code: 'product_not_found', index: 1, sku: 'gone' } });
    expect(priceOrder([{ sku: 'cap', quantity: 1 }, { sku: 'tee', quantity: 1 }, { sku: 'mug', quantity: 1 }], products)).toEqual({
      problem: { code: 'currency_mismatch', index: 2, sku: 'mug', currency: 'USD', earlierCurrency: 'JPY' },
    });
  });
});
