// A flash sale through the real HTTP API: many more buyers than units arrive at once. Exactly the
// stock is sold, everyone else hears `sold_out` synchronously, and no hold is left behind.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../scripts/stack.js';
import { createMerchant, type TestMerchant } from './support/merchants.js';

let merchant: TestMerchant;
/** Requests as this file's own merchant (made in beforeAll, in the database the stack shares). */
const auth = () => ({ authorization: `Bearer ${merchant.key}`, 'content-type': 'application/json' });
const BUYERS = 200;
const UNITS = 50;
let stack: Stack;

beforeAll(async () => {
  merchant = await createMerchant(process.env.DATABASE_URL!, 'flash_sale');
  stack = await startStack({ env: { CARD_NETWORK_LATENCY_MS: '200' } });
});

afterAll(async () => {
  await stack?.stop();
});

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${stack.apiUrl}${path}`, { method: 'POST', headers: { ...auth(), ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as { id: string; status: string } };
}

async function get<T>(path: string): Promise<T> {
  const res = await fetch(`${stack.apiUrl}${path}`, { headers: auth() });
  return (await res.json()) as T;
}

describe('flash sale over HTTP', () => {
  it(`sells exactly ${UNITS} units to ${BUYERS} simultaneous buyers and answers the rest sold_out`, async () => {
    const sku = `drop-${randomUUID().slice(0, 8)}`;
    expect((await post('/v1/products', { sku, name: 'Limited drop', price: { amount: '12000', currency: 'JPY' }, stock: UNITS })).status).toBe(201);

    const answers = await Promise.all(
      Array.from({ length: BUYERS }, (_, i) =>
        post('/v1/checkouts', { customerId: `buyer-${i}`, items: [{ sku, quantity: 1 }], payment: { method: 'card', token: 'tok_visa' } }, { 'idempotency-key': randomUUID() }),
      ),
    );
    expect(answers.filter((a) => a.status !== 201)).toEqual([]);
    const held = answers.filter((a) => a.body.status === 'processing');
    const soldOut = answers.filter((a) => a.body.status === 'sold_out');
    expect(held).toHaveLength(UNITS);
    expect(soldOut).toHaveLength(BUYERS - UNITS);

    const deadline = Date.now() + 90_000;
    for (const { body } of held) {
      for (;;) {
        const { status } = await get<{ status: string }>(`/v1/checkouts/${body.id}`);
        if (status === 'captured') break;
        if (status === 'failed' || Date.now() > deadline) throw new Error(`${body.id} ended ${status}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const captures = await Promise.all(
      held.map(async ({ body }) => {
        const res = await fetch(`${stack.cardNetworkUrl}/v1/operations?reference=${encodeURIComponent(body.id)}`);
        return ((await res.json()) as { data: Array<{ type: string }> }).data.filter((op) => op.type === 'capture').length;
      }),
    );
    expect(captures).toEqual(Array(UNITS).fill(1));
    const product = await get<{ stock: { available: number; reserved: number; sold: number } }>(`/v1/products/${sku}`);
    expect(product.stock).toEqual({ available: 0, reserved: 0, sold: UNITS });
  });
});
