import { DAY_MS, MAX_WORKFLOW_ID_LENGTH, firstProblem, isIntegerIn, isRecord, isText, unless, type InputProblem } from './inputs.js';
import type { Money } from './money.js';

/**
 * Statuses (the README draws the state machine):
 * - `pending`: created, stock not yet reserved.
 * - `sold_out`: terminal; not enough stock, nothing held, nothing charged.
 * - `processing`: stock held, the card is being authorized.
 * - `requires_action`: the card needs 3-D Secure; waits for `POST /v1/checkouts/:id/confirm`.
 * - `requires_capture`: authorized with `captureMethod: "manual"`; waits for `POST .../capture`.
 * - `captured`: money taken, stock sold; settles after the merchant's settlement delay.
 * - `settled`: the settlement timer fired (the funds are the merchant's).
 * - `partially_refunded` / `refunded`: some / all of the captured amount went back.
 * - `canceled`: canceled before capture; authorization voided, stock released.
 * - `expired`: a hold, a 3-D Secure challenge or an authorization ran out of time; voided, released.
 * - `failed`: declined or failed; every hold released, nothing charged.
 */
export const CHECKOUT_STATUSES = [
  'pending',
  'sold_out',
  'processing',
  'requires_action',
  'requires_capture',
  'captured',
  'settled',
  'partially_refunded',
  'refunded',
  'canceled',
  'expired',
  'failed',
] as const;
export type CheckoutStatus = (typeof CHECKOUT_STATUSES)[number];

/** Statuses in which money has been captured (refunds are possible). */
export const CAPTURED_STATUSES: readonly CheckoutStatus[] = ['captured', 'settled', 'partially_refunded', 'refunded'];
/** Statuses after which nothing more happens to the payment's authorization. */
export const CLOSED_BEFORE_CAPTURE: readonly CheckoutStatus[] = ['sold_out', 'canceled', 'expired', 'failed'];

export type CaptureMethod = 'automatic' | 'manual';

export interface LineItem {
  sku: string;
  quantity: number;
}

export interface CardPayment {
  method: 'card';
  /** Card-network token (`tok_visa`, ...). Never logged. */
  token: string;
}

/** Pay from the customer's wallet at this merchant: held at authorization, posted at capture. */
export interface WalletPayment {
  method: 'wallet';
}

export type PaymentMethod = CardPayment | WalletPayment;

/**
 * Every delay of a checkout, as data: the merchant's settings resolved by the API, so tests and
 * merchants can shorten them. Milliseconds.
 */
export interface CheckoutTimeouts {
  /** How long stock stays held for a payment that has not been authorized yet. */
  reservationTimeoutMs: number;
  /** How long a 3-D Secure challenge waits for the customer. */
  actionTimeoutMs: number;
  /** How long a manual-capture authorization waits for its capture before it is voided. */
  authorizationTtlMs: number;
  /** From capture to settlement. */
  settlementDelayMs: number;
  /** After settlement, how long refunds are still accepted; then the workflow completes. */
  refundWindowMs: number;
}

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
export const DEFAULT_CHECKOUT_TIMEOUTS: CheckoutTimeouts = {
  reservationTimeoutMs: 10 * MINUTE,
  actionTimeoutMs: 15 * MINUTE,
  authorizationTtlMs: 7 * DAY,
  settlementDelayMs: 2 * DAY,
  refundWindowMs: 180 * DAY,
};

export interface CheckoutInput {
  checkoutId: string;
  merchantId: string;
  customerId: string;
  idempotencyKey: string;
  items: LineItem[];
  payment: PaymentMethod;
  captureMethod: CaptureMethod;
  timeouts: CheckoutTimeouts;
  /**
   * `api`: the API starts the workflow first and then places the order itself (the checkout row
   * and its stock hold, in one short transaction), so the buyer's answer never waits for a worker;
   * the workflow adopts that order (and fences it off if it never appears). Absent: the workflow
   * places the order (runs started by update-with-start, before this existed).
   */
  placedBy?: 'api';
}

export type RefundStatus = 'pending' | 'succeeded' | 'failed';

export interface RefundSnapshot {
  refundId: string;
  amount: Money;
  status: RefundStatus;
  failureCode?: string;
}

/** What the workflow reports about itself: to the API's updates and to the status query. */
export interface CheckoutSnapshot {
  checkoutId: string;
  status: CheckoutStatus;
  amount: Money;
  /** Authorized and still capturable (manual capture). */
  amountCapturable: string;
  amountCaptured: string;
  amountRefunded: string;
  refunds: RefundSnapshot[];
  failure?: { code: string; message: string };
  /** The undo that keeps failing, while it does (it is retried until it succeeds). */
  stalledCompensation?: string;
}

/** The status a captured checkout shows, derived from its amounts (never stored apart from them). */
export function capturedStatus(amountCaptured: bigint, amountRefunded: bigint, settled: boolean): CheckoutStatus {
  if (amountRefunded > 0n && amountRefunded >= amountCaptured) return 'refunded';
  if (amountRefunded > 0n) return 'partially_refunded';
  return settled ? 'settled' : 'captured';
}

/**
 * The PostgreSQL notification channel on which a release of held or sold units is announced, with
 * `<merchant>\t<sku>` as its payload (neither may contain a tab): API processes forget their
 * sold-out mark for the SKU.
 */
