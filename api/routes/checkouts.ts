// POST /v1/checkouts answers in one round trip whether the buyer's stock is held: it starts the
// checkout workflow and sends it the reservation update in a single update-with-start call. The
// Idempotency-Key becomes the workflow id, so a retried request can only reach the same execution.
//
// `sold_out` is answered with 201 like any other created checkout: the checkout exists, was
// recorded, and "nothing was held, nothing charged" is an outcome the buyer must see, not a fault
// in the request.
import { randomUUID } from 'node:crypto';
import { Router, type Response } from 'express';
import { WithStartWorkflowOperation, type Client } from '@temporalio/client';
import type { PrismaClient } from '../../platform/db.js';
import type { Logger } from '../../platform/logger.js';
import {
  CustomerId,
  FailureType,
  MerchantId,
  PaymentStatus,
  checkoutEventData,
  checkoutId as buildCheckoutId,
  eventType,
  type CheckoutInput,
  type CheckoutSnapshot,
} from '../../domain/index.js';
import { reservationUpdate } from '../../workflows/checkout-messages.js';
import type { checkoutWorkflowV2 } from '../../workflows/checkout/workflow.js';
import { merchantIdOf } from '../auth.js';
import { ApiError, invalidRequest, notFound } from '../errors.js';
import type { Idempotency } from '../idempotency.js';
import type { StockGate } from '../stock-gate.js';
import { requireJson } from '../json.js';
import { checkoutResource, type CheckoutRow } from '../serialize.js';
import { applicationFailureOf, asError, errorName, startError } from '../temporal-errors.js';
import { createCheckoutBody, idempotencyKeyOf, parseBody, paymentMethodOf, type CreateCheckoutBody } from '../validation.js';
import { checkoutTimeoutsOf, loadSettings } from './settings.js';

/** checkouts.amount is a BIGINT: a total above this cannot be stored, so the workflow would fail. */
const MAX_AMOUNT = 9_223_372_036_854_775_807n;

export interface CheckoutsDeps {
  prisma: PrismaClient;
  temporal: Client;
  taskQueue: string;
  logger: Logger;
  /** How long a request waits for the reservation before answering 503 (the retry is safe). */
  reservationTimeoutMs: number;
  /** How long capture, cancel, confirm and refund wait for the workflow before answering 503. */
  updateTimeoutMs: number;
  /** The Idempotency-Key layer (api/idempotency.ts) in front of every money-moving POST. */
  idempotency: Idempotency;
  /** Per-SKU admission of reservations in flight (api/stock-gate.ts). */
  stockGate: StockGate;
  /** How long a request waits at the gate before it starts its workflow anyway. */
  admissionWaitMs: number;
}

/**
 * A checkout of this merchant as GET shows it, with its payment attempts and refunds; null for an
 * unknown id or another merchant's checkout (which must look the same).
 */
export function findCheckout(prisma: PrismaClient, id: string, merchantId: string): Promise<CheckoutRow | null> {
  // Ids are `checkout-<merchant>-<key of at most 200>`: anything much longer cannot exist.
  if (id.length > 300) return Promise.resolve(null);
  return prisma.checkout.findFirst({
    where: { id, merchantId },
    include: {
      items: { orderBy: { sku: 'asc' } },
      paymentAttempts: { orderBy: { createdAt: 'asc' } },
      refunds: { orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] },
    },
  });
}

