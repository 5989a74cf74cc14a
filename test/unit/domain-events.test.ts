// Events and webhook deliveries as the domain names and checks them, without a server.
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_CONCURRENT_DELIVERIES,
  DEFAULT_MAX_WEBHOOK_ENDPOINTS,
  DEFAULT_REDELIVER_RATE_LIMIT,
  DEFAULT_WEBHOOK_RETRY,
  EVENT_TYPES,
  SIGNATURE_HEADER,
  WEBHOOK_DELIVERY_WINDOW_MS,
  checkoutEventData,
  eventType,
  webhookDeliveryId,
  webhookDeliveryInputProblem,
  webhookRedeliveryId,
  webhookTaskQueue,
  type CheckoutEventFields,
} from '../../domain/index.js';

describe('event types', () => {
  it('one per status of each resource, except a checkout that is only pending', () => {
    expect(eventType('payout', 'paid')).toBe('payout.paid');
    expect(EVENT_TYPES).toEqual([
      'checkout.sold_out',
      'checkout.processing',
      'checkout.requires_action',
      'checkout.requires_capture',
      'checkout.captured',
      'checkout.settled',
      'checkout.partially_refunded',
      'checkout.refunded',
      'checkout.canceled',
      'checkout.expired',
      'checkout.failed',
      'refund.pending',
      'refund.succeeded',
      'refund.failed',
      'topup.processing',
      'topup.succeeded',
      'topup.failed',
      'payout.pending',
      'payout.processing',
      'payout.paid',
      'payout.failed',
      'payout.canceled',
    ]);
  });
});

describe('webhook deliveries', () => {
  it('a delivery id names the event and the endpoint; a redelivery adds its suffix, so it never finds the first delivery', () => {
    expect(webhookDeliveryId('evt_1', 'we_1')).toBe('webhook-evt_1-we_1');
    expect(webhookDeliveryId('evt_1', 'we_1', 'r2')).toBe('webhook-evt_1-we_1-r2');
    expect(webhookRedeliveryId('evt_1', 'we_1')).toBe('webhook-evt_1-we_1-redeliver');
  });

  it('run on a task queue of their own beside the payments one', () => {
    expect(webhookTaskQueue('payments')).toBe('payments-webhooks');
  });

  it('defaults: Stripe-like limits and retries, signed in Payment-Signature', () => {
    expect(DEFAULT_MAX_WEBHOOK_ENDPOINTS).toBe(16);
    expect(DEFAULT_REDELIVER_RATE_LIMIT).toEqual({ perMinute: 60, burst: 20 });
    expect(DEFAULT_MAX_CONCURRENT_DELIVERIES).toBe(100);
    expect(DEFAULT_WEBHOOK_RETRY).toEqual({ initialIntervalMs: 30_000, maximumIntervalMs: 3_600_000 });
    expect(SIGNATURE_HEADER).toBe('Payment-Signature');
    expect(WEBHOOK_DELIVERY_WINDOW_MS).toBe(3 * 86_400_000);
  });
});

describe('checkout event data', () => {
  const fields: CheckoutEventFields = {
    id: 'co_1',
    status: 'settled',
    customerId: 'cus_1',
    amount: 2n ** 53n + 1n,
    currency: 'JPY',
    amountCaptured: 1500n,
    amountRefunded: 0n,
    paymentMethod: 'card',
    captureMethod: 'manual',
    settledAt: new Date('2026-11-29T01:02:03.456Z'),
    failureCode: null,
    failureMessage: null,
  };

  it('carries amounts as exact decimal strings and times as ISO 8601', () => {
    expect(checkoutEventData(fields)).toEqual({
      id: 'co_1',
      status: 'settled',
      customerId: 'cus_1',
      amount: '9007199254740993',
      currency: 'JPY',
      amountCaptured: '1500',
      amountRefunded: '0',
      paymentMethod: 'card',
      captureMethod: 'manual',
      settledAt: '2026-11-29T01:02:03.456Z',
      failureCode: null,
      failureMessage: null,
    });
  });

  it('shows no settlement time before settlement, and the failure when there is one', () => {
    expect(checkoutEventData({ ...fields, status: 'failed', settledAt: null, failureCode: 'card_declined', failureMessage: 'Declined' })).toMatchObject({
      settledAt: null,
      failureCode: 'card_declined',
      failureMessage: 'Declined',
    });
  });
});

