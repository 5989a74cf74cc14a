// The checkout's own rows: the order, its lines, its status and every attempt at the card network.
// The workflow decides; these only record, idempotently, so a retried activity changes nothing.
import { ApplicationFailure } from '@temporalio/activity';
import type { PrismaClient } from '../platform/db.js';
import { Prisma, type Checkout, type Refund } from '../generated/prisma/client.js';
import { FailureType, ORDER_NOT_PLACED, checkoutEventData, money, priceOrder, type CheckoutInput, type CheckoutStatus, type Money, type TransferRequest } from '../domain/index.js';
import { createEventRecorder, snapshotOf, type EventDraft } from './events.js';
import { commitStockIn, holdStock, SoldOut } from './inventory.js';
import { refusalsAsFailures } from './ledger.js';
import { createTransferIn } from '../platform/ledger.js';

export type PlaceOrderResult = { amount: Money; outcome: 'reserved' } | { amount: Money; outcome: 'sold_out'; sku: string };

/** The order the API placed for a checkout, as its workflow finds it; `not_placed`: fenced off, nothing held. */
export type PlacedOrder = { amount: Money; outcome: 'reserved' | 'sold_out' | 'not_placed' };

/** How often awaitPlacedOrder looks for the row while it waits. */
const PLACED_ORDER_POLL_MS = 20;

export interface PaymentAttemptRecord {
  checkoutId: string;
  idempotencyKey: string;
  operation: 'authorize' | 'authenticate' | 'capture' | 'void' | 'refund';
  status: 'succeeded' | 'declined' | 'requires_action';
  amount: string;
  currency: string;
  networkId?: string;
  declineCode?: string;
}

/** The event of a checkout's status change, with the checkout's key fields as they now are. */
function checkoutEvent(c: Checkout, status: string = c.status): EventDraft {
  return { merchantId: c.merchantId, resourceType: 'checkout', resourceId: c.id, status, data: checkoutEventData(c) };
}

function attemptRow(attempt: PaymentAttemptRecord) {
  return {
    idempotencyKey: attempt.idempotencyKey,
    checkoutId: attempt.checkoutId,
    operation: attempt.operation,
    status: attempt.status,
    amount: BigInt(attempt.amount),
    currency: attempt.currency,
    networkId: attempt.networkId ?? null,
    declineCode: attempt.declineCode ?? null,
  };
}

function placedOrderOf(row: { status: string; amount: bigint; currency: string; failureCode: string | null }): PlacedOrder {
  const amount = money(row.amount, row.currency);
  if (row.status === 'sold_out') return { amount, outcome: 'sold_out' };
  if (row.status === 'failed' && row.failureCode === ORDER_NOT_PLACED) return { amount, outcome: 'not_placed' };
  // Anything else means the API placed it and held the stock; later statuses are a replay's.
  return { amount, outcome: 'reserved' };
}

function refundEvent(r: Refund): EventDraft {
  return {
    merchantId: r.merchantId,
    resourceType: 'refund',
    resourceId: r.id,
    status: r.status,
    data: snapshotOf({ id: r.id, checkoutId: r.checkoutId, status: r.status, amount: r.amount, currency: r.currency, failureCode: r.failureCode }),
  };
}

