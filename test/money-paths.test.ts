// The money paths where a race, a slow system or a cancel used to cost a customer money or a
// merchant stock, on Temporal's time-skipping test server with in-process fakes that can hold a call
// at the network, land a request after its caller gave up, or fail a database write. Every test
// asserts the end state: the checkout's row, the stock, the ledger's transfers and the network's or
// the bank's own records.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure, defaultPayloadConverter } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { createActivities, type Activities } from '../activities/index.js';
import { createCheckoutStore } from '../api/checkout-store.js';
import {
  DEFAULT_CHECKOUT_TIMEOUTS,
  checkoutId,
  refundId as refundIdOf,
  ledgerAccount,
  payoutId,
  topupId,
  type CaptureMethod,
  type CheckoutInput,
  type CheckoutSnapshot,
  type CheckoutStatus,
  type CheckoutTimeouts,
  type PayoutInput,
  type TopupInput,
} from '../domain/index.js';
import { hashApiKey } from '../platform/api-keys.js';
import type { PrismaClient } from '../platform/db.js';
import { checkLedger, walletBalance } from '../platform/ledger.js';
import { bundlePaymentWorkflows } from '../workers/payment-worker.js';
import { cancelUpdate, captureUpdate, confirmUpdate, refundUpdate, statusQuery } from '../workflows/checkout-messages.js';
import { checkoutWorkflowV2, payoutWorkflowV2, topupWorkflowV2 } from '../workflows/index.js';
import { payoutCancelUpdate, payoutStatusQuery } from '../workflows/wallet-messages.js';
import { expectBooksOf } from './support/books.js';
import { FakeBank } from './support/fake-bank.js';
import { fundWallet } from './support/wallets.js';
import { FakeCardNetwork } from './support/fake-card-network.js';
import { recordHistory } from './support/histories.js';
import { decodeStored } from './support/payload-keys.js';
import { createTestWorker, openTimeSkipping, updateRefusal } from './support/test-worker.js';

const MERCHANT = `mp_${randomUUID().slice(0, 8)}`;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const PRICE = 5000n;
/** Systems that take at most 3 s to process a request: the cancel tests wait that out in real time. */
const QUICK_MS = 3_000;
let env: TestWorkflowEnvironment;
let prisma: PrismaClient;
let workflowBundle: Awaited<ReturnType<typeof bundlePaymentWorkflows>>;

beforeAll(async () => {
  ({ env, prisma, workflowBundle } = await openTimeSkipping());
  await prisma.merchant.create({ data: { id: MERCHANT, name: 'Money paths shop', apiKeyHash: hashApiKey(`sk_${randomUUID()}`) } });
});

afterAll(async () => {
  if (prisma) {
    // Whatever the tests did, the merchant's books must balance.
    const report = await checkLedger(prisma);
    expect(report).toMatchObject({ ok: true, mismatches: [], imbalancedCurrencies: [], overdrawn: [] });
  }
  await prisma?.$disconnect();
  await env?.teardown();
});

async function product(stock = 5, price = PRICE) {
  const sku = `sku-${randomUUID().slice(0, 8)}`;
  await prisma.product.create({ data: { merchantId: MERCHANT, sku, name: 'Concert ticket', priceAmount: price, currency: 'JPY', available: stock } });
  return sku;
}

async function stockOf(sku: string) {
  const p = await prisma.product.findUniqueOrThrow({ where: { merchantId_sku: { merchantId: MERCHANT, sku } } });
  return { available: p.available, reserved: p.reserved, sold: p.sold };
}

/** The ledger transfers of one payment, by the part of their id after the payment's id. */
async function ledgerOf(reference: string) {
  const rows = await prisma.ledgerTransfer.findMany({ where: { reference }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] });
  return rows.map((t) => ({ step: t.id.slice(reference.length + 1), debit: t.debitAccountId, credit: t.creditAccountId, amount: t.amount, kind: t.kind }));
}


/** Money in the customer's wallet, from a top-up the books can account for. */
const fund = (customerId: string, amount: bigint) => fundWallet(prisma, MERCHANT, customerId, amount);
const pending = ledgerAccount.merchantPending(MERCHANT, 'JPY');
const available = ledgerAccount.merchantAvailable(MERCHANT, 'JPY');
const clearing = ledgerAccount.cardClearing('JPY');

/** Polls in real time (queries do not skip time) until `check` holds. */
async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function reach(handle: WorkflowHandle, status: CheckoutStatus): Promise<CheckoutSnapshot> {
  return until(`status ${status}`, async () => {
    const s = await handle.query(statusQuery);
    return s.status === status ? s : undefined;
  });
}

/** A run canceled from the Web UI ends Canceled. */
async function canceledRun(handle: WorkflowHandle): Promise<void> {
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
}

interface CheckoutScenario {
  network?: FakeCardNetwork;
  method?: 'card' | 'wallet';
  token?: string;
  captureMethod?: CaptureMethod;
  timeouts?: Partial<CheckoutTimeouts>;
  quantity?: number;
  price?: bigint;
  override?: Partial<Activities>;
  /** The merchant's Idempotency-Key; a fresh UUID by default. */
  key?: string;
}

interface CheckoutRun {
  id: string;
  sku: string;
  network: FakeCardNetwork;
  wallet: string;
  handle: WorkflowHandle<typeof checkoutWorkflowV2>;
}

