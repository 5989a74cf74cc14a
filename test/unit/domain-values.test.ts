// The domain's value rules (money, input checks, failure and search-attribute names), tested without
// any server: what the API, the workers and the workflows all rely on being exactly so.
import { describe, expect, it } from 'vitest';
import {
  CustomerId,
  FailureType,
  MerchantId,
  NON_RETRYABLE_FAILURES,
  PaymentStatus,
  SEARCH_ATTRIBUTES,
  WorkflowFailureType,
  firstProblem,
  isAmountString,
  isCurrencyCode,
  isIntegerIn,
  isRecord,
  isText,
  isTimestamp,
  money,
  unless,
} from '../../domain/index.js';

describe('money', () => {
  it('amounts are decimal strings of 1 to 18 digits without leading zeros or signs', () => {
    for (const ok of ['0', '1', '10', '1999', '9'.repeat(18), '1' + '0'.repeat(17)]) expect(isAmountString(ok), ok).toBe(true);
    for (const bad of ['', '00', '01', '-1', '+1', '1.5', '1e3', ' 1', '1 ', 'a1', '1a', '9'.repeat(19), '1' + '0'.repeat(18), '１']) {
      expect(isAmountString(bad), bad).toBe(false);
    }
  });

  it('currencies are three upper-case letters', () => {
    for (const ok of ['JPY', 'USD', 'EUR']) expect(isCurrencyCode(ok), ok).toBe(true);
    for (const bad of ['', 'JP', 'JPYY', 'jpy', 'Jpy', 'J1Y', ' JPY', 'JPY ', 'xJPY', 'JPYx', 'J-Y']) expect(isCurrencyCode(bad), bad).toBe(false);
  });

  it('money() writes a bigint as its decimal string, beyond what a double holds exactly', () => {
    expect(money(1999n, 'JPY')).toEqual({ amount: '1999', currency: 'JPY' });
    expect(money(2n ** 53n + 1n, 'USD')).toEqual({ amount: '9007199254740993', currency: 'USD' });
  });

});

