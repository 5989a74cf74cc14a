// Top-up, payout and wallet payments on the time-skipping server, with the real ledger in
// PostgreSQL and in-process card network and bank. After every scenario the ledger check runs over
// the accounts it touched: stored balances equal the journal, nothing overdrawn, per-currency
// debits equal credits.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { ApplicationFailure } from '@temporalio/activity';
import type { Activities } from '../activities/index.js';
import {
  checkoutId,
  DEFAULT_CHECKOUT_TIMEOUTS,
  FailureType,
  ledgerAccount,
  payoutId,
  topupId,
  type CheckoutInput,
  type PayoutInput,
  type TopupInput,
} from '../domain/index.js';
import type { PrismaClient } from '../platform/db.js';
import { accountBalance, checkLedger, walletBalance } from '../platform/ledger.js';
import { bundlePaymentWorkflows } from '../workers/payment-worker.js';
import { refundUpdate, statusQuery } from '../workflows/checkout-messages.js';
import { checkoutWorkflowV2, payoutWorkflowV2, topupWorkflowV2 } from '../workflows/index.js';
import { payoutCancelUpdate, payoutStatusQuery } from '../workflows/wallet-messages.js';
import { expectBooksOf } from './support/books.js';
import { FakeBank } from './support/fake-bank.js';
import { fundWallet } from './support/wallets.js';
import { FakeCardNetwork } from './support/fake-card-network.js';
import { recordHistory } from './support/histories.js';
import { createMerchant, type TestMerchant } from './support/merchants.js';
import { createTestWorker, openTimeSkipping } from './support/test-worker.js';

let merchant: TestMerchant;
const DAY = 24 * 60 * 60_000;
let env: TestWorkflowEnvironment;
let prisma: PrismaClient;
let workflowBundle: Awaited<ReturnType<typeof bundlePaymentWorkflows>>;

beforeAll(async () => {
  ({ env, prisma, workflowBundle } = await openTimeSkipping());
  merchant = await createMerchant(prisma, 'wallet_flows');
});

afterAll(async () => {
  await prisma?.$disconnect();
  await env?.teardown();
});

interface World {
  network: FakeCardNetwork;
  bank: FakeBank;
  customerId: string;
  wallet: string;
}

/** Runs `body` with a worker on its own task queue; `override` replaces activities (fault injection). */
async function withWorker<T>(body: (w: World & { taskQueue: string }) => Promise<T>, override: Partial<Activities> = {}): Promise<T> {
  const world: World = { network: new FakeCardNetwork(), bank: new FakeBank(), customerId: `cus_${randomUUID()}`, wallet: '' };
  world.wallet = ledgerAccount.wallet(merchant.id, world.customerId, 'JPY');
  const taskQueue = `wallet-${randomUUID()}`;
  const worker = await createTestWorker({ env, prisma, workflowBundle, taskQueue, cardNetwork: world.network, bank: world.bank, override });
  const result = await worker.runUntil(body({ ...world, taskQueue }));
  const report = await checkLedger(prisma, { accountIds: [world.wallet, ledgerAccount.merchantPending(merchant.id, 'JPY'), ledgerAccount.merchantAvailable(merchant.id, 'JPY')] });
  expect(report).toMatchObject({ ok: true, mismatches: [], imbalancedCurrencies: [], overdrawn: [] });
  return result;
}


/** Money in the customer's wallet, from a top-up the books can account for. */
const fund = (customerId: string, amount: bigint) => fundWallet(prisma, merchant.id, customerId, amount);
const yen = (amount: number) => ({ amount: String(amount), currency: 'JPY' });

/** With RECORD_HISTORIES=1, keeps the run's history for the replay test (test/replay.test.ts). */
const record = (name: string, workflowId: string) => recordHistory(name, env.client.workflow.getHandle(workflowId));

function topupInput(customerId: string, amount: number, token = 'tok_visa'): TopupInput {
  const key = randomUUID();
  return { topupId: topupId(merchant.id, key), merchantId: merchant.id, customerId, idempotencyKey: key, amount: yen(amount), payment: { method: 'card', token } };
}

function payoutInput(customerId: string, amount: number, accountNumber: string, scheduledAt: number): PayoutInput {
  const key = randomUUID();
  return {
    payoutId: payoutId(merchant.id, key),
    merchantId: merchant.id,
    customerId,
    idempotencyKey: key,
    amount: yen(amount),
    bankAccount: { bankCode: '0001', accountNumber },
    scheduledAt: new Date(scheduledAt).toISOString(),
  };
}