/** Starts a checkout on a worker of its own and hands the test its handle while the worker runs. */
async function withCheckout<T>(scenario: CheckoutScenario, body: (run: CheckoutRun) => Promise<T>): Promise<T> {
  const network = scenario.network ?? new FakeCardNetwork();
  const sku = await product(5, scenario.price);
  const key = scenario.key ?? randomUUID();
  const customerId = `cus_${randomUUID().slice(0, 8)}`;
  const wallet = ledgerAccount.wallet(MERCHANT, customerId, 'JPY');
  if (scenario.method === 'wallet') await fund(customerId, 100_000n);
  const input: CheckoutInput = {
    checkoutId: checkoutId(MERCHANT, key),
    merchantId: MERCHANT,
    customerId,
    idempotencyKey: key,
    items: [{ sku, quantity: scenario.quantity ?? 2 }],
    payment: scenario.method === 'wallet' ? { method: 'wallet' } : { method: 'card', token: scenario.token ?? 'tok_visa' },
    captureMethod: scenario.captureMethod ?? 'automatic',
    timeouts: { ...DEFAULT_CHECKOUT_TIMEOUTS, ...scenario.timeouts },
  };
  const taskQueue = `money-${randomUUID()}`;
  const worker = await createTestWorker({ env, prisma, workflowBundle, taskQueue, cardNetwork: network, override: scenario.override });
  return worker.runUntil(async () => {
    const handle = await env.client.workflow.start(checkoutWorkflowV2, { workflowId: input.checkoutId, taskQueue, args: [input] });
    try {
      return await body({ id: input.checkoutId, sku, network, wallet, handle });
    } finally {
      if ((await handle.describe()).status.name === 'RUNNING') await handle.terminate('test finished');
    }
  });
}

const row = (id: string) => prisma.checkout.findUniqueOrThrow({ where: { id }, include: { refunds: { orderBy: { createdAt: 'asc' } } } });
const ops = (network: FakeCardNetwork, id: string, type: string) => network.operations.filter((op) => op.reference === id && op.type === type);

describe('an action answers success only when it took effect', () => {
  it('refuses a capture that arrives while the expired authorization is being voided', async () => {
    await withCheckout({ captureMethod: 'manual', timeouts: { authorizationTtlMs: DAY } }, async ({ id, sku, network, handle }) => {
      await reach(handle, 'requires_capture');
      const openVoid = network.holdCalls('void');
      // Awaiting the result lets time skip to the authorization's expiry; the void then waits.
      const result = handle.result();
      await until('the void at the network', () => (network.waiting.void > 0 ? true : undefined));

      expect(await updateRefusal(handle.executeUpdate(captureUpdate, { args: [{}] }))).toEqual({ type: 'InvalidCheckoutState', code: 'checkout_expired', status: 'expired' });
      openVoid();
      expect((await result).status).toBe('expired');
      expect(await row(id)).toMatchObject({ status: 'expired', amountCaptured: 0n });
      expect(ops(network, id, 'capture')).toHaveLength(0);
      expect(ops(network, id, 'void')).toHaveLength(1);
      expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
      expect(await ledgerOf(id)).toEqual([]);
      await recordHistory('capture-refused-while-expiring', handle);
    });
  });

  it('refuses a 3-D Secure result that arrives while the stock hold runs out', async () => {
    await withCheckout({ token: 'tok_threeDSecureRequired', timeouts: { reservationTimeoutMs: 10 * MINUTE, actionTimeoutMs: HOUR } }, async ({ id, sku, network, handle }) => {
      await reach(handle, 'requires_action');
      const openVoid = network.holdCalls('void');
      const result = handle.result();
      await until('the void at the network', () => (network.waiting.void > 0 ? true : undefined));

      expect(await updateRefusal(handle.executeUpdate(confirmUpdate, { args: [{ result: 'succeeded' }] }))).toEqual({
        type: 'InvalidCheckoutState',
        code: 'checkout_expired',
        status: 'expired',
      });
      openVoid();
      expect((await result).status).toBe('expired');
      expect(ops(network, id, 'authentication')).toHaveLength(0);
      expect(ops(network, id, 'void')).toHaveLength(1);
      expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
    });
  });

  it('refuses a cancel while the capture is at the network; the capture stands', async () => {
    await withCheckout({ captureMethod: 'manual' }, async ({ id, sku, network, handle }) => {
      await reach(handle, 'requires_capture');
      const openCapture = network.holdCalls('capture');
      const capture = handle.executeUpdate(captureUpdate, { args: [{}] });
      await until('the capture at the network', () => (network.waiting.capture > 0 ? true : undefined));

      expect(await updateRefusal(handle.executeUpdate(cancelUpdate))).toMatchObject({ type: 'InvalidCheckoutState', code: 'checkout_already_captured' });
      openCapture();
      expect(await capture).toMatchObject({ status: 'captured', amountCaptured: '10000' });
      expect(ops(network, id, 'void')).toHaveLength(0);
      expect(await stockOf(sku)).toEqual({ available: 3, reserved: 0, sold: 2 });
      expect(await ledgerOf(id)).toEqual([{ step: 'merchant-credit', debit: clearing, credit: pending, amount: 10000n, kind: 'posted' }]);
    });
  });

  it('refuses a capture once a cancel was accepted, and the cancel answers canceled', async () => {
    await withCheckout({ captureMethod: 'manual' }, async ({ id, sku, network, handle }) => {
      await reach(handle, 'requires_capture');
      const openVoid = network.holdCalls('void');
      const cancel = handle.executeUpdate(cancelUpdate);
      await until('the void at the network', () => (network.waiting.void > 0 ? true : undefined));

      expect(await updateRefusal(handle.executeUpdate(captureUpdate, { args: [{}] }))).toMatchObject({ type: 'InvalidCheckoutState', code: 'checkout_canceled', status: 'canceled' });
      openVoid();
      expect(await cancel).toMatchObject({ status: 'canceled' });
      expect(ops(network, id, 'capture')).toHaveLength(0);
      expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
      await recordHistory('capture-refused-after-cancel', handle);
    });
  });
});

