// An authorization that the card network grants after the stock hold ran out, on real processes:
// the simulator takes longer than the hold to answer, the workflow cancels the call in flight, and
// the network still acts on the request it received. The checkout must end with no authorization
// left open at the network, without waiting for reconciliation.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../scripts/stack.js';
import { createMerchant, type TestMerchant } from './support/merchants.js';
import { callApi } from './support/stack-http.js';

let merchant: TestMerchant;
/** Requests as this file's own merchant (made in beforeAll, in the database the stack shares). */
let stack: Stack;
let db: pg.Pool;

beforeAll(async () => {
  merchant = await createMerchant(process.env.DATABASE_URL!, 'e2e_late_auth');
  // The network answers in 2.5 s, the hold lasts 1 s, and the network acts on a request at most
  // 4 s after it arrived (so the workflow knows when "nothing under this key" is final).
  stack = await startStack({ env: { CARD_NETWORK_LATENCY_MS: '2500', CARD_NETWORK_MAX_PROCESSING_MS: '4000' } });
  db = new pg.Pool({ connectionString: process.env.DATABASE_URL });
});

afterAll(async () => {
  await stack?.stop();
  await db?.end();
});

const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => callApi(stack.apiUrl, merchant.key, method, path, body, headers);

async function until(id: string, statuses: string[]) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const res = await call('GET', `/v1/checkouts/${id}`);
    if (statuses.includes(res.body.status)) return res.body;
    if (Date.now() > deadline) throw new Error(`${id} is ${res.body.status}, expected one of ${statuses.join(', ')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('a card network slower than the stock hold', () => {
  it('expires the checkout and voids the authorization the network granted late', async () => {
    const settings = await call('PATCH', '/v1/settings', { reservationTimeoutSeconds: 1 });
    expect(settings.status).toBe(200);
    try {
      const sku = `late-${randomUUID().slice(0, 8)}`;
      expect((await call('POST', '/v1/products', { sku, name: 'Sneaker', price: { amount: '12000', currency: 'JPY' }, stock: 3 })).status).toBe(201);
      const created = await call('POST', '/v1/checkouts', { customerId: 'cus_late', items: [{ sku, quantity: 1 }], payment: { method: 'card', token: 'tok_visa' } }, { 'idempotency-key': randomUUID() });
      expect(created.status).toBe(201);
      const id = created.body.id as string;

      const ended = await until(id, ['expired', 'captured', 'settled', 'failed', 'canceled']);
      expect(ended).toMatchObject({ status: 'expired' });
      // The run closes only once the authorization is resolved: poll the network's own books.
      const deadline = Date.now() + 30_000;
      let states: string[] = [];
      for (;;) {
        states = (await db.query<{ state: string }>('SELECT state FROM card_network.authorizations WHERE reference = $1', [id])).rows.map((r) => r.state);
        if ((states.length > 0 && states.every((s) => s !== 'authorized')) || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(states).toEqual(['voided']);
      expect((await call('GET', `/v1/products/${sku}`)).body.stock).toEqual({ available: 3, reserved: 0, sold: 0 });
    } finally {
      await call('PATCH', '/v1/settings', { reservationTimeoutSeconds: 600 });
    }
  });
});
