// Business ids and the keys derived from them: unambiguous across merchants, one length whatever the
// Idempotency-Key, and the same whichever side (API or workflow) computes them.
import { createHash, randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IDEMPOTENCY_KEY_MAX_LENGTH, cancellationRefundId, checkoutId, isIdempotencyKey, isMerchantId, payoutId, refundId, stepKey, topupId } from '../domain/index.js';
import { sha256Hex } from '../domain/sha256.js';

describe('SHA-256 in plain TypeScript', () => {
  it('agrees with node:crypto on the standard vectors and on arbitrary text', () => {
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 300 }), (text) => {
        expect(sha256Hex(text)).toBe(createHash('sha256').update(text, 'utf8').digest('hex'));
      }),
      { numRuns: 500 },
    );
    // Lengths around the 55/56/64-byte padding boundaries.
    for (let n = 50; n < 130; n++) expect(sha256Hex('x'.repeat(n))).toBe(createHash('sha256').update('x'.repeat(n)).digest('hex'));
  });
});

describe('business ids', () => {
  it('never collide across merchants, even where the old dash-joined ids did', () => {
    // Old: checkout-demo-rt-X for both.
    expect(checkoutId('demo', 'rt-X')).not.toBe(checkoutId('demo-rt', 'X'));
    expect(topupId('demo', 'rt-X')).not.toBe(topupId('demo-rt', 'X'));
    expect(payoutId('demo', 'rt-X')).not.toBe(payoutId('demo-rt', 'X'));
    // A checkout, a top-up and a payout with the same merchant and key are three resources.
    expect(new Set([checkoutId('m', 'k').slice(3), topupId('m', 'k').slice(3), payoutId('m', 'k').slice(3)]).size).toBe(3);
  });

  it('are stable and one length for every accepted key, so every derived key fits 255 characters', () => {
    const key = '~'.repeat(255);
    expect(isIdempotencyKey(key)).toBe(true);
    expect(checkoutId('demo', key)).toBe(checkoutId('demo', key));
    for (const id of [checkoutId('demo', key), topupId('demo', key), payoutId('demo', key), checkoutId('demo', 'a')]) {
      expect(id).toMatch(/^(co|tu|po)_[0-9a-f]{32}$/);
    }
    const refund = refundId(checkoutId('demo', key), key);
    expect(refund).toMatch(/^re_[0-9a-f]{32}$/);
    expect(stepKey(checkoutId('demo', key), 'refund', refund).length).toBeLessThanOrEqual(255);
  });

  it('derive refund ids exactly as before, so a retry after a deploy finds the same refund', () => {
    const checkout = `checkout-demo-${randomUUID()}`;
    const key = randomUUID();
    expect(refundId(checkout, key)).toBe(`re_${createHash('sha256').update(`${checkout}:${key}`).digest('hex').slice(0, 32)}`);
  });
});

describe('what ids and keys may contain', () => {
  it('Idempotency-Keys: 1 to 255 visible ASCII characters', () => {
    for (const ok of ['a', randomUUID(), 'order-0001', 'a:b/c?d=e#f', '~'.repeat(255)]) expect(isIdempotencyKey(ok), ok).toBe(true);
    for (const bad of ['', 'has space', 'tab\there', 'clé', 'line\nbreak', 'x'.repeat(256)]) expect(isIdempotencyKey(bad), bad).toBe(false);
  });

  it('merchant ids: 1 to 64 letters, digits, "_" or "-" (they name ledger accounts split on ":")', () => {
    for (const ok of ['demo', 'demo-rt', 'm_1', 'A'.repeat(64)]) expect(isMerchantId(ok), ok).toBe(true);
    for (const bad of ['', 'a:b', 'a b', 'a\nb', 'é', 'x'.repeat(65)]) expect(isMerchantId(bad), bad).toBe(false);
  });
});

describe('derived ids and step keys', () => {
  it('an operator cancellation refunds under an id no merchant request can name', () => {
    const checkout = checkoutId('demo', 'k');
    expect(cancellationRefundId(checkout)).toBe(refundId(checkout, 'operator cancellation'));
    expect(isIdempotencyKey('operator cancellation')).toBe(false);
  });

  it('step keys are <business id>:<step>[:<sub id>]', () => {
    expect(stepKey('co_1', 'capture')).toBe('co_1:capture');
    expect(stepKey('co_1', 'refund', 're_1')).toBe('co_1:refund:re_1');
    expect(IDEMPOTENCY_KEY_MAX_LENGTH).toBe(255);
  });

  it('ids are the documented hash of kind, merchant and key, so API and workflow derive the same one', () => {
    const expected = (prefix: string, kind: string) => `${prefix}_${createHash('sha256').update(`${kind}\nm1\nk1`).digest('hex').slice(0, 32)}`;
    expect(checkoutId('m1', 'k1')).toBe(expected('co', 'checkout'));
    expect(topupId('m1', 'k1')).toBe(expected('tu', 'topup'));
    expect(payoutId('m1', 'k1')).toBe(expected('po', 'payout'));
  });
});

describe('SHA-256 at the UTF-8 encoding boundaries', () => {
  it('encodes the first and last code point of each UTF-8 length as node:crypto does', () => {
    for (const text of ['\u007f', '\u0080', '\u07ff', '\u0800', '\uffff', '\u{10000}', '\u{10ffff}', 'a\u0080\u0800\u{10000}z']) {
      expect(sha256Hex(text), JSON.stringify(text)).toBe(createHash('sha256').update(text, 'utf8').digest('hex'));
    }
  });
});