describe('nothing is left held at the network when a checkout ends without capture', () => {
  // A call in flight holds time still on the test server, so the hold here is short in real time.
  const HOLD_MS = 2_000;

  it('voids an authorization the network grants after the stock hold ran out', async () => {
    const network = new FakeCardNetwork();
    // The authorize call never answers; the network grants it at the 2nd lookup after the call ends.
    network.hang.set('authorize', 1);
    await withCheckout({ network, timeouts: { reservationTimeoutMs: HOLD_MS } }, async ({ id, sku, handle }) => {
      const result = await handle.result();
      expect(result).toMatchObject({ status: 'expired', failure: { code: 'expired', message: expect.stringMatching(/not authorized before the stock hold expired/) } });
      const [auth] = ops(network, id, 'authorization');
      expect(auth).toBeDefined();
      expect(ops(network, id, 'void').map((v) => v.authorizationId)).toEqual([auth!.id]);
      expect(network.lookups.filter((k) => k === `${id}:authorize`).length).toBeGreaterThanOrEqual(2);
      expect(await row(id)).toMatchObject({ status: 'expired' });
      expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
      await recordHistory('late-authorization-voided', handle);
    });
  });

  it('waits out the network\u2019s processing time before it trusts that nothing was authorized', async () => {
    const network = new FakeCardNetwork();
    network.hang.set('authorize', Number.MAX_SAFE_INTEGER);
    await withCheckout({ network, timeouts: { reservationTimeoutMs: HOLD_MS } }, async ({ id, handle }) => {
      const started = await env.currentTimeMs();
      expect((await handle.result()).status).toBe('expired');
      // The hold, then at least the network's maximum processing time of looking up.
      expect((await env.currentTimeMs()) - started).toBeGreaterThanOrEqual(HOLD_MS + network.maxProcessingMs);
      expect(network.lookups.filter((k) => k === `${id}:authorize`).length).toBeGreaterThanOrEqual(2);
      expect(ops(network, id, 'authorization')).toHaveLength(0);
      expect(network.calls.void).toBe(0);
    });
  });
});

