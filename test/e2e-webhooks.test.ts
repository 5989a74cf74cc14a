// End to end: a merchant registers a webhook endpoint over HTTP, pays, and its server (Node http +
// crypto only) receives signed events from the real worker; the API shows the delivery attempts
// and redelivers on request.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../platform/api-keys.js';
import { createPrisma, type PrismaClient } from '../platform/db.js';
import { startStack, type Stack } from '../scripts/stack.js';
import { startWebhookReceiver, waitFor, type WebhookReceiver } from './support/webhook-receiver.js';

let stack: Stack;
let prisma: PrismaClient;
let receiver: WebhookReceiver;
// A merchant of its own: its endpoint must never see another test's events.
const MERCHANT = `e2ewh_${randomUUID().slice(0, 8)}`;
const KEY = `sk_test_${randomUUID()}`;

beforeAll(async () => {
  prisma = createPrisma(process.env.DATABASE_URL!);
  await prisma.merchant.create({ data: { id: MERCHANT, name: 'Webhook e2e shop', apiKeyHash: hashApiKey(KEY) } });
  [stack, receiver] = await Promise.all([
    // The receiver listens on 127.0.0.1, which the API and the workers refuse unless told otherwise.
    startStack({ env: { WEBHOOK_RETRY_INITIAL_INTERVAL_MS: '500', WEBHOOK_RETRY_MAX_INTERVAL_MS: '1000', WEBHOOK_ALLOW_PRIVATE_HOSTS: '1' } }),
    startWebhookReceiver(),
  ]);
});

afterAll(async () => {
  await stack?.stop();
  await receiver?.close();
  await prisma?.$disconnect();
});

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${stack.apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

describe('webhooks over HTTP', () => {
  it('delivers signed checkout events, shows the attempts and redelivers on request', async () => {
    const endpoint = await api('POST', '/v1/webhook-endpoints', { url: receiver.url, events: ['checkout.processing', 'checkout.captured'] });
    expect(endpoint.status).toBe(201);
    receiver.secret = endpoint.body.secret;

    const sku = `wh-${randomUUID().slice(0, 8)}`;
    expect((await api('POST', '/v1/products', { sku, name: 'Ticket', price: { amount: '1999', currency: 'JPY' }, stock: 2 })).status).toBe(201);
    const checkout = await api(
      'POST',
      '/v1/checkouts',
      { customerId: 'cus_wh', items: [{ sku, quantity: 1 }], payment: { method: 'card', token: 'tok_visa' } },
      { 'idempotency-key': randomUUID() },
    );
    expect(checkout.status).toBe(201);

    const captured = await waitFor('checkout.captured delivery', () => receiver.deliveries.find((d) => d.type === 'checkout.captured'), 45_000);
    expect(captured).toMatchObject({ verified: true, answered: 200, data: { id: checkout.body.id, status: 'captured', amount: '1999', currency: 'JPY', amountCaptured: '1999' } });
    await waitFor('checkout.processing delivery', () => receiver.deliveries.find((d) => d.type === 'checkout.processing'));
    expect(receiver.deliveries.every((d) => d.verified)).toBe(true);

    const listed = await api('GET', '/v1/events?type=checkout.captured');
    expect(listed.body.data.map((e: Json) => e.id)).toEqual([captured.id]);
    const shown = await waitFor('the attempt on record', async () => {
      const res = await api('GET', `/v1/events/${captured.id}`);
      return res.body.deliveryAttempts.length > 0 ? res.body : undefined;
    });
    expect(shown.deliveryAttempts).toEqual([{ endpointId: endpoint.body.id, attempt: 1, statusCode: 200, error: null, durationMs: expect.any(Number), createdAt: expect.any(String) }]);

    const redelivered = await api('POST', `/v1/events/${captured.id}/redeliver`);
    expect(redelivered).toEqual({ status: 202, body: { id: captured.id, endpoints: [endpoint.body.id], inProgress: [] } });
    await waitFor('the redelivery', () => (receiver.deliveries.filter((d) => d.id === captured.id).length === 2 ? true : undefined));
    expect(receiver.deliveries.filter((d) => d.id === captured.id).every((d) => d.verified && d.answered === 200)).toBe(true);
  });
});
