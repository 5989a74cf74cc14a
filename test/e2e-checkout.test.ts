// End to end: the card-network simulator, the worker and the API run as real processes against
// the real Temporal server and PostgreSQL, and the test speaks only HTTP, like a merchant.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../scripts/stack.js';
import { expectBooksOf } from './support/books.js';
import { createMerchant, type TestMerchant } from './support/merchants.js';
import { callApi } from './support/stack-http.js';

let merchant: TestMerchant;
/** Requests as this file's own merchant (made in beforeAll, in the database the stack shares). */
let stack: Stack;

beforeAll(async () => {
  merchant = await createMerchant(process.env.DATABASE_URL!, 'e2e_checkout');
  stack = await startStack({ env: { CARD_NETWORK_LATENCY_MS: '1500' } });
});

afterAll(async () => {
  await stack?.stop();
});

const api = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => callApi(stack.apiUrl, merchant.key, method, path, body, headers);

async function createProduct(stock: number) {
  const sku = `e2e-${randomUUID().slice(0, 8)}`;
  const res = await api('POST', '/v1/products', { sku, name: 'Festival ticket', price: { amount: '1999', currency: 'JPY' }, stock });
  expect(res.status).toBe(201);
  return sku;
}

function checkout(sku: string, token: string, key = randomUUID()) {
  return api('POST', '/v1/checkouts', { customerId: 'cus_e2e', items: [{ sku, quantity: 1 }], payment: { method: 'card', token } }, { 'idempotency-key': key });
}

async function waitForStatus(id: string, statuses: string[], timeoutMs = 45_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await api('GET', `/v1/checkouts/${encodeURIComponent(id)}`);
    if (statuses.includes(res.body.status)) return res.body;
    if (Date.now() > deadline) throw new Error(`checkout ${id} stuck in ${res.body.status}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function networkOperations(reference: string): Promise<Array<{ type: string; status: string }>> {
  const res = await fetch(`${stack.cardNetworkUrl}/v1/operations?reference=${encodeURIComponent(reference)}`);
  return ((await res.json()) as { data: Array<{ type: string; status: string }> }).data;
}

describe('checkout over HTTP', () => {
  it('captures a tok_visa checkout and sells the stock', async () => {
    const sku = await createProduct(3);
    const created = await checkout(sku, 'tok_visa');
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ status: 'processing', amount: { amount: '1999', currency: 'JPY' }, items: [{ sku, quantity: 1 }] });

    const done = await waitForStatus(created.body.id, ['captured', 'failed']);
    expect(done.status).toBe('captured');
    expect((await api('GET', `/v1/products/${sku}`)).body.stock).toEqual({ available: 2, reserved: 0, sold: 1 });
    const ops = await networkOperations(created.body.id);
    expect(ops.filter((o) => o.type === 'authorization')).toHaveLength(1);
    expect(ops.filter((o) => o.type === 'capture')).toHaveLength(1);
  });

  it('fails a tok_chargeDeclined checkout and puts the stock back', async () => {
    const sku = await createProduct(3);
    const created = await checkout(sku, 'tok_chargeDeclined');
    expect(created.status).toBe(201);

    const done = await waitForStatus(created.body.id, ['captured', 'failed']);
    expect(done.status).toBe('failed');
    expect((await api('GET', `/v1/products/${sku}`)).body.stock).toEqual({ available: 3, reserved: 0, sold: 0 });
    expect((await networkOperations(created.body.id)).filter((o) => o.type === 'capture')).toHaveLength(0);
  });

  it('returns the same checkout for a repeated Idempotency-Key and authorizes once', async () => {
    const sku = await createProduct(3);
    const key = randomUUID();
    const [first, second] = await Promise.all([checkout(sku, 'tok_visa', key), checkout(sku, 'tok_visa', key)]);
    expect(first.body.id).toBe(second.body.id);
    await waitForStatus(first.body.id, ['captured']);
    // Stripe semantics: a repeated request gets the first response back, not a second checkout.
    const third = await checkout(sku, 'tok_visa', key);
    expect(third.status).toBe(201);
    expect(third.body).toEqual(first.body);
    expect((await api('GET', `/v1/checkouts/${encodeURIComponent(first.body.id)}`)).body.status).toBe('captured');

    expect((await networkOperations(first.body.id)).filter((o) => o.type === 'authorization')).toHaveLength(1);
    expect((await api('GET', `/v1/products/${sku}`)).body.stock).toEqual({ available: 2, reserved: 0, sold: 1 });
  });

  it('finishes a checkout after its worker is killed mid-payment, with one capture', async () => {
    const sku = await createProduct(3);
    const created = await checkout(sku, 'tok_visa');
    expect(created.body.status).toBe('processing');
    // The authorization is in flight at the slow network; the worker dies under it.
    await stack.killWorker();
    await new Promise((r) => setTimeout(r, 500));
    await stack.startWorker();

    const done = await waitForStatus(created.body.id, ['captured', 'failed'], 90_000);
    expect(done.status).toBe('captured');
    const ops = await networkOperations(created.body.id);
    expect(ops.filter((o) => o.type === 'authorization')).toHaveLength(1);
    expect(ops.filter((o) => o.type === 'capture')).toHaveLength(1);
    expect((await api('GET', `/v1/products/${sku}`)).body.stock).toEqual({ available: 2, reserved: 0, sold: 1 });
  });
});

describe('the books', () => {
  it('of this file\'s merchant match every row, the network and the bank after all of the above', async () => {
    await expectBooksOf(merchant.id);
  });
});
