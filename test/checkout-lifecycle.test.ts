// The checkout's timers and merchant/customer actions on Temporal's time-skipping test server:
// days of holds, 3-D Secure waits, authorization expiry and settlement pass in milliseconds, and
// every test asserts the end state in PostgreSQL and at the (in-process) card network.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  checkoutId,
  DEFAULT_CHECKOUT_TIMEOUTS,
  FailureType,
  type CaptureMethod,
  type CheckoutInput,
  type CheckoutSnapshot,
  type CheckoutStatus,
  type CheckoutTimeouts,
} from '../domain/index.js';
import type { PrismaClient } from '../platform/db.js';
import { bundlePaymentWorkflows } from '../workers/payment-worker.js';
import { cancelUpdate, captureUpdate, confirmUpdate, refundUpdate, statusQuery } from '../workflows/checkout-messages.js';
import { checkoutWorkflow, checkoutWorkflowV2 } from '../workflows/index.js';
import { expectBooksOf } from './support/books.js';
import { FakeCardNetwork } from './support/fake-card-network.js';
import { recordHistory } from './support/histories.js';
import { createMerchant, type TestMerchant } from './support/merchants.js';
import { createTestWorker, openTimeSkipping, updateRefusal } from './support/test-worker.js';

let merchant: TestMerchant;
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
let env: TestWorkflowEnvironment;
let prisma: PrismaClient;
let workflowBundle: Awaited<ReturnType<typeof bundlePaymentWorkflows>>;

beforeAll(async () => {
  ({ env, prisma, workflowBundle } = await openTimeSkipping());
  merchant = await createMerchant(prisma, 'lifecycle');
});

afterAll(async () => {
  await prisma?.$disconnect();
  await env?.teardown();
});

async function product(stock: number) {
  const sku = `sku-${randomUUID()}`;
  await prisma.product.create({ data: { merchantId: merchant.id, sku, name: 'Concert ticket', priceAmount: 5000n, currency: 'JPY', available: stock } });
  return sku;
}

async function stockOf(sku: string) {
  const p = await prisma.product.findUniqueOrThrow({ where: { merchantId_sku: { merchantId: merchant.id, sku } } });
  return { available: p.available, reserved: p.reserved, sold: p.sold };
}

const row = (id: string) => prisma.checkout.findUniqueOrThrow({ where: { id }, include: { refunds: true } });

interface Scenario {
  /** File name under test/histories when recording (RECORD_HISTORIES=1); see test/replay.test.ts. */
  record: string;
  token?: string;
  captureMethod?: CaptureMethod;
  timeouts?: Partial<CheckoutTimeouts>;
  /** The frozen first checkout type instead (workflows/legacy/), for runs that still drain. */
  legacy?: boolean;
}

/**
 * Starts a checkout on a fresh worker and hands the test its handle while the worker runs. Time
 * only skips while the test awaits `handle.result()` or `env.sleep()`, so the test decides when
 * each timer fires.
 */
async function withCheckout<T>(
  network: FakeCardNetwork,
  scenario: Scenario,
  body: (ctx: { id: string; sku: string; handle: WorkflowHandle<typeof checkoutWorkflowV2> }) => Promise<T>,
): Promise<T> {
  const sku = await product(5);
  const taskQueue = `lifecycle-${randomUUID()}`;
  const key = randomUUID();
  const input: CheckoutInput = {
    checkoutId: checkoutId(merchant.id, key),
    merchantId: merchant.id,
    customerId: 'cus_lifecycle',
    idempotencyKey: key,
    items: [{ sku, quantity: 2 }],
    payment: { method: 'card', token: scenario.token ?? 'tok_visa' },
    captureMethod: scenario.captureMethod ?? 'automatic',
    timeouts: { ...DEFAULT_CHECKOUT_TIMEOUTS, ...scenario.timeouts },
  };
  const worker = await createTestWorker({ env, prisma, workflowBundle, taskQueue, cardNetwork: network });
  return worker.runUntil(async () => {
    const handle = await env.client.workflow.start(scenario.legacy ? checkoutWorkflow : checkoutWorkflowV2, { workflowId: input.checkoutId, taskQueue, args: [input] });
    try {
      const result = await body({ id: input.checkoutId, sku, handle });
      await recordHistory(scenario.record, handle);
      return result;
    } finally {
      // The server is shared by the file's tests: a run left waiting on a months-long timer with
      // no worker would hold up time skipping for every test after it.
      if ((await handle.describe()).status.name === 'RUNNING') await handle.terminate('test finished');
    }
  });
}

