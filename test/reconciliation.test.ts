// Reconciliation on the real Temporal dev server with an in-process worker, against the card-network
// and bank simulators running in-process on the test database. Each disagreement is made directly
// (rows written as a crashed or buggy flow would have left them), then a run must find it, repair
// the safe ones (void, release, credit) exactly once however many runs there are, and report the rest.
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplicationFailure, Client, Connection, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import { holdStock } from '../activities/inventory.js';
import { createApp } from '../api/app.js';
import { WorkflowFailureType, ledgerAccount, reconciliationId, type ReconciliationInput, type ReconciliationResult } from '../domain/index.js';
import { createBankClient, type BankClient } from '../platform/bank-client.js';
import { CardNetworkRejectedError, createCardNetworkClient, type CardNetworkClient } from '../platform/card-network-client.js';
import { createPrisma, type PrismaClient } from '../platform/db.js';
import { createTransfer, walletBalance } from '../platform/ledger.js';
import { createLogger } from '../platform/logger.js';
import { createBankServer, type BankServer } from '../simulators/bank/server.js';
import { createCardNetworkServer, type CardNetworkServer } from '../simulators/card-network/server.js';
import { bundlePaymentWorkflows, createPaymentWorker } from '../workers/payment-worker.js';
import { waitUntil } from '../scripts/processes.js';
import { ensureReconciliationSchedule, RECONCILIATION_SCHEDULE_ID } from '../scripts/reconciliation-schedule.js';
import { newOperatorApiKey } from '../scripts/dev-secrets.js';
import { connectDevServer } from './support/dev-server.js';
import { recordHistory } from './support/histories.js';
import { createMerchant, type TestMerchant } from './support/merchants.js';
import { testCustomerSearch, testDataConverter } from './support/payload-keys.js';

let merchant: TestMerchant;
let prisma: PrismaClient;
let pool: pg.Pool;
let connection: Connection;
let nativeConnection: NativeConnection;
let client: Client;
let workflowBundle: Awaited<ReturnType<typeof bundlePaymentWorkflows>>;
let networkServer: CardNetworkServer;
let bankServer: BankServer;
let cardNetwork: CardNetworkClient;
let bank: BankClient;
/** Every run looks only at what this file created: earlier files' leftovers are not this test's business. */
let since: string;

beforeAll(async () => {
  since = new Date().toISOString();
  prisma = createPrisma(process.env.DATABASE_URL!);
  merchant = await createMerchant(prisma, 'reconciliation');
  pool = new pg.Pool({ connectionString: process.env.DATABASE_URL!, max: 10 });
  networkServer = createCardNetworkServer({ pool });
  bankServer = createBankServer({ pool });
  const [networkUrl, bankUrl] = await Promise.all([networkServer.listen(0, '127.0.0.1'), bankServer.listen(0, '127.0.0.1')]);
  cardNetwork = createCardNetworkClient({ baseUrl: networkUrl });
  bank = createBankClient({ baseUrl: bankUrl });
  ({ connection, nativeConnection, client, workflowBundle } = await connectDevServer());
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
    dataConverter: testDataConverter(),
  });
  return worker.runUntil(body(taskQueue));
}

function reconcile(taskQueue: string, input: ReconciliationInput = { since, olderThanMs: 0 }): Promise<ReconciliationResult> {
  return client.workflow.execute('reconciliationWorkflowV2', { workflowId: reconciliationId(randomUUID()), taskQueue, args: [input] });
}

/** A run to its end, and whether it continued as new on the way (its last run is not its first). */
async function reconcileRuns(taskQueue: string, input: ReconciliationInput, type: 'reconciliationWorkflow' | 'reconciliationWorkflowV2' = 'reconciliationWorkflowV2', record?: string) {
  const handle = await client.workflow.start(type, { workflowId: reconciliationId(randomUUID()), taskQueue, args: [input] });
  const result = (await handle.result()) as ReconciliationResult;
  // The last run of the chain, which replays the continued-as-new input.
  if (record) await recordHistory(record, client.workflow.getHandle(handle.workflowId));
  const { runId } = await client.workflow.getHandle(handle.workflowId).describe();
  return { result, continued: runId !== handle.firstExecutionRunId };
}

/** The operator's key of the APIs these tests start. */
const OPERATOR_KEY = newOperatorApiKey();

