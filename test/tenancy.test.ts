// Tenancy over HTTP, in process: merchant B, with a working key of its own, can neither read nor
// act on anything of merchant A. Every one of A's ids answers B exactly as an id that does not
// exist does (404, same body), listings show B only its own objects, B's sku may equal A's, and
// after all of B's attempts A's rows are exactly as they were and no workflow was asked anything.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkoutId, ledgerAccount, payoutId, topupId } from '../domain/index.js';
import type { PrismaClient } from '../platform/db.js';
import { createTransfer } from '../platform/ledger.js';
import { call, createMerchant, openPrisma, startApi, type Res, type TestApi, type TestMerchant } from './support/api-harness.js';

let prisma: PrismaClient;
let api: TestApi;
let a: TestMerchant;
let b: TestMerchant;
const ids = { sku: '', checkout: '', topup: '', payout: '', event: '', endpoint: '', reconciliation: '', merchantRun: '', customer: '' };

beforeAll(async () => {
  prisma = openPrisma();
  [a, b] = await Promise.all([createMerchant(prisma, 'tenant_a'), createMerchant(prisma, 'tenant_b')]);
  api = await startApi(prisma);
  const m = a.id;
  ids.customer = `cus_${randomUUID().slice(0, 8)}`;
  ids.sku = `ten-${randomUUID().slice(0, 8)}`;
  expect((await call(api.url, a.key, 'POST', '/v1/products', { sku: ids.sku, name: "A's ticket", price: { amount: '1500', currency: 'JPY' }, stock: 10 })).status).toBe(201);
  ids.checkout = checkoutId(m, 'order-1');
  await prisma.checkout.create({
    data: {
      id: ids.checkout,
      merchantId: m,
      customerId: ids.customer,
      idempotencyKey: 'order-1',
      status: 'requires_capture',
      amount: 1500n,
      currency: 'JPY',
      paymentMethod: 'card',
      captureMethod: 'manual',
      items: { create: [{ sku: ids.sku, quantity: 1, unitAmount: 1500n }] },
    },
  });
  ids.topup = topupId(m, 'topup-1');
  await prisma.topup.create({ data: { id: ids.topup, merchantId: m, customerId: ids.customer, idempotencyKey: 'topup-1', amount: 5000n, currency: 'JPY', status: 'succeeded' } });
  // The wallet A's top-up credited, on the real ledger.
  await createTransfer(prisma, {
    id: `${ids.topup}:credit`,
    debitAccountId: ledgerAccount.cardClearing('JPY'),
    creditAccountId: ledgerAccount.wallet(m, ids.customer, 'JPY'),
    amount: '5000',
    currency: 'JPY',
    kind: 'posted',
    code: 'topup',
    reference: ids.topup,
  });
  ids.payout = payoutId(m, 'payout-1');
  await prisma.payout.create({
    data: {
      id: ids.payout,
      merchantId: m,
      customerId: ids.customer,
      idempotencyKey: 'payout-1',
      amount: 1000n,
      currency: 'JPY',
      bankCode: '0001',
      accountNumber: '1234567',
      scheduledAt: new Date(Date.now() + 3_600_000),
      status: 'pending',
    },
  });
  ids.event = `evt_${randomUUID()}`;
  await prisma.event.create({ data: { id: ids.event, merchantId: m, type: 'checkout.requires_capture', resourceType: 'checkout', resourceId: ids.checkout, data: { id: ids.checkout } } });
  const endpoint = await call(api.url, a.key, 'POST', '/v1/webhook-endpoints', { url: 'https://a.example/hook', events: ['*'] });
  expect(endpoint.status).toBe(201);
  ids.endpoint = endpoint.body.id;
  ids.reconciliation = `reconciliation-${randomUUID()}`;
  await prisma.reconciliation.create({
    data: {
      id: ids.reconciliation,
      status: 'completed',
      until: new Date(),
      finishedAt: new Date(),
      counts: { repaired: 1, reported: 0, byKind: { stuck_stock: 1 } },
      items: { create: [{ kind: 'stuck_stock', resourceId: ids.checkout, merchantId: m, action: 'repaired', details: { units: 1 } }] },
    },
  });
  // A's own run, over A's records only.
  ids.merchantRun = `reconciliation-${randomUUID()}`;
  await prisma.reconciliation.create({
    data: {
      id: ids.merchantRun,
      status: 'completed',
      until: new Date(),
      finishedAt: new Date(),
      merchantId: m,
      items: { create: [{ kind: 'reservation_not_released', resourceId: ids.checkout, merchantId: m, action: 'repaired', details: {} }] },
    },
  });
}, 60_000);

afterAll(async () => {
  await api?.close();
  await prisma?.$disconnect();
});