describe('input checks', () => {
  it('isRecord: plain objects only, not null, arrays or primitives', () => {
    expect(isRecord({})).toBe(true);
    expect(isRecord({ a: 1 })).toBe(true);
    for (const bad of [null, undefined, [], [1], 'object', 1, true]) expect(isRecord(bad), String(bad)).toBe(false);
  });

  it('isText: a string of 1 to max characters (255 unless told)', () => {
    expect(isText('a')).toBe(true);
    expect(isText('x'.repeat(255))).toBe(true);
    expect(isText('x'.repeat(256))).toBe(false);
    expect(isText('')).toBe(false);
    expect(isText(1)).toBe(false);
    expect(isText(['a'])).toBe(false);
    expect(isText('ab', 2)).toBe(true);
    expect(isText('abc', 2)).toBe(false);
    expect(isText('x'.repeat(1000), 1000)).toBe(true);
  });

  it('isIntegerIn: safe integers within both bounds, inclusive; no strings, NaN or Infinity', () => {
    expect(isIntegerIn(1, 1, 3)).toBe(true);
    expect(isIntegerIn(3, 1, 3)).toBe(true);
    expect(isIntegerIn(0, 1, 3)).toBe(false);
    expect(isIntegerIn(4, 1, 3)).toBe(false);
    expect(isIntegerIn(1.5, 1, 3)).toBe(false);
    expect(isIntegerIn('2', 1, 3)).toBe(false);
    expect(isIntegerIn(Number.NaN, 0, 3)).toBe(false);
    expect(isIntegerIn(Number.POSITIVE_INFINITY, 0, Number.POSITIVE_INFINITY)).toBe(false);
    expect(isIntegerIn(2 ** 53, 0, 2 ** 60)).toBe(false);
  });

  it('isTimestamp: ISO 8601 with a zone, naming a time and a day that exist', () => {
    for (const ok of [
      '2026-11-29T00:00:00Z',
      '2026-11-29T23:59:59Z',
      '2026-11-29T09:00+09:00',
      '2026-11-29T09:00:30-05:30',
      '2026-11-29T00:00:00.5Z',
      '2026-11-29T00:00:00.123456789Z',
      '2024-02-29T12:00:00Z',
      '2026-01-31T00:00:00Z',
      '2026-12-31T00:00:00Z',
      '0050-06-15T00:00:00Z',
      '9999-12-31T23:59:59Z',
    ]) {
      expect(isTimestamp(ok), ok).toBe(true);
    }
    for (const bad of [
      123,
      undefined,
      '',
      '2026-11-29',
      '2026-11-29T00:00:00', // no zone: a different instant on every server
      '2026-11-29T00:00:00z',
      '2026-11-29 00:00:00Z',
      ' 2026-11-29T00:00:00Z',
      '2026-11-29T00:00:00Z ',
      '2026-11-29T00:00:00.1234567891Z',
      '2026-11-29T00:00:00.Z',
      '+002026-11-29T00:00:00Z', // an expanded year Date.parse reads
      '2026-02-29T00:00:00Z', // not a leap year (Date.parse reads it as March 1st)
      '2026-02-30T00:00:00Z',
      '2026-04-31T00:00:00Z',
      '2026-11-00T00:00:00Z',
      '2026-00-10T00:00:00Z',
      '2026-13-01T00:00:00Z',
      '2026-11-29T24:00:00Z', // Date.parse reads it as the next midnight
      '2026-11-29T23:60:00Z',
      '2026-11-29T23:59:60Z',
      '2026-11-29T00:00:00+99:99',
      '2026-11-29T00:00:00+0900',
    ]) {
      expect(isTimestamp(bad), String(bad)).toBe(false);
    }
  });

  it('isTimestamp: only strings, not values that merely print as one', () => {
    expect(isTimestamp({ toString: () => '2026-11-29T00:00:00Z' })).toBe(false);
    expect(isTimestamp(['2026-11-29T00:00:00Z'])).toBe(false);
  });

  it('firstProblem runs the checks in order and stops at the first that reports', () => {
    const ran: string[] = [];
    const check = (name: string, problem?: boolean) => () => {
      ran.push(name);
      return problem ? { param: name, message: 'bad' } : undefined;
    };
    expect(firstProblem(check('a'), check('b', true), check('c', true))).toEqual({ param: 'b', message: 'bad' });
    expect(ran).toEqual(['a', 'b']);
    expect(firstProblem(check('d'), check('e'))).toBeUndefined();
    expect(firstProblem()).toBeUndefined();
  });

  it('unless reports the problem only when the condition is false', () => {
    expect(unless(true, 'p', 'm')).toBeUndefined();
    expect(unless(false, 'p', 'm')).toEqual({ param: 'p', message: 'm' });
  });
});

describe('failure types and search attributes', () => {
  it('every failure type is spelt as its name: workflows, the API and recorded histories match on these strings', () => {
    for (const [name, type] of Object.entries(FailureType)) expect(type).toBe(name);
    for (const [name, type] of Object.entries(WorkflowFailureType)) expect(type).toBe(name);
    expect(Object.keys(FailureType)).toHaveLength(11);
    expect(Object.keys(WorkflowFailureType)).toEqual(['InvalidWorkflowInput', 'InvalidReconciliationInput', 'ReconciliationAlreadyRunning']);
  });

  it('activities never retry a business failure, and workflow-only failures stay out of that list', () => {
    expect([...NON_RETRYABLE_FAILURES].sort()).toEqual(Object.values(FailureType).sort());
    for (const type of Object.values(WorkflowFailureType)) expect(NON_RETRYABLE_FAILURES).not.toContain(type);
  });

  it('the search attributes scripts/temporal.ts registers are keyword attributes with these names', () => {
    expect(SEARCH_ATTRIBUTES.map((k) => [k.name, k.type])).toEqual([
      ['MerchantId', 'KEYWORD'],
      ['CustomerId', 'KEYWORD'],
      ['PaymentStatus', 'KEYWORD'],
    ]);
    expect([MerchantId.name, CustomerId.name, PaymentStatus.name]).toEqual(['MerchantId', 'CustomerId', 'PaymentStatus']);
  });
});
