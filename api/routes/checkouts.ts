// POST /v1/checkouts answers the buyer as soon as the stock question is settled, without waiting
// for a worker: it starts the checkout's workflow (a plain start, one write at the Temporal server),
// then places the order itself, the checkout row and its stock hold in one short transaction
// (api/checkout-store.ts), and answers `processing` (the stock is held for you) or `sold_out`
// (nothing held, nothing charged). The workflow, started first, owns the hold's fate: it adopts the
// order by the checkout's id and, if the API died before writing it, fences the id off so nothing
// can be held under it later (workflows/checkout/steps.ts). The Idempotency-Key becomes the
// workflow id, so a retried request can only reach the same execution.
//
// In a flash sale most buyers arrive after the stock is gone. A SKU this process has seen sold out
// is answered with one insert and no workflow, until units come back (api/stock-notifications.ts);
// while this process already has placements in flight for all the units left, a request waits for
// one of them (api/stock-gate.ts) instead of starting a workflow that would find nothing to hold.
//
// `sold_out` is answered with 201 like any other created checkout: the checkout exists, was
// recorded, and "nothing was held, nothing charged" is an outcome the buyer must see, not a fault
// in the request.
import { Router, type Response } from 'express';
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import type { PrismaClient } from '../../platform/db.js';
import type { CustomerSearch } from '../../platform/customer-search.js';
import type { Logger } from '../../platform/logger.js';
import { checkoutId as buildCheckoutId, priceOrder, type CheckoutInput } from '../../domain/index.js';
import { merchantIdOf } from '../auth.js';
import type { CheckoutStore, NewCheckout, Placement } from '../checkout-store.js';
import { invalidRequest, notFound } from '../errors.js';
import { keyReused, type Idempotency } from '../idempotency.js';
import type { StockGate } from '../stock-gate.js';
import { requireJson } from '../json.js';
import { checkoutResource, type CheckoutRow } from '../serialize.js';
import { asError, startError } from '../temporal-errors.js';
import { createCheckoutBody, idempotencyKeyOf, parseBody, paymentMethodOf, type CreateCheckoutBody } from '../validation.js';
import { checkoutTimeoutsOf, loadSettings } from './settings.js';
import { flowStartOptions } from './start-flow.js';

/** checkouts.amount is a BIGINT: a total above this cannot be stored. */
const MAX_AMOUNT = 9_223_372_036_854_775_807n;

export interface CheckoutsDeps {
  prisma: PrismaClient;
  temporal: Client;
  taskQueue: string;
  logger: Logger;
  /** The CustomerId search attribute: a keyed pseudonym (platform/customer-search.ts). */
  customerSearch: CustomerSearch;
  /** How long a request waits for its workflow's start before answering 503 (the retry is safe). */
  reservationTimeoutMs: number;
  /** How long capture, cancel, confirm and refund wait for the workflow before answering 503. */
  updateTimeoutMs: number;
  /** The Idempotency-Key layer (api/idempotency.ts) in front of every money-moving POST. */
  idempotency: Idempotency;
  /** Per-SKU admission of placements in flight, and what this process saw sold out (api/stock-gate.ts). */
  stockGate: StockGate;
  /** How long a request waits at the gate before it goes ahead anyway. */
  admissionWaitMs: number;
  /** The checkout's creating statements. */
  store: CheckoutStore;
}

/**
 * A checkout of this merchant as GET shows it, with its payment attempts and refunds; null for an
 * unknown id or another merchant's checkout (which must look the same).
 */
