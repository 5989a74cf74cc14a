// The API's request validation (api/validation.ts) without a server: what each body, query and header
// accepts, and the 400 a client gets otherwise (code, the field in `param`, and the rule it broke).
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ApiError } from '../../api/errors.js';
import {
  DEFAULT_WALLET_CURRENCY,
  MAX_SETTING_SECONDS,
  cancelBody,
  captureBody,
  confirmBody,
  createCheckoutBody,
  createPayoutBody,
  createProductBody,
  createTopupBody,
  createWebhookEndpointBody,
  idempotencyKeyOf,
  isEventId,
  isSku,
  isWalletCustomerId,
  isWebhookEndpointId,
  listEventsQuery,
  paramPath,
  parseBody,
  paymentMethodOf,
  refundBody,
  settingsPatchBody,
  toApiError,
  walletPath,
  walletQuery,
  walletTransactionsQuery,
} from '../../api/validation.js';
import { EVENT_TYPES } from '../../domain/index.js';

/** The 400 a client gets for `input`, as `code param: message`; or `ok` when it is accepted. */
function answer(schema: z.ZodType, input: unknown): string {
  try {
    parseBody(schema, input);
    return 'ok';
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    expect(err.status).toBe(400);
    expect(err.type).toBe('invalid_request_error');
    return `${err.code} ${String(err.param)}: ${err.message}`;
  }
}

const invalid = (param: string, rule: string) => `parameter_invalid ${param}: Invalid ${param}: ${rule}.`;
const missing = (param: string) => `parameter_missing ${param}: Missing required param: ${param}.`;
const unknown = (param: string) => `parameter_unknown ${param}: Received unknown parameter: ${param}.`;
const NOT_OBJECT = 'parameter_invalid undefined: The request body must be a JSON object.';

const CUSTOMER_RULE = 'must be a string of 1 to 100 characters without control characters';
const WALLET_RULE = 'must not start or end with ":" or contain "::", since it names the customer\'s wallet';
const SKU_RULE = 'must be 1 to 64 characters of A-Z, a-z, 0-9, ".", "_" or "-"';
const AMOUNT_RULE = 'must be a string of digits: an integer count of minor units, e.g. "1999"';
const CURRENCY_RULE = 'must be an ISO 4217 code in upper case, e.g. "JPY"';
const TOKEN_RULE = 'must be a card token of 1 to 200 visible ASCII characters';
const ITEMS_RULE = 'must be an array of 1 to 50 items';
const LIMIT_RULE = 'must be an integer from 1 to 100';

describe('Idempotency-Key header', () => {
  it('returns a valid key, and an absent optional one as undefined', () => {
    expect(idempotencyKeyOf('key-1', true)).toBe('key-1');
    expect(idempotencyKeyOf('key-1', false)).toBe('key-1');
    expect(idempotencyKeyOf(undefined, false)).toBeUndefined();
  });

  it('is missing when required and absent or empty; invalid when sent with bad characters or length', () => {
    const error = (value: string | undefined, required: boolean) => {
      try {
        idempotencyKeyOf(value, required as true);
      } catch (err) {
        return err instanceof ApiError ? { status: err.status, code: err.code, param: err.param, message: err.message } : err;
      }
      return 'accepted';
    };
    const missingKey = { status: 400, code: 'idempotency_key_missing', param: 'Idempotency-Key', message: 'Missing required header: Idempotency-Key.' };
    const invalidKey = {
      status: 400,
      code: 'idempotency_key_invalid',
      param: 'Idempotency-Key',
      message: 'Invalid Idempotency-Key: must be 1 to 255 visible ASCII characters (no spaces), e.g. a UUID.',
    };
    expect(error(undefined, true)).toEqual(missingKey);
    expect(error('', true)).toEqual(missingKey);
    // A client that sends an empty optional key meant to send one.
    expect(error('', false)).toEqual(invalidKey);
    expect(error('has space', true)).toEqual(invalidKey);
    expect(error('k'.repeat(256), false)).toEqual(invalidKey);
  });
});

