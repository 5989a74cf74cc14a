// Histories recorded with the payload codec on (the committed test key, test/support/payload-keys.ts):
// a card checkout, a top-up and a payout, run here on the real Temporal server and recorded once
// with `npm run record:histories` (test/support/histories.ts adds, never overwrites). Their files
// hold no card token, customer id or bank account number, and they replay with the key, and
// without it they do not: the proof that a change to the codec would not strand running workflows.
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import { checkoutId, DEFAULT_CHECKOUT_TIMEOUTS, ledgerAccount, payoutId, topupId, type CheckoutInput, type PayoutInput, type TopupInput } from '../domain/index.js';
import { createPrisma, type PrismaClient } from '../platform/db.js';
import { walletBalance } from '../platform/ledger.js';
import { bundlePaymentWorkflows, createPaymentWorker } from '../workers/payment-worker.js';
import { checkoutWorkflowV2, payoutWorkflowV2, topupWorkflowV2 } from '../workflows/index.js';
import { FakeBank } from './support/fake-bank.js';
import { FakeCardNetwork } from './support/fake-card-network.js';
import { isSdkBookkeeping, isSearchAttribute, payloadsIn, plaintextIn } from './support/history-payloads.js';
import { HISTORIES_DIR, readManifest, recordHistory } from './support/histories.js';
import { testDataConverter } from './support/payload-keys.js';
import { createMerchant, type TestMerchant } from './support/merchants.js';

let merchant: TestMerchant;
// What the recorded files were written with: fixed, so their test knows what must not be in them.
const CUSTOMER = 'cus_recorded_7f3a9c';
const TOKEN = 'tok_visa';
const ACCOUNT = '7654321';
const RECORDED = ['checkoutWorkflowV2/encrypted-card-captured-settled.json', 'topupWorkflowV2/encrypted-topup-succeeded.json', 'payoutWorkflowV2/encrypted-payout-paid.json'];

let env: TestWorkflowEnvironment;
let prisma: PrismaClient;
let workflowBundle: Awaited<ReturnType<typeof bundlePaymentWorkflows>>;

beforeAll(async () => {
  [env, workflowBundle] = await Promise.all([
    TestWorkflowEnvironment.createFromExistingServer({ address: process.env.TEMPORAL_ADDRESS!, client: { dataConverter: testDataConverter() } }),
    bundlePaymentWorkflows(),
  ]);
  prisma = createPrisma(process.env.DATABASE_URL!);
  merchant = await createMerchant(prisma, 'encrypted');
});

afterAll(async () => {
  await prisma?.$disconnect();
  await env?.teardown();
});

const yen = (amount: number) => ({ amount: String(amount), currency: 'JPY' });