/** Polls the workflow (in real time: queries do not skip time) until it reaches `status`. */
async function reach(handle: WorkflowHandle<typeof checkoutWorkflowV2>, status: CheckoutStatus): Promise<CheckoutSnapshot> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const snapshot = await handle.query(statusQuery);
    if (snapshot.status === status) return snapshot;
    if (Date.now() > deadline) throw new Error(`checkout stuck in ${snapshot.status}, expected ${status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The failure type an update was refused with. */
const rejection = async (promise: Promise<unknown>) => (await updateRefusal(promise)).type;

describe('stock hold', () => {
  it('releases the stock and voids when 3-D Secure outlasts the reservation timeout', async () => {
    const network = new FakeCardNetwork();
    await withCheckout(
      network,
      { record: 'hold-expires-during-3ds', token: 'tok_threeDSecureRequired', timeouts: { reservationTimeoutMs: 10 * MINUTE, actionTimeoutMs: 60 * MINUTE } },
      async ({ id, sku, handle }) => {
        await reach(handle, 'requires_action');
        expect(await stockOf(sku)).toEqual({ available: 3, reserved: 2, sold: 0 });
        const before = await env.currentTimeMs();
        const result = await handle.result();

        expect(result.status).toBe('expired');
        // The hold's timer, not the 3-D Secure one, ended it.
        expect(result.failure?.message).toMatch(/stock hold expired/);
        expect((await env.currentTimeMs()) - before).toBeGreaterThanOrEqual(10 * MINUTE - 1_000);
        expect(await row(id)).toMatchObject({ status: 'expired', failureCode: 'expired' });
        expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
        expect(network.count(id, 'void')).toBe(1);
      },
    );
  });
});

describe('3-D Secure', () => {
  it('expires when the customer does not answer within the action timeout', async () => {
    const network = new FakeCardNetwork();
    await withCheckout(
      network,
      { record: '3ds-action-timeout', token: 'tok_threeDSecureRequired', timeouts: { reservationTimeoutMs: DAY, actionTimeoutMs: 15 * MINUTE } },
      async ({ id, sku, handle }) => {
        await reach(handle, 'requires_action');
        const before = await env.currentTimeMs();
        const result = await handle.result();

        expect(result.status).toBe('expired');
        expect(result.failure?.message).toMatch(/did not complete 3-D Secure in time/);
        expect((await env.currentTimeMs()) - before).toBeGreaterThanOrEqual(15 * MINUTE - 1_000);
        expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
        expect(network.count(id, 'void')).toBe(1);
        expect(network.count(id, 'capture')).toBe(0);
      },
    );
  });

  it('captures after the customer passes the challenge', async () => {
    const network = new FakeCardNetwork();
    await withCheckout(network, { record: '3ds-succeeded-in-one-commit', token: 'tok_threeDSecureRequired' }, async ({ id, sku, handle }) => {
      await reach(handle, 'requires_action');
      await handle.executeUpdate(confirmUpdate, { args: [{ result: 'succeeded' }] });
      await reach(handle, 'captured');

      expect(await row(id)).toMatchObject({ status: 'captured', amountCaptured: 10000n });
      expect(await stockOf(sku)).toEqual({ available: 3, reserved: 0, sold: 2 });
      expect(network.count(id, 'capture')).toBe(1);
    });
  });

  it('fails and releases the stock when the challenge fails', async () => {
    const network = new FakeCardNetwork();
    await withCheckout(network, { record: '3ds-failed', token: 'tok_threeDSecureRequired' }, async ({ id, sku, handle }) => {
      await reach(handle, 'requires_action');
      await handle.executeUpdate(confirmUpdate, { args: [{ result: 'failed' }] });
      const result = await handle.result();

      expect(result.status).toBe('failed');
      expect(await row(id)).toMatchObject({ status: 'failed', failureCode: 'authentication_failed' });
      expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
      expect(network.count(id, 'capture')).toBe(0);
    });
  });
});

describe('manual capture', () => {
  it('voids the authorization and releases the stock when it is not captured before it expires', async () => {
    const network = new FakeCardNetwork();
    await withCheckout(network, { record: 'manual-capture-expires', captureMethod: 'manual' }, async ({ id, sku, handle }) => {
      await reach(handle, 'requires_capture');
      expect(await row(id)).toMatchObject({ status: 'requires_capture' });
      const before = await env.currentTimeMs();
      const result = await handle.result();

      expect(result.status).toBe('expired');
      expect((await env.currentTimeMs()) - before).toBeGreaterThanOrEqual(7 * DAY - 1_000);
      expect(await row(id)).toMatchObject({ status: 'expired', amountCaptured: 0n });
      expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
      expect(network.count(id, 'void')).toBe(1);
      expect(network.count(id, 'capture')).toBe(0);
    });
  });

  it('captures a smaller amount than was authorized when asked to', async () => {
    const network = new FakeCardNetwork();
    await withCheckout(network, { record: 'manual-capture-partial-in-one-commit', captureMethod: 'manual' }, async ({ id, sku, handle }) => {
      const waiting = await reach(handle, 'requires_capture');
      expect(waiting.amountCapturable).toBe('10000');

      expect(await rejection(handle.executeUpdate(captureUpdate, { args: [{ amount: '10001' }] }))).toBe(FailureType.InvalidAmount);
      const captured = await handle.executeUpdate(captureUpdate, { args: [{ amount: '7500' }] });

      expect(captured).toMatchObject({ status: 'captured', amountCaptured: '7500' });
      expect(await row(id)).toMatchObject({ status: 'captured', amountCaptured: 7500n });
      expect(network.operations.filter((op) => op.reference === id && op.type === 'capture').map((op) => op.amount)).toEqual(['7500']);
      expect(await stockOf(sku)).toEqual({ available: 3, reserved: 0, sold: 2 });
    });
  });
});

describe('cancel', () => {
  it('voids and releases before capture, once', async () => {
    const network = new FakeCardNetwork();
    await withCheckout(network, { record: 'cancel-before-capture', captureMethod: 'manual' }, async ({ id, sku, handle }) => {
      await reach(handle, 'requires_capture');
      const canceled = await handle.executeUpdate(cancelUpdate);

      expect(canceled.status).toBe('canceled');
      expect(await row(id)).toMatchObject({ status: 'canceled' });
      expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
      expect(network.count(id, 'void')).toBe(1);
      // The run is over once canceled: a second cancel finds nothing to act on (the API says 409).
      await expect(handle.executeUpdate(cancelUpdate)).rejects.toMatchObject({ name: 'WorkflowNotFoundError' });
      expect(network.count(id, 'void')).toBe(1);
    });
  });

  it('refuses to cancel a captured checkout', async () => {
    const network = new FakeCardNetwork();
    await withCheckout(network, { record: 'cancel-after-capture' }, async ({ id, handle }) => {
      await reach(handle, 'captured');
      expect(await rejection(handle.executeUpdate(cancelUpdate))).toBe(FailureType.InvalidCheckoutState);
      expect(network.count(id, 'void')).toBe(0);
    });
  });

  it('shows a compensation that keeps failing, and finishes it once it can', async () => {
    const network = new FakeCardNetwork();
    network.reject.add('void');
    await withCheckout(network, { record: 'compensation-stalls-then-recovers', captureMethod: 'manual' }, async ({ id, sku, handle }) => {
      await reach(handle, 'requires_capture');
      const canceling = handle.executeUpdate(cancelUpdate);
      const deadline = Date.now() + 20_000;
      let stalled: string | undefined;
      while (!stalled && Date.now() < deadline) {
        stalled = (await handle.query(statusQuery)).stalledCompensation;
        if (!stalled) await env.sleep('30 seconds');
      }
      expect(stalled).toBe('void authorization');
      const attributes = (await handle.describe()).searchAttributes as Record<string, unknown>;
      expect(attributes.PaymentStatus).toEqual(['compensation_failing']);

      network.reject.delete('void');
      await env.sleep('20 minutes');
      expect((await canceling).status).toBe('canceled');
      expect(await stockOf(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
      expect(network.count(id, 'void')).toBe(1);
    });
  });
});

describe('after capture', () => {
  it('settles on a timer at capture time + the settlement delay', async () => {
    const network = new FakeCardNetwork();
    await withCheckout(network, { record: 'settlement', timeouts: { settlementDelayMs: 2 * DAY, refundWindowMs: 0 } }, async ({ id, handle }) => {
      await reach(handle, 'captured');
      const capturedAt = await env.currentTimeMs();
      expect((await row(id)).settledAt).toBeNull();
      const result = await handle.result();

      expect(result.status).toBe('settled');
      expect((await env.currentTimeMs()) - capturedAt).toBeGreaterThanOrEqual(2 * DAY - 1_000);
      const settled = await row(id);
      expect(settled.status).toBe('settled');
      expect(settled.settledAt).not.toBeNull();
    });
  });

  it('the first checkout type, for runs still draining, posts its settlement as a scheduled activity', async () => {
    const network = new FakeCardNetwork();
    await withCheckout(network, { record: 'settlement-as-activity', legacy: true, timeouts: { settlementDelayMs: DAY, refundWindowMs: 0 } }, async ({ id, handle }) => {
      await reach(handle, 'captured');
      expect(await handle.result()).toMatchObject({ status: 'settled' });
      expect(await prisma.ledgerTransfer.findUniqueOrThrow({ where: { id: `${id}:settlement` } })).toMatchObject({ amount: 10000n, kind: 'posted' });
      const events = (await handle.fetchHistory()).events ?? [];
      expect(events.some((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch')).toBe(true);
      expect(events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'createTransfer')).toHaveLength(1);
    });
  });

  it('refunds partially then fully, never more than was captured', async () => {
    const network = new FakeCardNetwork();
    await withCheckout(network, { record: 'refunds-partial-then-full-in-one-commit' }, async ({ id, handle }) => {
      await reach(handle, 'captured');
      const first = await handle.executeUpdate(refundUpdate, { args: [{ refundId: 're_first', amount: '4000' }] });
      expect(first).toMatchObject({ status: 'succeeded', amount: { amount: '4000', currency: 'JPY' } });
      expect((await handle.query(statusQuery)).status).toBe('partially_refunded');

      expect(await rejection(handle.executeUpdate(refundUpdate, { args: [{ refundId: 're_too_much', amount: '6001' }] }))).toBe(FailureType.InvalidAmount);
      const rest = await handle.executeUpdate(refundUpdate, { args: [{ refundId: 're_rest' }] });
      expect(rest.amount.amount).toBe('6000');
      expect(await rejection(handle.executeUpdate(refundUpdate, { args: [{ refundId: 're_more', amount: '1' }] }))).toBe(FailureType.InvalidAmount);

      const stored = await row(id);
      expect(stored).toMatchObject({ status: 'refunded', amountCaptured: 10000n, amountRefunded: 10000n });
      expect(stored.refunds.map((r) => [r.id, r.amount, r.status]).sort()).toEqual([
        ['re_first', 4000n, 'succeeded'],
        ['re_rest', 6000n, 'succeeded'],
      ]);
      expect(network.operations.filter((op) => op.reference === id && op.type === 'refund').map((op) => op.amount).sort()).toEqual(['4000', '6000']);
    });
  });
});

// After every scenario above: each checkout, top-up and payout of this file's merchant has exactly
// its ledger transfers, and they agree with what the fake network and bank recorded.
it('leaves books that agree with the network and the bank', async () => {
  await expectBooksOf(merchant.id, { fakes: true });
});