describe('POST /v1/checkouts', () => {
  const base = { customerId: 'cus_1', items: [{ sku: 'tee', quantity: 1 }], payment: { method: 'card', token: 'tok_visa' } };

  it('accepts a card or wallet checkout and captures automatically unless told', () => {
    expect(parseBody(createCheckoutBody, base)).toEqual({ ...base, captureMethod: 'automatic' });
    expect(parseBody(createCheckoutBody, { ...base, captureMethod: 'automatic' })).toMatchObject({ captureMethod: 'automatic' });
    expect(parseBody(createCheckoutBody, { ...base, payment: { method: 'wallet' }, captureMethod: 'manual' })).toMatchObject({ payment: { method: 'wallet' }, captureMethod: 'manual' });
    const lines = Array.from({ length: 50 }, (_, i) => ({ sku: `sku-${i}`, quantity: 1000 }));
    expect(answer(createCheckoutBody, { ...base, items: lines, customerId: 'c'.repeat(100) })).toBe('ok');
    expect(answer(createCheckoutBody, { ...base, customerId: 'Zoë ☕ 𝄞', payment: { method: 'card', token: 't'.repeat(200) } })).toBe('ok');
  });

  it('refuses what is not a JSON object, and unknown fields', () => {
    for (const bad of [undefined, null, [], 'checkout', 1]) expect(answer(createCheckoutBody, bad)).toBe(NOT_OBJECT);
    expect(answer(createCheckoutBody, { ...base, coupon: 'x' })).toBe(unknown('coupon'));
    // JSON.parse makes `__proto__` an own field, as express.json does: refused like any other.
    expect(answer(createCheckoutBody, JSON.parse(`{"__proto__": {"x": 1}, ${JSON.stringify(base).slice(1)}`))).toBe(unknown('__proto__'));
  });

  it('customer ids: 1 to 100 characters, no control characters or lone surrogates', () => {
    expect(answer(createCheckoutBody, { ...base, customerId: undefined })).toBe(missing('customerId'));
    for (const bad of [7, '', 'c'.repeat(101), 'a\u0000b', 'a\u001fb', 'a\u007fb', 'a\nb', '\ud800', 'x\udc00']) {
      expect(answer(createCheckoutBody, { ...base, customerId: bad }), JSON.stringify(bad)).toBe(invalid('customerId', CUSTOMER_RULE));
    }
  });

  it('a wallet checkout needs a customer id that can name a wallet account', () => {
    for (const bad of ['cus:', ':cus', 'a::b']) {
      expect(answer(createCheckoutBody, { ...base, customerId: bad, payment: { method: 'wallet' } }), bad).toBe(invalid('customerId', WALLET_RULE));
      // A card checkout does not name a wallet.
      expect(answer(createCheckoutBody, { ...base, customerId: bad }), bad).toBe('ok');
    }
    expect(answer(createCheckoutBody, { ...base, customerId: 'a:b', payment: { method: 'wallet' } })).toBe('ok');
  });

  it('items: 1 to 50 lines, one per SKU, each with a quantity from 1 to 1000', () => {
    expect(answer(createCheckoutBody, { ...base, items: undefined })).toBe(missing('items'));
    expect(answer(createCheckoutBody, { ...base, items: 'tee' })).toBe(invalid('items', ITEMS_RULE));
    expect(answer(createCheckoutBody, { ...base, items: [] })).toBe(invalid('items', ITEMS_RULE));
    expect(answer(createCheckoutBody, { ...base, items: Array.from({ length: 51 }, (_, i) => ({ sku: `s${i}`, quantity: 1 })) })).toBe(invalid('items', ITEMS_RULE));
    expect(answer(createCheckoutBody, { ...base, items: [{ sku: 'a', quantity: 1 }, { sku: 'b', quantity: 1 }, { sku: 'a', quantity: 2 }] })).toBe(
      invalid('items[2].sku', 'duplicates an earlier item (a)'),
    );
    expect(answer(createCheckoutBody, { ...base, items: ['tee'] })).toBe(invalid('items[0]', 'must be an object { sku, quantity }'));
    expect(answer(createCheckoutBody, { ...base, items: [{ sku: 'tee' }] })).toBe(missing('items[0].quantity'));
    for (const bad of [0, 1001, 1.5, '1']) {
      expect(answer(createCheckoutBody, { ...base, items: [{ sku: 'tee', quantity: bad }] }), String(bad)).toBe(invalid('items[0].quantity', 'must be an integer from 1 to 1000'));
    }
    for (const bad of ['', 's'.repeat(65), 'a b', 'a/b', 'é', 5]) {
      expect(answer(createCheckoutBody, { ...base, items: [{ sku: bad, quantity: 1 }] }), String(bad)).toBe(invalid('items[0].sku', SKU_RULE));
    }
  });

  it('payment: a card with a token of visible ASCII, or a wallet', () => {
    const PAYMENT_RULE = 'must be an object { method, token } or { method: "wallet" }';
    expect(answer(createCheckoutBody, { ...base, payment: undefined })).toBe(missing('payment'));
    expect(answer(createCheckoutBody, { ...base, payment: 'card' })).toBe(invalid('payment', PAYMENT_RULE));
    expect(answer(createCheckoutBody, { ...base, payment: {} })).toBe(missing('payment.method'));
    expect(answer(createCheckoutBody, { ...base, payment: { method: 'cash' } })).toBe(invalid('payment.method', 'must be "card" or "wallet"'));
    expect(answer(createCheckoutBody, { ...base, payment: { method: 'card' } })).toBe(missing('payment.token'));
    for (const bad of ['', 't'.repeat(201), 'tok visa', 'tok\u00e9', 42]) {
      expect(answer(createCheckoutBody, { ...base, payment: { method: 'card', token: bad } }), String(bad)).toBe(invalid('payment.token', TOKEN_RULE));
    }
    expect(answer(createCheckoutBody, { ...base, payment: { method: 'wallet', token: 'tok_visa' } })).toBe(unknown('payment.token'));
    expect(answer(createCheckoutBody, { ...base, captureMethod: 'later' })).toBe(invalid('captureMethod', 'must be "automatic" or "manual"'));
  });

  it('hands the workflow the token of a card payment and nothing for a wallet', () => {
    expect(paymentMethodOf({ method: 'card', token: 'tok_visa' })).toEqual({ method: 'card', token: 'tok_visa' });
    expect(paymentMethodOf({ method: 'wallet' })).toEqual({ method: 'wallet' });
  });
});

