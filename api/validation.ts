// Request schemas and the mapping of zod issues to Stripe-style `param` paths (`items[0].quantity`).
// Objects are strict: an unknown or misspelt field is rejected rather than silently ignored, which
// also turns hostile keys such as `__proto__` into an ordinary 400.
import { z } from 'zod';
import { EVENT_TYPES, IDEMPOTENCY_KEY_MAX_LENGTH, isAmountString, isCurrencyCode, isIdempotencyKey, type PaymentMethod } from '../domain/index.js';
import { invalidRequest, type ApiError } from './errors.js';

const SKU = /^[A-Za-z0-9._-]{1,64}$/;
// PostgreSQL text cannot hold NUL, and control characters in ids only ever cause trouble in logs.
// eslint-disable-next-line no-control-regex -- rejecting control characters is the point
const NO_CONTROL_CHARS = /^[^\u0000-\u001f\u007f]*$/;
/**
 * A lone UTF-16 surrogate (`"\ud800"` is valid JSON) cannot be stored as UTF-8: it would come back
 * as U+FFFD, and a stored value that differs from the request's makes the request's own retry
 * look like another request (found by test/api-fuzz.test.ts: a checkout was created, then its
 * request answered 422 idempotency_key_reused).
 */
const NO_LONE_SURROGATES = /^\P{Cs}*$/u;
const VISIBLE_ASCII = /^[\x21-\x7e]+$/;
/** products.available/reserved/sold are INTEGER columns. */
const MAX_STOCK = 2_147_483_647;

export function isSku(value: string): boolean {
  return SKU.test(value);
}

/**
 * The `Idempotency-Key` header, validated. Required on `POST /v1/checkouts`, `/v1/topups` and
 * `/v1/payouts`; optional on refunds, where it only makes retries safe. An empty header is
 * "missing" when required and invalid otherwise, since a client that sends one meant to send a key.
 */
export function idempotencyKeyOf(value: string | undefined, required: true): string;
export function idempotencyKeyOf(value: string | undefined, required: false): string | undefined;
export function idempotencyKeyOf(value: string | undefined, required: boolean): string | undefined {
  if (value === undefined || (required && value === '')) {
    if (!required) return undefined;
    throw invalidRequest('idempotency_key_missing', 'Missing required header: Idempotency-Key.', 'Idempotency-Key');
  }
  if (!isIdempotencyKey(value)) {
    throw invalidRequest(
      'idempotency_key_invalid',
      `Invalid Idempotency-Key: must be 1 to ${IDEMPOTENCY_KEY_MAX_LENGTH} visible ASCII characters (no spaces), e.g. a UUID.`,
      'Idempotency-Key',
    );
  }
  return value;
}

/** One message per field, used for every way the field can be wrong except being absent. */
function text(min: number, max: number, what: string) {
  const error = `must be a string of ${min} to ${max} characters ${what}`;
  return z.string({ error }).min(min, { error }).max(max, { error }).regex(NO_CONTROL_CHARS, { error }).regex(NO_LONE_SURROGATES, { error });
}

function int(min: number, max: number) {
  const error = `must be an integer from ${min} to ${max}`;
  return z.int({ error }).min(min, { error }).max(max, { error });
}

const sku = z
  .string({ error: 'must be 1 to 64 characters of A-Z, a-z, 0-9, ".", "_" or "-"' })
  .regex(SKU, { error: 'must be 1 to 64 characters of A-Z, a-z, 0-9, ".", "_" or "-"' });

// Amounts are strings because JSON numbers are doubles: 2^53 + 1 minor units would silently change.
const money = z.strictObject(
  {
    amount: z
      .string({ error: 'must be a string of digits: an integer count of minor units, e.g. "1999"' })
      .refine(isAmountString, { error: 'must be a string of digits: an integer count of minor units, e.g. "1999"' }),
    currency: z
      .string({ error: 'must be an ISO 4217 code in upper case, e.g. "JPY"' })
      .refine(isCurrencyCode, { error: 'must be an ISO 4217 code in upper case, e.g. "JPY"' }),
  },
  { error: 'must be an object { amount, currency }' },
);

/** An amount to capture or refund: zero is never meaningful, so it is a malformed request. */
const positiveMoney = money.refine((m) => m.amount !== '0', { error: 'must be an amount greater than zero', path: ['amount'] });

// At most 18 digits (isAmountString), so every amount fits the BIGINT columns and ledger counters.

