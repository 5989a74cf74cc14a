// Reconciliation on the real Temporal dev server with an in-process worker, against the card-network
// and bank simulators running in-process on the test database. Each disagreement is made directly
// (rows written as a crashed or buggy flow would have left them), then a run must find it, repair
// the safe ones (void, release, credit) exactly once however many runs there are, and report the rest.
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import { holdStock } from '../activities/inventory.js';
import { createApp } from '../api/app.js';
import { ledgerAccount, reconciliationId, type ReconciliationInput, type ReconciliationResult } from '../domain/index.js';
import { hashApiKey } from '../platform/api-keys.js';
import { createBankClient, type BankClient } from '../platform/bank-client.js';
import { createCardNetworkClient, type CardNetworkClient } from '../platform/card-network-client.js';
import { createPrisma, type PrismaClient } from '../platform/db.js';
import { walletBalance } from '../platform/ledger.js';
import { createLogger } from '../platform/logger.js';
import { createBankServer, type BankServer } from '../simulators/bank/server.js';
import { createCardNetworkServer, type CardNetworkServer } from '../simulators/card-network/server.js';
import { createPaymentWorker, WORKFLOWS_PATH } from '../workers/payment-worker.js';
import { ensureReconciliationSchedule, RECONCILIATION_SCHEDULE_ID } from '../scripts/reconciliation-schedule.js';

const MERCHANT = 'demo';
let prisma: PrismaClient;
let pool: pg.Pool;
let connection: Connection;
let nativeConnection: NativeConnection;
let client: Client;
let workflowBundle: Awaited<ReturnType<typeof bundleWorkflowCode>>;
let networkServer: CardNetworkServer;
let bankServer: BankServer;
let cardNetwork: CardNetworkClient;
let bank: BankClient;
/** Every run looks only at what this file created: earlier files' leftovers are not this test's business. */
let since: string;

beforeAll(async () => {
  since = new Date().toISOString();
  prisma = createPrisma(process.env.DATABASE_URL!);
  pool = new pg.Pool({ connectionString: process.env.DATABASE_URL!, max: 10 });
  networkServer = createCardNetworkServer({ pool });
  bankServer = createBankServer({ pool });
  const [networkUrl, bankUrl] = await Promise.all([networkServer.listen(0, '127.0.0.1'), bankServer.listen(0, '127.0.0.1')]);
  cardNetwork = createCardNetworkClient({ baseUrl: networkUrl });
  bank = createBankClient({ baseUrl: bankUrl });
  [connection, nativeConnection, workflowBundle] = await Promise.all([
    Connection.connect({ address: process.env.TEMPORAL_ADDRESS! }),
    NativeConnection.connect({ address: process.env.TEMPORAL_ADDRESS! }),
    bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH }),
  ]);
  client = new Client({ connection, namespace: process.env.TEMPORAL_NAMESPACE ?? 'default' });
});

afterAll(async () => {
  await networkServer?.close();
  await bankServer?.close();
  await pool?.end();
  await prisma?.$disconnect();
  await nativeConnection?.close();
  await connection?.close();
});

async function withWorker<T>(body: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = `reconciliation-${randomUUID()}`;
  const worker = await createPaymentWorker({
    connection: nativeConnection,
    namespace: process.env.TEMPORAL_NAMESPACE ?? 'default',
    taskQueue,
    activities: createActivities({ prisma, cardNetwork, bank, temporal: client }),
    workflowBundle,
  });
  return worker.runUntil(body(taskQueue));
}

function reconcile(taskQueue: string, input: ReconciliationInput = { since, olderThanMs: 0 }): Promise<ReconciliationResult> {
  return client.workflow.execute('reconciliationWorkflow', { workflowId: reconciliationId(randomUUID()), taskQueue, args: [input] });
}

async function failedCheckout(amount = 3000n) {
  const key = randomUUID();
  return prisma.checkout.create({
    data: { id: `checkout-${MERCHANT}-${key}`, merchantId: MERCHANT, customerId: 'cus_recon', idempotencyKey: key, status: 'failed', amount, currency: 'JPY', paymentMethod: 'card' },
  });
}

async function authorizationState(id: string): Promise<string> {
  const { rows } = await pool.query<{ state: string }>('SELECT state FROM card_network.authorizations WHERE id = $1', [id]);
  return rows[0]!.state;
}