describe('products, top-ups and payouts', () => {
  const product = { sku: 'tee-1', name: 'Tee', price: { amount: '1500', currency: 'JPY' }, stock: 0 };

  it('products: a name that is not blank, a positive price, stock within an INTEGER column', () => {
    expect(answer(createProductBody, product)).toBe('ok');
    expect(answer(createProductBody, { ...product, stock: 2_147_483_647, name: 'n'.repeat(200) })).toBe('ok');
    expect(answer(createProductBody, { ...product, stock: 2_147_483_648 })).toBe(invalid('stock', 'must be an integer from 0 to 2147483647'));
    expect(answer(createProductBody, { ...product, stock: -1 })).toBe(invalid('stock', 'must be an integer from 0 to 2147483647'));
    expect(answer(createProductBody, { ...product, name: '  ' })).toBe(invalid('name', 'must not be blank'));
    expect(answer(createProductBody, { ...product, name: 'n'.repeat(201) })).toBe(invalid('name', 'must be a string of 1 to 200 characters without control characters'));
    expect(answer(createProductBody, { ...product, price: { amount: '0', currency: 'JPY' } })).toBe(invalid('price.amount', 'must be an amount greater than zero'));
    expect(answer(createProductBody, { ...product, price: '1500' })).toBe(invalid('price', 'must be an object { amount, currency }'));
    expect(answer(createProductBody, { ...product, price: { amount: 1500, currency: 'JPY' } })).toBe(invalid('price.amount', AMOUNT_RULE));
    expect(answer(createProductBody, { ...product, price: { amount: '15.00', currency: 'JPY' } })).toBe(invalid('price.amount', AMOUNT_RULE));
    expect(answer(createProductBody, { ...product, price: { amount: '1500', currency: 'jpy' } })).toBe(invalid('price.currency', CURRENCY_RULE));
    expect(answer(createProductBody, { ...product, price: { amount: '1500', currency: 392 } })).toBe(invalid('price.currency', CURRENCY_RULE));
    expect(answer(createProductBody, { ...product, price: { amount: '1500', currency: 'JPY', tax: '0' } })).toBe(unknown('price.tax'));
  });

  const topup = { customerId: 'cus_1', amount: { amount: '1000', currency: 'JPY' }, payment: { method: 'card', token: 'tok_visa' } };

  it('top-ups: by card only, into a wallet the customer id can name', () => {
    expect(parseBody(createTopupBody, topup)).toEqual(topup);
    expect(answer(createTopupBody, { ...topup, customerId: 'cus:' })).toBe(invalid('customerId', WALLET_RULE));
    expect(answer(createTopupBody, { ...topup, payment: { method: 'wallet' } })).toBe(invalid('payment.method', 'must be "card"'));
    expect(answer(createTopupBody, { ...topup, payment: 'tok_visa' })).toBe(invalid('payment', 'must be an object { method, token }'));
    expect(answer(createTopupBody, { ...topup, amount: { amount: '0', currency: 'JPY' } })).toBe(invalid('amount.amount', 'must be an amount greater than zero'));
    expect(answer(createTopupBody, [])).toBe(NOT_OBJECT);
  });

  const payout = { customerId: 'cus_1', amount: { amount: '1000', currency: 'JPY' }, bankAccount: { bankCode: '0001', accountNumber: '1234567' } };

  it('payouts: to a 4-digit bank and 7-digit account, at a time with an offset when scheduled', () => {
    expect(answer(createPayoutBody, payout)).toBe('ok');
    expect(answer(createPayoutBody, { ...payout, scheduledAt: '2026-04-01T09:00:00+09:00' })).toBe('ok');
    const SCHEDULED_RULE = 'must be an ISO 8601 date-time with an offset, e.g. "2025-04-01T09:00:00+09:00"';
    expect(answer(createPayoutBody, { ...payout, scheduledAt: '2026-04-01T09:00:00' })).toBe(invalid('scheduledAt', SCHEDULED_RULE));
    for (const bad of ['123', '12345', 'abcd', 1234]) {
      expect(answer(createPayoutBody, { ...payout, bankAccount: { bankCode: bad, accountNumber: '1234567' } }), String(bad)).toBe(invalid('bankAccount.bankCode', 'must be 4 digits'));
    }
    for (const bad of ['123456', '12345678', '123456x', 1234567]) {
      expect(answer(createPayoutBody, { ...payout, bankAccount: { bankCode: '0001', accountNumber: bad } }), String(bad)).toBe(invalid('bankAccount.accountNumber', 'must be 7 digits'));
    }
    expect(answer(createPayoutBody, { ...payout, bankAccount: '0001-1234567' })).toBe(invalid('bankAccount', 'must be an object { bankCode, accountNumber }'));
    expect(answer(createPayoutBody, { ...payout, customerId: 'a::b' })).toBe(invalid('customerId', WALLET_RULE));
    expect(answer(createPayoutBody, 'payout')).toBe(NOT_OBJECT);
  });

  it('a wallet customer id has no empty part between colons', () => {
    for (const ok of ['cus', 'a:b', 'a:b:c']) expect(isWalletCustomerId(ok), ok).toBe(true);
    for (const bad of ['', ':', 'a:', ':a', 'a::b']) expect(isWalletCustomerId(bad), bad).toBe(false);
  });

  it('SKUs: 1 to 64 letters, digits, ".", "_" or "-"', () => {
    for (const ok of ['a', 'Tee-1.blue_XL', 's'.repeat(64)]) expect(isSku(ok), ok).toBe(true);
    for (const bad of ['', 's'.repeat(65), 'a b', 'a/b', 'a:b', ' a', 'a ']) expect(isSku(bad), bad).toBe(false);
  });
});