export function checkoutsRouter(deps: CheckoutsDeps): Router {
  const { prisma, temporal, taskQueue } = deps;
  const router = Router();

  const findByKey = (merchantId: string, idempotencyKey: string): Promise<CheckoutRow | null> =>
    prisma.checkout.findUnique({
      where: { merchantId_idempotencyKey: { merchantId, idempotencyKey } },
      include: { items: { orderBy: { sku: 'asc' } } },
    });

  router.post('/', ...requireJson, deps.idempotency({ required: true, schema: createCheckoutBody }), async (req, res) => {
    const merchantId = merchantIdOf(res);
    const idempotencyKey = idempotencyKeyOf(req.get('Idempotency-Key'), true);
    const body = parseBody(createCheckoutBody, req.body);
    const id = buildCheckoutId(merchantId, idempotencyKey);
    res.locals.checkoutId = id;
    const log = deps.logger.child({ requestId: res.locals.requestId, merchantId, checkoutId: id, customerId: body.customerId });

    // Sold-out fast path: in a flash sale most buyers arrive after the stock is gone. Their answer
    // comes from one read and one insert, with no workflow started and nothing held, so they cannot
    // pile up work in front of the buyers who did get stock. Stock that comes back later (a
    // declined card releases its hold) goes to whoever asks next. While this process already has
    // reservations in flight for all the units left, the request waits for one of them to answer
    // (api/stock-gate.ts) instead of starting a workflow that would find nothing to hold.
    let order = await assertOrderable(prisma, merchantId, body);
    let release: (() => void) | undefined;
    const admitBy = Date.now() + deps.admissionWaitMs;
    while (!order.soldOut && !(release = deps.stockGate.tryClaim(merchantId, body.items, order.available))) {
      const left = admitBy - Date.now();
      // Past the wait the workflow decides, as it would without the gate: a slow answer must not
      // turn into a false sold_out.
      if (left <= 0) break;
      await deps.stockGate.waitForChange(merchantId, body.items, left);
      order = await assertOrderable(prisma, merchantId, body);
    }
    try {
      if (order.soldOut) {
        // The insert also finds a checkout an earlier request with this key wrote (its idempotency
        // record expired, or a concurrent duplicate), and answers with that one.
        const row = await recordSoldOut(prisma, taskQueue, { id, merchantId, idempotencyKey, body, order });
        if (row.created) log.debug('checkout sold out', { status: 'sold_out' });
        else assertSameRequest(row.checkout, body);
        res.status(row.created ? 201 : 200).json(checkoutResource(row.checkout));
        return;
      }
      await startCheckout(res, { id, merchantId, idempotencyKey, body, log });
    } finally {
      release?.();
    }
  });

  /** Starts the checkout's workflow and answers with its reservation, or replays a stored checkout. */
  async function startCheckout(
    res: Response,
    { id, merchantId, idempotencyKey, body, log }: { id: string; merchantId: string; idempotencyKey: string; body: CreateCheckoutBody; log: Logger },
  ): Promise<void> {
    // Retries are normally replayed by the idempotency layer with the first answer. This row is the
    // second line of defence, for a key whose idempotency record expired (or was released by a
    // 5xx): answered from the table without touching Temporal, so it works even when the execution
    // closed long ago.
    const existing = await findByKey(merchantId, idempotencyKey);
    if (existing) {
      assertSameRequest(existing, body);
      log.debug('checkout replayed', { status: existing.status });
      res.status(200).json(checkoutResource(existing));
      return;
    }

    // Resolved now, so later changes to the settings never move a running checkout's deadlines.
    const timeouts = checkoutTimeoutsOf(await loadSettings(prisma, merchantId));

    const input: CheckoutInput = {
      checkoutId: id,
      merchantId,
      customerId: body.customerId,
      idempotencyKey,
      items: body.items.map(({ sku, quantity }) => ({ sku, quantity })),
      payment: paymentMethodOf(body.payment),
      captureMethod: body.captureMethod,
      timeouts,
    };
    const startWorkflowOperation = new WithStartWorkflowOperation<typeof checkoutWorkflowV2>('checkoutWorkflowV2', {
      workflowId: id,
      taskQueue,
      args: [input],
      // A concurrent duplicate attaches to the running execution; once it has closed, the key can
      // never start a second one (that would be a second charge).
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      typedSearchAttributes: [
        { key: MerchantId, value: merchantId },
        { key: CustomerId, value: body.customerId },
        { key: PaymentStatus, value: 'pending' },
      ],
    });
    const signal = AbortSignal.timeout(deps.reservationTimeoutMs);
    let snapshot: CheckoutSnapshot;
    try {
      snapshot = await temporal.withAbortSignal(signal, () =>
        temporal.workflow.executeUpdateWithStart(reservationUpdate, {
          startWorkflowOperation,
          // A fixed update id: duplicates attaching to the same run get the first answer instead of
          // running the handler again.
          updateId: `${id}:reservation`,
        }),
      );
    } catch (err) {
      // Whatever went wrong, a stored checkout is the truth the client needs (e.g. the run had
      // already closed, or the answer was lost after the row was written).
      const row = await findByKey(merchantId, idempotencyKey);
      if (row) {
        assertSameRequest(row, body);
        log.info('checkout found after failed update-with-start', { status: row.status, error: errorName(err) });
        res.status(200).json(checkoutResource(row));
        return;
      }
      throw temporalError(err, signal, log);
    }

    // The workflow writes the row before it answers, and the row is what GET will show later.
    const row = await findByKey(merchantId, idempotencyKey);
    if (!row) {
      const business = businessFailure(snapshot.failure?.code);
      if (business) throw business;
      log.error('reservation answered without a checkouts row', { status: snapshot.status });
      throw new Error('checkout row missing after the reservation update');
    }
    assertSameRequest(row, body);
    log.debug('checkout created', { status: row.status, amount: row.amount.toString(), currency: row.currency });
    res.status(201).json(checkoutResource(row));
  }

  router.get('/:id', async (req, res) => {
    const row = await findCheckout(prisma, req.params.id, merchantIdOf(res));
    if (!row) throw notFound('No such checkout.');
    res.locals.checkoutId = row.id;
    res.json(checkoutResource(row));
  });

  return router;
}