/** Every row of A's that B could conceivably touch, as it stands. */
async function stateOfA(): Promise<string> {
  const m = a.id;
  const state = {
    merchant: await prisma.merchant.findUniqueOrThrow({ where: { id: m } }),
    products: await prisma.product.findMany({ where: { merchantId: m }, orderBy: { sku: 'asc' } }),
    checkouts: await prisma.checkout.findMany({ where: { merchantId: m }, include: { items: true, refunds: true, paymentAttempts: true }, orderBy: { id: 'asc' } }),
    topups: await prisma.topup.findMany({ where: { merchantId: m } }),
    payouts: await prisma.payout.findMany({ where: { merchantId: m } }),
    events: await prisma.event.findMany({ where: { merchantId: m } }),
    endpoints: await prisma.webhookEndpoint.findMany({ where: { merchantId: m } }),
    idempotency: await prisma.idempotencyRequest.findMany({ where: { merchantId: m } }),
    transfers: await prisma.ledgerTransfer.findMany({ where: { OR: [{ debitAccountId: { contains: `:${m}:` } }, { creditAccountId: { contains: `:${m}:` } }] } }),
    reconciliationItems: await prisma.reconciliationItem.findMany({ where: { merchantId: m } }),
  };
  return JSON.stringify(state, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

const asB = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => call(api.url, b.key, method, path, body, headers);

function expectSameAsUnknown(mine: Res, unknown: Res): void {
  expect(mine.status, mine.text).toBe(404);
  expect(mine.body).toEqual(unknown.body);
  expect(mine.body.error.type).toBe('not_found');
}

describe("merchant B and merchant A's objects", () => {
  it("answers every one of A's ids exactly like an unknown id, and changes nothing of A's", async () => {
    const before = await stateOfA();
    const unknownCheckout = checkoutId(a.id, `nope-${randomUUID()}`);
    const cases: Array<[string, string, string, unknown]> = [
      ['GET', `/v1/checkouts/${ids.checkout}`, `/v1/checkouts/${unknownCheckout}`, undefined],
      ['POST', `/v1/checkouts/${ids.checkout}/capture`, `/v1/checkouts/${unknownCheckout}/capture`, { amount: { amount: '1500', currency: 'JPY' } }],
      ['POST', `/v1/checkouts/${ids.checkout}/cancel`, `/v1/checkouts/${unknownCheckout}/cancel`, {}],
      ['POST', `/v1/checkouts/${ids.checkout}/confirm`, `/v1/checkouts/${unknownCheckout}/confirm`, { result: 'succeeded' }],
      ['POST', `/v1/checkouts/${ids.checkout}/refunds`, `/v1/checkouts/${unknownCheckout}/refunds`, {}],
      ['GET', `/v1/topups/${ids.topup}`, `/v1/topups/${topupId(a.id, 'nope')}`, undefined],
      ['GET', `/v1/payouts/${ids.payout}`, `/v1/payouts/${payoutId(a.id, 'nope')}`, undefined],
      ['POST', `/v1/payouts/${ids.payout}/cancel`, `/v1/payouts/${payoutId(a.id, 'nope')}/cancel`, {}],
      ['GET', `/v1/events/${ids.event}`, `/v1/events/evt_${randomUUID()}`, undefined],
      ['POST', `/v1/events/${ids.event}/redeliver`, `/v1/events/evt_${randomUUID()}/redeliver`, {}],
      ['DELETE', `/v1/webhook-endpoints/${ids.endpoint}`, `/v1/webhook-endpoints/we_${randomUUID()}`, undefined],
    ];
    for (const [method, path, unknownPath, body] of cases) {
      // With and without an Idempotency-Key: a key must not make the layer answer differently either.
      for (const keyed of [false, true]) {
        const key = (): Record<string, string> => (keyed ? { 'idempotency-key': `b-${randomUUID()}` } : {});
        const mine = await asB(method, path, body, key());
        const unknown = await asB(method, unknownPath, body, key());
        expectSameAsUnknown(mine, unknown);
      }
    }
    // A product: the message names the sku asked for, whoever owns it.
    const product = await asB('GET', `/v1/products/${ids.sku}`);
    const unknownSku = `ten-${randomUUID().slice(0, 8)}`;
    const unknownProduct = await asB('GET', `/v1/products/${unknownSku}`);
    expect(product.status).toBe(404);
    expect(product.body).toEqual(JSON.parse(JSON.stringify(unknownProduct.body).replace(unknownSku, ids.sku)));
    // A starting_after cursor that is A's event is as unknown as any.
    const cursor = await asB('GET', `/v1/events?starting_after=${ids.event}`);
    const unknownCursor = await asB('GET', `/v1/events?starting_after=evt_${randomUUID()}`);
    expectSameAsUnknown(cursor, unknownCursor);

    expect(api.temporal.updates).toHaveLength(0);
    expect(api.temporal.starts).toHaveLength(0);
    expect(await stateOfA()).toBe(before);
    // The idempotency records B's keyed attempts left are B's own and replay B's own 404s.
    const bRows = await prisma.idempotencyRequest.findMany({ where: { merchantId: b.id } });
    expect(bRows.every((r) => r.responseStatus === 404)).toBe(true);
  });

  it("shows B the wallet of A's customer as B's own, empty, wallet", async () => {
    const aWallet = await call(api.url, a.key, 'GET', `/v1/wallets/${ids.customer}`);
    expect(aWallet.body).toMatchObject({ available: { amount: '5000', currency: 'JPY' } });
    const unknownCustomer = `cus_${randomUUID().slice(0, 8)}`;
    const wallet = await asB('GET', `/v1/wallets/${ids.customer}`);
    const unknown = await asB('GET', `/v1/wallets/${unknownCustomer}`);
    expect(wallet.status).toBe(200);
    expect(wallet.body).toEqual({ ...unknown.body, customerId: ids.customer });
    expect(wallet.body.available.amount).toBe('0');
    const history = await asB('GET', `/v1/wallets/${ids.customer}/transactions`);
    expect(history.body).toEqual({ data: [], hasMore: false, nextCursor: null });
    const aHistory = await call(api.url, a.key, 'GET', `/v1/wallets/${ids.customer}/transactions`);
    expect(aHistory.body.data).toHaveLength(1);
    // A's cursor names A's wallet's journal; on B's wallet it finds nothing of A's.
    const withCursor = await asB('GET', `/v1/wallets/${ids.customer}/transactions?starting_after=${encodeURIComponent(aHistory.body.data[0].id)}`);
    expect(withCursor.status).toBeLessThan(500);
    expect(withCursor.body.data ?? []).toEqual([]);
  });

  it("lets B use the same sku as A without touching A's product", async () => {
    const before = await prisma.product.findUniqueOrThrow({ where: { merchantId_sku: { merchantId: a.id, sku: ids.sku } } });
    const created = await asB('POST', '/v1/products', { sku: ids.sku, name: "B's ticket", price: { amount: '99', currency: 'USD' }, stock: 1 });
    expect(created.status, created.text).toBe(201);
    expect((await asB('GET', `/v1/products/${ids.sku}`)).body).toMatchObject({ name: "B's ticket", price: { amount: '99', currency: 'USD' } });
    expect((await call(api.url, a.key, 'GET', `/v1/products/${ids.sku}`)).body).toMatchObject({ name: "A's ticket", price: { amount: '1500', currency: 'JPY' } });
    expect(await prisma.product.findUniqueOrThrow({ where: { merchantId_sku: { merchantId: a.id, sku: ids.sku } } })).toEqual(before);
    // And B's checkout of that sku is priced from B's product, never A's.
    const checkout = await asB(
      'POST',
      '/v1/checkouts',
      { customerId: 'cus_b', items: [{ sku: ids.sku, quantity: 1 }], payment: { method: 'card', token: 'tok_visa' } },
      { 'idempotency-key': `b-${randomUUID()}` },
    );
    expect(checkout.status, checkout.text).toBe(201);
    expect(checkout.body.amount).toEqual({ amount: '99', currency: 'USD' });
    expect(await prisma.product.findUniqueOrThrow({ where: { merchantId_sku: { merchantId: a.id, sku: ids.sku } } })).toEqual(before);
  });

  it("never lists A's objects to B", async () => {
    const events = await asB('GET', '/v1/events?limit=100');
    expect(events.status).toBe(200);
    expect(events.body.data.map((e: { id: string }) => e.id)).not.toContain(ids.event);
    expect((await call(api.url, a.key, 'GET', '/v1/events?limit=100')).body.data.map((e: { id: string }) => e.id)).toContain(ids.event);

    const endpoints = await asB('GET', '/v1/webhook-endpoints');
    expect(endpoints.body).toEqual({ data: [] });
    expect((await call(api.url, a.key, 'GET', '/v1/webhook-endpoints')).body.data.map((e: { id: string }) => e.id)).toEqual([ids.endpoint]);

    // A platform-wide run (no merchant): B sees only B's items of it (none), and counts over those.
    const run = await asB('GET', `/v1/reconciliations/${ids.reconciliation}`);
    expect(run.status).toBe(200);
    expect(run.body.items).toEqual([]);
    expect(run.body.counts).toEqual({ repaired: 0, reported: 0, byKind: {} });
    const aRun = await call(api.url, a.key, 'GET', `/v1/reconciliations/${ids.reconciliation}`);
    expect(aRun.body.items.map((i: { resourceId: string }) => i.resourceId)).toEqual([ids.checkout]);
    expect(JSON.stringify(run.body)).not.toContain(a.id);
    // A's own run is A's: to B, as unknown as any id.
    const unknownRun = `reconciliation-${randomUUID()}`;
    const merchantRun = await asB('GET', `/v1/reconciliations/${ids.merchantRun}`);
    expect(merchantRun.status).toBe(404);
    expect(merchantRun.body).toEqual(JSON.parse(JSON.stringify((await asB('GET', `/v1/reconciliations/${unknownRun}`)).body).replace(unknownRun, ids.merchantRun)));
    expect((await call(api.url, a.key, 'GET', `/v1/reconciliations/${ids.merchantRun}`)).body.items).toHaveLength(1);
  });

  it('gives A its own objects, so the 404s above are about ownership and not about the ids', async () => {
    for (const path of [`/v1/checkouts/${ids.checkout}`, `/v1/topups/${ids.topup}`, `/v1/payouts/${ids.payout}`, `/v1/events/${ids.event}`]) {
      const res = await call(api.url, a.key, 'GET', path);
      expect(res.status, `${path}: ${res.text}`).toBe(200);
    }
  });
});
