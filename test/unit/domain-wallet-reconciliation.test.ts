// Top-up, payout and reconciliation inputs as their workflows check them, and reconciliation's
// naming rules, without a server.
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_RECONCILIATION_OLDER_THAN_MS,
  MAX_RECONCILIATION_OLDER_THAN_MS,
  MAX_RECONCILIATION_PAGES_PER_RUN,
  MAX_RECONCILIATION_PAGE_SIZE,
  MERCHANT_RECONCILIATION_CHECKS,
  RECONCILIATION_CHECKS,
  merchantOfScope,
  payoutInputProblem,
  reconciliationChecksOf,
  reconciliationId,
  reconciliationInputProblem,
  reconciliationScope,
  topupInputProblem,
} from '../../domain/index.js';

const parties = { merchantId: 'demo', customerId: 'cus_1', idempotencyKey: 'k1' };
const topup = { topupId: 'tu_1', ...parties, amount: { amount: '1000', currency: 'JPY' }, payment: { method: 'card', token: 'tok_visa' } };
const payout = { payoutId: 'po_1', ...parties, amount: { amount: '1000', currency: 'JPY' }, bankAccount: { bankCode: '0001', accountNumber: '1234567' }, scheduledAt: '2026-11-29T09:00:00+09:00' };

describe('top-up input', () => {
  it('accepts what the API builds', () => {
    expect(topupInputProblem(topup)).toBeUndefined();
    expect(topupInputProblem({ ...topup, topupId: 'x'.repeat(1000) })).toBeUndefined();
  });

  it('names the first field that is wrong', () => {
    const money = 'must be { amount, currency }: an integer string of minor units and an ISO 4217 code';
    const cases: Array<[unknown, string, string]> = [
      ['topup', 'input', 'must be an object'],
      [{ ...topup, topupId: '' }, 'topupId', 'must be a string of 1 to 1000 characters'],
      [{ ...topup, topupId: 'x'.repeat(1001) }, 'topupId', 'must be a string of 1 to 1000 characters'],
      [{ ...topup, merchantId: 1 }, 'merchantId', 'must be a string of 1 to 255 characters'],
      [{ ...topup, customerId: '' }, 'customerId', 'must be a string of 1 to 255 characters'],
      [{ ...topup, idempotencyKey: 'k'.repeat(256) }, 'idempotencyKey', 'must be a string of 1 to 255 characters'],
      [{ ...topup, amount: '1000' }, 'amount', money],
      [{ ...topup, amount: { amount: 1000, currency: 'JPY' } }, 'amount', money],
      [{ ...topup, amount: { amount: '10.5', currency: 'JPY' } }, 'amount', money],
      [{ ...topup, amount: { amount: '1000', currency: 'jpy' } }, 'amount', money],
      [{ ...topup, amount: { amount: '1000' } }, 'amount', money],
      [{ ...topup, amount: { amount: '1000', currency: ['JPY'] } }, 'amount', money],
      [{ ...topup, amount: { amount: ['1000'], currency: 'JPY' } }, 'amount', money],
      [{ ...topup, amount: null }, 'amount', money],
      [{ ...topup, payment: { method: 'wallet' } }, 'payment', 'must be { method: "card", token }'],
      [{ ...topup, payment: { method: 'card', token: '' } }, 'payment', 'must be { method: "card", token }'],
      [{ ...topup, payment: 'tok_visa' }, 'payment', 'must be { method: "card", token }'],
      [{ ...topup, payment: null }, 'payment', 'must be { method: "card", token }'],
      [{ ...topup, payment: { method: 'wallet', token: 'tok_visa' } }, 'payment', 'must be { method: "card", token }'],
    ];
    for (const [input, param, message] of cases) expect(topupInputProblem(input), JSON.stringify(input)).toEqual({ param, message });
  });
});

describe('payout input', () => {
  it('accepts what the API builds', () => {
    expect(payoutInputProblem(payout)).toBeUndefined();
  });

  it('names the first field that is wrong', () => {
    const cases: Array<[unknown, string, string]> = [
      [undefined, 'input', 'must be an object'],
      [{ ...payout, payoutId: '' }, 'payoutId', 'must be a string of 1 to 1000 characters'],
      [{ ...payout, topupId: 'tu_1', payoutId: undefined }, 'payoutId', 'must be a string of 1 to 1000 characters'],
      [{ ...payout, amount: { amount: '-1', currency: 'JPY' } }, 'amount', 'must be { amount, currency }: an integer string of minor units and an ISO 4217 code'],
      [{ ...payout, bankAccount: undefined }, 'bankAccount', 'must be { bankCode, accountNumber }'],
      [{ ...payout, bankAccount: { bankCode: '0001' } }, 'bankAccount', 'must be { bankCode, accountNumber }'],
      [{ ...payout, bankAccount: { bankCode: '', accountNumber: '1234567' } }, 'bankAccount', 'must be { bankCode, accountNumber }'],
      [{ ...payout, scheduledAt: '2026-11-29T09:00:00' }, 'scheduledAt', 'must be an ISO 8601 date-time with a time zone'],
      [{ ...payout, scheduledAt: undefined }, 'scheduledAt', 'must be an ISO 8601 date-time with a time zone'],
    ];
    for (const [input, param, message] of cases) expect(payoutInputProblem(input), JSON.stringify(input)).toEqual({ param, message });
  });
});