const CARD_TOKEN_RULE = 'must be a card token of 1 to 200 visible ASCII characters';
const cardPayment = z.strictObject(
  {
    method: z.literal('card', { error: 'must be "card"' }),
    token: z.string({ error: CARD_TOKEN_RULE }).max(200, { error: CARD_TOKEN_RULE }).regex(VISIBLE_ASCII, { error: CARD_TOKEN_RULE }),
  },
  { error: 'must be an object { method, token }' },
);
const walletPayment = z.strictObject({ method: z.literal('wallet', { error: 'must be "wallet"' }) }, { error: 'must be an object { method }' });

const WALLET_CUSTOMER_ID_RULE = 'must not start or end with ":" or contain "::", since it names the customer\'s wallet';

/**
 * A wallet's ledger account is `wallet:<merchant>:<customer>:<currency>`, and the ledger reads an
 * empty `:`-separated part as a malformed id: a customer id such as `cus:` would make every
 * transfer on that wallet fail inside the workflow, long after the API said yes.
 */
export function isWalletCustomerId(value: string): boolean {
  return value.split(':').every((part) => part !== '');
}

const customerId = text(1, 100, 'without control characters');
const walletCustomerId = customerId.refine(isWalletCustomerId, { error: WALLET_CUSTOMER_ID_RULE });

export const createProductBody = z.strictObject(
  {
    sku,
    name: text(1, 200, 'without control characters').refine((s) => s.trim() !== '', { error: 'must not be blank' }),
    // Zero means nothing to pay, which no payment method can take: free items are refused here,
    // once, rather than meeting a card or wallet call that cannot move zero (README: Money).
    price: positiveMoney,
    stock: int(0, MAX_STOCK),
  },
  { error: 'must be a JSON object' },
);
export type CreateProductBody = z.infer<typeof createProductBody>;

const lineItem = z.strictObject({ sku, quantity: int(1, 1000) }, { error: 'must be an object { sku, quantity }' });

export const createCheckoutBody = z.strictObject(
  {
    customerId,
    items: z
      .array(lineItem, { error: 'must be an array of 1 to 50 items' })
      .min(1, { error: 'must be an array of 1 to 50 items' })
      .max(50, { error: 'must be an array of 1 to 50 items' })
      .superRefine((items, ctx) => {
        // One line per SKU: a second line would be ambiguous to price and to reserve.
        const seen = new Set<string>();
        items.forEach((item, i) => {
          if (seen.has(item.sku)) ctx.addIssue({ code: 'custom', path: [i, 'sku'], message: `duplicates an earlier item (${item.sku})` });
          seen.add(item.sku);
        });
      }),
    payment: z.discriminatedUnion('method', [cardPayment, walletPayment], {
      // Zod reports an unknown or missing `method` as a failed union at payment.method.
      error: (issue) => (issue.code === 'invalid_union' ? 'must be "card" or "wallet"' : 'must be an object { method, token } or { method: "wallet" }'),
    }),
    captureMethod: z.enum(['automatic', 'manual'], { error: 'must be "automatic" or "manual"' }).default('automatic'),
  },
  { error: 'must be a JSON object' },
).superRefine((body, ctx) => {
  // The wallet's ledger account is named after the customer, so the id must make a valid one.
  if (body.payment.method === 'wallet' && !isWalletCustomerId(body.customerId)) {
    ctx.addIssue({ code: 'custom', path: ['customerId'], message: WALLET_CUSTOMER_ID_RULE });
  }
});
export type CreateCheckoutBody = z.infer<typeof createCheckoutBody>;

/** The workflow's view of the request's payment: a card token travels on, a wallet has nothing to add. */
export function paymentMethodOf(payment: CreateCheckoutBody['payment']): PaymentMethod {
  return payment.method === 'card' ? { method: 'card', token: payment.token } : { method: 'wallet' };
}

/** `POST /v1/topups`: the card is charged, then the wallet credited. */
export const createTopupBody = z.strictObject(
  {
    customerId: walletCustomerId,
    amount: positiveMoney,
    payment: cardPayment,
  },
  { error: 'must be a JSON object' },
);
export type CreateTopupBody = z.infer<typeof createTopupBody>;

/**
 * `POST /v1/payouts`: to a Japanese (Zengin) bank account. `scheduledAt` must carry its offset (a
 * local time would mean different instants on different servers); the route resolves its range.
 */