/**
 * Catches what a client can fix before any workflow starts. The workflow checks again when it
 * prices the order (a product can change in between); these are the friendly, named errors.
 */
interface Orderable {
  currency: string;
  total: bigint;
  lines: Array<{ sku: string; quantity: number; unitAmount: bigint }>;
  /** Some line asks for more than is available right now. */
  soldOut: boolean;
  /** Units available per SKU at the time of the read. */
  available: Map<string, number>;
}

async function assertOrderable(prisma: PrismaClient, merchantId: string, body: CreateCheckoutBody): Promise<Orderable> {
  const products = await prisma.product.findMany({
    where: { merchantId, sku: { in: body.items.map((i) => i.sku) } },
    select: { sku: true, priceAmount: true, currency: true, available: true },
  });
  const bySku = new Map(products.map((p) => [p.sku, p]));
  let currency: string | undefined;
  let total = 0n;
  let soldOut = false;
  const lines: Orderable['lines'] = [];
  for (const [i, item] of body.items.entries()) {
    const product = bySku.get(item.sku);
    if (!product) throw invalidRequest('product_not_found', `No such product: items[${i}].sku (${item.sku}).`, `items[${i}].sku`);
    if (currency !== undefined && product.currency !== currency) {
      throw invalidRequest(
        'currency_mismatch',
        `items[${i}].sku (${item.sku}) is priced in ${product.currency}, earlier items in ${currency}; one checkout takes one currency.`,
        `items[${i}].sku`,
      );
    }
    currency = product.currency;
    total += product.priceAmount * BigInt(item.quantity);
    lines.push({ sku: item.sku, quantity: item.quantity, unitAmount: product.priceAmount });
    if (product.available < item.quantity) soldOut = true;
  }
  if (total > MAX_AMOUNT) throw invalidRequest('amount_too_large', 'The checkout total is too large.', 'items');
  // Products are priced above zero (POST /v1/products refuses zero); one created before that rule
  // would make an order no payment method can pay.
  if (total === 0n) throw invalidRequest('amount_too_small', 'The checkout totals zero: a product in items is priced at zero, and zero cannot be paid.', 'items');
  return { currency: currency!, total, lines, soldOut, available: new Map(products.map((p) => [p.sku, p.available])) };
}

/**
 * Writes a `sold_out` checkout for a key, or finds the one an earlier request with the key wrote.
 * One statement (the checkout, its lines and its `checkout.sold_out` event together, as every status
 * change records its event), since this is what most buyers of a flash sale cost: a Prisma nested
 * create is a transaction of four round trips.
 */
