// The checkout's own rows: the order, its lines, its status and every attempt at the card network.
// The workflow decides; these only record, idempotently, so a retried activity changes nothing.
import { ApplicationFailure } from '@temporalio/activity';
import type { PrismaClient } from '../platform/db.js';
import type { Checkout, Refund } from '../generated/prisma/client.js';
import { FailureType, checkoutEventData, money, type CheckoutInput, type CheckoutStatus, type Money } from '../domain/index.js';
import { createEventRecorder, snapshotOf, type EventDraft } from './events.js';
import { holdStock, SoldOut } from './inventory.js';

export type PlaceOrderResult = { amount: Money; outcome: 'reserved' } | { amount: Money; outcome: 'sold_out'; sku: string };

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
      const bySku = new Map(products.map((p) => [p.sku, p]));
      let total = 0n;
      let currency: string | undefined;
      const lines = input.items.map((item) => {
        const product = bySku.get(item.sku);
        if (!product) {
          throw ApplicationFailure.create({
            type: FailureType.ProductNotFound,
            message: `no product ${item.sku} for merchant ${input.merchantId}`,
            nonRetryable: true,
          });
        }
        if (currency !== undefined && product.currency !== currency) {
          throw ApplicationFailure.create({
            type: FailureType.CurrencyMismatch,
            message: `items are priced in ${currency} and ${product.currency}`,
            nonRetryable: true,
          });
        }
        currency = product.currency;
        total += product.priceAmount * BigInt(item.quantity);
        return { sku: item.sku, quantity: item.quantity, unitAmount: product.priceAmount };
      });
      const amount = money(total, currency!);
      const order = (status: CheckoutStatus) => ({
        id: input.checkoutId,
        merchantId: input.merchantId,
        customerId: input.customerId,
        idempotencyKey: input.idempotencyKey,
        status,
        amount: total,
        currency: currency!,
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
      const row = {
        checkoutId: attempt.checkoutId,
        operation: attempt.operation,
        status: attempt.status,
        amount: BigInt(attempt.amount),
        currency: attempt.currency,
        networkId: attempt.networkId ?? null,
        declineCode: attempt.declineCode ?? null,
      };
      // The attempt's key is unique: a retried activity inserts nothing (ON CONFLICT DO NOTHING).
      const insertAttempt = (db: Pick<PrismaClient, 'paymentAttempt'>) =>
        db.paymentAttempt.createMany({ data: [{ idempotencyKey: attempt.idempotencyKey, ...row }], skipDuplicates: true });
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