describe('wallet queries and paths', () => {
  it('reads the JPY wallet unless a currency is given', () => {
    expect(DEFAULT_WALLET_CURRENCY).toBe('JPY');
    expect(parseBody(walletQuery, {})).toEqual({ currency: 'JPY' });
    expect(parseBody(walletQuery, { currency: 'USD' })).toEqual({ currency: 'USD' });
    expect(answer(walletQuery, { currency: 'usd' })).toBe(invalid('currency', CURRENCY_RULE));
    expect(answer(walletQuery, { currency: ['USD', 'JPY'] })).toBe(invalid('currency', CURRENCY_RULE));
    expect(answer(walletQuery, { limit: '5' })).toBe(unknown('limit'));
  });

  it('transactions: 20 a page unless a limit from 1 to 100 is given, after an opaque cursor', () => {
    expect(parseBody(walletTransactionsQuery, {})).toEqual({ currency: 'JPY', limit: 20 });
    expect(parseBody(walletTransactionsQuery, { limit: '1', starting_after: 'c'.repeat(500) })).toEqual({ currency: 'JPY', limit: 1, starting_after: 'c'.repeat(500) });
    expect(parseBody(walletTransactionsQuery, { limit: '100' })).toMatchObject({ limit: 100 });
    for (const bad of ['0', '101', '999', '1000', '01', '-1', '1.5', 'ten', '', ['1', '2']]) {
      expect(answer(walletTransactionsQuery, { limit: bad }), String(bad)).toBe(invalid('limit', LIMIT_RULE));
    }
    for (const bad of ['', 'c'.repeat(501), ['a', 'b']]) {
      expect(answer(walletTransactionsQuery, { starting_after: bad }), String(bad)).toBe(invalid('starting_after', 'must be the nextCursor of an earlier page'));
    }
    expect(answer(walletTransactionsQuery, { cursor: 'x' })).toBe(unknown('cursor'));
  });

  it('a wallet path names a customer id that can name a wallet', () => {
    expect(parseBody(walletPath, { customerId: 'cus_1' })).toEqual({ customerId: 'cus_1' });
    expect(answer(walletPath, { customerId: 'cus:' })).toBe(invalid('customerId', WALLET_RULE));
  });
});