describe('a cancel reaches a checkout whatever step it waits in', () => {
  it('merchant cancel while the card is being authorized: the call is canceled, resolved by its key and voided', async () => {
    const network = new FakeCardNetwork(QUICK_MS);
    network.hang.set('authorize', 0);
    await withCheckout({ network }, async ({ id, sku, handle }) => {
      await reach(handle, 'processing');
      await until('the authorize call', () => (network.calls.authorize > 0 ? true : undefined));
      expect(await handle.executeUpdate(cancelUpdate)).toMatchObject({ status: 'canceled' });
      const [auth] = ops(network, id, 'authorization');
      expect(ops(network, id, 'void').map((v) => v.authorizationId)).toEqual([auth!.id]);
      expect(await row(id)).toMatchObject({ status: 'canceled', failureCode: 'canceled' });
      expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
      await recordHistory('merchant-cancel-while-authorizing', handle);
    });
  });

  it('merchant cancel that interrupts an authorize attempt failing with a network error: canceled, not failed', async () => {
    // The chaos run found it: the call in flight when the cancel came reached the workflow as the
    // network's 503 (an ActivityFailure whose cause is that error, not a CancelledFailure), and the
    // checkout closed failed, its run Failed, the cancel answered 409. Here the attempt ends that
    // way for certain: once the cancel reaches it, it fails with the network's error, for good.
    const network = new FakeCardNetwork(QUICK_MS);
    let attempts = 0;
    const override = {
      async authorizePayment(): Promise<never> {
        attempts++;
        const signal = Context.current().cancellationSignal;
        while (!signal.aborted) {
          Context.current().heartbeat();
          await new Promise((r) => setTimeout(r, 100));
        }
        throw ApplicationFailure.create({ type: 'CardNetworkUnavailableError', message: 'temporarily_unavailable: the network is temporarily unavailable', nonRetryable: true });
      },
    };
    await withCheckout({ network, override }, async ({ id, sku, handle }) => {
      await reach(handle, 'processing');
      await until('the authorize attempt', () => (attempts > 0 ? true : undefined));
      expect(await handle.executeUpdate(cancelUpdate)).toMatchObject({ status: 'canceled' });
      expect(await handle.result()).toMatchObject({ status: 'canceled' });
      expect(await row(id)).toMatchObject({ status: 'canceled', failureCode: 'canceled' });
      expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
      expect(ops(network, id, 'authorization')).toEqual([]);
      await recordHistory('merchant-cancel-interrupts-failing-authorize', handle);
    });
  });

  for (const [waitingIn, scenario] of [
    ['authorizing', { hang: true }],
    ['requires_action', { token: 'tok_threeDSecureRequired' }],
    ['requires_capture', { captureMethod: 'manual' as const }],
  ] as const) {
    it(`operator cancel from the Web UI in ${waitingIn}: voided, released, the run Canceled`, async () => {
      const network = new FakeCardNetwork(QUICK_MS);
      if ('hang' in scenario) network.hang.set('authorize', 0);
      await withCheckout({ network, ...('token' in scenario ? { token: scenario.token } : {}), ...('captureMethod' in scenario ? { captureMethod: scenario.captureMethod } : {}) }, async ({ id, sku, handle }) => {
        if ('hang' in scenario) await until('the authorize call', () => (network.calls.authorize > 0 ? true : undefined));
        else await reach(handle, waitingIn as CheckoutStatus);
        await handle.cancel();
        await canceledRun(handle);
        expect(await row(id)).toMatchObject({ status: 'canceled', failureCode: 'canceled' });
        expect(ops(network, id, 'void')).toHaveLength(1);
        expect(ops(network, id, 'capture')).toHaveLength(0);
        expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
        await recordHistory(`operator-cancel-in-${waitingIn}`, handle);
      });
    });
  }

  it('operator cancel after a partial refund gives back only the rest and returns the stock', async () => {
    await withCheckout({ timeouts: { settlementDelayMs: DAY } }, async ({ id, sku, network, handle }) => {
      await reach(handle, 'captured');
      const refundId = `re_${randomUUID().replaceAll('-', '')}`;
      expect(await handle.executeUpdate(refundUpdate, { args: [{ refundId, amount: '2000' }], updateId: refundId })).toMatchObject({ status: 'succeeded' });
      await handle.cancel();
      await canceledRun(handle);

      const after = await row(id);
      expect(after).toMatchObject({ status: 'refunded', amountCaptured: 10000n, amountRefunded: 10000n });
      expect(after.refunds.map((r) => [r.amount, r.status])).toEqual([
        [2000n, 'succeeded'],
        [8000n, 'succeeded'],
      ]);
      expect(ops(network, id, 'refund').map((r) => r.amount)).toEqual(['2000', '8000']);
      const transfers = await ledgerOf(id);
      expect(transfers.map((t) => [t.step.split(':')[0], t.debit, t.credit, t.amount])).toEqual([
        ['merchant-credit', clearing, pending, 10000n],
        ['ledger-refund', pending, clearing, 2000n],
        ['ledger-refund', pending, clearing, 8000n],
      ]);
      expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
      await recordHistory('operator-cancel-after-partial-refund', handle);
    });
  });

  it('operator cancel after settlement refunds from the available balance', async () => {
    await withCheckout({ timeouts: { settlementDelayMs: HOUR, refundWindowMs: DAY } }, async ({ id, network, handle }) => {
      await reach(handle, 'captured');
      await env.sleep(2 * HOUR);
      await reach(handle, 'settled');
      await handle.cancel();
      await canceledRun(handle);
      expect(await row(id)).toMatchObject({ status: 'refunded', amountRefunded: 10000n });
      expect(ops(network, id, 'refund').map((r) => r.amount)).toEqual(['10000']);
      expect((await ledgerOf(id)).map((t) => [t.step.split(':')[0], t.debit, t.credit, t.amount])).toEqual([
        ['merchant-credit', clearing, pending, 10000n],
        ['settlement', pending, available, 10000n],
        ['ledger-refund', available, clearing, 10000n],
      ]);
    });
  });

  it('operator cancel after a wallet capture gives the whole payment back to the wallet', async () => {
    await withCheckout({ method: 'wallet', timeouts: { settlementDelayMs: DAY } }, async ({ id, wallet, handle }) => {
      await reach(handle, 'captured');
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 90_000n, held: 0n });
      await handle.cancel();
      await canceledRun(handle);
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 100_000n, held: 0n });
      expect(await row(id)).toMatchObject({ status: 'refunded', amountRefunded: 10000n });
      await recordHistory('wallet-operator-cancel-after-capture', handle);
    });
  });
});

describe('zero means one thing', () => {
  it('fails a checkout of a product priced at zero at once, holding and charging nothing', async () => {
    await withCheckout({ method: 'wallet', price: 0n }, async ({ id, sku, wallet, handle }) => {
      const result = await handle.result();
      expect(result).toMatchObject({ status: 'failed', failure: { code: 'InvalidAmount' } });
      expect(await row(id)).toMatchObject({ status: 'failed' });
      expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 100_000n, held: 0n });
      expect(await ledgerOf(id)).toEqual([]);
      await recordHistory('zero-priced-order-fails', handle);
    });
  });
});

