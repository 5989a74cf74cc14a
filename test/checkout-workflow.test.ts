// The checkout workflow on a real Temporal server and real PostgreSQL, with an in-process card
// network so each test can make the network decline, lose a response or reject a call.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { checkoutId, DEFAULT_CHECKOUT_TIMEOUTS, PaymentStatus, type CheckoutInput, type CheckoutSnapshot } from '../domain/index.js';
import { createPrisma, type PrismaClient } from '../platform/db.js';
import { bundlePaymentWorkflows } from '../workers/payment-worker.js';
import { checkoutWorkflowV2 } from '../workflows/index.js';
import { expectBooksOf } from './support/books.js';
import { recordHistory } from './support/histories.js';
import { FakeCardNetwork } from './support/fake-card-network.js';
import { testDataConverter } from './support/payload-keys.js';
import { createMerchant, type TestMerchant } from './support/merchants.js';
import { createTestWorker } from './support/test-worker.js';

let merchant: TestMerchant;
let env: TestWorkflowEnvironment;
let prisma: PrismaClient;
let workflowBundle: Awaited<ReturnType<typeof bundlePaymentWorkflows>>;

beforeAll(async () => {
  env = await TestWorkflowEnvironment.createFromExistingServer({ address: process.env.TEMPORAL_ADDRESS!, client: { dataConverter: testDataConverter() } });
  prisma = createPrisma(process.env.DATABASE_URL!);
  merchant = await createMerchant(prisma, 'checkout_wf');
  workflowBundle = await bundlePaymentWorkflows();
});

afterAll(async () => {
  await prisma?.$disconnect();
  await env?.teardown();
});

async function product(stock: number, price = 1500n) {
  const sku = `sku-${randomUUID()}`;
  await prisma.product.create({ data: { merchantId: merchant.id, sku, name: 'Limited sneaker', priceAmount: price, currency: 'JPY', available: stock } });
  return sku;
}

async function stockOf(sku: string) {
  const p = await prisma.product.findUniqueOrThrow({ where: { merchantId_sku: { merchantId: merchant.id, sku } } });
  return { available: p.available, reserved: p.reserved, sold: p.sold };
}

/** Runs one checkout to completion on a fresh worker wired to `network`. */
async function runCheckout(network: FakeCardNetwork, sku: string, opts: { token?: string; quantity?: number; record: string }) {
  const taskQueue = `test-${randomUUID()}`;
  const key = randomUUID();
  const input: CheckoutInput = {
    checkoutId: checkoutId(merchant.id, key),
    merchantId: merchant.id,
    customerId: 'cus_1',
    idempotencyKey: key,
    items: [{ sku, quantity: opts.quantity ?? 2 }],
    payment: { method: 'card', token: opts.token ?? 'tok_visa' },
    captureMethod: 'automatic',
    // The real server's timers run in real time: settle at once and close the refund window, so
    // the run completes (the timers themselves are covered by the time-skipping tests).
    timeouts: { ...DEFAULT_CHECKOUT_TIMEOUTS, settlementDelayMs: 0, refundWindowMs: 0 },
  };
  const worker = await createTestWorker({ env, prisma, workflowBundle, taskQueue, cardNetwork: network });
  return worker.runUntil(async () => {
    const handle = await env.client.workflow.start(checkoutWorkflowV2, {
      workflowId: input.checkoutId,
      taskQueue,
      args: [input],
      typedSearchAttributes: [{ key: PaymentStatus, value: 'pending' }],
    });
    const result: CheckoutSnapshot = await handle.result();
    await recordHistory(opts.record, handle);
    const description = await handle.describe();
    const row = await prisma.checkout.findUniqueOrThrow({ where: { id: input.checkoutId }, include: { paymentAttempts: true, items: true } });
    return { id: input.checkoutId, result, row, paymentStatus: description.typedSearchAttributes.get(PaymentStatus) };
  });
}