describe('reconciliation', () => {
  it('runs are named reconciliation-<suffix>, and a scope is the platform or one merchant', () => {
    expect(reconciliationId('2026-11-29')).toBe('reconciliation-2026-11-29');
    expect(reconciliationScope(undefined)).toBe('platform');
    expect(reconciliationScope('demo')).toBe('merchant:demo');
    expect(merchantOfScope('merchant:demo')).toBe('demo');
    expect(merchantOfScope('platform')).toBeUndefined();
    // Only the prefix counts.
    expect(merchantOfScope('x-merchant:demo')).toBeUndefined();
  });

  it('a merchant run makes every check but the ledger one, in the same order', () => {
    expect(RECONCILIATION_CHECKS).toEqual(['authorizations', 'reservations', 'topups', 'payout_holds', 'captures', 'payouts', 'refunds', 'ledger']);
    expect(MERCHANT_RECONCILIATION_CHECKS).toEqual(['authorizations', 'reservations', 'topups', 'payout_holds', 'captures', 'payouts', 'refunds']);
    expect(reconciliationChecksOf({})).toBe(RECONCILIATION_CHECKS);
    expect(reconciliationChecksOf({ merchantId: 'demo' })).toBe(MERCHANT_RECONCILIATION_CHECKS);
  });

  it('limits: records younger than 15 minutes are in flight; waits up to 366 days; pages of up to 1000, 10000 per run', () => {
    expect(DEFAULT_RECONCILIATION_OLDER_THAN_MS).toBe(900_000);
    expect(MAX_RECONCILIATION_OLDER_THAN_MS).toBe(366 * 86_400_000);
    expect(MAX_RECONCILIATION_PAGE_SIZE).toBe(1000);
    expect(MAX_RECONCILIATION_PAGES_PER_RUN).toBe(10_000);
  });

  it('accepts no input, an empty one, and every field at its limits', () => {
    expect(reconciliationInputProblem(undefined)).toBeUndefined();
    expect(reconciliationInputProblem({})).toBeUndefined();
    expect(
      reconciliationInputProblem({ since: '2026-11-01T00:00:00Z', until: '2026-11-01T00:00:01Z', olderThanMs: 0, pageSize: 1, pagesPerRun: 1, merchantId: 'demo' }),
    ).toBeUndefined();
    expect(reconciliationInputProblem({ olderThanMs: MAX_RECONCILIATION_OLDER_THAN_MS, pageSize: 1000, pagesPerRun: 10_000 })).toBeUndefined();
    expect(reconciliationInputProblem({ since: '2026-11-01T00:00:00Z' })).toBeUndefined();
    expect(reconciliationInputProblem({ until: '2026-11-01T00:00:00Z' })).toBeUndefined();
  });

  it('names the first field that is wrong', () => {
    const timestamp = 'must be an ISO 8601 date-time with a time zone, such as 2026-11-29T00:00:00Z';
    const cases: Array<[unknown, string, string]> = [
      [null, 'input', 'must be an object'],
      ['2026-11-29', 'input', 'must be an object'],
      [{ since: '2026-11-01' }, 'since', timestamp],
      [{ since: 1 }, 'since', timestamp],
      [{ until: '2026-02-30T00:00:00Z' }, 'until', timestamp],
      [{ since: '2026-11-02T00:00:00Z', until: '2026-11-01T00:00:00Z' }, 'until', 'must be later than since'],
      [{ since: '2026-11-01T09:00:00+09:00', until: '2026-11-01T00:00:00Z' }, 'until', 'must be later than since'],
      [{ olderThanMs: -1 }, 'olderThanMs', `must be an integer from 0 to ${MAX_RECONCILIATION_OLDER_THAN_MS} (366 days)`],
      [{ olderThanMs: MAX_RECONCILIATION_OLDER_THAN_MS + 1 }, 'olderThanMs', `must be an integer from 0 to ${MAX_RECONCILIATION_OLDER_THAN_MS} (366 days)`],
      [{ pageSize: 0 }, 'pageSize', 'must be an integer from 1 to 1000'],
      [{ pageSize: 1001 }, 'pageSize', 'must be an integer from 1 to 1000'],
      [{ pagesPerRun: 0 }, 'pagesPerRun', 'must be an integer from 1 to 10000'],
      [{ pagesPerRun: 10_001 }, 'pagesPerRun', 'must be an integer from 1 to 10000'],
      [{ merchantId: 'a:b' }, 'merchantId', 'must be a merchant id: 1 to 64 letters, digits, _ or -'],
      [{ merchantId: 7 }, 'merchantId', 'must be a merchant id: 1 to 64 letters, digits, _ or -'],
      [{ merchantId: null }, 'merchantId', 'must be a merchant id: 1 to 64 letters, digits, _ or -'],
    ];
    for (const [input, param, message] of cases) expect(reconciliationInputProblem(input), JSON.stringify(input)).toEqual({ param, message });
  });
});