describe('webhook delivery input', () => {
  it('accepts an event and an endpoint, with or without retry intervals inside the 3-day window', () => {
    expect(webhookDeliveryInputProblem({ eventId: 'evt_1', endpointId: 'we_1' })).toBeUndefined();
    expect(webhookDeliveryInputProblem({ eventId: 'evt_1', endpointId: 'we_1', retry: { initialIntervalMs: 1, maximumIntervalMs: 1 } })).toBeUndefined();
    expect(webhookDeliveryInputProblem({ eventId: 'evt_1', endpointId: 'we_1', retry: { initialIntervalMs: 1, maximumIntervalMs: WEBHOOK_DELIVERY_WINDOW_MS } })).toBeUndefined();
    expect(webhookDeliveryInputProblem({ eventId: 'evt_1', endpointId: 'we_1', retry: { initialIntervalMs: WEBHOOK_DELIVERY_WINDOW_MS, maximumIntervalMs: WEBHOOK_DELIVERY_WINDOW_MS } })).toBeUndefined();
  });

  it('names the first field that is wrong', () => {
    const window = WEBHOOK_DELIVERY_WINDOW_MS;
    const cases: Array<[unknown, string, string]> = [
      [null, 'input', 'must be an object'],
      [[], 'input', 'must be an object'],
      [{ endpointId: 'we_1' }, 'eventId', 'must be a string of 1 to 255 characters'],
      [{ eventId: 'evt_1', endpointId: '' }, 'endpointId', 'must be a string of 1 to 255 characters'],
      [{ eventId: 'evt_1', endpointId: 'we_1', retry: 'fast' }, 'retry', 'must be { initialIntervalMs, maximumIntervalMs }'],
      [{ eventId: 'evt_1', endpointId: 'we_1', retry: null }, 'retry', 'must be { initialIntervalMs, maximumIntervalMs }'],
      [{ eventId: 'evt_1', endpointId: 'we_1', retry: { initialIntervalMs: 0, maximumIntervalMs: 10 } }, 'retry.initialIntervalMs', `must be an integer from 1 to ${window}`],
      [{ eventId: 'evt_1', endpointId: 'we_1', retry: { initialIntervalMs: window + 1, maximumIntervalMs: window + 1 } }, 'retry.initialIntervalMs', `must be an integer from 1 to ${window}`],
      [{ eventId: 'evt_1', endpointId: 'we_1', retry: { maximumIntervalMs: 10 } }, 'retry.initialIntervalMs', `must be an integer from 1 to ${window}`],
      [{ eventId: 'evt_1', endpointId: 'we_1', retry: { initialIntervalMs: 10, maximumIntervalMs: 9 } }, 'retry.maximumIntervalMs', `must be an integer from retry.initialIntervalMs to ${window}`],
      [{ eventId: 'evt_1', endpointId: 'we_1', retry: { initialIntervalMs: 10, maximumIntervalMs: window + 1 } }, 'retry.maximumIntervalMs', `must be an integer from retry.initialIntervalMs to ${window}`],
      [{ eventId: 'evt_1', endpointId: 'we_1', retry: { initialIntervalMs: 10 } }, 'retry.maximumIntervalMs', `must be an integer from retry.initialIntervalMs to ${window}`],
    ];
    for (const [input, param, message] of cases) expect(webhookDeliveryInputProblem(input), JSON.stringify(input)).toEqual({ param, message });
  });
});