describe('checkout actions and settings', () => {
  it('capture and refund take an optional positive amount; cancel takes nothing; confirm a 3-D Secure result', () => {
    for (const schema of [captureBody, refundBody]) {
      expect(parseBody(schema, {})).toEqual({});
      expect(parseBody(schema, { amount: { amount: '500', currency: 'JPY' } })).toEqual({ amount: { amount: '500', currency: 'JPY' } });
      expect(answer(schema, { amount: { amount: '0', currency: 'JPY' } })).toBe(invalid('amount.amount', 'must be an amount greater than zero'));
      expect(answer(schema, { amount: '500' })).toBe(invalid('amount', 'must be an object { amount, currency }'));
      expect(answer(schema, [])).toBe(NOT_OBJECT);
    }
    expect(parseBody(cancelBody, {})).toEqual({});
    expect(answer(cancelBody, { reason: 'x' })).toBe(unknown('reason'));
    expect(parseBody(confirmBody, { result: 'succeeded' })).toEqual({ result: 'succeeded' });
    expect(parseBody(confirmBody, { result: 'failed' })).toEqual({ result: 'failed' });
    expect(answer(confirmBody, { result: 'maybe' })).toBe(invalid('result', 'must be "succeeded" or "failed"'));
    expect(answer(confirmBody, {})).toBe(missing('result'));
  });

  it('settings: waits of at least a second, settlement and refund windows from zero, at most 400 days', () => {
    expect(MAX_SETTING_SECONDS).toBe(400 * 86_400);
    expect(parseBody(settingsPatchBody, {})).toEqual({});
    expect(parseBody(settingsPatchBody, { settlementDelaySeconds: 0, refundWindowSeconds: 0, reservationTimeoutSeconds: 1 })).toEqual({
      settlementDelaySeconds: 0,
      refundWindowSeconds: 0,
      reservationTimeoutSeconds: 1,
    });
    const max = MAX_SETTING_SECONDS;
    for (const name of ['reservationTimeoutSeconds', 'actionTimeoutSeconds', 'authorizationTtlSeconds']) {
      expect(answer(settingsPatchBody, { [name]: max }), name).toBe('ok');
      expect(answer(settingsPatchBody, { [name]: 0 }), name).toBe(invalid(name, `must be an integer from 1 to ${max}`));
      expect(answer(settingsPatchBody, { [name]: max + 1 }), name).toBe(invalid(name, `must be an integer from 1 to ${max}`));
    }
    for (const name of ['settlementDelaySeconds', 'refundWindowSeconds']) {
      expect(answer(settingsPatchBody, { [name]: -1 }), name).toBe(invalid(name, `must be an integer from 0 to ${max}`));
      expect(answer(settingsPatchBody, { [name]: 1.5 }), name).toBe(invalid(name, `must be an integer from 0 to ${max}`));
    }
    expect(answer(settingsPatchBody, { settlementDelayMs: 1 })).toBe(unknown('settlementDelayMs'));
  });
});

