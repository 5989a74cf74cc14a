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
  },
  { error: 'must be a JSON object' },
);
export type CreateCheckoutBody = z.infer<typeof createCheckoutBody>;

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
  if (issue.code === 'invalid_type' && valueAt(input, path) === undefined) {
    return invalidRequest('parameter_missing', `Missing required param: ${param}.`, param);
  }
  return invalidRequest('parameter_invalid', `Invalid ${param}: ${issue.message}.`, param);
}

export function parseBody<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw toApiError(result.error, input);
  return result.data;
}