/** The real API on the real Temporal, starting its reconciliations on `taskQueue`. */
async function reconciliationsApi(taskQueue: string) {
  const app = createApp({ prisma, pool, temporal: client, taskQueue, logger: createLogger('reconciliation-test', 'error'), operatorApiKey: OPERATOR_KEY, customerSearch: testCustomerSearch });
  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/reconciliations`;
  const call = (key: string, url: string, init: RequestInit = {}) => fetch(url, { ...init, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' } });
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return { base, call, close };
}

async function failedCheckout(amount = 3000n) {
  const key = randomUUID();
  return prisma.checkout.create({
    data: { id: `checkout-${merchant.id}-${key}`, merchantId: merchant.id, customerId: 'cus_recon', idempotencyKey: key, status: 'failed', amount, currency: 'JPY', paymentMethod: 'card' },
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
    await prisma.product.create({ data: { merchantId: merchant.id, sku, name: 'Recon sneaker', priceAmount: 1000n, currency: 'JPY', available: 5 } });
    const stuck = await failedCheckout(2000n);
    await prisma.$transaction((tx) => holdStock(tx, { checkoutId: stuck.id, merchantId: merchant.id, items: [{ sku, quantity: 2 }] }));

    // (3) A top-up captured at the network whose wallet credit never happened.
    const topupKey = randomUUID();
    const topupId = `topup-${merchant.id}-${topupKey}`;
    const customerId = `cus_${randomUUID()}`;
    await prisma.topup.create({ data: { id: topupId, merchantId: merchant.id, customerId, idempotencyKey: topupKey, amount: 5000n, currency: 'JPY', status: 'processing' } });
    const topupAuth = await cardNetwork.authorize({ idempotencyKey: `${topupId}:authorize`, amount: 5000n, currency: 'JPY', token: 'tok_visa', reference: topupId });
    await cardNetwork.capture({ idempotencyKey: `${topupId}:capture`, authorizationId: topupAuth.authorizationId });

    // (4) A payout marked paid that the ledger never posted: reported, not repaired.
    const payoutKey = randomUUID();
    const payoutId = `payout-${merchant.id}-${payoutKey}`;
    await prisma.payout.create({
      data: { id: payoutId, merchantId: merchant.id, customerId, idempotencyKey: payoutKey, amount: 1000n, currency: 'JPY', bankCode: '0001', accountNumber: '1234567', scheduledAt: new Date(), status: 'paid' },
    });

    const [first, second] = await withWorker(async (taskQueue) => [await reconcile(taskQueue), await reconcile(taskQueue)] as const);

    expect(first.status).toBe('completed');
    const items = await prisma.reconciliationItem.findMany({ where: { reconciliationId: first.reconciliationId } });
    const find = (kind: string, resourceId: string) => items.find((i) => i.kind === kind && i.resourceId === resourceId);
    expect(find('authorization_not_voided', auth.authorizationId)).toMatchObject({ action: 'repaired', merchantId: merchant.id });
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
    expect(await prisma.product.findUniqueOrThrow({ where: { merchantId_sku: { merchantId: merchant.id, sku } } })).toMatchObject({ available: 5, reserved: 0 });
    expect(await prisma.topup.findUniqueOrThrow({ where: { id: topupId } })).toMatchObject({ status: 'succeeded' });

    // The second run repairs nothing again: the wallet holds the top-up exactly once.
    expect(second.status).toBe('completed');
    expect(second.counts.repaired).toBe(0);
    expect(second.counts.byKind).toMatchObject({ payout_paid_not_posted: 1 });
    expect(await walletBalance(prisma, ledgerAccount.wallet(merchant.id, customerId, 'JPY'))).toEqual({ available: 5000n, held: 0n });
    expect(await prisma.ledgerTransfer.count({ where: { reference: topupId } })).toBe(1);
  });

  it('leaves a checkout whose workflow is still running alone, and records younger than olderThanMs too', async () => {
    const key = randomUUID();
    const id = `checkout-${merchant.id}-${key}`;
    await prisma.checkout.create({ data: { id, merchantId: merchant.id, customerId: 'cus_recon', idempotencyKey: key, status: 'requires_capture', amount: 1000n, currency: 'JPY', paymentMethod: 'card' } });
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
    const checkoutId = `checkout-${merchant.id}-${key}`;
    await prisma.checkout.create({
      data: { id: checkoutId, merchantId: merchant.id, customerId: 'cus_recon', idempotencyKey: key, status: 'partially_refunded', amount: 3000n, amountCaptured: 3000n, amountRefunded: 1000n, currency: 'JPY', paymentMethod: 'card' },
    });
    const auth = await cardNetwork.authorize({ idempotencyKey: `${checkoutId}:authorize`, amount: 3000n, currency: 'JPY', token: 'tok_visa', reference: checkoutId });
    await cardNetwork.capture({ idempotencyKey: `${checkoutId}:capture`, authorizationId: auth.authorizationId });
    const refundRow = (status: string) => ({ id: `re_${randomUUID().replaceAll('-', '')}`, checkoutId, merchantId: merchant.id, amount: 1000n, currency: 'JPY', status });

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
      expect(mine.find((i) => i.resourceId === orphan.id)).toMatchObject({ merchantId: merchant.id, details: { idempotencyKey: orphanKey, refundStatus: null, checkoutId } });
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

  it("starts a merchant's own run and the operator's platform-wide one through the API, and shows each merchant only its own items", async () => {
    const { id: other, key: otherKey } = await createMerchant(prisma, 'rc_other');
    const payoutKey = randomUUID();
    const payoutId = `payout-${other}-${payoutKey}`;
    await prisma.payout.create({
      data: { id: payoutId, merchantId: other, customerId: 'cus_other', idempotencyKey: payoutKey, amount: 700n, currency: 'JPY', bankCode: '0001', accountNumber: '1234567', scheduledAt: new Date(), status: 'paid' },
    });
    // Something of this file's merchant's for the platform-wide run to find.
    const ownPayoutKey = randomUUID();
    await prisma.payout.create({
      data: { id: `payout-${merchant.id}-${ownPayoutKey}`, merchantId: merchant.id, customerId: 'cus_own', idempotencyKey: ownPayoutKey, amount: 700n, currency: 'JPY', bankCode: '0001', accountNumber: '1234567', scheduledAt: new Date(), status: 'paid' },
    });
    await withWorker(async (taskQueue) => {
      const { base, call, close } = await reconciliationsApi(taskQueue);
      try {
        const started = await call(otherKey, base, { method: 'POST', body: JSON.stringify({ since, olderThanMs: 0 }) });
        expect(started.status).toBe(202);
        const { id, merchantId } = (await started.json()) as { id: string; merchantId: string };
        expect(merchantId).toBe(other);
        await client.workflow.getHandle(id).result();

        const mine = (await (await call(otherKey, `${base}/${id}`)).json()) as { status: string; scope: string; counts: { reported: number }; items: Array<{ kind: string; resourceId: string; merchantId: string }> };
        expect(mine.status).toBe('completed');
        expect(mine.scope).toBe('merchant');
        expect(mine.items).toEqual([expect.objectContaining({ kind: 'payout_paid_not_posted', resourceId: payoutId, merchantId: other })]);
        expect(mine.counts.reported).toBe(1);
        // Its own run held nothing but its own records, whoever reads it.
        const operatorView = (await (await call(OPERATOR_KEY, `${base}/${id}`)).json()) as { items: Array<{ merchantId: string }> };
        expect(operatorView.items.map((i) => i.merchantId)).toEqual([other]);

        const platform = await call(OPERATOR_KEY, base, { method: 'POST', body: JSON.stringify({ since, olderThanMs: 0 }) });
        expect(platform.status).toBe(202);
        const platformId = ((await platform.json()) as { id: string }).id;
        await client.workflow.getHandle(platformId).result();
        const operator = (await (await call(OPERATOR_KEY, `${base}/${platformId}`)).json()) as { scope: string; items: Array<{ merchantId: string }> };
        expect(operator.scope).toBe('platform');
        expect(operator.items.some((i) => i.merchantId === merchant.id)).toBe(true);
        expect(operator.items.some((i) => i.merchantId === other)).toBe(true);
        const theirs = (await (await call(otherKey, `${base}/${platformId}`)).json()) as { items: Array<{ merchantId: string }> };
        expect(theirs.items.map((i) => i.merchantId)).toEqual([other]);
        expect((await call(otherKey, `${base}/reconciliation-nope`)).status).toBe(404);
      } finally {
        await close();
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
      expect(described.action).toMatchObject({ type: 'startWorkflow', workflowType: 'reconciliationWorkflowV2', taskQueue });
    } finally {
      await client.schedule.getHandle(RECONCILIATION_SCHEDULE_ID).delete();
    }
  });
});

// Each of these looks only at what it created itself (its own `since`), so the records of the tests
// above and of each other do not add pages to its runs.

/** A checkout that failed with its authorization still holding the card (and one unit of `sku`, if given). */
async function orphan(sku?: string) {
  const checkout = await failedCheckout(1000n);
  const auth = await cardNetwork.authorize({ idempotencyKey: `${checkout.id}:authorize`, amount: 1000n, currency: 'JPY', token: 'tok_visa', reference: checkout.id });
  if (sku) await prisma.$transaction((tx) => holdStock(tx, { checkoutId: checkout.id, merchantId: merchant.id, items: [{ sku, quantity: 1 }] }));
  return { checkoutId: checkout.id, authorizationId: auth.authorizationId };
}

/** A captured card checkout that agrees with the network: nothing to find. */
async function capturedCheckout(): Promise<string> {
  const key = randomUUID();
  const id = `checkout-${merchant.id}-${key}`;
  await prisma.checkout.create({
    data: { id, merchantId: merchant.id, customerId: 'cus_recon', idempotencyKey: key, status: 'captured', amount: 1000n, amountCaptured: 1000n, currency: 'JPY', paymentMethod: 'card' },
  });
  const auth = await cardNetwork.authorize({ idempotencyKey: `${id}:authorize`, amount: 1000n, currency: 'JPY', token: 'tok_visa', reference: id });
  await cardNetwork.capture({ idempotencyKey: `${id}:capture`, authorizationId: auth.authorizationId });
  return id;
}

/** A top-up captured at the network whose wallet credit never happened. */
async function uncreditedTopup(customerId: string): Promise<string> {
  const key = randomUUID();
  const id = `topup-${merchant.id}-${key}`;
  await prisma.topup.create({ data: { id, merchantId: merchant.id, customerId, idempotencyKey: key, amount: 5000n, currency: 'JPY', status: 'processing' } });
  const auth = await cardNetwork.authorize({ idempotencyKey: `${id}:authorize`, amount: 5000n, currency: 'JPY', token: 'tok_visa', reference: id });
  await cardNetwork.capture({ idempotencyKey: `${id}:capture`, authorizationId: auth.authorizationId });
  return id;
}

/** A capture at the network for a checkout we have no row of. */
async function unknownCapture(): Promise<string> {
  const reference = `checkout-${merchant.id}-${randomUUID()}`;
  const auth = await cardNetwork.authorize({ idempotencyKey: `${reference}:authorize`, amount: 700n, currency: 'JPY', token: 'tok_visa', reference });
  await cardNetwork.capture({ idempotencyKey: `${reference}:capture`, authorizationId: auth.authorizationId });
  return auth.authorizationId;
}

async function product(available: number): Promise<string> {
  const sku = `recon-${randomUUID().slice(0, 8)}`;
  await prisma.product.create({ data: { merchantId: merchant.id, sku, name: 'Recon sneaker', priceAmount: 1000n, currency: 'JPY', available } });
  return sku;
}

const resourcesOf = async (reconciliationId: string, kind: string) =>
  (await prisma.reconciliationItem.findMany({ where: { reconciliationId, kind }, select: { resourceId: true } })).map((i) => i.resourceId).sort();

describe('the network and bank reports', () => {
  it('page by starting_after, each record once, while records are added and change state', async () => {
    const from = new Date();
    const auths = [];
    for (let i = 0; i < 5; i++) auths.push((await orphan()).authorizationId);
    const createdBefore = new Date();
    const q = { state: 'authorized' as const, createdAfter: from, createdBefore, limit: 2 };

    const first = await cardNetwork.listAuthorizations(q);
    expect(first.map((a) => a.id)).toEqual(auths.slice(0, 2));
    // Meanwhile one on the first page leaves the state and a new one is authorized: neither moves a page.
    await cardNetwork.void({ idempotencyKey: `test:${auths[0]}:void`, authorizationId: auths[0]! });
    await orphan();
    const second = await cardNetwork.listAuthorizations({ ...q, startingAfter: first.at(-1)!.id });
    const third = await cardNetwork.listAuthorizations({ ...q, startingAfter: second.at(-1)!.id });
    expect([...second, ...third].map((a) => a.id)).toEqual(auths.slice(2));
    expect(third).toHaveLength(1);

    const unknown = await cardNetwork.listAuthorizations({ ...q, startingAfter: 'auth_nope' }).catch((err: unknown) => err);
    expect(unknown).toBeInstanceOf(CardNetworkRejectedError);
    expect(unknown).toMatchObject({ status: 400, code: 'invalid_parameter' });

    const bankFrom = new Date();
    const transfers = [];
    for (let i = 0; i < 3; i++) {
      const reference = `payout-${merchant.id}-${randomUUID()}`;
      transfers.push((await bank.transfer({ idempotencyKey: `${reference}:transfer`, amount: 100n, currency: 'JPY', bankCode: '0001', accountNumber: '1234567', reference })).id);
    }
    const statement = { status: 'paid' as const, createdAfter: bankFrom, createdBefore: new Date(), limit: 2 };
    const page1 = await bank.listTransfersByStatus(statement);
    const page2 = await bank.listTransfersByStatus({ ...statement, startingAfter: page1.at(-1)!.id });
    expect([...page1, ...page2].map((t) => t.id)).toEqual(transfers);
    expect(page2).toHaveLength(1);
  });
});

describe('reconciliation reads its whole window page by page', () => {
  it('with pages of 3, voids all 7 orphan authorizations, releases their stock, credits 4 top-ups and reports a network capture past the first page, once each across continued runs and a retried call', async () => {
    const from = new Date().toISOString();
    const sku = await product(10);
    const orphans = [];
    for (let i = 0; i < 7; i++) orphans.push(await orphan(sku));
    for (let i = 0; i < 4; i++) await capturedCheckout();
    const customerId = `cus_${randomUUID()}`;
    const topups = [];
    for (let i = 0; i < 4; i++) topups.push(await uncreditedTopup(customerId));
    const lost = await unknownCapture(); // the newest capture: on the report's last page
    // The void of the fifth orphan acts but its answer is lost: found by its key. The sixth's is
    // refused once with a 503: the call fails and is retried, from where it was.
    await networkServer.store.addFault({ reference: orphans[4]!.checkoutId, operation: 'void', mode: 'lose_response', times: 1 });
    await networkServer.store.addFault({ reference: orphans[5]!.checkoutId, operation: 'void', mode: 'error_503', times: 1 });

    const input: ReconciliationInput = { since: from, olderThanMs: 0, pageSize: 3, pagesPerRun: 4 };
    const [first, second] = await withWorker(async (taskQueue) => [await reconcileRuns(taskQueue, input, 'reconciliationWorkflowV2', 'pages-continued-as-new'), await reconcileRuns(taskQueue, input)] as const);

    expect(first.result.status).toBe('completed');
    expect(first.continued).toBe(true);
    const id = first.result.reconciliationId;
    expect(await resourcesOf(id, 'authorization_not_voided')).toEqual(orphans.map((o) => o.authorizationId).sort());
    expect(await resourcesOf(id, 'reservation_not_released')).toEqual(orphans.map((o) => o.checkoutId).sort());
    expect(await resourcesOf(id, 'topup_not_credited')).toEqual([...topups].sort());
    expect(await resourcesOf(id, 'network_capture_unknown_reference')).toEqual([lost]);
    expect(first.result.counts.byKind).toMatchObject({ authorization_not_voided: 7, reservation_not_released: 7, topup_not_credited: 4, network_capture_unknown_reference: 1 });
    expect(await prisma.reconciliation.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: 'completed' });

    // Each repair happened once: one void per authorization (the lost answer's too), every unit
    // back on sale, each top-up credited once.
    for (const o of orphans.slice(4, 6)) expect(await networkServer.store.faultsByReference(o.checkoutId)).toEqual([expect.objectContaining({ remaining: 0 })]);
    for (const o of orphans) {
      expect(await authorizationState(o.authorizationId)).toBe('voided');
      expect((await cardNetwork.listOperations(o.checkoutId)).filter((op) => op.type === 'void')).toHaveLength(1);
    }
    expect(await prisma.product.findUniqueOrThrow({ where: { merchantId_sku: { merchantId: merchant.id, sku } } })).toMatchObject({ available: 10, reserved: 0 });
    expect(await walletBalance(prisma, ledgerAccount.wallet(merchant.id, customerId, 'JPY'))).toEqual({ available: 20_000n, held: 0n });
    for (const topupId of topups) expect(await prisma.ledgerTransfer.count({ where: { reference: topupId } })).toBe(1);

    expect(second.result.status).toBe('completed');
    expect(second.result.counts.repaired).toBe(0);
    expect(second.result.counts.byKind).toMatchObject({ network_capture_unknown_reference: 1 });
  });

  it.each(['reconciliationWorkflow', 'reconciliationWorkflowV2'] as const)(
    '%s reads the network report past its 1,000th record: the 1,001st authorization is voided and the 1,002nd capture reported',
    async (type) => {
      const from = new Date().toISOString();
      const fill = `auth_fill_${randomUUID().replaceAll('-', '')}`;
      // 1,000 authorizations of a captured checkout (reported, never voided) and 1,000 captures of a
      // top-up (check (3)'s), written straight into the network's books: the same rows as 2,000
      // requests would leave, in a fraction of the time.
      const sold = await capturedCheckout();
      const topupKey = randomUUID();
      const topupId = `topup-${merchant.id}-${topupKey}`;
      await prisma.topup.create({ data: { id: topupId, merchantId: merchant.id, customerId: 'cus_recon', idempotencyKey: topupKey, amount: 1000n, currency: 'JPY', status: 'succeeded' } });
      const fillSql = `INSERT INTO card_network.authorizations (id, state, amount, currency, captured_amount, reference, created_at)
        SELECT $1 || lpad(g::text, 4, '0'), $2, 1000, 'JPY', $3, $4, clock_timestamp() FROM generate_series(1, 1000) g`;
      try {
        await pool.query(fillSql, [`${fill}_a`, 'authorized', 0, sold]);
        const late = await orphan();
        await pool.query(fillSql, [`${fill}_c`, 'captured', 1000, topupId]);
        const lost = await unknownCapture();

        const { result } = await withWorker((taskQueue) => reconcileRuns(taskQueue, { since: from, olderThanMs: 0 }, type, 'past-the-1000th-record'));

        expect(result.status).toBe('completed');
        expect(await resourcesOf(result.reconciliationId, 'authorization_not_voided')).toEqual([late.authorizationId]);
        expect(await authorizationState(late.authorizationId)).toBe('voided');
        expect(await resourcesOf(result.reconciliationId, 'network_capture_unknown_reference')).toEqual([lost]);
        expect(result.counts.byKind).toMatchObject({ authorization_of_captured_checkout: 1000, authorization_not_voided: 1, network_capture_unknown_reference: 1 });
      } finally {
        // Nothing refers to them: later runs over the whole database need not read them again.
        await pool.query(`DELETE FROM card_network.authorizations WHERE id LIKE $1 || '%'`, [fill]);
      }
    },
    180_000,
  );
});

describe('reconciliation of payouts whose workflow is gone', () => {
  /** A payout row left `status` with its hold still pending on the wallet, as a workflow that stopped leaves it. */
  async function strandedPayout(id: string, customerId: string, amount: bigint, status: 'pending' | 'processing', accountNumber = '1234567') {
    await prisma.payout.create({
      data: { id, merchantId: merchant.id, customerId, idempotencyKey: randomUUID(), amount, currency: 'JPY', bankCode: '0001', accountNumber, scheduledAt: new Date(), status },
    });
    await createTransfer(prisma, {
      id: `${id}:hold`,
      debitAccountId: ledgerAccount.wallet(merchant.id, customerId, 'JPY'),
      creditAccountId: ledgerAccount.bankClearing('JPY'),
      amount: amount.toString(),
      currency: 'JPY',
      kind: 'pending',
      code: 'payout',
      reference: id,
    });
    return { id, amount, accountNumber };
  }
  const opaqueId = () => `po_${randomUUID().replaceAll('-', '')}`;
  const sendToBank = (p: { id: string; amount: bigint; accountNumber: string }) =>
    bank.transfer({ idempotencyKey: `${p.id}:transfer`, amount: p.amount, currency: 'JPY', bankCode: '0001', accountNumber: p.accountNumber, reference: p.id });

  it('posts the hold of one the bank paid and voids the hold of one the bank never paid, by the bank\'s answer under its key, once; one still running is left alone', async () => {
    const from = new Date().toISOString();
    const customerId = `cus_${randomUUID()}`;
    const wallet = ledgerAccount.wallet(merchant.id, customerId, 'JPY');
    await createTransfer(prisma, { id: `fund-${randomUUID()}`, debitAccountId: ledgerAccount.cardClearing('JPY'), creditAccountId: wallet, amount: '10000', currency: 'JPY', kind: 'posted', code: 'topup' });

    // Paid at the bank, then the workflow stopped before posting (an id of the old format).
    const paid = await strandedPayout(`payout-${merchant.id}-${randomUUID()}`, customerId, 1000n, 'processing');
    const paidAtBank = await sendToBank(paid);
    expect(paidAtBank.status).toBe('paid');
    // Never sent: its workflow closed while it waited (an opaque id).
    const unsent = await strandedPayout(opaqueId(), customerId, 2000n, 'pending');
    // Rejected by the bank (closed account), then the workflow stopped before voiding.
    const rejected = await strandedPayout(opaqueId(), customerId, 3000n, 'processing', '0000000');
    const rejectedAtBank = await sendToBank(rejected);
    expect(rejectedAtBank.status).toBe('rejected');
    // Its workflow is still running: not reconciliation's business.
    const live = await strandedPayout(opaqueId(), customerId, 500n, 'processing');
    expect(await walletBalance(prisma, wallet)).toEqual({ available: 3500n, held: 6500n });

    const idle = `idle-${randomUUID()}`;
    // Stand-ins for the payouts' workflows: any workflow under the payout's id.
    await (await client.workflow.start('reconciliationWorkflow', { workflowId: unsent.id, taskQueue: idle, args: [{}] })).terminate('the payout workflow stopped');
    const running = await client.workflow.start('reconciliationWorkflow', { workflowId: live.id, taskQueue: idle, args: [{}] });
    try {
      const input: ReconciliationInput = { since: from, olderThanMs: 0, pageSize: 2 };
      const [first, second] = await withWorker(async (taskQueue) => [await reconcileRuns(taskQueue, input, 'reconciliationWorkflowV2', 'payout-holds-resolved'), await reconcileRuns(taskQueue, input)] as const);

      expect(first.result.status).toBe('completed');
      const id = first.result.reconciliationId;
      expect(await resourcesOf(id, 'payout_hold_not_resolved')).toEqual([paid.id, unsent.id, rejected.id].sort());
      expect(await resourcesOf(id, 'payout_paid_not_posted')).toEqual([]);
      expect(first.result.counts.byKind).toMatchObject({ payout_hold_not_resolved: 3 });

      // The ledger: paid posted, the others voided, the live one still held.
      const resolution = (holdOf: string) => prisma.ledgerTransfer.findUnique({ where: { pendingId: `${holdOf}:hold` }, select: { id: true, kind: true } });
      expect(await resolution(paid.id)).toEqual({ id: `${paid.id}:post`, kind: 'post_pending' });
      expect(await resolution(unsent.id)).toEqual({ id: `${unsent.id}:void`, kind: 'void_pending' });
      expect(await resolution(rejected.id)).toEqual({ id: `${rejected.id}:void`, kind: 'void_pending' });
      expect(await resolution(live.id)).toBeNull();
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 8500n, held: 500n });

      // The rows, final, each with its event.
      const row = (payoutId: string) =>
        prisma.payout.findUniqueOrThrow({ where: { id: payoutId }, select: { status: true, bankTransferId: true, failureCode: true } });
      expect(await row(paid.id)).toEqual({ status: 'paid', bankTransferId: paidAtBank.id, failureCode: null });
      expect(await row(unsent.id)).toEqual({ status: 'failed', bankTransferId: null, failureCode: 'not_sent' });
      expect(await row(rejected.id)).toEqual({ status: 'failed', bankTransferId: rejectedAtBank.id, failureCode: 'account_closed' });
      expect(await row(live.id)).toMatchObject({ status: 'processing' });
      const events = await prisma.event.findMany({ where: { resourceId: { in: [paid.id, unsent.id, rejected.id, live.id] } }, select: { resourceId: true, type: true } });
      expect(events.map((e) => `${e.resourceId} ${e.type}`).sort()).toEqual([`${paid.id} payout.paid`, `${unsent.id} payout.failed`, `${rejected.id} payout.failed`].sort());

      // The bank: nothing new was sent, nothing was sent for the payout that never went.
      expect((await bank.listTransfers(paid.id)).map((t) => t.id)).toEqual([paidAtBank.id]);
      expect(await bank.listTransfers(unsent.id)).toEqual([]);
      expect((await bank.listTransfers(rejected.id)).map((t) => t.id)).toEqual([rejectedAtBank.id]);

      // A second run finds them resolved: nothing repaired, nothing moved.
      expect(second.result.status).toBe('completed');
      expect(second.result.counts.repaired).toBe(0);
      expect(await walletBalance(prisma, wallet)).toEqual({ available: 8500n, held: 500n });
    } finally {
      await running.terminate('test over');
    }
  });
});

describe('reconciliation of top-ups whose workflow is gone', () => {
  it('gives a top-up left processing the status its books show: succeeded once credited, failed when the card kept nothing', async () => {
    const from = new Date().toISOString();
    const customerId = `cus_${randomUUID()}`;
    const row = (id: string) => prisma.topup.create({ data: { id, merchantId: merchant.id, customerId, idempotencyKey: randomUUID(), amount: 4000n, currency: 'JPY', status: 'processing' } });
    // Credited, then the workflow stopped before it wrote `succeeded`.
    const credited = `tu_${randomUUID().replaceAll('-', '')}`;
    await row(credited);
    await createTransfer(prisma, {
      id: `${credited}:credit`,
      debitAccountId: ledgerAccount.cardClearing('JPY'),
      creditAccountId: ledgerAccount.wallet(merchant.id, customerId, 'JPY'),
      amount: '4000',
      currency: 'JPY',
      kind: 'posted',
      code: 'topup',
      reference: credited,
    });
    // Stopped before the card was charged: nothing at the network.
    const uncharged = `tu_${randomUUID().replaceAll('-', '')}`;
    await row(uncharged);

    const [first, second] = await withWorker(async (taskQueue) => [await reconcile(taskQueue, { since: from, olderThanMs: 0 }), await reconcile(taskQueue, { since: from, olderThanMs: 0 })] as const);
    expect(await resourcesOf(first.reconciliationId, 'topup_status_not_final')).toEqual([credited, uncharged].sort());
    expect(await prisma.topup.findUniqueOrThrow({ where: { id: credited } })).toMatchObject({ status: 'succeeded' });
    expect(await prisma.topup.findUniqueOrThrow({ where: { id: uncharged } })).toMatchObject({ status: 'failed', failureCode: 'not_completed' });
    expect(await walletBalance(prisma, ledgerAccount.wallet(merchant.id, customerId, 'JPY'))).toEqual({ available: 4000n, held: 0n });
    expect((await prisma.event.findMany({ where: { resourceId: { in: [credited, uncharged] } }, select: { resourceId: true, type: true } })).map((e) => `${e.resourceId} ${e.type}`).sort()).toEqual(
      [`${credited} topup.succeeded`, `${uncharged} topup.failed`].sort(),
    );
    expect(second.counts.repaired).toBe(0);
  });
});

describe('reconciliation of checkouts whose workflow is gone before capture', () => {
  it('ends one left requires_capture failed: stock back, authorization voided, its event recorded; once', async () => {
    const from = new Date().toISOString();
    const sku = await product(2);
    const key = randomUUID();
    const id = `co_${randomUUID().replaceAll('-', '')}`;
    await prisma.checkout.create({ data: { id, merchantId: merchant.id, customerId: 'cus_recon', idempotencyKey: key, status: 'requires_capture', amount: 1000n, currency: 'JPY', paymentMethod: 'card', captureMethod: 'manual' } });
    await prisma.$transaction((tx) => holdStock(tx, { checkoutId: id, merchantId: merchant.id, items: [{ sku, quantity: 1 }] }));
    const auth = await cardNetwork.authorize({ idempotencyKey: `${id}:authorize`, amount: 1000n, currency: 'JPY', token: 'tok_visa', reference: id });

    const [first, second] = await withWorker(async (taskQueue) => [await reconcile(taskQueue, { since: from, olderThanMs: 0 }), await reconcile(taskQueue, { since: from, olderThanMs: 0 })] as const);
    expect(await resourcesOf(first.reconciliationId, 'checkout_status_not_final')).toEqual([id]);
    expect(await prisma.checkout.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: 'failed', failureCode: 'not_completed' });
    expect(await prisma.product.findUniqueOrThrow({ where: { merchantId_sku: { merchantId: merchant.id, sku } } })).toMatchObject({ available: 2, reserved: 0, sold: 0 });
    expect(await authorizationState(auth.authorizationId)).toBe('voided');
    expect((await prisma.event.findMany({ where: { resourceId: id }, select: { type: true } })).map((e) => e.type)).toEqual(['checkout.failed']);
    expect(second.counts.repaired).toBe(0);
  });
});

describe("one merchant's reconciliation", () => {
  /** A merchant of its own with its API key, a product, and a checkout that failed with its authorization open and a unit held. */
  async function merchantWithOrphan(prefix: string) {
    const shop = await createMerchant(prisma, prefix);
    const sku = `recon-${randomUUID().slice(0, 8)}`;
    await prisma.product.create({ data: { merchantId: shop.id, sku, name: 'Recon sneaker', priceAmount: 1000n, currency: 'JPY', available: 3 } });
    const key = randomUUID();
    const checkout = await prisma.checkout.create({
      data: { id: `co_${randomUUID().replaceAll('-', '')}`, merchantId: shop.id, customerId: 'cus_recon', idempotencyKey: key, status: 'failed', amount: 1000n, currency: 'JPY', paymentMethod: 'card' },
    });
    await prisma.$transaction((tx) => holdStock(tx, { checkoutId: checkout.id, merchantId: shop.id, items: [{ sku, quantity: 1 }] }));
    const auth = await cardNetwork.authorize({ idempotencyKey: `${checkout.id}:authorize`, amount: 1000n, currency: 'JPY', token: 'tok_visa', reference: checkout.id });
    // And a top-up captured at the network whose wallet credit never happened.
    const topupKey = randomUUID();
    const topup = `tu_${randomUUID().replaceAll('-', '')}`;
    await prisma.topup.create({ data: { id: topup, merchantId: shop.id, customerId: 'cus_recon', idempotencyKey: topupKey, amount: 2000n, currency: 'JPY', status: 'processing' } });
    const topupAuth = await cardNetwork.authorize({ idempotencyKey: `${topup}:authorize`, amount: 2000n, currency: 'JPY', token: 'tok_visa', reference: topup });
    await cardNetwork.capture({ idempotencyKey: `${topup}:capture`, authorizationId: topupAuth.authorizationId });
    const stock = () => prisma.product.findUniqueOrThrow({ where: { merchantId_sku: { merchantId: shop.id, sku } }, select: { available: true, reserved: true } });
    const credited = async () => (await walletBalance(prisma, ledgerAccount.wallet(shop.id, 'cus_recon', 'JPY'))).available;
    return { ...shop, checkoutId: checkout.id, authorizationId: auth.authorizationId, topup, stock, credited };
  }

  it("repairs only the merchant's own records: the other merchant's authorization stays open, its stock held and its top-up uncredited, until the operator's platform-wide run repairs them", async () => {
    const from = new Date().toISOString();
    const [a, b] = [await merchantWithOrphan('ra'), await merchantWithOrphan('rb')];

    await withWorker(async (taskQueue) => {
      const { base, call, close } = await reconciliationsApi(taskQueue);
      try {
        const started = await call(a.key, base, { method: 'POST', body: JSON.stringify({ since: from, olderThanMs: 0 }) });
        expect(started.status).toBe(202);
        const { id } = (await started.json()) as { id: string };
        const handle = client.workflow.getHandle(id);
        const result = (await handle.result()) as ReconciliationResult;
        await recordHistory('merchant-scoped', handle);

        expect(result.status).toBe('completed');
        const items = await prisma.reconciliationItem.findMany({ where: { reconciliationId: id } });
        expect(items.map((i) => [i.kind, i.resourceId, i.merchantId]).sort()).toEqual(
          [
            ['authorization_not_voided', a.authorizationId, a.id],
            ['reservation_not_released', a.checkoutId, a.id],
            ['topup_not_credited', a.topup, a.id],
          ].sort(),
        );
        expect(await prisma.reconciliation.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: 'completed', merchantId: a.id });
        expect(await prisma.reconciliationLease.findUnique({ where: { scope: `merchant:${a.id}` } })).toBeNull();
        // A's records repaired ...
        expect(await authorizationState(a.authorizationId)).toBe('voided');
        expect(await a.stock()).toEqual({ available: 3, reserved: 0 });
        expect(await a.credited()).toBe(2000n);
        // ... and B's exactly as they were.
        expect(await authorizationState(b.authorizationId)).toBe('authorized');
        expect(await b.stock()).toEqual({ available: 2, reserved: 1 });
        expect(await b.credited()).toBe(0n);
        expect(await prisma.topup.findUniqueOrThrow({ where: { id: b.topup } })).toMatchObject({ status: 'processing' });
        expect(await cardNetwork.lookup(`recon:${b.authorizationId}:void`)).toBeNull();

        const platform = await call(OPERATOR_KEY, base, { method: 'POST', body: JSON.stringify({ since: from, olderThanMs: 0 }) });
        expect(platform.status).toBe(202);
        const platformId = ((await platform.json()) as { id: string }).id;
        await client.workflow.getHandle(platformId).result();
        expect(await authorizationState(b.authorizationId)).toBe('voided');
        expect(await b.stock()).toEqual({ available: 3, reserved: 0 });
        expect(await b.credited()).toBe(2000n);
        expect(await resourcesOf(platformId, 'authorization_not_voided')).toEqual([b.authorizationId]);
        // A's were repaired once: nothing of A's needed the platform run.
        expect(await a.credited()).toBe(2000n);
        expect((await cardNetwork.listOperations(a.checkoutId)).filter((op) => op.type === 'void')).toHaveLength(1);
      } finally {
        await close();
      }
    });
  });
});

describe('one reconciliation per scope at a time', () => {
  it('answers a second platform-wide start 409 with the running run, fails a run started by hand meanwhile, and lets the next run take over once the first is gone', async () => {
    const idleQueue = `idle-${randomUUID()}`;
    const idle = await reconciliationsApi(idleQueue);
    let holder: string | undefined;
    try {
      // On a task queue no worker polls: it runs, and holds the platform scope, until terminated.
      const first = await idle.call(OPERATOR_KEY, idle.base, { method: 'POST', body: JSON.stringify({ since, olderThanMs: 0 }) });
      expect(first.status).toBe(202);
      holder = ((await first.json()) as { id: string }).id;
      const second = await idle.call(OPERATOR_KEY, idle.base, { method: 'POST', body: JSON.stringify({}) });
      expect(second.status).toBe(409);
      expect(((await second.json()) as { error: { code: string; reconciliation: { id: string } } }).error).toMatchObject({ code: 'reconciliation_already_running', reconciliation: { id: holder } });

      await withWorker(async (taskQueue) => {
        // As the schedule or the CLI would start one.
        const byHand = await client.workflow.start('reconciliationWorkflowV2', { workflowId: reconciliationId(randomUUID()), taskQueue, args: [{ since, olderThanMs: 0 }] });
        const failure = await failureOf(byHand);
        await recordHistory('scope-already-running-fails', byHand);
        expect(failure.type).toBe(WorkflowFailureType.ReconciliationAlreadyRunning);
        expect(failure.nonRetryable).toBe(true);
        expect(failure.details?.[0]).toEqual({ runningId: holder, scope: 'platform' });
        expect(await prisma.reconciliation.findUnique({ where: { id: byHand.workflowId } })).toBeNull();
        // Closed without a row: failed, not running, to the operator who can see it.
        const shown = (await (await idle.call(OPERATOR_KEY, `${idle.base}/${byHand.workflowId}`)).json()) as { status: string };
        expect(shown.status).toBe('failed');

        // The holder is gone: the next start takes the scope over and runs.
        await client.workflow.getHandle(holder!).terminate('test: a run that is gone');
        const worker = await reconciliationsApi(taskQueue);
        try {
          const next = await worker.call(OPERATOR_KEY, worker.base, { method: 'POST', body: JSON.stringify({ since, olderThanMs: 0 }) });
          expect(next.status).toBe(202);
          const nextId = ((await next.json()) as { id: string }).id;
          expect(((await client.workflow.getHandle(nextId).result()) as ReconciliationResult).status).toBe('completed');
          expect(await prisma.reconciliationLease.findUnique({ where: { scope: 'platform' } })).toBeNull();
        } finally {
          await worker.close();
        }
      });
    } finally {
      await idle.close();
      if (holder) {
        await client.workflow.getHandle(holder).terminate('test over').catch(() => undefined);
        await prisma.reconciliationLease.deleteMany({ where: { reconciliationId: holder } });
      }
    }
  });
  it("fails the schedule's run at once, naming the on-demand platform run that holds the scope", async () => {
    const idle = await reconciliationsApi(`idle-${randomUUID()}`);
    let holder: string | undefined;
    try {
      const first = await idle.call(OPERATOR_KEY, idle.base, { method: 'POST', body: JSON.stringify({ since, olderThanMs: 0 }) });
      expect(first.status).toBe(202);
      holder = ((await first.json()) as { id: string }).id;
      await withWorker(async (taskQueue) => {
        await ensureReconciliationSchedule(client, { taskQueue, every: '1h', olderThanMs: 0 });
        const schedule = client.schedule.getHandle(RECONCILIATION_SCHEDULE_ID);
        try {
          await schedule.trigger();
          // The schedule records the run it started; wait for that record, not for a time.
          let scheduled = '';
          await waitUntil('the scheduled run', async () => {
            const action = (await schedule.describe()).info.recentActions[0]?.action;
            scheduled = action?.type === 'startWorkflow' ? action.workflow.workflowId : '';
            return scheduled !== '';
          }, { timeoutMs: 30_000, intervalMs: 50 });
          expect(scheduled).toMatch(/^reconciliation-scheduled-/);
          const failure = await failureOf(client.workflow.getHandle(scheduled));
          expect(failure.type).toBe(WorkflowFailureType.ReconciliationAlreadyRunning);
          expect(failure.details?.[0]).toEqual({ runningId: holder, scope: 'platform' });
        } finally {
          await schedule.delete();
        }
      });
    } finally {
      await idle.close();
      if (holder) {
        await client.workflow.getHandle(holder).terminate('test over').catch(() => undefined);
        await prisma.reconciliationLease.deleteMany({ where: { reconciliationId: holder } });
      }
    }
  });
});

describe('a reconciliation started by hand with an input it cannot use', () => {
  it.each([
    ['reconciliationWorkflowV2', { olderThanMs: 1e20 }, 'olderThanMs'],
    ['reconciliationWorkflowV2', { olderThanMs: 400 * 86_400_000 }, 'olderThanMs'],
    ['reconciliationWorkflowV2', { since: 'yesterday' }, 'since'],
    ['reconciliationWorkflowV2', { until: 'not a date' }, 'until'],
    ['reconciliationWorkflowV2', { since: '2026-11-29T00:00:00Z', until: '2026-11-01T00:00:00Z' }, 'until'],
    ['reconciliationWorkflowV2', { merchantId: 'not a merchant' }, 'merchantId'],
    ['reconciliationWorkflowV2', null, 'input'],
    ['reconciliationWorkflow', { olderThanMs: 1e20 }, 'olderThanMs'],
    // Any well-formed merchant id, even the seeded merchant's: the first type refuses a merchant scope.
    ['reconciliationWorkflow', { merchantId: 'demo' }, 'merchantId'],
  ] as const)('%s with %j fails at once with InvalidReconciliationInput naming %s, and writes nothing', async (type, input, param) => {
    await withWorker(async (taskQueue) => {
      const handle = await client.workflow.start(type, { workflowId: reconciliationId(randomUUID()), taskQueue, args: [input] });
      const failure = await failureOf(handle);
      if (param === 'olderThanMs' && input?.olderThanMs === 1e20) await recordHistory('invalid-input-fails', handle);
      expect(failure.type).toBe(WorkflowFailureType.InvalidReconciliationInput);
      expect(failure.nonRetryable).toBe(true);
      expect(failure.details?.[0]).toMatchObject({ param });
      expect(failure.message).toContain(param);
      expect(await prisma.reconciliation.findUnique({ where: { id: handle.workflowId } })).toBeNull();
      expect(await prisma.reconciliationLease.findMany({ where: { reconciliationId: handle.workflowId } })).toEqual([]);
    });
  });
});

/** The failure a run ended with: it must have failed (not be left running), with an ApplicationFailure. */
async function failureOf(handle: WorkflowHandle): Promise<ApplicationFailure> {
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  expect((await handle.describe()).status.name).toBe('FAILED');
  return cause as ApplicationFailure;
}