/** A product as pricing reads it: today's price and its currency. */
export interface ProductPrice {
  priceAmount: bigint;
  currency: string;
}

export interface PricedLine {
  sku: string;
  quantity: number;
  unitAmount: bigint;
}

/** Why an order cannot be priced; `index` is the line at fault. */
export type PricingProblem =
  | { code: 'product_not_found'; index: number; sku: string }
  | { code: 'currency_mismatch'; index: number; sku: string; currency: string; earlierCurrency: string };

/**
 * Prices an order at today's prices (never the request's): each line at its product's price, one
 * currency for the whole order. The API prices a checkout this way before it places it, and the
 * workflow's own placement (runs started before the API placed orders) the same way.
 */
export function priceOrder(
  items: readonly { sku: string; quantity: number }[],
  products: ReadonlyMap<string, ProductPrice>,
): { lines: PricedLine[]; total: bigint; currency: string } | { problem: PricingProblem } {
  let currency: string | undefined;
  let total = 0n;
  const lines: PricedLine[] = [];
  for (const [index, item] of items.entries()) {
    const product = products.get(item.sku);
    if (!product) return { problem: { code: 'product_not_found', index, sku: item.sku } };
    if (currency !== undefined && product.currency !== currency) {
      return { problem: { code: 'currency_mismatch', index, sku: item.sku, currency: product.currency, earlierCurrency: currency } };
    }
    currency = product.currency;
    total += product.priceAmount * BigInt(item.quantity);
    lines.push({ sku: item.sku, quantity: item.quantity, unitAmount: product.priceAmount });
  }
  if (currency === undefined) throw new RangeError('an order has at least one line');
  return { lines, total, currency };
}

export const STOCK_RELEASED_CHANNEL = 'stock_released';
export const stockReleasedPayload = (merchantId: string, sku: string) => `${merchantId}\t${sku}`;

/** The failure code of a checkout whose order the API never placed (its workflow fenced the id). */
export const ORDER_NOT_PLACED = 'not_placed';

/** The longest any checkout delay may be: what PATCH /v1/settings accepts. */
export const MAX_CHECKOUT_DELAY_MS = 400 * DAY_MS;
/** The most lines a checkout may have, as POST /v1/checkouts accepts them. */
export const MAX_CHECKOUT_LINES = 50;

const CHECKOUT_TIMEOUT_NAMES = ['reservationTimeoutMs', 'actionTimeoutMs', 'authorizationTtlMs', 'settlementDelayMs', 'refundWindowMs'] as const satisfies ReadonlyArray<keyof CheckoutTimeouts>;

/**
 * The first problem of a checkout workflow's input: anything the API could not have built, and in
 * particular anything that would make the workflow's own code throw (a missing payment, a delay that
 * is not a number of milliseconds a timer can hold).
 */
export function checkoutInputProblem(input: unknown): InputProblem | undefined {
  if (!isRecord(input)) return { param: 'input', message: 'must be an object' };
  const { checkoutId, merchantId, customerId, idempotencyKey, items, payment, captureMethod, timeouts, placedBy } = input;
  return firstProblem(
    () => unless(isText(checkoutId, MAX_WORKFLOW_ID_LENGTH), 'checkoutId', `must be a string of 1 to ${MAX_WORKFLOW_ID_LENGTH} characters`),
    () => unless(isText(merchantId), 'merchantId', 'must be a string of 1 to 255 characters'),
    () => unless(isText(customerId), 'customerId', 'must be a string of 1 to 255 characters'),
    () => unless(isText(idempotencyKey), 'idempotencyKey', 'must be a string of 1 to 255 characters'),
    () => lineItemsProblem(items),
    () => unless(isRecord(payment) && (payment.method === 'wallet' || (payment.method === 'card' && isText(payment.token))), 'payment', 'must be { method: "card", token } or { method: "wallet" }'),
    () => unless(captureMethod === 'automatic' || captureMethod === 'manual', 'captureMethod', 'must be "automatic" or "manual"'),
    () => (isRecord(timeouts) ? undefined : { param: 'timeouts', message: 'must be an object of delays in milliseconds' }),
    ...CHECKOUT_TIMEOUT_NAMES.map(
      (name) => () => unless(isIntegerIn((timeouts as Record<string, unknown>)[name], 0, MAX_CHECKOUT_DELAY_MS), `timeouts.${name}`, `must be an integer from 0 to ${MAX_CHECKOUT_DELAY_MS}`),
    ),
    () => unless(placedBy === undefined || placedBy === 'api', 'placedBy', 'must be "api" or absent'),
  );
}

function lineItemsProblem(items: unknown): InputProblem | undefined {
  if (!Array.isArray(items) || items.length === 0 || items.length > MAX_CHECKOUT_LINES) return { param: 'items', message: `must be an array of 1 to ${MAX_CHECKOUT_LINES} lines` };
  const bad = items.findIndex((line) => !isRecord(line) || !isText(line.sku) || !isIntegerIn(line.quantity, 1, Number.MAX_SAFE_INTEGER));
  return unless(bad < 0, `items.${bad}`, 'must be { sku, quantity } with a positive integer quantity');
}