describe('top-up', () => {
  it('charges the card once and credits the wallet', async () => {
    await withWorker(async ({ network, customerId, wallet, taskQueue }) => {
      const input = topupInput(customerId, 5000);
      const result = await env.client.workflow.execute(topupWorkflowV2, { workflowId: input.topupId, taskQueue, args: [input] });

      expect(result.status).toBe('succeeded');
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 5000n, held: 0n });
      expect(await prisma.topup.findUniqueOrThrow({ where: { id: input.topupId } })).toMatchObject({ status: 'succeeded', amount: 5000n });
      expect(network.count(input.topupId, 'capture')).toBe(1);
      await record('topup-succeeded', input.topupId);
    });
  });

  it('credits nothing when the card is declined', async () => {
    await withWorker(async ({ network, customerId, wallet, taskQueue }) => {
      const input = topupInput(customerId, 5000, 'tok_chargeDeclined');
      const result = await env.client.workflow.execute(topupWorkflowV2, { workflowId: input.topupId, taskQueue, args: [input] });

      expect(result).toMatchObject({ status: 'failed', failure: { code: 'card_declined' } });
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 0n, held: 0n });
      expect(network.count(input.topupId, 'capture')).toBe(0);
      await record('topup-card-declined', input.topupId);
    });
  });

  it('refunds the card when the wallet cannot be credited after the charge', async () => {
    const failingCredit: Partial<Activities> = {
      async createTransfer() {
        throw ApplicationFailure.create({ type: FailureType.LedgerConflict, message: 'credit refused (test)', nonRetryable: true });
      },
    };
    await withWorker(async ({ network, customerId, wallet, taskQueue }) => {
      const input = topupInput(customerId, 5000);
      const result = await env.client.workflow.execute(topupWorkflowV2, { workflowId: input.topupId, taskQueue, args: [input] });

      expect(result.status).toBe('failed');
      expect(network.count(input.topupId, 'capture')).toBe(1);
      expect(network.operations.filter((op) => op.reference === input.topupId && op.type === 'refund').map((op) => op.amount)).toEqual(['5000']);
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 0n, held: 0n });
      await record('topup-credit-fails-card-refunded', input.topupId);
    }, failingCredit);
  });
});

describe('payout', () => {
  it('holds at once, waits for the scheduled time, then pays and posts the hold', async () => {
    await withWorker(async ({ bank, customerId, wallet, taskQueue }) => {
      await fund(customerId, 3000n);
      const start = await env.currentTimeMs();
      const input = payoutInput(customerId, 1000, '1234567', start + DAY);
      const handle = await env.client.workflow.start(payoutWorkflowV2, { workflowId: input.payoutId, taskQueue, args: [input] });
      for (let i = 0; i < 100 && (await walletBalance(prisma, wallet)).held === 0n; i++) await new Promise((r) => setTimeout(r, 50));
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 2000n, held: 1000n });
      expect(bank.paid(input.payoutId)).toBe(0);

      const result = await handle.result();
      expect(result.status).toBe('paid');
      expect((await env.currentTimeMs()) - start).toBeGreaterThanOrEqual(DAY - 1_000);
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 2000n, held: 0n });
      expect(bank.paid(input.payoutId)).toBe(1);
      expect(await prisma.payout.findUniqueOrThrow({ where: { id: input.payoutId } })).toMatchObject({ status: 'paid' });
      await record('payout-scheduled-paid', input.payoutId);
    });
  });

  it('refuses a payout above the available balance and holds nothing', async () => {
    await withWorker(async ({ bank, customerId, wallet, taskQueue }) => {
      await fund(customerId, 500n);
      const input = payoutInput(customerId, 1000, '1234567', await env.currentTimeMs());
      const result = await env.client.workflow.execute(payoutWorkflowV2, { workflowId: input.payoutId, taskQueue, args: [input] });

      expect(result).toMatchObject({ status: 'failed', failure: { code: 'insufficient_funds' } });
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 500n, held: 0n });
      expect(bank.transfers).toHaveLength(0);
      await record('payout-insufficient-funds', input.payoutId);
    });
  });

  it('gives the money back when the bank rejects a closed account', async () => {
    await withWorker(async ({ customerId, wallet, taskQueue }) => {
      await fund(customerId, 3000n);
      const input = payoutInput(customerId, 1000, '0000000', await env.currentTimeMs());
      const result = await env.client.workflow.execute(payoutWorkflowV2, { workflowId: input.payoutId, taskQueue, args: [input] });

      expect(result).toMatchObject({ status: 'failed', failure: { code: 'account_closed' } });
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 3000n, held: 0n });
      await record('payout-rejected', input.payoutId);
    });
  });

  it('pays once when the bank loses its response', async () => {
    await withWorker(async ({ bank, customerId, wallet, taskQueue }) => {
      await fund(customerId, 3000n);
      const input = payoutInput(customerId, 1000, '9999999', await env.currentTimeMs());
      const result = await env.client.workflow.execute(payoutWorkflowV2, { workflowId: input.payoutId, taskQueue, args: [input] });

      expect(result.status).toBe('paid');
      expect(bank.transfers.filter((t) => t.reference === input.payoutId)).toHaveLength(1);
      // Found by looking its key up: one call reached the bank (a blind retry would be replayed
      // by the bank and look the same from the transfers alone).
      expect(bank.calls).toBe(1);
      expect(bank.lookups).toEqual([`${input.payoutId}:transfer`]);
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 2000n, held: 0n });
      await record('payout-bank-response-lost', input.payoutId);
    });
  });

  it('voids the hold when canceled before it is sent', async () => {
    await withWorker(async ({ bank, customerId, wallet, taskQueue }) => {
      await fund(customerId, 3000n);
      const input = payoutInput(customerId, 1000, '1234567', (await env.currentTimeMs()) + 7 * DAY);
      const handle = await env.client.workflow.start(payoutWorkflowV2, { workflowId: input.payoutId, taskQueue, args: [input] });
      for (let i = 0; i < 100 && (await handle.query(payoutStatusQuery)).status !== 'pending'; i++) await new Promise((r) => setTimeout(r, 50));
      for (let i = 0; i < 100 && (await walletBalance(prisma, wallet)).held === 0n; i++) await new Promise((r) => setTimeout(r, 50));

      const canceled = await handle.executeUpdate(payoutCancelUpdate);
      expect(canceled.status).toBe('canceled');
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 3000n, held: 0n });
      expect(bank.transfers).toHaveLength(0);
      expect(await prisma.payout.findUniqueOrThrow({ where: { id: input.payoutId } })).toMatchObject({ status: 'canceled' });
      await record('payout-canceled', input.payoutId);
    });
  });
});

