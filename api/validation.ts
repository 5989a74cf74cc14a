// Request schemas and the mapping of zod issues to Stripe-style `param` paths (`items[0].quantity`).
// Objects are strict: an unknown or misspelt field is rejected rather than silently ignored, which
// also turns hostile keys such as `__proto__` into an ordinary 400.
import { z } from 'zod';
import { isAmountString, isCurrencyCode } from '../domain/index.js';
import { invalidRequest, type ApiError } from './errors.js';

const SKU = /^[A-Za-z0-9._-]{1,64}$/;
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,200}$/;
// PostgreSQL text cannot hold NUL, and control characters in ids only ever cause trouble in logs.
// eslint-disable-next-line no-control-regex -- rejecting control characters is the point
const NO_CONTROL_CHARS = /^[^\u0000-\u001f\u007f]*$/;
const VISIBLE_ASCII = /^[\x21-\x7e]+$/;
/** products.available/reserved/sold are INTEGER columns. */
const MAX_STOCK = 2_147_483_647;

export function isSku(value: string): boolean {
  return SKU.test(value);
}

export function isIdempotencyKey(value: string): boolean {
  return IDEMPOTENCY_KEY.test(value);
}

/**
 * The `Idempotency-Key` header, validated. Required on `POST /v1/checkouts`; optional on refunds,
 * where it only makes retries safe. An empty header is "missing" when required and invalid
 * otherwise, since a client that sends one meant to send a key.
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
      'Invalid Idempotency-Key: must be 1 to 200 characters of A-Z, a-z, 0-9, ".", "_", ":" or "-".',
      'Idempotency-Key',
    );
  }
  return value;
}

/** One message per field, used for every way the field can be wrong except being absent. */
function text(min: number, max: number, what: string) {
  const error = `must be a string of ${min} to ${max} characters ${what}`;
  return z.string({ error }).min(min, { error }).max(max, { error }).regex(NO_CONTROL_CHARS, { error });
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

export const createProductBody = z.strictObject(
  {
    sku,
    name: text(1, 200, 'without control characters').refine((s) => s.trim() !== '', { error: 'must not be blank' }),
    price: money,
    stock: int(0, MAX_STOCK),
  },
  { error: 'must be a JSON object' },
);
export type CreateProductBody = z.infer<typeof createProductBody>;

const lineItem = z.strictObject({ sku, quantity: int(1, 1000) }, { error: 'must be an object { sku, quantity }' });

export const createCheckoutBody = z.strictObject(
  {
    customerId: text(1, 100, 'without control characters'),
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
    payment: z.strictObject(
      {
        method: z.literal('card', { error: 'must be "card"' }),
        token: z
          .string({ error: 'must be a card token of 1 to 200 visible ASCII characters' })
          .max(200, { error: 'must be a card token of 1 to 200 visible ASCII characters' })
          .regex(VISIBLE_ASCII, { error: 'must be a card token of 1 to 200 visible ASCII characters' }),
      },
      { error: 'must be an object { method, token }' },
    ),
    captureMethod: z.enum(['automatic', 'manual'], { error: 'must be "automatic" or "manual"' }).default('automatic'),
  },
  { error: 'must be a JSON object' },
);
export type CreateCheckoutBody = z.infer<typeof createCheckoutBody>;

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