describe('settlement and refunds in flight', () => {
  it('settles what is left once a refund in flight at the settlement time has finished', async () => {
    // The refund held at the network holds time still on the test server: a settlement delay in real time.
    await withCheckout({ timeouts: { settlementDelayMs: 2_000, refundWindowMs: DAY } }, async ({ id, network, handle }) => {
      await reach(handle, 'captured');
      const openRefund = network.holdCalls('refund');
      const refundId = `re_${randomUUID().replaceAll('-', '')}`;
      const refund = handle.executeUpdate(refundUpdate, { args: [{ refundId, amount: '3000' }], updateId: refundId });
      await until('the refund at the network', () => (network.waiting.refund > 0 ? true : undefined));
      // The settlement timer (the only 2 s one) fires while the refund is still at the network.
      await until('the settlement timer to fire', async () => {
        const events = (await handle.fetchHistory()).events ?? [];
        const timer = events.find((e) => Number(e.timerStartedEventAttributes?.startToFireTimeout?.seconds ?? 0) === 2)?.timerStartedEventAttributes?.timerId;
        return timer !== undefined && events.some((e) => e.timerFiredEventAttributes?.timerId === timer) ? true : undefined;
      });
      expect((await handle.query(statusQuery)).status).toBe('captured');
      expect(await row(id)).toMatchObject({ settledAt: null });
      openRefund();
      expect(await refund).toMatchObject({ status: 'succeeded' });
      await reach(handle, 'partially_refunded');
      await until('settlement', async () => ((await row(id)).settledAt ? true : undefined));
      expect((await ledgerOf(id)).map((t) => [t.step.split(':')[0], t.debit, t.credit, t.amount])).toEqual([
        ['merchant-credit', clearing, pending, 10000n],
        ['ledger-refund', pending, clearing, 3000n],
        ['settlement', pending, available, 7000n],
      ]);

      // The postings whose amount depends on when a refund arrived are recorded in the history
      // before they run (scheduled activities), never run as local activities: a workflow task
      // retried after a local one committed could run it again with another amount, and the
      // ledger would refuse the second one as a conflict, failing the run with its refunds left
      // pending (what the chaos run with seed 274543202 met when Temporal crashed).
      const events = (await handle.fetchHistory()).events ?? [];
      // Stored encrypted: decoded with the test key first.
      const scheduled = (
        await decodeStored(events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'createTransfer').map((e) => e.activityTaskScheduledEventAttributes!.input!.payloads![0]!))
      ).map((p) => defaultPayloadConverter.fromPayload(p) as { id: string; amount: string });
      expect(scheduled.map((t) => [t.id.slice(id.length + 1).split(':')[0], t.amount])).toEqual([
        ['ledger-refund', '3000'],
        ['settlement', '7000'],
      ]);
      // What the local activities' markers carry (their results), decoded: none names the settlement.
      const markers = (await decodeStored(events.flatMap((e) => Object.values(e.markerRecordedEventAttributes?.details ?? {})).flatMap((p) => p.payloads ?? [])))
        .map((p) => Buffer.from(p.data ?? new Uint8Array()).toString('utf8'))
        .join('\n');
      expect(markers).toContain('"outcome":"reserved"');
      expect(markers).not.toContain(`${id}:settlement`);
    });
  });
});

// ----- Top-ups and payouts -----

interface WalletWorld {
  network: FakeCardNetwork;
  bank: FakeBank;
  customerId: string;
  wallet: string;
  taskQueue: string;
}

async function withWalletWorker<T>(body: (w: WalletWorld) => Promise<T>, override: Partial<Activities> = {}): Promise<T> {
  const customerId = `cus_${randomUUID().slice(0, 8)}`;
  const world = { network: new FakeCardNetwork(QUICK_MS), bank: new FakeBank(QUICK_MS), customerId, wallet: ledgerAccount.wallet(MERCHANT, customerId, 'JPY'), taskQueue: `wallet-${randomUUID()}` };
  const worker = await createTestWorker({ env, prisma, workflowBundle, taskQueue: world.taskQueue, cardNetwork: world.network, bank: world.bank, override });
  return worker.runUntil(body(world));
}

function topupInput(customerId: string, amount = 5000, key: string = randomUUID()): TopupInput {
  return { topupId: topupId(MERCHANT, key), merchantId: MERCHANT, customerId, idempotencyKey: key, amount: { amount: String(amount), currency: 'JPY' }, payment: { method: 'card', token: 'tok_visa' } };
}

function payoutInput(customerId: string, amount: number, scheduledAt: number, accountNumber = '1234567', key: string = randomUUID()): PayoutInput {
  return {
    payoutId: payoutId(MERCHANT, key),
    merchantId: MERCHANT,
    customerId,
    idempotencyKey: key,
    amount: { amount: String(amount), currency: 'JPY' },
    bankAccount: { bankCode: '0001', accountNumber },
    scheduledAt: new Date(scheduledAt).toISOString(),
  };
}

describe('a top-up canceled from the Web UI undoes only what happened', () => {
  it('while the card is being authorized: the authorization is voided, nothing credited', async () => {
    await withWalletWorker(async ({ network, wallet, customerId, taskQueue }) => {
      network.hang.set('authorize', 0);
      const input = topupInput(customerId);
      const handle = await env.client.workflow.start(topupWorkflowV2, { workflowId: input.topupId, taskQueue, args: [input] });
      await until('the authorize call', () => (network.calls.authorize > 0 ? true : undefined));
      await handle.cancel();
      await canceledRun(handle);
      expect(ops(network, input.topupId, 'void')).toHaveLength(1);
      expect(ops(network, input.topupId, 'capture')).toHaveLength(0);
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 0n, held: 0n });
      expect(await prisma.topup.findUniqueOrThrow({ where: { id: input.topupId } })).toMatchObject({ status: 'failed', failureCode: 'canceled' });
      expect(await ledgerOf(input.topupId)).toEqual([]);
    });
  });

  it('while the card is being captured: the capture the network made is refunded, nothing credited', async () => {
    await withWalletWorker(async ({ network, wallet, customerId, taskQueue }) => {
      network.hang.set('capture', 0);
      const input = topupInput(customerId);
      const handle = await env.client.workflow.start(topupWorkflowV2, { workflowId: input.topupId, taskQueue, args: [input] });
      await until('the capture call', () => (network.calls.capture > 0 ? true : undefined));
      await handle.cancel();
      await canceledRun(handle);
      expect(ops(network, input.topupId, 'capture')).toHaveLength(1);
      expect(ops(network, input.topupId, 'refund').map((r) => r.amount)).toEqual(['5000']);
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 0n, held: 0n });
      expect(await prisma.topup.findUniqueOrThrow({ where: { id: input.topupId } })).toMatchObject({ status: 'failed', failureCode: 'canceled' });
      await recordHistory('operator-cancel-while-capturing', handle);
    });
  });
});