async function recordSoldOut(
  prisma: PrismaClient,
  taskQueue: string,
  { id, merchantId, idempotencyKey, body, order }: { id: string; merchantId: string; idempotencyKey: string; body: CreateCheckoutBody; order: Orderable },
): Promise<{ created: boolean; checkout: CheckoutRow }> {
  const skus = order.lines.map((l) => l.sku);
  const quantities = order.lines.map((l) => l.quantity);
  const unitAmounts = order.lines.map((l) => l.unitAmount.toString());
  const event = checkoutEventData({
    id,
    status: 'sold_out',
    customerId: body.customerId,
    amount: order.total,
    currency: order.currency,
    amountCaptured: 0n,
    amountRefunded: 0n,
    paymentMethod: body.payment.method,
    captureMethod: body.captureMethod,
    settledAt: null,
    failureCode: null,
    failureMessage: null,
  });
  const inserted = await prisma.$queryRaw<Array<{ created_at: Date; updated_at: Date }>>`
    WITH c AS (
      INSERT INTO checkouts (id, merchant_id, customer_id, idempotency_key, status, amount, currency, payment_method, capture_method, updated_at)
      VALUES (${id}, ${merchantId}, ${body.customerId}, ${idempotencyKey}, 'sold_out', ${order.total}, ${order.currency},
              ${body.payment.method}, ${body.captureMethod}, now())
      ON CONFLICT DO NOTHING
      RETURNING id, created_at, updated_at
    ), items AS (
      INSERT INTO checkout_items (checkout_id, sku, quantity, unit_amount)
      SELECT c.id, line.sku, line.quantity, line.unit_amount
      FROM c CROSS JOIN unnest(${skus}::text[], ${quantities}::int[], ${unitAmounts}::bigint[]) AS line(sku, quantity, unit_amount)
    ), recorded AS (
      INSERT INTO events (id, merchant_id, type, resource_type, resource_id, data, delivery_queue)
      SELECT ${`evt_${randomUUID()}`}, ${merchantId}, ${eventType('checkout', 'sold_out')}, 'checkout', c.id, ${JSON.stringify(event)}::jsonb, ${taskQueue}
      FROM c
      ON CONFLICT DO NOTHING
    )
    SELECT created_at, updated_at FROM c`;
  const written = inserted[0];
  if (written) {
    const checkout: CheckoutRow = {
      id,
      merchantId,
      customerId: body.customerId,
      idempotencyKey,
      status: 'sold_out',
      amount: order.total,
      currency: order.currency,
      paymentMethod: body.payment.method,
      captureMethod: body.captureMethod,
      amountCaptured: 0n,
      amountRefunded: 0n,
      settledAt: null,
      failureCode: null,
      failureMessage: null,
      createdAt: written.created_at,
      updatedAt: written.updated_at,
      items: order.lines.map((l) => ({ checkoutId: id, sku: l.sku, quantity: l.quantity, unitAmount: l.unitAmount })).sort((a, b) => (a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0)),
    };
    return { created: true, checkout };
  }
  const existing = await prisma.checkout.findUnique({
    where: { merchantId_idempotencyKey: { merchantId, idempotencyKey } },
    include: { items: { orderBy: { sku: 'asc' } } },
  });
  // ON CONFLICT also skips a clash on the id alone, which only this merchant's key can produce.
  if (!existing) throw new Error(`sold-out checkout ${id} was neither written nor found`);
  return { created: false, checkout: existing };
}

/**
 * Stripe's rule: a key replays its first request and rejects reuse with different parameters, so a
 * client bug cannot silently get someone else's order. The card token is not stored, so it cannot
 * be compared.
 */
function assertSameRequest(row: CheckoutRow, body: CreateCheckoutBody): void {
  const stored = new Map(row.items.map((i) => [i.sku, i.quantity]));
  const same =
    row.customerId === body.customerId &&
    row.paymentMethod === body.payment.method &&
    row.captureMethod === body.captureMethod &&
    stored.size === body.items.length &&
    body.items.every((i) => stored.get(i.sku) === i.quantity);
  if (!same) {
    // 422, as the idempotency design (issue 5) specifies: the request is well-formed but cannot
    // be processed under this key.
    throw new ApiError(
      422,
      'invalid_request_error',
      'idempotency_key_reused',
      'This Idempotency-Key was already used with different parameters. Use a new key for a new checkout.',
      'Idempotency-Key',
    );
  }
}

function businessFailure(type: string | null | undefined): ApiError | undefined {
  if (type === FailureType.ProductNotFound) {
    return invalidRequest('product_not_found', 'A product in items does not exist (any more).', 'items');
  }
  if (type === FailureType.CurrencyMismatch) {
    return invalidRequest('currency_mismatch', 'The items are priced in more than one currency.', 'items');
  }
  return undefined;
}

/** Maps a failed update-with-start for which no checkout row exists. */
function temporalError(err: unknown, signal: AbortSignal, log: Logger): Error {
  return (
    startError(err, { signal, log, resource: 'checkout', retrySafety: 'it will not be charged twice' }) ??
    businessFailure(applicationFailureOf(err)?.type) ??
    asError(err)
  );
}