export function findCheckout(prisma: PrismaClient, id: string, merchantId: string): Promise<CheckoutRow | null> {
  // Ids are `co_` and 32 hex characters, or `checkout-<merchant>-<key>` from before: anything much longer cannot exist.
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
  const { prisma, temporal, taskQueue, store, stockGate } = deps;
  const router = Router();

  router.post('/', ...requireJson, deps.idempotency({ required: true, schema: createCheckoutBody }), async (req, res) => {
    const merchantId = merchantIdOf(res);
    const idempotencyKey = idempotencyKeyOf(req.get('Idempotency-Key'), true);
    const body = parseBody(createCheckoutBody, req.body);
    const id = buildCheckoutId(merchantId, idempotencyKey);
    res.locals.checkoutId = id;
    const log = deps.logger.child({ requestId: res.locals.requestId, merchantId, checkoutId: id, customerId: body.customerId });
    const checkout = await priced(store, { id, merchantId, idempotencyKey, body, deliveryQueue: taskQueue });

    const knownShort = body.items.find((item) => stockGate.knownSoldOut(merchantId, [item]));
    if (knownShort) {
      answer(res, await store.recordSoldOut(checkout, knownShort.sku), body, log);
      return;
    }

    // Wait while this process's placements in flight already claim the units left; past the wait
    // the placement decides, as it would without the gate: a slow answer must not become a false
    // sold_out.
    const skus = body.items.map((i) => i.sku);
    let available = await store.available(merchantId, skus);
    let release: (() => void) | undefined;
    const admitBy = Date.now() + deps.admissionWaitMs;
    while (!shortLine(body, available) && !(release = stockGate.tryClaim(merchantId, body.items, available))) {
      const left = admitBy - Date.now();
      if (left <= 0) break;
      await stockGate.waitForChange(merchantId, body.items, left);
      available = await store.available(merchantId, skus);
    }
    try {
      const short = shortLine(body, available);
      if (short) {
        stockGate.markSoldOut(merchantId, short.sku, short.quantity);
        answer(res, await store.recordSoldOut(checkout, short.sku), body, log);
        return;
      }
      // A retry whose idempotency record expired is answered from its checkout, without Temporal.
      const earlier = await store.findByKey(merchantId, idempotencyKey);
      if (earlier) {
        answer(res, { outcome: 'exists', row: earlier }, body, log);
        return;
      }
      const replay = await startWorkflow({ id, merchantId, idempotencyKey, body, log });
      if (replay) {
        answer(res, { outcome: 'exists', row: replay }, body, log);
        return;
      }
      const placed = await store.place(checkout);
      if (placed.outcome === 'sold_out') {
        const line = body.items.find((i) => i.sku === placed.sku);
        stockGate.markSoldOut(merchantId, placed.sku, line?.quantity ?? 1);
      }
      answer(res, placed, body, log);
    } finally {
      release?.();
    }
  });

  /**
   * Starts the checkout's workflow: one write at the server, no worker involved. A concurrent or
   * retried request attaches to the running execution; once it has closed, the key can never start
   * a second one (that would be a second charge), and the checkout it left is the answer.
   */
  async function startWorkflow({
    id,
    merchantId,
    idempotencyKey,
    body,
    log,
  }: {
    id: string;
    merchantId: string;
    idempotencyKey: string;
    body: CreateCheckoutBody;
    log: Logger;
  }): Promise<CheckoutRow | undefined> {
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
      placedBy: 'api',
    };
    const signal = AbortSignal.timeout(deps.reservationTimeoutMs);
    try {
      await temporal.withAbortSignal(signal, () =>
        temporal.workflow.start(
          'checkoutWorkflowV2',
          flowStartOptions({ id, taskQueue, input, merchantId, customerId: body.customerId, status: 'processing', customerSearch: deps.customerSearch }),
        ),
      );
      return undefined;
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        const row = await store.findByKey(merchantId, idempotencyKey);
        if (row) return row;
      }
      throw startError(err, { signal, log, resource: 'checkout', retrySafety: 'it will not be charged twice' }) ?? asError(err);
    }
  }

  router.get('/:id', async (req, res) => {
    const row = await findCheckout(prisma, req.params.id, merchantIdOf(res));
    if (!row) throw notFound('No such checkout.');
    res.locals.checkoutId = row.id;
    res.json(checkoutResource(row));
  });

  return router;
}

/** 201 for a checkout this request wrote; an existing one (an earlier request with the key) as it is now. */
function answer(res: Response, placed: Placement, body: CreateCheckoutBody, log: Logger): void {
  if (placed.outcome === 'exists') {
    assertSameRequest(placed.row, body);
    log.debug('checkout replayed', { status: placed.row.status });
    res.status(200).json(checkoutResource(placed.row));
    return;
  }
  log.debug('checkout created', { status: placed.row.status, amount: placed.row.amount.toString(), currency: placed.row.currency });
  res.status(201).json(checkoutResource(placed.row));
}

/** The first line asking for more than is available right now, if any. */
function shortLine(body: CreateCheckoutBody, available: ReadonlyMap<string, number>): { sku: string; quantity: number } | undefined {
  return body.items.find((item) => (available.get(item.sku) ?? 0) < item.quantity);
}

/**
 * Prices the order at today's prices and catches what a client can fix before anything starts:
 * unknown products, mixed currencies, a total too large to store or of zero.
 */
async function priced(
  store: CheckoutStore,
  { id, merchantId, idempotencyKey, body, deliveryQueue }: { id: string; merchantId: string; idempotencyKey: string; body: CreateCheckoutBody; deliveryQueue: string },
): Promise<NewCheckout> {
  const products = await store.products(
    merchantId,
    body.items.map((i) => i.sku),
  );
  const pricing = priceOrder(body.items, products);
  if ('problem' in pricing) {
    const { problem } = pricing;
    const param = `items[${problem.index}].sku`;
    if (problem.code === 'product_not_found') throw invalidRequest('product_not_found', `No such product: ${param} (${problem.sku}).`, param);
    throw invalidRequest(
      'currency_mismatch',
      `${param} (${problem.sku}) is priced in ${problem.currency}, earlier items in ${problem.earlierCurrency}; one checkout takes one currency.`,
      param,
    );
  }
  const { lines, total, currency } = pricing;
  if (total > MAX_AMOUNT) throw invalidRequest('amount_too_large', 'The checkout total is too large.', 'items');
  // Products are priced above zero (POST /v1/products refuses zero); one created before that rule
  // would make an order no payment method can pay.
  if (total === 0n) throw invalidRequest('amount_too_small', 'The checkout totals zero: a product in items is priced at zero, and zero cannot be paid.', 'items');
  return {
    id,
    merchantId,
    customerId: body.customerId,
    idempotencyKey,
    paymentMethod: body.payment.method,
    captureMethod: body.captureMethod,
    lines,
    total,
    currency,
    deliveryQueue,
  };
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
    // The request is well-formed but cannot be processed under this key.
    throw keyReused('another checkout with different parameters', 'checkout');
  }
}