describe('a Web UI cancel that interrupts a wallet flow\'s call failing with a system error', () => {
  // As for the checkout above: the call in flight when the cancel came may end as its system's
  // error (an ActivityFailure whose cause is that error) rather than as canceled. The flow must
  // still end canceled, with what the call did undone.
  /** An attempt that waits for the cancel, then fails with the system's error, for good. */
  const failsOnceCanceled = (type: string) => async (): Promise<never> => {
    const signal = Context.current().cancellationSignal;
    while (!signal.aborted) {
      Context.current().heartbeat();
      await new Promise((r) => setTimeout(r, 100));
    }
    throw ApplicationFailure.create({ type, message: 'temporarily_unavailable', nonRetryable: true });
  };

  it('a top-up whose authorize attempt fails: canceled, nothing charged or credited', async () => {
    let attempts = 0;
    const fail = failsOnceCanceled('CardNetworkUnavailableError');
    await withWalletWorker(
      async ({ network, wallet, customerId, taskQueue }) => {
        const input = topupInput(customerId);
        const handle = await env.client.workflow.start(topupWorkflowV2, { workflowId: input.topupId, taskQueue, args: [input] });
        await until('the authorize attempt', () => (attempts > 0 ? true : undefined));
        await handle.cancel();
        await canceledRun(handle);
        expect(await prisma.topup.findUniqueOrThrow({ where: { id: input.topupId } })).toMatchObject({ status: 'failed', failureCode: 'canceled' });
        expect(ops(network, input.topupId, 'capture')).toHaveLength(0);
        expect(await walletBalance(prisma, wallet)).toEqual({ available: 0n, held: 0n });
        expect(await ledgerOf(input.topupId)).toEqual([]);
        await recordHistory('operator-cancel-interrupts-failing-authorize', handle);
      },
      {
        async authorizePayment() {
          attempts++;
          return fail();
        },
      },
    );
  });

  it('a payout whose bank attempt fails: canceled, the hold voided, nothing paid', async () => {
    let attempts = 0;
    const fail = failsOnceCanceled('BankUnavailableError');
    await withWalletWorker(
      async ({ bank, wallet, customerId, taskQueue }) => {
        await fund(customerId, 3000n);
        const input = payoutInput(customerId, 1000, await env.currentTimeMs());
        const handle = await env.client.workflow.start(payoutWorkflowV2, { workflowId: input.payoutId, taskQueue, args: [input] });
        await until('the bank attempt', () => (attempts > 0 ? true : undefined));
        await handle.cancel();
        await canceledRun(handle);
        expect(await prisma.payout.findUniqueOrThrow({ where: { id: input.payoutId } })).toMatchObject({ status: 'canceled' });
        expect(bank.paid(input.payoutId)).toBe(0);
        expect(await walletBalance(prisma, wallet)).toEqual({ available: 3000n, held: 0n });
        await recordHistory('operator-cancel-interrupts-failing-bank-call', handle);
      },
      {
        async sendBankTransfer() {
          attempts++;
          return fail();
        },
      },
    );
  });
});

describe('a payout canceled from the Web UI ends with the books right', () => {
  it('before it is sent: the hold is voided, the money back', async () => {
    await withWalletWorker(async ({ bank, wallet, customerId, taskQueue }) => {
      await fund(customerId, 3000n);
      const input = payoutInput(customerId, 1000, (await env.currentTimeMs()) + DAY);
      const handle = await env.client.workflow.start(payoutWorkflowV2, { workflowId: input.payoutId, taskQueue, args: [input] });
      await until('the hold', async () => ((await walletBalance(prisma, wallet)).held === 1000n ? true : undefined));
      await handle.cancel();
      await canceledRun(handle);
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 3000n, held: 0n });
      expect(await prisma.payout.findUniqueOrThrow({ where: { id: input.payoutId } })).toMatchObject({ status: 'canceled' });
      expect(bank.calls).toBe(0);
      expect((await ledgerOf(input.payoutId)).map((t) => [t.step, t.kind])).toEqual([
        ['hold', 'pending'],
        ['void', 'void_pending'],
      ]);
    });
  });

  it('during the bank call, when the bank paid anyway: the payout is paid and its hold posted', async () => {
    await withWalletWorker(async ({ bank, wallet, customerId, taskQueue }) => {
      await fund(customerId, 3000n);
      bank.hangNext = { paysAtLookup: 1 };
      const input = payoutInput(customerId, 1000, await env.currentTimeMs());
      const handle = await env.client.workflow.start(payoutWorkflowV2, { workflowId: input.payoutId, taskQueue, args: [input] });
      await until('the bank call', () => (bank.calls > 0 ? true : undefined));
      await handle.cancel();
      expect(await handle.result()).toMatchObject({ status: 'paid' });
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 2000n, held: 0n });
      expect(bank.transfers.filter((t) => t.reference === input.payoutId).map((t) => t.status)).toEqual(['paid']);
      expect((await ledgerOf(input.payoutId)).map((t) => [t.step, t.kind])).toEqual([
        ['hold', 'pending'],
        ['post', 'post_pending'],
      ]);
      await recordHistory('operator-cancel-during-bank-call-paid', handle);
    });
  });

  it('during the bank call, when the bank never paid: the hold is voided after the bank\u2019s processing time', async () => {
    await withWalletWorker(async ({ bank, wallet, customerId, taskQueue }) => {
      await fund(customerId, 3000n);
      bank.hangNext = { paysAtLookup: null };
      const input = payoutInput(customerId, 1000, await env.currentTimeMs());
      const handle = await env.client.workflow.start(payoutWorkflowV2, { workflowId: input.payoutId, taskQueue, args: [input] });
      await until('the bank call', () => (bank.calls > 0 ? true : undefined));
      await handle.cancel();
      await canceledRun(handle);
      expect(bank.lookups.filter((k) => k === `${input.payoutId}:transfer`).length).toBeGreaterThanOrEqual(2);
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 3000n, held: 0n });
      expect(await prisma.payout.findUniqueOrThrow({ where: { id: input.payoutId } })).toMatchObject({ status: 'canceled' });
      await recordHistory('operator-cancel-during-bank-call-not-paid', handle);
    });
  });

  it('a merchant cancel that meets a failing database still ends canceled, never pending', async () => {
    let attempts = 0;
    await withWalletWorker(
      async ({ wallet, customerId, taskQueue }) => {
        await fund(customerId, 3000n);
        const input = payoutInput(customerId, 1000, (await env.currentTimeMs()) + DAY);
        const handle = await env.client.workflow.start(payoutWorkflowV2, { workflowId: input.payoutId, taskQueue, args: [input] });
        await until('pending', async () => ((await handle.query(payoutStatusQuery)).status === 'pending' ? true : undefined));
        expect(await handle.executeUpdate(payoutCancelUpdate)).toMatchObject({ status: 'canceled' });
        expect(await handle.result()).toMatchObject({ status: 'canceled' });
        expect(attempts).toBeGreaterThan(6);
        expect(await walletBalance(prisma, wallet)).toEqual({ available: 3000n, held: 0n });
        expect(await prisma.payout.findUniqueOrThrow({ where: { id: input.payoutId } })).toMatchObject({ status: 'canceled' });
      },
      {
        // The database refuses the void more times than one activity's retries allow.
        async releaseHold(req) {
          if (++attempts <= 6) throw new Error('database unavailable (test)');
          return createActivities({ prisma, cardNetwork: new FakeCardNetwork(), bank: new FakeBank() }).releaseHold(req);
        },
      },
    );
  });
});

