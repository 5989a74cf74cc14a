// Every workflow the API starts checks its input where it starts (domain `*InputProblem`, applied by
// workflows/failures.ts refuseInput), because anyone who reaches Temporal (the CLI, the Web UI) can
// start one too. An input the workflow cannot run fails the run at once with a non-retryable
// InvalidWorkflowInput naming the field, instead of throwing from workflow code on every retry of
// its workflow task while the run shows Running forever. The checks accept every input the API
// builds (the recorded histories replay, test/replay.test.ts) and the API refuses the same inputs
// with a 400 before starting anything (test/api-roles.test.ts for reconciliations).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplicationFailure, Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import {
  DEFAULT_CHECKOUT_TIMEOUTS,
  WorkflowFailureType,
  checkoutInputProblem,
  isTimestamp,
  payoutInputProblem,
  reconciliationInputProblem,
  topupInputProblem,
  webhookDeliveryInputProblem,
  type CheckoutInput,
  type PayoutInput,
  type TopupInput,
} from '../domain/index.js';
import { createBankClient } from '../platform/bank-client.js';
import { createCardNetworkClient } from '../platform/card-network-client.js';
import { createPrisma, type PrismaClient } from '../platform/db.js';
import { bundlePaymentWorkflows, createPaymentWorker } from '../workers/payment-worker.js';
import { connectDevServer } from './support/dev-server.js';
import { testDataConverter } from './support/payload-keys.js';

const checkout: CheckoutInput = {
  checkoutId: 'co_00000000000000000000000000000000',
  merchantId: 'demo',
  customerId: 'cus_1',
  idempotencyKey: 'order-1',
  items: [{ sku: 'sku-1', quantity: 2 }],
  payment: { method: 'card', token: 'tok_visa' },
  captureMethod: 'automatic',
  timeouts: DEFAULT_CHECKOUT_TIMEOUTS,
  placedBy: 'api',
};
const topup: TopupInput = {
  topupId: 'tu_00000000000000000000000000000000',
  merchantId: 'demo',
  customerId: 'cus_1',
  idempotencyKey: 'topup-1',
  amount: { amount: '5000', currency: 'JPY' },
  payment: { method: 'card', token: 'tok_visa' },
};
const payout: PayoutInput = {
  payoutId: 'po_00000000000000000000000000000000',
  merchantId: 'demo',
  customerId: 'cus_1',
  idempotencyKey: 'payout-1',
  amount: { amount: '1000', currency: 'JPY' },
  bankAccount: { bankCode: '0001', accountNumber: '1234567' },
  scheduledAt: '2026-11-29T10:00:00.000Z',
};