describe('reconciliation', () => {
  it('voids, releases and credits the safe disagreements once, and reports a paid payout the ledger never posted', async () => {
    // (1) An authorization still holding funds for a checkout that failed.
    const orphaned = await failedCheckout();
    const auth = await cardNetwork.authorize({ idempotencyKey: `${orphaned.id}:authorize`, amount: 3000n, currency: 'JPY', token: 'tok_visa', reference: orphaned.id });
    expect(auth.status).toBe('succeeded');

    // (2) Stock held by a checkout that failed.
    const sku = `recon-${randomUUID().slice(0, 8)}`;
    await prisma.product.create({ data: { merchantId: MERCHANT, sku, name: 'Recon sneaker', priceAmount: 1000n, currency: 'JPY', available: 5 } });
    const stuck = await failedCheckout(2000n);
    await prisma.$transaction((tx) => holdStock(tx, { checkoutId: stuck.id, merchantId: MERCHANT, items: [{ sku, quantity: 2 }] }));

    // (3) A top-up captured at the network whose wallet credit never happened.
    const topupKey = randomUUID();
    const topupId = `topup-${MERCHANT}-${topupKey}`;
    const customerId = `cus_${randomUUID()}`;
    await prisma.topup.create({ data: { id: topupId, merchantId: MERCHANT, customerId, idempotencyKey: topupKey, amount: 5000n, currency: 'JPY', status: 'processing' } });
    const topupAuth = await cardNetwork.authorize({ idempotencyKey: `${topupId}:authorize`, amount: 5000n, currency: 'JPY', token: 'tok_visa', reference: topupId });
    await cardNetwork.capture({ idempotencyKey: `${topupId}:capture`, authorizationId: topupAuth.authorizationId });

    // (4) A payout marked paid that the ledger never posted: reported, not repaired.
    const payoutKey = randomUUID();
    const payoutId = `payout-${MERCHANT}-${payoutKey}`;
    await prisma.payout.create({
      data: { id: payoutId, merchantId: MERCHANT, customerId, idempotencyKey: payoutKey, amount: 1000n, currency: 'JPY', bankCode: '0001', accountNumber: '1234567', scheduledAt: new Date(), status: 'paid' },
    });

    const [first, second] = await withWorker(async (taskQueue) => [await reconcile(taskQueue), await reconcile(taskQueue)] as const);

    expect(first.status).toBe('completed');
    const items = await prisma.reconciliationItem.findMany({ where: { reconciliationId: first.reconciliationId } });
    const find = (kind: string, resourceId: string) => items.find((i) => i.kind === kind && i.resourceId === resourceId);
    expect(find('authorization_not_voided', auth.authorizationId)).toMatchObject({ action: 'repaired', merchantId: MERCHANT });
    expect(find('reservation_not_released', stuck.id)).toMatchObject({ action: 'repaired', details: { released: 2 } });
    expect(find('topup_not_credited', topupId)).toMatchObject({ action: 'repaired' });
    expect(find('payout_paid_not_posted', payoutId)).toMatchObject({ action: 'reported' });
    expect(first.counts.byKind).toMatchObject({ authorization_not_voided: 1, reservation_not_released: 1, topup_not_credited: 1, payout_paid_not_posted: 1 });
    const run = await prisma.reconciliation.findUniqueOrThrow({ where: { id: first.reconciliationId } });
    expect(run).toMatchObject({ status: 'completed' });
    expect(run.finishedAt).not.toBeNull();

    // The repairs happened where they matter.
    expect(await authorizationState(auth.authorizationId)).toBe('voided');
    expect(await cardNetwork.lookup(`recon:${auth.authorizationId}:void`)).toMatchObject({ type: 'void', status: 'succeeded' });
    expect(await prisma.product.findUniqueOrThrow({ where: { merchantId_sku: { merchantId: MERCHANT, sku } } })).toMatchObject({ available: 5, reserved: 0 });
    expect(await prisma.topup.findUniqueOrThrow({ where: { id: topupId } })).toMatchObject({ status: 'succeeded' });

    // The second run repairs nothing again: the wallet holds the top-up exactly once.
    expect(second.status).toBe('completed');
    expect(second.counts.repaired).toBe(0);
    expect(second.counts.byKind).toMatchObject({ payout_paid_not_posted: 1 });
    expect(await walletBalance(prisma, ledgerAccount.wallet(MERCHANT, customerId, 'JPY'))).toEqual({ available: 5000n, held: 0n });
    expect(await prisma.ledgerTransfer.count({ where: { reference: topupId } })).toBe(1);
  });

  it('leaves a checkout whose workflow is still running alone, and records younger than olderThanMs too', async () => {
    const key = randomUUID();
    const id = `checkout-${MERCHANT}-${key}`;
    await prisma.checkout.create({ data: { id, merchantId: MERCHANT, customerId: 'cus_recon', idempotencyKey: key, status: 'requires_capture', amount: 1000n, currency: 'JPY', paymentMethod: 'card' } });
    const auth = await cardNetwork.authorize({ idempotencyKey: `${id}:authorize`, amount: 1000n, currency: 'JPY', token: 'tok_visa', reference: id });
    await withWorker(async (taskQueue) => {
      // Stands in for the checkout's live workflow: any workflow running under the checkout's id.
      const live = await client.workflow.start('reconciliationWorkflow', { workflowId: id, taskQueue: `idle-${randomUUID()}`, args: [{}] });
      try {
        const young = await reconcile(taskQueue, { since, olderThanMs: 60 * 60_000 });
        expect(young.counts.byKind.authorization_not_voided ?? 0).toBe(0);
        await reconcile(taskQueue);
        expect(await authorizationState(auth.authorizationId)).toBe('authorized');
      } finally {
        await live.terminate('test over');
      }
      const after = await reconcile(taskQueue);
      expect(after.counts.byKind.authorization_not_voided).toBe(1);
      expect(await authorizationState(auth.authorizationId)).toBe('voided');
    });
  });

  it('reports refunds on one side only, each once per run, and repairs none of them', async () => {
    const key = randomUUID();
    const checkoutId = `checkout-${MERCHANT}-${key}`;
    await prisma.checkout.create({
      data: { id: checkoutId, merchantId: MERCHANT, customerId: 'cus_recon', idempotencyKey: key, status: 'partially_refunded', amount: 3000n, amountCaptured: 3000n, amountRefunded: 1000n, currency: 'JPY', paymentMethod: 'card' },
    });
    const auth = await cardNetwork.authorize({ idempotencyKey: `${checkoutId}:authorize`, amount: 3000n, currency: 'JPY', token: 'tok_visa', reference: checkoutId });
    await cardNetwork.capture({ idempotencyKey: `${checkoutId}:capture`, authorizationId: auth.authorizationId });
    const refundRow = (status: string) => ({ id: `re_${randomUUID().replaceAll('-', '')}`, checkoutId, merchantId: MERCHANT, amount: 1000n, currency: 'JPY', status });

    // (a) Our books say refunded; neither the network nor the ledger has it.
    const booked = await prisma.refund.create({ data: refundRow('succeeded') });
    // (b) The card got money back under a refund key no row has.
    const orphanKey = `${checkoutId}:refund:re_${randomUUID().replaceAll('-', '')}`;
    const orphan = await cardNetwork.refund({ idempotencyKey: orphanKey, authorizationId: auth.authorizationId, amount: 500n });
    expect(orphan).toMatchObject({ type: 'refund', status: 'succeeded', reference: checkoutId });
    // (c) A refund left pending by a workflow that is gone.
    const stuck = await prisma.refund.create({ data: refundRow('pending') });

    const runs = await withWorker(async (taskQueue) => [await reconcile(taskQueue), await reconcile(taskQueue)] as const);

    for (const run of runs) {
      expect(run.status).toBe('completed');
      const items = await prisma.reconciliationItem.findMany({ where: { reconciliationId: run.reconciliationId } });
      const mine = items.filter((i) => [booked.id, orphan.id, stuck.id].includes(i.resourceId));
      expect(mine.map((i) => [i.kind, i.resourceId, i.action]).sort()).toEqual(
        [
          ['network_refund_without_refund', orphan.id, 'reported'],
          ['refund_stuck_pending', stuck.id, 'reported'],
          ['refund_without_network_refund', booked.id, 'reported'],
        ].sort(),
      );
      expect(mine.find((i) => i.resourceId === orphan.id)).toMatchObject({ merchantId: MERCHANT, details: { idempotencyKey: orphanKey, refundStatus: null, checkoutId } });
      expect(mine.find((i) => i.resourceId === booked.id)).toMatchObject({ details: { networkRefund: false, ledgerTransferId: null } });
      expect(run.counts.byKind).toMatchObject({ refund_without_network_refund: 1, network_refund_without_refund: 1, refund_stuck_pending: 1 });
      expect(run.counts.repaired).toBe(0);
    }

    // Nothing was repaired: no refund, no transfer, no row changed.
    const refundsAtNetwork = (await cardNetwork.listOperations(checkoutId)).filter((op) => op.type === 'refund');
    expect(refundsAtNetwork.map((op) => op.idempotencyKey)).toEqual([orphanKey]);
    expect(await prisma.ledgerTransfer.count({ where: { reference: checkoutId } })).toBe(0);
    expect(await prisma.refund.findMany({ where: { checkoutId }, select: { id: true, status: true }, orderBy: { id: 'asc' } })).toEqual(
      [{ id: booked.id, status: 'succeeded' }, { id: stuck.id, status: 'pending' }].sort((x, y) => (x.id < y.id ? -1 : 1)),
    );
    expect(await authorizationState(auth.authorizationId)).toBe('captured');
  });

  it('starts a run through the API and shows each merchant only its own items', async () => {
    const otherKey = `sk_test_${randomUUID()}`;
    const other = `rc_${randomUUID().slice(0, 8)}`;
    await prisma.merchant.create({ data: { id: other, name: 'Other shop', apiKeyHash: hashApiKey(otherKey) } });
    const payoutKey = randomUUID();
    const payoutId = `payout-${other}-${payoutKey}`;
    await prisma.payout.create({
      data: { id: payoutId, merchantId: other, customerId: 'cus_other', idempotencyKey: payoutKey, amount: 700n, currency: 'JPY', bankCode: '0001', accountNumber: '1234567', scheduledAt: new Date(), status: 'paid' },
    });
    await withWorker(async (taskQueue) => {
      const app = createApp({ prisma, temporal: client, taskQueue, logger: createLogger('reconciliation-test', 'error') });
      const server: Server = createServer(app);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/reconciliations`;
      const call = (key: string, url: string, init: RequestInit = {}) =>
        fetch(url, { ...init, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' } });
      try {
        const started = await call(otherKey, base, { method: 'POST', body: JSON.stringify({ since, olderThanMs: 0 }) });
        expect(started.status).toBe(202);
        const { id } = (await started.json()) as { id: string };
        await client.workflow.getHandle(id).result();

        const mine = (await (await call(otherKey, `${base}/${id}`)).json()) as { status: string; counts: { reported: number }; items: Array<{ kind: string; resourceId: string; merchantId: string }> };
        expect(mine.status).toBe('completed');
        expect(mine.items).toEqual([expect.objectContaining({ kind: 'payout_paid_not_posted', resourceId: payoutId, merchantId: other })]);
        expect(mine.counts.reported).toBe(1);

        const operator = (await (await call('sk_test_demo', `${base}/${id}`)).json()) as { items: Array<{ merchantId: string }> };
        expect(operator.items.some((i) => i.merchantId === MERCHANT)).toBe(true);
        expect((await call(otherKey, `${base}/reconciliation-nope`)).status).toBe(404);
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });
  });

  it('creates the schedule once and updates it in place on the next start', async () => {
    const taskQueue = `reconciliation-${randomUUID()}`;
    try {
      expect(await ensureReconciliationSchedule(client, { taskQueue, every: '1h' })).toBe('created');
      expect(await ensureReconciliationSchedule(client, { taskQueue, every: '30m' })).toBe('updated');
      const described = await client.schedule.getHandle(RECONCILIATION_SCHEDULE_ID).describe();
      expect(described.spec.intervals?.[0]?.every).toBe(30 * 60_000);
      expect(described.action).toMatchObject({ type: 'startWorkflow', workflowType: 'reconciliationWorkflow', taskQueue });
    } finally {
      await client.schedule.getHandle(RECONCILIATION_SCHEDULE_ID).delete();
    }
  });
});