describe('every step works at the longest Idempotency-Key a merchant may send', () => {
  // 255 visible ASCII characters (Stripe's limit); the fakes refuse keys and references over 255.
  const longKey = () => `${randomUUID()}:${'~'.repeat(255 - 37)}`;

  it('checkout: authorize, capture in part, refund, and the undo of a capture', async () => {
    await withCheckout({ key: longKey(), captureMethod: 'manual' }, async ({ id, network, handle }) => {
      expect(longKey()).toHaveLength(255);
      await reach(handle, 'requires_capture');
      expect(await handle.executeUpdate(captureUpdate, { args: [{ amount: '6000' }] })).toMatchObject({ status: 'captured', amountCaptured: '6000' });
      const refundId = refundIdOf(id, longKey());
      expect(await handle.executeUpdate(refundUpdate, { args: [{ refundId, amount: '6000' }], updateId: refundId })).toMatchObject({ status: 'succeeded' });
      expect(ops(network, id, 'refund').map((r) => r.amount)).toEqual(['6000']);
      expect(Math.max(...network.operations.filter((op) => op.reference === id).map((op) => op.idempotencyKey.length))).toBeLessThanOrEqual(255);
    });
    // The merchant credit fails for good after the capture: the capture's undo refunds it.
    await withCheckout(
      {
        key: longKey(),
        override: {
          // The capture's record (with the merchant's credit) cannot be made.
          async recordCapture() {
            throw ApplicationFailure.create({ type: 'InvalidLedgerRequest', message: 'test: the credit cannot be made', nonRetryable: true });
          },
        },
      },
      async ({ id, network, handle }) => {
        await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
        expect(ops(network, id, 'capture')).toHaveLength(1);
        expect(ops(network, id, 'refund').map((r) => [r.idempotencyKey, r.amount])).toEqual([[`${id}:refund:compensation`, '10000']]);
        expect(await row(id)).toMatchObject({ status: 'failed' });
      },
    );
  });

  it('checkout: 3-D Secure, and a void on cancel', async () => {
    await withCheckout({ key: longKey(), token: 'tok_threeDSecureRequired' }, async ({ id, network, handle }) => {
      await reach(handle, 'requires_action');
      expect(await handle.executeUpdate(confirmUpdate, { args: [{ result: 'succeeded' }] })).toMatchObject({ status: 'processing' });
      await reach(handle, 'captured');
      expect(ops(network, id, 'authentication')).toHaveLength(1);
    });
    await withCheckout({ key: longKey(), captureMethod: 'manual' }, async ({ id, network, handle }) => {
      await reach(handle, 'requires_capture');
      expect(await handle.executeUpdate(cancelUpdate)).toMatchObject({ status: 'canceled' });
      expect(ops(network, id, 'void')).toHaveLength(1);
    });
  });

  it('top-up: the charge, and its refund when the credit cannot be made; payout: the transfer', async () => {
    await withWalletWorker(async ({ network, wallet, customerId, taskQueue }) => {
      const input = topupInput(customerId, 5000, longKey());
      expect(await env.client.workflow.execute(topupWorkflowV2, { workflowId: input.topupId, taskQueue, args: [input] })).toMatchObject({ status: 'succeeded' });
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 5000n, held: 0n });
      expect(ops(network, input.topupId, 'capture')).toHaveLength(1);
    });
    await withWalletWorker(
      async ({ network, customerId, taskQueue }) => {
        const input = topupInput(customerId, 5000, longKey());
        expect(await env.client.workflow.execute(topupWorkflowV2, { workflowId: input.topupId, taskQueue, args: [input] })).toMatchObject({ status: 'failed' });
        expect(ops(network, input.topupId, 'refund').map((r) => [r.idempotencyKey, r.amount])).toEqual([[`${input.topupId}:refund`, '5000']]);
      },
      {
        async createTransfer(req) {
          if (req.id.endsWith(':credit')) throw ApplicationFailure.create({ type: 'InsufficientFunds', message: 'test: the wallet refuses the credit', nonRetryable: true });
          return createActivities({ prisma, cardNetwork: new FakeCardNetwork(), bank: new FakeBank() }).createTransfer(req);
        },
      },
    );
    await withWalletWorker(async ({ bank, customerId, taskQueue }) => {
      await fund(customerId, 3000n);
      const input = payoutInput(customerId, 1000, await env.currentTimeMs(), '1234567', longKey());
      expect(await env.client.workflow.execute(payoutWorkflowV2, { workflowId: input.payoutId, taskQueue, args: [input] })).toMatchObject({ status: 'paid' });
      expect(bank.transfers.filter((t) => t.reference === input.payoutId).map((t) => t.status)).toEqual(['paid']);
    });
  });
});

