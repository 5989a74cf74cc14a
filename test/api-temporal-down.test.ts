// While the Temporal server is unreachable (crashed, restarting), a request that needs it answers
// 503 with Retry-After, like a request that needs PostgreSQL while it restarts: the request did
// nothing that a retry with the same Idempotency-Key would repeat. Not a 500: the chaos run saw one
// while it restarted Temporal. A real client on a port nothing listens on stands in for the server:
// its calls fail with gRPC UNAVAILABLE after the client's own retries.
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkoutId, topupId } from '../domain/index.js';
import type { PrismaClient } from '../platform/db.js';
import { newOperatorApiKey } from '../scripts/dev-secrets.js';
import { getFreePort } from '../scripts/processes.js';
import { testDataConverter } from './support/payload-keys.js';
import { call, createMerchant, openPrisma, startApi, type Res, type TestApi, type TestMerchant } from './support/api-harness.js';

let prisma: PrismaClient;
let connection: Connection;
let api: TestApi;
let merchant: TestMerchant;
const operatorKey = newOperatorApiKey();

beforeAll(async () => {
  prisma = openPrisma();
  merchant = await createMerchant(prisma, 'tdown');
  connection = Connection.lazy({ address: `127.0.0.1:${await getFreePort()}` });
  api = await startApi(prisma, { temporal: new Client({ connection, dataConverter: testDataConverter() }), operatorApiKey: operatorKey });
});

afterAll(async () => {
  await api?.close();
  await connection?.close();
  await prisma?.$disconnect();
});

/** 503, when to retry, and a code: the flow's own `<resource>_pending` or the general one. */
function expectUnavailable(res: Res, code: string): void {
  expect(res.status, res.text).toBe(503);
  expect(res.headers['retry-after']).toMatch(/^\d+$/);
  expect(res.body.error).toMatchObject({ type: 'api_error', code, message: expect.stringMatching(/retry/i) });
}

describe('API while the Temporal server is unreachable', () => {
  it('answers 503 to a checkout, a top-up and a reconciliation, and leaves nothing behind', async () => {
    const sku = `sku-${randomUUID().slice(0, 8)}`;
    const product = await call(api.url, merchant.key, 'POST', '/v1/products', { sku, name: 'Tee', price: { amount: '1200', currency: 'JPY' }, stock: 5 });
    expect(product.status, product.text).toBe(201);
    const checkoutKey = `co-${randomUUID()}`;
    const topupKey = `tu-${randomUUID()}`;

    // Concurrently: each waits out the client's retries (seconds) before it fails.
    const [checkout, topup, reconciliation] = await Promise.all([
      call(api.url, merchant.key, 'POST', '/v1/checkouts', { customerId: 'cus_1', items: [{ sku, quantity: 1 }], payment: { method: 'card', token: 'tok_visa' } }, { 'idempotency-key': checkoutKey }),
      call(api.url, merchant.key, 'POST', '/v1/topups', { customerId: 'cus_1', amount: { amount: '5000', currency: 'JPY' }, payment: { method: 'card', token: 'tok_visa' } }, { 'idempotency-key': topupKey }),
      call(api.url, operatorKey, 'POST', '/v1/reconciliations', {}),
    ]);
    expectUnavailable(checkout, 'checkout_pending');
    expectUnavailable(topup, 'topup_pending');
    expectUnavailable(reconciliation, 'service_unavailable');

    // Nothing half-written: no rows, no stock held, the keys free for the retry, the scope free.
    expect(await prisma.checkout.findUnique({ where: { id: checkoutId(merchant.id, checkoutKey) } })).toBeNull();
    expect(await prisma.topup.findUnique({ where: { id: topupId(merchant.id, topupKey) } })).toBeNull();
    expect(await prisma.product.findUnique({ where: { merchantId_sku: { merchantId: merchant.id, sku } } })).toMatchObject({ available: 5, reserved: 0 });
    expect(await prisma.idempotencyRequest.count({ where: { merchantId: merchant.id, key: { in: [checkoutKey, topupKey] } } })).toBe(0);
    expect(await prisma.reconciliationLease.count({ where: { scope: 'platform' } })).toBe(0);
  }, 90_000);
});