describe('flows run with the payload codec', () => {
  it('capture a card checkout, credit a top-up and pay a payout (recorded with RECORD_HISTORIES=1)', async () => {
    const network = new FakeCardNetwork();
    const bank = new FakeBank();
    const taskQueue = `encrypted-${randomUUID()}`;
    const sku = `sku-${randomUUID()}`;
    await prisma.product.create({ data: { merchantId: merchant.id, sku, name: 'Limited sneaker', priceAmount: 1500n, currency: 'JPY', available: 3 } });
    const worker = await createPaymentWorker({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      taskQueue,
      activities: createActivities({ prisma, cardNetwork: network, bank }),
      workflowBundle,
      dataConverter: testDataConverter(),
    });
    const wallet = ledgerAccount.wallet(merchant.id, CUSTOMER, 'JPY');
    const before = await walletBalance(prisma, wallet);
    let checkoutRef = '';
    await worker.runUntil(async () => {
      const key = randomUUID();
      const checkout: CheckoutInput = {
        checkoutId: checkoutId(merchant.id, key),
        merchantId: merchant.id,
        customerId: CUSTOMER,
        idempotencyKey: key,
        items: [{ sku, quantity: 1 }],
        payment: { method: 'card', token: TOKEN },
        captureMethod: 'automatic',
        // Real timers: settle at once and close the refund window, so the run completes.
        timeouts: { ...DEFAULT_CHECKOUT_TIMEOUTS, settlementDelayMs: 0, refundWindowMs: 0 },
      };
      checkoutRef = checkout.checkoutId;
      const checkoutHandle = await env.client.workflow.start(checkoutWorkflowV2, { workflowId: checkout.checkoutId, taskQueue, args: [checkout] });
      expect(await checkoutHandle.result()).toMatchObject({ status: 'settled', amountCaptured: '1500' });
      await recordHistory('encrypted-card-captured-settled', checkoutHandle);

      const topupKey = randomUUID();
      const topup: TopupInput = { topupId: topupId(merchant.id, topupKey), merchantId: merchant.id, customerId: CUSTOMER, idempotencyKey: topupKey, amount: yen(5000), payment: { method: 'card', token: TOKEN } };
      const topupHandle = await env.client.workflow.start(topupWorkflowV2, { workflowId: topup.topupId, taskQueue, args: [topup] });
      expect(await topupHandle.result()).toMatchObject({ status: 'succeeded' });
      await recordHistory('encrypted-topup-succeeded', topupHandle);

      const payoutKey = randomUUID();
      const payout: PayoutInput = {
        payoutId: payoutId(merchant.id, payoutKey),
        merchantId: merchant.id,
        customerId: CUSTOMER,
        idempotencyKey: payoutKey,
        amount: yen(1000),
        bankAccount: { bankCode: '0001', accountNumber: ACCOUNT },
        scheduledAt: new Date().toISOString(),
      };
      const payoutHandle = await env.client.workflow.start(payoutWorkflowV2, { workflowId: payout.payoutId, taskQueue, args: [payout] });
      expect(await payoutHandle.result()).toMatchObject({ status: 'paid' });
      await recordHistory('encrypted-payout-paid', payoutHandle);
    });
    expect(network.count(checkoutRef, 'capture')).toBe(1);
    expect(bank.transfers.map((t) => t.accountNumber)).toEqual([ACCOUNT]);
    const after = await walletBalance(prisma, wallet);
    expect(after.available - before.available).toBe(4000n);
  });
});

describe('recorded encrypted histories', () => {
  const read = async (file: string) => JSON.parse(await fs.readFile(path.join(HISTORIES_DIR, file), 'utf8')) as unknown;

  it('are in the manifest, and hold no card token, customer id or account number: every application payload is ciphertext', async () => {
    const manifest = await readManifest();
    for (const file of RECORDED) {
      expect(manifest.has(file)).toBe(true);
      const history = await read(file);
      expect({ file, plaintext: plaintextIn(history, [TOKEN, CUSTOMER, ACCOUNT]) }).toEqual({ file, plaintext: [] });
      const data = payloadsIn(history).filter((p) => !isSearchAttribute(p) && !isSdkBookkeeping(p));
      expect(data.length).toBeGreaterThan(2);
      expect({ file, encodings: [...new Set(data.map((p) => p.metadata.encoding))] }).toEqual({ file, encodings: ['binary/encrypted'] });
    }
    // The same search finds them in a history recorded before encryption: it is not blind.
    expect(plaintextIn(await read('topupWorkflowV2/topup-succeeded.json'), [TOKEN])).toEqual([TOKEN]);
  });

  it('replay with the test key, and cannot without it', async () => {
    const histories = await Promise.all(RECORDED.map(async (file) => ({ workflowId: file, history: historyFromJSON(await read(file)) })));
    const replay = async (withKey: boolean) => {
      const failures: string[] = [];
      const options = { workflowBundle, replayName: `encrypted-${withKey}`, ...(withKey ? { dataConverter: testDataConverter() } : {}) };
      for await (const result of Worker.runReplayHistories(options, histories)) if (result.error) failures.push(result.workflowId);
      return failures;
    };
    expect(await replay(true)).toEqual([]);
    expect((await replay(false)).sort()).toEqual([...RECORDED].sort());
  });
});