describe('orders the API places itself after starting the workflow', () => {
  // The API's side, as api/routes/checkouts.ts runs it: start first, then place.
  const store = () => createCheckoutStore(apiPool);
  let apiPool: pg.Pool;
  beforeAll(() => {
    apiPool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 2 });
  });
  afterAll(async () => {
    await apiPool?.end();
  });

  async function startPlacedByApi(taskQueue: string, sku: string) {
    const key = randomUUID();
    const input: CheckoutInput = {
      checkoutId: checkoutId(MERCHANT, key),
      merchantId: MERCHANT,
      customerId: 'cus_placed',
      idempotencyKey: key,
      items: [{ sku, quantity: 2 }],
      payment: { method: 'card', token: 'tok_visa' },
      captureMethod: 'automatic',
      timeouts: { ...DEFAULT_CHECKOUT_TIMEOUTS, settlementDelayMs: 0, refundWindowMs: 0 },
      placedBy: 'api',
    };
    const handle = await env.client.workflow.start(checkoutWorkflowV2, { workflowId: input.checkoutId, taskQueue, args: [input] });
    const newCheckout = {
      id: input.checkoutId,
      merchantId: MERCHANT,
      customerId: input.customerId,
      idempotencyKey: key,
      paymentMethod: 'card' as const,
      captureMethod: 'automatic' as const,
      lines: [{ sku, quantity: 2, unitAmount: PRICE }],
      total: 2n * PRICE,
      currency: 'JPY',
      deliveryQueue: taskQueue,
    };
    return { input, handle, newCheckout };
  }

  async function withPlainWorker<T>(network: FakeCardNetwork, body: (taskQueue: string) => Promise<T>): Promise<T> {
    const taskQueue = `placed-${randomUUID()}`;
    const worker = await createTestWorker({ env, prisma, workflowBundle, taskQueue, cardNetwork: network });
    return worker.runUntil(body(taskQueue));
  }

  it('adopts the order and its hold, whether placed before or after the first look, and captures once', async () => {
    const network = new FakeCardNetwork();
    await withPlainWorker(network, async (taskQueue) => {
      const sku = await product(5);
      const { input, handle, newCheckout } = await startPlacedByApi(taskQueue, sku);
      // The API is slow: its placement lands after the workflow's first look found nothing and it
      // started waiting to look again (a timer in its history).
      await until('the first look to find nothing', async () => ((await handle.fetchHistory()).events ?? []).some((e) => e.timerStartedEventAttributes) ? true : undefined);
      expect(await store().place(newCheckout)).toMatchObject({ outcome: 'reserved' });
      expect(await handle.result()).toMatchObject({ status: 'settled', amountCaptured: '10000' });
      expect(ops(network, input.checkoutId, 'capture')).toHaveLength(1);
      expect(await stockOf(sku)).toEqual({ available: 3, reserved: 0, sold: 2 });
      const attempts = await prisma.paymentAttempt.findMany({ where: { checkoutId: input.checkoutId } });
      expect(attempts.map((a) => `${a.operation}:${a.status}`).sort()).toEqual(['authorize:succeeded', 'capture:succeeded']);
      expect((await ledgerOf(input.checkoutId)).map((t) => [t.step, t.amount])).toEqual([
        ['merchant-credit', 10000n],
        ['settlement', 10000n],
      ]);
      await recordHistory('order-placed-by-api-captured', handle);
    });
  });

  it('fences the id when the API never placed the order: failed, nothing held, and a late placement holds nothing', async () => {
    const network = new FakeCardNetwork();
    await withPlainWorker(network, async (taskQueue) => {
      const sku = await product(5);
      const { input, handle, newCheckout } = await startPlacedByApi(taskQueue, sku);
      // The API died between the start and its write.
      expect(await handle.result()).toMatchObject({ status: 'failed', failure: { code: 'not_placed' } });
      expect(await row(input.checkoutId)).toMatchObject({ status: 'failed', failureCode: 'not_placed', amount: 10000n });
      // A write that arrives now finds the id taken.
      expect(await store().place(newCheckout)).toMatchObject({ outcome: 'exists', row: { status: 'failed' } });
      expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
      expect(network.calls.authorize).toBe(0);
      expect(await prisma.event.findMany({ where: { resourceId: input.checkoutId }, select: { type: true } })).toEqual([{ type: 'checkout.failed' }]);
      await recordHistory('order-never-placed-fenced', handle);
    });
  });
});

// After every scenario above: each checkout, top-up and payout of this file's merchant has exactly
// its ledger transfers, and they agree with what the fake network and bank recorded.
it('leaves books that agree with the network and the bank', async () => {
  await expectBooksOf(MERCHANT, { fakes: true });
});