describe('the input checks', () => {
  it('accept what the API builds', () => {
    expect(checkoutInputProblem(checkout)).toBeUndefined();
    expect(checkoutInputProblem({ ...checkout, payment: { method: 'wallet' }, captureMethod: 'manual', placedBy: undefined })).toBeUndefined();
    expect(checkoutInputProblem({ ...checkout, timeouts: { ...DEFAULT_CHECKOUT_TIMEOUTS, settlementDelayMs: 0, refundWindowMs: 0 } })).toBeUndefined();
    expect(topupInputProblem(topup)).toBeUndefined();
    expect(payoutInputProblem(payout)).toBeUndefined();
    expect(webhookDeliveryInputProblem({ eventId: 'evt_1', endpointId: 'we_1' })).toBeUndefined();
    expect(webhookDeliveryInputProblem({ eventId: 'evt_1', endpointId: 'we_1', retry: { initialIntervalMs: 500, maximumIntervalMs: 1000 } })).toBeUndefined();
    expect(reconciliationInputProblem(undefined)).toBeUndefined();
    expect(reconciliationInputProblem({})).toBeUndefined();
    expect(reconciliationInputProblem({ since: '2026-11-01T00:00:00+09:00', until: '2026-11-29T00:00:00.123Z', olderThanMs: 0, pageSize: 1000, pagesPerRun: 1, merchantId: 'demo' })).toBeUndefined();
    expect(reconciliationInputProblem({ olderThanMs: 366 * 86_400_000 })).toBeUndefined();
  });

  it.each([
    ['not an object', 'input', () => checkoutInputProblem('co_1')],
    ['no payment', 'payment', () => checkoutInputProblem({ ...checkout, payment: undefined })],
    ['a card without a token', 'payment', () => checkoutInputProblem({ ...checkout, payment: { method: 'card' } })],
    ['no timeouts', 'timeouts', () => checkoutInputProblem({ ...checkout, timeouts: undefined })],
    ['a delay that is text', 'timeouts.settlementDelayMs', () => checkoutInputProblem({ ...checkout, timeouts: { ...DEFAULT_CHECKOUT_TIMEOUTS, settlementDelayMs: '2d' } })],
    ['a delay no timer holds', 'timeouts.refundWindowMs', () => checkoutInputProblem({ ...checkout, timeouts: { ...DEFAULT_CHECKOUT_TIMEOUTS, refundWindowMs: 1e20 } })],
    ['a negative delay', 'timeouts.reservationTimeoutMs', () => checkoutInputProblem({ ...checkout, timeouts: { ...DEFAULT_CHECKOUT_TIMEOUTS, reservationTimeoutMs: -1 } })],
    ['no lines', 'items', () => checkoutInputProblem({ ...checkout, items: [] })],
    ['a line of no units', 'items.0', () => checkoutInputProblem({ ...checkout, items: [{ sku: 'a', quantity: 0 }] })],
    ['an unknown capture method', 'captureMethod', () => checkoutInputProblem({ ...checkout, captureMethod: 'later' })],
    ['an amount with a decimal point', 'amount', () => topupInputProblem({ ...topup, amount: { amount: '50.00', currency: 'JPY' } })],
    ['a top-up without a card', 'payment', () => topupInputProblem({ ...topup, payment: { method: 'wallet' } })],
    ['a payout amount that is not a number', 'amount', () => payoutInputProblem({ ...payout, amount: { amount: 'abc', currency: 'JPY' } })],
    ['a payout time that is not a date', 'scheduledAt', () => payoutInputProblem({ ...payout, scheduledAt: 'tomorrow' })],
    ['a payout time past any timer', 'scheduledAt', () => payoutInputProblem({ ...payout, scheduledAt: '+275760-09-13T00:00:00.000Z' })],
    ['no account', 'bankAccount', () => payoutInputProblem({ ...payout, bankAccount: null })],
    ['a first retry interval of zero', 'retry.initialIntervalMs', () => webhookDeliveryInputProblem({ eventId: 'e', endpointId: 'w', retry: { initialIntervalMs: 0, maximumIntervalMs: 1000 } })],
    ['a maximum below the first interval', 'retry.maximumIntervalMs', () => webhookDeliveryInputProblem({ eventId: 'e', endpointId: 'w', retry: { initialIntervalMs: 1000, maximumIntervalMs: 10 } })],
    ['no event', 'eventId', () => webhookDeliveryInputProblem({ endpointId: 'w' })],
    ['a wait longer than 366 days', 'olderThanMs', () => reconciliationInputProblem({ olderThanMs: 366 * 86_400_000 + 1 })],
    ['a page of no records', 'pageSize', () => reconciliationInputProblem({ pageSize: 0 })],
    ['too many pages per run', 'pagesPerRun', () => reconciliationInputProblem({ pagesPerRun: 10_001 })],
    ['an until before since', 'until', () => reconciliationInputProblem({ since: '2026-11-29T00:00:00Z', until: '2026-11-29T00:00:00Z' })],
  ] as const)('refuse %s, naming %s', (_what, param, problem) => {
    expect(problem()).toEqual({ param, message: expect.any(String) });
  });

  it('take an ISO 8601 date-time with a time zone, on a day that exists, and nothing else', () => {
    for (const ok of ['2026-11-29T10:00:00Z', '2026-11-29T10:00Z', '2028-02-29T00:00:00+09:00', '2026-11-29T23:59:59.999999999-05:30', '0001-01-01T00:00:00Z', '9999-12-31T23:59:59Z']) {
      expect(isTimestamp(ok), ok).toBe(true);
    }
    for (const bad of ['2026-02-29T00:00:00Z', '2026-02-30T00:00:00Z', '2026-13-01T00:00:00Z', '2026-11-29T24:00:00Z', '2026-11-29T10:00:00', '2026-11-29', 'Nov 29 2026', '', 1_700_000_000_000, null]) {
      expect(isTimestamp(bad), String(bad)).toBe(false);
    }
  });
});

