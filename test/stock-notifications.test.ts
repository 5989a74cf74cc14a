// Units that go back on sale reach every API process through LISTEN/NOTIFY: a release in the
// worker (activities/inventory.ts) clears the API's sold-out mark for the SKU at its commit.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStockGate } from '../api/stock-gate.js';
import { listenForReturnedStock } from '../api/stock-notifications.js';
import { createInventoryActivities, holdStock } from '../activities/inventory.js';
import { createPrisma, type PrismaClient } from '../platform/db.js';
import { createLogger } from '../platform/logger.js';
import { createMerchant, type TestMerchant } from './support/merchants.js';

let prisma: PrismaClient;
let merchant: TestMerchant;

beforeAll(async () => {
  prisma = createPrisma(process.env.DATABASE_URL!);
  merchant = await createMerchant(prisma, 'stock_notices');
});

afterAll(async () => {
  await prisma?.$disconnect();
});

async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('returned stock', () => {
  it('clears the sold-out mark of the SKU a release returned, in every listening process, at its commit', async () => {
    const sku = `ret-${randomUUID().slice(0, 8)}`;
    const other = `ret-${randomUUID().slice(0, 8)}`;
    await prisma.product.createMany({
      data: [sku, other].map((s) => ({ merchantId: merchant.id, sku: s, name: 'Cap', priceAmount: 900n, currency: 'JPY', available: 1 })),
    });
    const gates = [createStockGate(), createStockGate()];
    const listeners = gates.map((gate) => listenForReturnedStock(process.env.DATABASE_URL!, gate, createLogger('test', 'error')));
    try {
      // The listeners forget every mark when they (re)connect: wait for that before marking.
      await Promise.all(listeners.map((l) => l.ready));
      for (const gate of gates) {
        gate.markSoldOut(merchant.id, sku, 1);
        gate.markSoldOut(merchant.id, other, 1);
      }
      const checkoutId = `co_${randomUUID().replaceAll('-', '')}`;
      await prisma.checkout.create({ data: { id: checkoutId, merchantId: merchant.id, customerId: 'cus_ret', idempotencyKey: randomUUID(), status: 'failed', amount: 900n, currency: 'JPY', paymentMethod: 'card' } });
      await prisma.$transaction((tx) => holdStock(tx, { checkoutId, merchantId: merchant.id, items: [{ sku, quantity: 1 }] }));

      expect(await createInventoryActivities(prisma).releaseStock({ checkoutId })).toEqual({ released: 1 });
      for (const gate of gates) await until('the notice', () => !gate.knownSoldOut(merchant.id, [{ sku, quantity: 1 }]));
      // Only the SKU that came back.
      for (const gate of gates) expect(gate.knownSoldOut(merchant.id, [{ sku: other, quantity: 1 }])).toBe(true);
    } finally {
      await Promise.all(listeners.map((l) => l.stop()));
    }
  });
});