export const createPayoutBody = z.strictObject(
  {
    customerId: walletCustomerId,
    amount: positiveMoney,
    bankAccount: z.strictObject(
      {
        bankCode: z.string({ error: 'must be 4 digits' }).regex(/^[0-9]{4}$/, { error: 'must be 4 digits' }),
        accountNumber: z.string({ error: 'must be 7 digits' }).regex(/^[0-9]{7}$/, { error: 'must be 7 digits' }),
      },
      { error: 'must be an object { bankCode, accountNumber }' },
    ),
    scheduledAt: z.iso
      .datetime({ offset: true, error: 'must be an ISO 8601 date-time with an offset, e.g. "2025-04-01T09:00:00+09:00"' })
      .optional(),
  },
  { error: 'must be a JSON object' },
);
export type CreatePayoutBody = z.infer<typeof createPayoutBody>;

/**
 * Query parameters are strings (or arrays when repeated, which is rejected). An unknown parameter
 * is a 400 like an unknown body field: a misspelt `limit` must not silently mean 20.
 */
const currencyQuery = z
  .string({ error: 'must be an ISO 4217 code in upper case, e.g. "JPY"' })
  .refine(isCurrencyCode, { error: 'must be an ISO 4217 code in upper case, e.g. "JPY"' });

/**
 * Wallets have no currency of their own and merchants none configured, so a request without one
 * reads the JPY wallet: the currency this deployment's merchants sell in.
 */
export const DEFAULT_WALLET_CURRENCY = 'JPY';

/** `GET /v1/wallets/:customerId` */
export const walletQuery = z.strictObject({ currency: currencyQuery.default(DEFAULT_WALLET_CURRENCY) }, { error: 'must be a query string' });

/** `GET /v1/wallets/:customerId/transactions` */
export const walletTransactionsQuery = z.strictObject(
  {
    currency: currencyQuery.default(DEFAULT_WALLET_CURRENCY),
    limit: z
      .string({ error: 'must be an integer from 1 to 100' })
      .regex(/^[1-9][0-9]{0,2}$/, { error: 'must be an integer from 1 to 100' })
      .transform(Number)
      .refine((n) => n <= 100, { error: 'must be an integer from 1 to 100' })
      .default(20),
    starting_after: z
      .string({ error: 'must be the nextCursor of an earlier page' })
      .min(1, { error: 'must be the nextCursor of an earlier page' })
      .max(500, { error: 'must be the nextCursor of an earlier page' })
      .optional(),
  },
  { error: 'must be a query string' },
);

/** A wallet's path: `/v1/wallets/:customerId`. */
export const walletPath = z.strictObject({ customerId: walletCustomerId });

/** `POST /v1/checkouts/:id/capture`: without an amount, everything authorized is captured. */
export const captureBody = z.strictObject({ amount: positiveMoney.optional() }, { error: 'must be a JSON object' });

/** `POST /v1/checkouts/:id/cancel` takes no parameters; `{}` and no body at all are both accepted. */
export const cancelBody = z.strictObject({}, { error: 'must be a JSON object' });

/** `POST /v1/checkouts/:id/confirm`: the customer's 3-D Secure outcome. */
export const confirmBody = z.strictObject(
  { result: z.enum(['succeeded', 'failed'], { error: 'must be "succeeded" or "failed"' }) },
  { error: 'must be a JSON object' },
);

/** `POST /v1/checkouts/:id/refunds`: without an amount, everything still refundable is refunded. */
export const refundBody = z.strictObject({ amount: positiveMoney.optional() }, { error: 'must be a JSON object' });

const DAY_SECONDS = 24 * 60 * 60;
/**
 * Longest any checkout timing may be: long enough for any real authorization or refund policy, and
 * short enough that a typo (seconds meant as milliseconds) is caught instead of holding stock for
 * decades.
 */
export const MAX_SETTING_SECONDS = 400 * DAY_SECONDS;

/**
 * `PATCH /v1/settings`: any subset. Waiting for stock, a 3-D Secure challenge or a capture needs at
 * least a second (the database insists on > 0 too); settling at once or taking no refunds is a
 * legitimate choice, so those two may be 0.
 */