describe('events and webhook endpoints', () => {
  const uuid = '0f8fad5b-d9cb-469f-a165-70867728950e';

  it('event and endpoint ids are their prefix and a lower-case UUID', () => {
    expect(isEventId(`evt_${uuid}`)).toBe(true);
    expect(isWebhookEndpointId(`we_${uuid}`)).toBe(true);
    for (const bad of [`we_${uuid}`, `evt_${uuid.toUpperCase()}`, `evt_${uuid}0`, `evt_${uuid.slice(1)}`, `xevt_${uuid}`, uuid]) expect(isEventId(bad), bad).toBe(false);
    for (const bad of [`evt_${uuid}`, `we_${uuid}x`, `xwe_${uuid}`, `we_${uuid.slice(1)}`]) expect(isWebhookEndpointId(bad), bad).toBe(false);
  });

  it('listing events: 10 a page unless a limit from 1 to 100, after an event id, of one known type', () => {
    const TYPE_RULE = `must be one of ${EVENT_TYPES.join(', ')}`;
    expect(parseBody(listEventsQuery, {})).toEqual({ limit: 10 });
    expect(parseBody(listEventsQuery, { limit: '100', starting_after: `evt_${uuid}`, type: 'payout.paid' })).toEqual({ limit: 100, starting_after: `evt_${uuid}`, type: 'payout.paid' });
    expect(answer(listEventsQuery, { limit: '101' })).toBe(invalid('limit', LIMIT_RULE));
    for (const bad of ['0', '-1', '1.5', '01', 'x10']) expect(answer(listEventsQuery, { limit: bad }), bad).toBe(invalid('limit', LIMIT_RULE));
    expect(answer(listEventsQuery, { limit: ['1'] })).toBe(invalid('limit', LIMIT_RULE));
    expect(answer(listEventsQuery, { starting_after: 'evt_1' })).toBe(invalid('starting_after', 'must be the id of an event'));
    expect(answer(listEventsQuery, { starting_after: ['evt_1'] })).toBe(invalid('starting_after', 'must be the id of an event'));
    expect(answer(listEventsQuery, { type: 'payout.lost' })).toBe(invalid('type', TYPE_RULE));
    expect(answer(listEventsQuery, { type: ['payout.paid'] })).toBe(invalid('type', TYPE_RULE));
  });

  it('endpoints: an absolute http(s) URL without credentials, and "*" or known event types', () => {
    const URL_RULE = 'must be an absolute http or https URL of at most 2048 characters, without credentials';
    const EVENTS_RULE = 'must be a non-empty array of event types, or ["*"]';
    const body = { url: 'https://example.com/hooks', events: ['*'] };
    expect(parseBody(createWebhookEndpointBody, body)).toEqual(body);
    expect(answer(createWebhookEndpointBody, { ...body, url: 'http://127.0.0.1:8080/h?x=1', events: [...EVENT_TYPES, '*'] })).toBe('ok');
    const long = `https://example.com/${'p'.repeat(2048 - 'https://example.com/'.length)}`;
    expect(answer(createWebhookEndpointBody, { ...body, url: long })).toBe('ok');
    for (const bad of [`${long}p`, 'example.com/hooks', '/hooks', 'ftp://example.com/', 'mailto:a@example.com', 'https://user@example.com/', 'https://:secret@example.com/', 'https://user:secret@example.com/', 'https://example.com/\u0000', 'https://example.com/\ud800', 42]) {
      expect(answer(createWebhookEndpointBody, { ...body, url: bad }), String(bad)).toBe(invalid('url', URL_RULE));
    }
    expect(answer(createWebhookEndpointBody, { url: body.url })).toBe(missing('events'));
    expect(answer(createWebhookEndpointBody, { ...body, events: [] })).toBe(invalid('events', EVENTS_RULE));
    expect(answer(createWebhookEndpointBody, { ...body, events: '*' })).toBe(invalid('events', EVENTS_RULE));
    expect(answer(createWebhookEndpointBody, { ...body, events: [...EVENT_TYPES, '*', '*'] })).toBe(invalid('events', EVENTS_RULE));
    expect(answer(createWebhookEndpointBody, { ...body, events: ['payout.paid', 'payout.lost'] })).toBe(invalid('events[1]', `must be "*" or must be one of ${EVENT_TYPES.join(', ')}`));
    expect(answer(createWebhookEndpointBody, { ...body, events: [1] })).toBe(invalid('events[0]', `must be "*" or must be one of ${EVENT_TYPES.join(', ')}`));
  });
});