describe('wallet payment in checkout', () => {
  async function walletCheckout(taskQueue: string, customerId: string, quantity: number, timeouts = DEFAULT_CHECKOUT_TIMEOUTS) {
    const sku = `sku-${randomUUID()}`;
    await prisma.product.create({ data: { merchantId: merchant.id, sku, name: 'Coffee beans', priceAmount: 100n, currency: 'JPY', available: 10 } });
    const key = randomUUID();
    const input: CheckoutInput = {
      checkoutId: checkoutId(merchant.id, key),
      merchantId: merchant.id,
      customerId,
      idempotencyKey: key,
      items: [{ sku, quantity }],
      payment: { method: 'wallet' },
      captureMethod: 'automatic',
      timeouts,
    };
    const handle = await env.client.workflow.start(checkoutWorkflowV2, { workflowId: input.checkoutId, taskQueue, args: [input] });
    return { handle, sku };
  }

  it('takes the payment from the wallet, credits the merchant, settles and refunds through the ledger', async () => {
    await withWorker(async ({ customerId, wallet, taskQueue }) => {
      await fund(customerId, 1000n);
      const pendingBefore = await accountBalance(prisma, ledgerAccount.merchantPending(merchant.id, 'JPY'));
      const availableBefore = await accountBalance(prisma, ledgerAccount.merchantAvailable(merchant.id, 'JPY'));
      const { handle } = await walletCheckout(taskQueue, customerId, 3, { ...DEFAULT_CHECKOUT_TIMEOUTS, settlementDelayMs: DAY, refundWindowMs: 30 * DAY });
      for (let i = 0; i < 200 && (await handle.query(statusQuery)).status !== 'captured'; i++) await new Promise((r) => setTimeout(r, 50));
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 700n, held: 0n });
      const pendingAfter = await accountBalance(prisma, ledgerAccount.merchantPending(merchant.id, 'JPY'));
      expect(pendingAfter.creditsPosted - pendingBefore.creditsPosted).toBe(300n);

      await env.sleep(DAY + 60_000);
      for (let i = 0; i < 200 && (await handle.query(statusQuery)).status !== 'settled'; i++) await new Promise((r) => setTimeout(r, 50));
      const availableAfter = await accountBalance(prisma, ledgerAccount.merchantAvailable(merchant.id, 'JPY'));
      expect(availableAfter.creditsPosted - availableBefore.creditsPosted).toBe(300n);

      const refund = await handle.executeUpdate(refundUpdate, { args: [{ refundId: 're_wallet', amount: '100' }] });
      expect(refund.status).toBe('succeeded');
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 800n, held: 0n });
      const availableRefunded = await accountBalance(prisma, ledgerAccount.merchantAvailable(merchant.id, 'JPY'));
      expect(availableRefunded.debitsPosted - availableAfter.debitsPosted).toBe(100n);
      await handle.terminate('test finished');
      await record('wallet-checkout-captured-in-one-commit', handle.workflowId);
    });
  });

  it('declines for insufficient funds, holding nothing and releasing the stock', async () => {
    await withWorker(async ({ customerId, wallet, taskQueue }) => {
      await fund(customerId, 250n);
      const { handle, sku } = await walletCheckout(taskQueue, customerId, 3);
      const result = await handle.result();

      expect(result).toMatchObject({ status: 'failed', failure: { code: 'insufficient_funds' } });
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 250n, held: 0n });
      const product = await prisma.product.findUniqueOrThrow({ where: { merchantId_sku: { merchantId: merchant.id, sku } } });
      expect({ available: product.available, reserved: product.reserved, sold: product.sold }).toEqual({ available: 10, reserved: 0, sold: 0 });
      await record('wallet-checkout-insufficient-funds', handle.workflowId);
    });
  });
});

// After every scenario above: each checkout, top-up and payout of this file's merchant has exactly
// its ledger transfers, and they agree with what the fake network and bank recorded.
it('leaves books that agree with the network and the bank', async () => {
  await expectBooksOf(merchant.id, { fakes: true });
});