export function createOrderActivities(prisma: PrismaClient) {
  const events = createEventRecorder(prisma);
  return {
    /**
     * Writes the order at today's prices and holds its stock, in one short transaction: the
     * checkout is `processing` with its stock held, or `sold_out` with nothing held. Prices come
     * from the products table, never from the request. Runs as a local activity: the buyer's
     * answer waits on it, and it never calls anything slower than our own database.
     */
    async placeOrder(input: CheckoutInput): Promise<PlaceOrderResult> {
      /** A retry after an earlier attempt committed: report what that attempt decided. */
      const decidedBefore = async (): Promise<PlaceOrderResult | undefined> => {
        const existing = await prisma.checkout.findUnique({ where: { id: input.checkoutId } });
        if (!existing) return undefined;
        const amount = money(existing.amount, existing.currency);
        return existing.status === 'sold_out' ? { amount, outcome: 'sold_out', sku: input.items[0]!.sku } : { amount, outcome: 'reserved' };
      };

      const products = await prisma.product.findMany({
        where: { merchantId: input.merchantId, sku: { in: input.items.map((i) => i.sku) } },
      });
      const pricing = priceOrder(input.items, new Map(products.map((p) => [p.sku, p])));
      if ('problem' in pricing) {
        const { problem } = pricing;
        throw ApplicationFailure.create(
          problem.code === 'product_not_found'
            ? { type: FailureType.ProductNotFound, message: `no product ${problem.sku} for merchant ${input.merchantId}`, nonRetryable: true }
            : { type: FailureType.CurrencyMismatch, message: `items are priced in ${problem.earlierCurrency} and ${problem.currency}`, nonRetryable: true },
        );
      }
      const { lines, total, currency } = pricing;
      const amount = money(total, currency);
      const order = (status: CheckoutStatus) => ({
        id: input.checkoutId,
        merchantId: input.merchantId,
        customerId: input.customerId,
        idempotencyKey: input.idempotencyKey,
        status,
        amount: total,
        currency,
        paymentMethod: input.payment.method,
        captureMethod: input.captureMethod,
        items: { create: lines },
      });

      // The insert of the checkout row is what tells a retry from a first attempt (its id is the
      // primary key): looking first would cost every checkout a query for the rare retry.
      try {
        await events.transaction(async (tx, emit) => {
          await emit(checkoutEvent(await tx.checkout.create({ data: order('processing') })));
          await holdStock(tx, input);
        });
        return { amount, outcome: 'reserved' };
      } catch (err) {
        if (!(err instanceof SoldOut)) {
          const decided = await decidedBefore();
          if (decided) return decided;
          throw err;
        }
        try {
          await events.transaction(async (tx, emit) => emit(checkoutEvent(await tx.checkout.create({ data: order('sold_out') }))));
        } catch (soldOutErr) {
          const decided = await decidedBefore();
          if (decided) return decided;
          throw soldOutErr;
        }
        return { amount, outcome: 'sold_out', sku: err.sku };
      }
    },

    /**
     * The order the API placed for this checkout (its row and stock hold), once its row exists. The
     * API writes it right after it started the workflow, so this looks again every few ms for up to
     * `waitMs`, and answers null if it is still not there.
     */
    async awaitPlacedOrder({ checkoutId, waitMs }: { checkoutId: string; waitMs: number }): Promise<PlacedOrder | null> {
      const deadline = Date.now() + waitMs;
      for (;;) {
        const row = await prisma.checkout.findUnique({ where: { id: checkoutId }, select: { status: true, amount: true, currency: true, failureCode: true } });
        if (row) return placedOrderOf(row);
        if (Date.now() >= deadline) return null;
        await new Promise((r) => setTimeout(r, PLACED_ORDER_POLL_MS));
      }
    },

    /**
     * Takes the checkout's id for good when the API never placed its order (it died between
     * starting the workflow and writing the order, or its write is stuck): the row is written
     * `failed` (`not_placed`) with nothing held, so an API write that arrives later finds the id
     * taken and holds nothing. If the API's row won the race, that is the answer.
     */
    async fenceOrder(input: CheckoutInput): Promise<PlacedOrder> {
      const products = await prisma.product.findMany({ where: { merchantId: input.merchantId, sku: { in: input.items.map((i) => i.sku) } } });
      const bySku = new Map(products.map((p) => [p.sku, p]));
      const total = input.items.reduce((sum, item) => sum + (bySku.get(item.sku)?.priceAmount ?? 0n) * BigInt(item.quantity), 0n);
      // ISO 4217's "no currency" when a product has gone: the row must name one.
      const currency = products[0]?.currency ?? 'XXX';
      try {
        await events.transaction(async (tx, emit) => {
          // With its lines, so a retry of the merchant's request under the key compares equal.
          const row = await tx.checkout.create({
            data: {
              id: input.checkoutId,
              merchantId: input.merchantId,
              customerId: input.customerId,
              idempotencyKey: input.idempotencyKey,
              status: 'failed',
              amount: total,
              currency,
              paymentMethod: input.payment.method,
              captureMethod: input.captureMethod,
              failureCode: ORDER_NOT_PLACED,
              failureMessage: 'the order was never placed: nothing was held and nothing charged',
              items: { create: input.items.map((i) => ({ sku: i.sku, quantity: i.quantity, unitAmount: bySku.get(i.sku)?.priceAmount ?? 0n })) },
            },
          });
          await emit(checkoutEvent(row));
        });
      } catch (err) {
        // The API's row won the race (or an earlier attempt of this one committed): it is the answer.
        if (!(err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002')) throw err;
      }
      const row = await prisma.checkout.findUniqueOrThrow({ where: { id: input.checkoutId }, select: { status: true, amount: true, currency: true, failureCode: true } });
      return placedOrderOf(row);
    },

    /**
     * Records one card-network outcome and, in the same transaction, the status it leads to (and,
     * for a capture, the amount captured).
     */
    async recordPaymentAttempt({
      attempt,
      status,
      amountCaptured,
    }: {
      attempt: PaymentAttemptRecord;
      status?: CheckoutStatus;
      amountCaptured?: string;
    }): Promise<void> {
      // The attempt's key is unique: a retried activity inserts nothing (ON CONFLICT DO NOTHING).
      const insertAttempt = (db: Pick<PrismaClient, 'paymentAttempt'>) => db.paymentAttempt.createMany({ data: [attemptRow(attempt)], skipDuplicates: true });
      if (!status) {
        // One statement needs no transaction of its own.
        await insertAttempt(prisma);
        return;
      }
      await events.transaction(async (tx, emit) => {
        await insertAttempt(tx);
        const checkout = await tx.checkout.update({
          where: { id: attempt.checkoutId },
          data: { status, ...(amountCaptured !== undefined ? { amountCaptured: BigInt(amountCaptured) } : {}) },
        });
        await emit(checkoutEvent(checkout));
      });
    },

    /**
     * A capture that went through, recorded in one commit: the attempts that led to it (the
     * authorization's, when it was not recorded on its own), the stock sold, the merchant's credit
     * and the checkout `captured`. Retried safely: attempts and the credit are keyed, the stock
     * commit skips sold lines.
     */
    async recordCapture({
      attempts,
      amountCaptured,
      credit,
    }: {
      attempts: PaymentAttemptRecord[];
      amountCaptured: string;
      credit?: TransferRequest;
    }): Promise<void> {
      const checkoutId = attempts[0]!.checkoutId;
      await refusalsAsFailures(() =>
        events.transaction(async (tx, emit) => {
          if (credit) await createTransferIn(tx, credit);
          await tx.paymentAttempt.createMany({ data: attempts.map(attemptRow), skipDuplicates: true });
          await commitStockIn(tx, checkoutId);
          const checkout = await tx.checkout.update({ where: { id: checkoutId }, data: { status: 'captured', amountCaptured: BigInt(amountCaptured) } });
          await emit(checkoutEvent(checkout));
        }),
      );
    },

    async markSettled({ checkoutId, status }: { checkoutId: string; status: CheckoutStatus }): Promise<void> {
      await events.transaction(async (tx, emit) => {
        // The first settlement time stands: a retried activity does not move it.
        await tx.checkout.updateMany({ where: { id: checkoutId, settledAt: null }, data: { settledAt: new Date() } });
        const checkout = await tx.checkout.update({ where: { id: checkoutId }, data: { status } });
        // Settlement is an event of its own even when refunds made the status `(partially_)refunded`.
        await emit(checkoutEvent(checkout, 'settled'));
        await emit(checkoutEvent(checkout));
      });
    },

    /** Writes a refund as `pending` before the card network is asked, so it is never invisible. */
    async createRefund(refund: { refundId: string; checkoutId: string; merchantId: string; amount: Money }): Promise<void> {
      await events.transaction(async (tx, emit) => {
        const row = await tx.refund.upsert({
          where: { id: refund.refundId },
          update: {},
          create: {
            id: refund.refundId,
            checkoutId: refund.checkoutId,
            merchantId: refund.merchantId,
            amount: BigInt(refund.amount.amount),
            currency: refund.amount.currency,
            status: 'pending',
          },
        });
        if (row.status === 'pending') await emit(refundEvent(row));
      });
    },

    /** Settles a refund row and the checkout's refunded total and status, in one transaction. */
    async completeRefund({
      refundId,
      checkoutId,
      status,
      failureCode,
      amountRefunded,
      checkoutStatus,
    }: {
      refundId: string;
      checkoutId: string;
      status: 'succeeded' | 'failed';
      failureCode?: string;
      amountRefunded: string;
      checkoutStatus: CheckoutStatus;
    }): Promise<void> {
      await events.transaction(async (tx, emit) => {
        await emit(refundEvent(await tx.refund.update({ where: { id: refundId }, data: { status, failureCode: failureCode ?? null } })));
        // Deduplicated by (checkout, type): a failed refund leaves the status as it was, already recorded.
        await emit(checkoutEvent(await tx.checkout.update({ where: { id: checkoutId }, data: { amountRefunded: BigInt(amountRefunded), status: checkoutStatus } })));
      });
    },

    async setCheckoutStatus({
      checkoutId,
      status,
      failure,
    }: {
      checkoutId: string;
      status: CheckoutStatus;
      failure?: { code: string; message: string };
    }): Promise<void> {
      await events.transaction(async (tx, emit) => {
        // updateMany: a checkout that failed before its row was written has nothing to update.
        const { count } = await tx.checkout.updateMany({
          where: { id: checkoutId },
          data: { status, failureCode: failure?.code ?? null, failureMessage: failure?.message ?? null },
        });
        if (count > 0) await emit(checkoutEvent(await tx.checkout.findUniqueOrThrow({ where: { id: checkoutId } })));
      });
    },
  };
}

export type OrderActivities = ReturnType<typeof createOrderActivities>;