describe('checkout workflow', () => {
  it('captures an approved card once and sells the stock', async () => {
    const network = new FakeCardNetwork();
    const sku = await product(5);
    const { id, result, row, paymentStatus } = await runCheckout(network, sku, { record: 'card-captured-settled-at-once' });

    expect(result.status).toBe('settled');
    expect(result.amount).toEqual({ amount: '3000', currency: 'JPY' });
    expect(result.amountCaptured).toBe('3000');
    expect(row.status).toBe('settled');
    expect(row.settledAt).not.toBeNull();
    expect(row.amount).toBe(3000n);
    expect(row.amountCaptured).toBe(3000n);
    expect(row.items).toEqual([expect.objectContaining({ sku, quantity: 2, unitAmount: 1500n })]);
    expect(row.paymentAttempts.map((a) => `${a.operation}:${a.status}`).sort()).toEqual(['authorize:succeeded', 'capture:succeeded']);
    expect(paymentStatus).toBe('settled');
    expect(await stockOf(sku)).toEqual({ available: 3, reserved: 0, sold: 2 });
    expect(network.count(id, 'authorization')).toBe(1);
    expect(network.count(id, 'capture')).toBe(1);
  });

  it('releases the stock and fails the checkout when the card is declined', async () => {
    const network = new FakeCardNetwork();
    const sku = await product(5);
    const { id, result, row, paymentStatus } = await runCheckout(network, sku, { token: 'tok_chargeDeclined', record: 'card-declined' });

    expect(result.status).toBe('failed');
    expect(result.failure?.code).toBe('card_declined');
    expect(row).toMatchObject({ status: 'failed', failureCode: 'card_declined' });
    expect(row.paymentAttempts).toEqual([expect.objectContaining({ operation: 'authorize', status: 'declined', declineCode: 'card_declined' })]);
    expect(paymentStatus).toBe('failed');
    expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
    const holds = await prisma.stockReservation.findMany({ where: { checkoutId: id } });
    expect(holds.map((h) => h.status)).toEqual(['released']);
    expect(network.count(id, 'capture')).toBe(0);
  });

  it('answers sold_out without holding stock or calling the card network', async () => {
    const network = new FakeCardNetwork();
    const sku = await product(1);
    const { id, result, row } = await runCheckout(network, sku, { quantity: 2, record: 'sold-out' });

    expect(result.status).toBe('sold_out');
    expect(row.status).toBe('sold_out');
    expect(await stockOf(sku)).toEqual({ available: 1, reserved: 0, sold: 0 });
    expect(await prisma.stockReservation.count({ where: { checkoutId: id } })).toBe(0);
    expect(network.calls.authorize).toBe(0);
  });

  it('finds a lost authorization by its idempotency key instead of authorizing twice', async () => {
    const network = new FakeCardNetwork();
    network.loseFirstResponseOf.add('authorize');
    network.loseFirstResponseOf.add('capture');
    const sku = await product(5);
    const { id, result } = await runCheckout(network, sku, { record: 'authorization-response-lost' });

    expect(result.status).toBe('settled');
    expect(network.count(id, 'authorization')).toBe(1);
    expect(network.count(id, 'capture')).toBe(1);
    // Resolved by looking each key up, not by sending the call again (the network would have
    // replayed it, which would hide a blind retry).
    expect(network.calls).toMatchObject({ authorize: 1, capture: 1 });
    expect(network.lookups).toEqual([`${id}:authorize`, `${id}:capture`]);
    expect(await stockOf(sku)).toEqual({ available: 3, reserved: 0, sold: 2 });
  });

  it('finds a decline whose response was lost by its key: fails once, releases the stock, authorizes once', async () => {
    const network = new FakeCardNetwork();
    network.loseFirstResponseOf.add('authorize');
    const sku = await product(5);
    const { id, result, row } = await runCheckout(network, sku, { token: 'tok_chargeDeclined', record: 'decline-response-lost' });

    expect(result.status).toBe('failed');
    expect(result.failure?.code).toBe('card_declined');
    expect(row).toMatchObject({ status: 'failed', failureCode: 'card_declined' });
    // The lookup, not a second authorize, told it the network had declined.
    expect(network.calls.authorize).toBe(1);
    expect(network.lookups).toEqual([`${id}:authorize`]);
    expect(network.calls).toMatchObject({ capture: 0, void: 0 });
    expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
    expect((await prisma.stockReservation.findMany({ where: { checkoutId: id } })).map((h) => h.status)).toEqual(['released']);
    expect(await prisma.ledgerTransfer.count({ where: { reference: id } })).toBe(0);
  });

  it('voids the authorization and returns the stock when the capture is rejected', async () => {
    const network = new FakeCardNetwork();
    network.reject.add('capture');
    const sku = await product(5);
    const { id, result, row } = await runCheckout(network, sku, { record: 'capture-rejected' });

    expect(result.status).toBe('failed');
    expect(row.failureCode).toBe('CardNetworkRejected');
    expect(network.count(id, 'void')).toBe(1);
    expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
  });
});

// After every scenario above: each checkout, top-up and payout of this file's merchant has exactly
// its ledger transfers, and they agree with what the fake network and bank recorded.
it('leaves books that agree with the network and the bank', async () => {
  await expectBooksOf(merchant.id, { fakes: true });
});