describe('a workflow started by hand with an input it cannot run', () => {
  let prisma: PrismaClient;
  let connection: Connection;
  let nativeConnection: NativeConnection;
  let client: Client;
  let workflowBundle: Awaited<ReturnType<typeof bundlePaymentWorkflows>>;

  beforeAll(async () => {
    prisma = createPrisma(process.env.DATABASE_URL!);
    ({ connection, nativeConnection, client, workflowBundle } = await connectDevServer());
  });

  afterAll(async () => {
    await prisma?.$disconnect();
    await nativeConnection?.close();
    await connection?.close();
  });

  // Each would otherwise throw from workflow code (a TypeError, a RangeError from a bigint or a
  // date, the SDK's ValueError for a timer or a retry policy) and stay Running.
  const id = () => randomUUID().replaceAll('-', '');
  it.each([
    ['checkoutWorkflowV2', 'payment', () => ({ ...checkout, checkoutId: `co_${id()}`, payment: undefined })],
    ['checkoutWorkflowV2', 'timeouts.reservationTimeoutMs', () => ({ ...checkout, checkoutId: `co_${id()}`, timeouts: { ...DEFAULT_CHECKOUT_TIMEOUTS, reservationTimeoutMs: 'ten minutes' } })],
    ['topupWorkflowV2', 'amount', () => ({ ...topup, topupId: `tu_${id()}`, amount: { amount: '50.00', currency: 'JPY' } })],
    ['payoutWorkflowV2', 'amount', () => ({ ...payout, payoutId: `po_${id()}`, amount: { amount: 'all of it', currency: 'JPY' } })],
    ['payoutWorkflowV2', 'scheduledAt', () => ({ ...payout, payoutId: `po_${id()}`, scheduledAt: '+275760-09-13T00:00:00.000Z' })],
    ['webhookDeliveryWorkflow', 'retry.initialIntervalMs', () => ({ eventId: `evt_${randomUUID()}`, endpointId: `we_${randomUUID()}`, retry: { initialIntervalMs: 0, maximumIntervalMs: 1000 } })],
  ] as const)('%s with a bad %s fails at once with InvalidWorkflowInput naming it, and writes nothing', async (type, param, make) => {
    const input = make();
    const taskQueue = `inputs-${randomUUID()}`;
    const nowhere = 'http://127.0.0.1:9';
    const worker = await createPaymentWorker({
      connection: nativeConnection,
      namespace: process.env.TEMPORAL_NAMESPACE ?? 'default',
      taskQueue,
      // Never called: the run fails before its first activity.
      activities: createActivities({ prisma, cardNetwork: createCardNetworkClient({ baseUrl: nowhere }), bank: createBankClient({ baseUrl: nowhere }), temporal: client }),
      workflowBundle,
      dataConverter: testDataConverter(),
    });
    const workflowId = 'checkoutId' in input ? input.checkoutId : 'topupId' in input ? input.topupId : 'payoutId' in input ? input.payoutId : `webhook-${input.eventId}`;
    await worker.runUntil(async () => {
      const handle = await client.workflow.start(type, { workflowId, taskQueue, args: [input] });
      const err = await handle.result().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const failure = (err as WorkflowFailedError).cause;
      expect(failure).toBeInstanceOf(ApplicationFailure);
      expect(failure).toMatchObject({ type: WorkflowFailureType.InvalidWorkflowInput, nonRetryable: true, details: [{ param }] });
      expect((await handle.describe()).status.name).toBe('FAILED');
    });
    const [checkouts, topups, payouts, transfers] = await Promise.all([
      prisma.checkout.count({ where: { id: workflowId } }),
      prisma.topup.count({ where: { id: workflowId } }),
      prisma.payout.count({ where: { id: workflowId } }),
      prisma.ledgerTransfer.count({ where: { reference: workflowId } }),
    ]);
    expect({ checkouts, topups, payouts, transfers }).toEqual({ checkouts: 0, topups: 0, payouts: 0, transfers: 0 });
  });
});