describe('zod issues as the client reads them', () => {
  it('param paths are written as in Stripe: dots between fields, brackets around indices', () => {
    expect(paramPath(['items', 0, 'quantity'])).toBe('items[0].quantity');
    expect(paramPath(['a', 'b', 1, 2])).toBe('a.b[1][2]');
    expect(paramPath([0, 'sku'])).toBe('[0].sku');
    expect(paramPath([])).toBe('');
  });

  it('an error without issues is a generic invalid body', () => {
    const err = toApiError(new z.ZodError([]), {});
    expect({ status: err.status, code: err.code, message: err.message, param: err.param }).toEqual({ status: 400, code: 'parameter_invalid', message: 'The request body is invalid.', param: undefined });
  });

  it('a field is missing only when the request has nothing at its path of its own', () => {
    const issue = (path: PropertyKey[]) => new z.ZodError([{ code: 'custom', path, message: 'must be right', input: undefined }]);
    const read = (path: PropertyKey[], input: unknown) => {
      const err = toApiError(issue(path), input);
      return `${err.code} ${err.message}`;
    };
    expect(read(['a', 'b'], { a: { b: 0 } })).toBe('parameter_invalid Invalid a.b: must be right.');
    expect(read(['a', 'b'], { a: {} })).toBe('parameter_missing Missing required param: a.b.');
    expect(read(['a', 'b'], { a: null })).toBe('parameter_missing Missing required param: a.b.');
    expect(read(['a', 'length'], { a: 'abc' })).toBe('parameter_missing Missing required param: a.length.');
    // Inherited properties are not the request's.
    expect(read(['toString'], {})).toBe('parameter_missing Missing required param: toString.');
    expect(read(['items', 1], { items: ['x'] })).toBe('parameter_missing Missing required param: items[1].');
    expect(read(['items', 0], { items: ['x'] })).toBe('parameter_invalid Invalid items[0]: must be right.');
  });

  it('an unknown key is named with its path', () => {
    const err = toApiError(new z.ZodError([{ code: 'unrecognized_keys', keys: ['x', 'y'], path: ['a', 0], message: 'm', input: undefined }]), {});
    expect({ code: err.code, param: err.param, message: err.message }).toEqual({ code: 'parameter_unknown', param: 'a[0].x', message: 'Received unknown parameter: a[0].x.' });
  });
});