export const settingsPatchBody = z.strictObject(
  {
    reservationTimeoutSeconds: int(1, MAX_SETTING_SECONDS).optional(),
    actionTimeoutSeconds: int(1, MAX_SETTING_SECONDS).optional(),
    authorizationTtlSeconds: int(1, MAX_SETTING_SECONDS).optional(),
    settlementDelaySeconds: int(0, MAX_SETTING_SECONDS).optional(),
    refundWindowSeconds: int(0, MAX_SETTING_SECONDS).optional(),
  },
  { error: 'must be a JSON object' },
);

/** `['items', 0, 'quantity']` -> `items[0].quantity`. */
export function paramPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** The first issue, as the client will see it: the field named in `param` and in the message. */
export function toApiError(error: z.ZodError, input: unknown): ApiError {
  const issue = error.issues[0];
  if (!issue) return invalidRequest('parameter_invalid', 'The request body is invalid.');
  const path = issue.path;
  if (issue.code === 'unrecognized_keys') {
    const param = paramPath([...path, issue.keys[0] ?? '']);
    return invalidRequest('parameter_unknown', `Received unknown parameter: ${param}.`, param);
  }
  if (path.length === 0) {
    return invalidRequest('parameter_invalid', 'The request body must be a JSON object.');
  }
  const param = paramPath(path);
  // JSON has no undefined: nothing at the path means the field was left out, whichever check
  // noticed (zod reports a missing enum value as invalid_value, a missing string as invalid_type).
  if (valueAt(input, path) === undefined) {
    return invalidRequest('parameter_missing', `Missing required param: ${param}.`, param);
  }
  return invalidRequest('parameter_invalid', `Invalid ${param}: ${issue.message}.`, param);
}

export function parseBody<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw toApiError(result.error, input);
  return result.data;
}

// ----- Events and webhook endpoints -----

const EVENT_ID = /^evt_[0-9a-f-]{36}$/;
const WEBHOOK_ENDPOINT_ID = /^we_[0-9a-f-]{36}$/;

export const isEventId = (value: string) => EVENT_ID.test(value);
export const isWebhookEndpointId = (value: string) => WEBHOOK_ENDPOINT_ID.test(value);

const EVENT_TYPE_RULE = `must be one of ${EVENT_TYPES.join(', ')}`;

/** `GET /v1/events` */
export const listEventsQuery = z.strictObject(
  {
    limit: z
      .string({ error: 'must be an integer from 1 to 100' })
      .regex(/^[1-9][0-9]{0,2}$/, { error: 'must be an integer from 1 to 100' })
      .transform(Number)
      .refine((n) => n <= 100, { error: 'must be an integer from 1 to 100' })
      .default(10),
    starting_after: z.string({ error: 'must be the id of an event' }).refine(isEventId, { error: 'must be the id of an event' }).optional(),
    type: z.string({ error: EVENT_TYPE_RULE }).refine((t) => EVENT_TYPES.includes(t), { error: EVENT_TYPE_RULE }).optional(),
  },
  { error: 'must be a query string' },
);

const WEBHOOK_URL_RULE = 'must be an absolute http or https URL of at most 2048 characters, without credentials';

/** `POST /v1/webhook-endpoints` */
export const createWebhookEndpointBody = z.strictObject(
  {
    url: z
      .string({ error: WEBHOOK_URL_RULE })
      .max(2048, { error: WEBHOOK_URL_RULE })
      // Stored as sent: a NUL (which the URL parser would have escaped) cannot be stored at all.
      .regex(NO_CONTROL_CHARS, { error: WEBHOOK_URL_RULE })
      .regex(NO_LONE_SURROGATES, { error: WEBHOOK_URL_RULE })
      .refine(isWebhookUrl, { error: WEBHOOK_URL_RULE }),
    events: z
      .array(
        z.string({ error: `must be "*" or ${EVENT_TYPE_RULE}` }).refine((t) => t === '*' || EVENT_TYPES.includes(t), { error: `must be "*" or ${EVENT_TYPE_RULE}` }),
        { error: 'must be a non-empty array of event types, or ["*"]' },
      )
      .min(1, { error: 'must be a non-empty array of event types, or ["*"]' })
      .max(EVENT_TYPES.length + 1, { error: 'must be a non-empty array of event types, or ["*"]' }),
  },
  { error: 'must be a JSON object' },
);

/** Credentials in a URL would end up in logs and attempt records; other schemes are not webhooks. */
function isWebhookUrl(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return (url.protocol === 'http:' || url.protocol === 'https:') && url.username === '' && url.password === '' && url.hostname !== '';
}
