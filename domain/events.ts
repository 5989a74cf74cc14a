// Events (a record of every status change) and their webhook deliveries: what the activities that
// record them, the delivery workflow and the API share.
import { CHECKOUT_STATUSES } from './checkout.js';
import { DAY_MS, firstProblem, isIntegerIn, isRecord, isText, unless, type InputProblem } from './inputs.js';

/** The resources whose status changes are recorded as events. */
export type EventResourceType = 'checkout' | 'refund' | 'topup' | 'payout';

/** `<resource>.<status>`, e.g. `checkout.captured`, `refund.failed`, `payout.paid`. */
export const eventType = (resource: EventResourceType, status: string) => `${resource}.${status}`;

/** Every event type that can be recorded: one per status of each resource. */
export const EVENT_TYPES: readonly string[] = [
  ...CHECKOUT_STATUSES.filter((s) => s !== 'pending').map((s) => eventType('checkout', s)),
  ...['pending', 'succeeded', 'failed'].map((s) => eventType('refund', s)),
  ...['processing', 'succeeded', 'failed'].map((s) => eventType('topup', s)),
  ...['pending', 'processing', 'paid', 'failed', 'canceled'].map((s) => eventType('payout', s)),
];

/**
 * The delivery of one event to one endpoint. The id makes a repeated start (a retried activity)
 * find the first execution; a redelivery asked for through the API adds a suffix of its own.
 */
export const webhookDeliveryId = (eventId: string, endpointId: string, suffix?: string) =>
  suffix === undefined ? `webhook-${eventId}-${endpointId}` : `webhook-${eventId}-${endpointId}-${suffix}`;

/**
 * The one redelivery of an event to an endpoint that may run at a time: while it runs (its retries
 * included) another is refused; once it has closed the id is free again.
 */
export const webhookRedeliveryId = (eventId: string, endpointId: string) => webhookDeliveryId(eventId, endpointId, 'redeliver');

/**
 * Deliveries run on a task queue of their own next to the payments one, polled by a worker of its
 * own in every worker process (workers/payment-worker.ts): endpoints that hang hold that worker's
 * slots, never the ones payment steps run in.
 */
export const webhookTaskQueue = (paymentsTaskQueue: string) => `${paymentsTaskQueue}-webhooks`;

/** WEBHOOK_MAX_ENDPOINTS_PER_MERCHANT's default, Stripe's limit. */
export const DEFAULT_MAX_WEBHOOK_ENDPOINTS = 16;

/** WEBHOOK_REDELIVER_RATE_LIMIT_PER_MINUTE / _BURST defaults. */
export const DEFAULT_REDELIVER_RATE_LIMIT = { perMinute: 60, burst: 20 } as const;

/** WEBHOOK_MAX_CONCURRENT_DELIVERIES's default: deliveries in flight per worker process. */
export const DEFAULT_MAX_CONCURRENT_DELIVERIES = 100;

/** How a delivery is retried: exponential (coefficient 2) from the first interval up to the maximum, for at most 3 days. */
export interface WebhookRetry {
  initialIntervalMs: number;
  maximumIntervalMs: number;
}

/** Stripe-like defaults: 30 s, doubling, at most an hour apart. */
export const DEFAULT_WEBHOOK_RETRY: WebhookRetry = { initialIntervalMs: 30_000, maximumIntervalMs: 3_600_000 };

export interface WebhookDeliveryInput {
  eventId: string;
  endpointId: string;
  /** Absent: DEFAULT_WEBHOOK_RETRY. Tests shorten it. */
  retry?: WebhookRetry;
}

export type WebhookDeliveryOutcome =
  | { status: 'delivered'; attempt: number; statusCode: number }
  /** The endpoint was deleted before the event could be delivered: nothing to do. */
  | { status: 'endpoint_gone' }
  /** No 2xx within the 3 days of retries, or an attempt that may not be retried (a refused address). */
  | { status: 'gave_up'; reason: string };

/** The header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (Stripe's scheme). */
export const SIGNATURE_HEADER = 'Payment-Signature';

/** A checkout as its events carry it; the same fields whichever layer records the event. */
export interface CheckoutEventFields {
  id: string;
  status: string;
  customerId: string;
  amount: bigint;
  currency: string;
  amountCaptured: bigint;
  amountRefunded: bigint;
  paymentMethod: string;
  captureMethod: string;
  settledAt: Date | null;
  failureCode: string | null;
  failureMessage: string | null;
}

/** The `data` of a checkout event: amounts as decimal strings, times as ISO 8601. */
export function checkoutEventData(c: CheckoutEventFields): Record<string, string | null> {
  return {
    id: c.id,
    status: c.status,
    customerId: c.customerId,
    amount: c.amount.toString(),
    currency: c.currency,
    amountCaptured: c.amountCaptured.toString(),
    amountRefunded: c.amountRefunded.toString(),
    paymentMethod: c.paymentMethod,
    captureMethod: c.captureMethod,
    settledAt: c.settledAt ? c.settledAt.toISOString() : null,
    failureCode: c.failureCode,
    failureMessage: c.failureMessage,
  };
}

/** The longest a delivery is retried, and so the longest any of its retry intervals may be. */
export const WEBHOOK_DELIVERY_WINDOW_MS = 3 * DAY_MS;

/** The first problem of a webhook delivery's input (its retry intervals become the activity's retry policy). */
export function webhookDeliveryInputProblem(input: unknown): InputProblem | undefined {
  if (!isRecord(input)) return { param: 'input', message: 'must be an object' };
  const { eventId, endpointId, retry } = input;
  return firstProblem(
    () => unless(isText(eventId), 'eventId', 'must be a string of 1 to 255 characters'),
    () => unless(isText(endpointId), 'endpointId', 'must be a string of 1 to 255 characters'),
    () => (retry === undefined || isRecord(retry) ? undefined : { param: 'retry', message: 'must be { initialIntervalMs, maximumIntervalMs }' }),
    () => unless(retry === undefined || isIntegerIn((retry as Record<string, unknown>).initialIntervalMs, 1, WEBHOOK_DELIVERY_WINDOW_MS), 'retry.initialIntervalMs', `must be an integer from 1 to ${WEBHOOK_DELIVERY_WINDOW_MS}`),
    () => {
      if (retry === undefined) return undefined;
      const { initialIntervalMs, maximumIntervalMs } = retry as WebhookRetry;
      return unless(isIntegerIn(maximumIntervalMs, initialIntervalMs, WEBHOOK_DELIVERY_WINDOW_MS), 'retry.maximumIntervalMs', `must be an integer from retry.initialIntervalMs to ${WEBHOOK_DELIVERY_WINDOW_MS}`);
    },
  );
}
