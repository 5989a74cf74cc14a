// The checkout, start to finish: reserve stock, authorize the card, confirm the order, capture.
//
// Every step that acts on the outside world registers its undo *before* it runs (the step may act
// even when its call fails), and a failure runs the undos in reverse order, shielded from
// cancellation. No lock is held across the card network call: stock is held by a short
// conditional update and released by compensation if the payment does not go through.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  allHandlersFinished,
  log,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import {
  FailureType,
  PaymentStatus,
  stepKey,
  type CheckoutInput,
  type CheckoutSnapshot,
  type CheckoutStatus,
  type Money,
} from '../domain/index.js';
import { cardNetworkCall, databaseWrite } from './activity-profiles.js';
import { reservationUpdate, statusQuery } from './checkout-messages.js';

const db = proxyActivities<Activities>(databaseWrite);
const card = proxyActivities<Activities>(cardNetworkCall);

export async function checkoutWorkflow(input: CheckoutInput): Promise<CheckoutSnapshot> {
  const { checkoutId } = input;
  let status: CheckoutStatus = 'pending';
  let amount: Money = { amount: '0', currency: '' };
  let failure: CheckoutSnapshot['failure'];
  let reservationDecided = false;

  const snapshot = (): CheckoutSnapshot => ({ checkoutId, status, amount, ...(failure ? { failure } : {}) });
  const moveTo = (next: CheckoutStatus) => {
    status = next;
    upsertSearchAttributes([{ key: PaymentStatus, value: next }]);
  };

  setHandler(statusQuery, snapshot);
  setHandler(reservationUpdate, async () => {
    await condition(() => reservationDecided);
    return snapshot();
  });

  const compensations: Array<() => Promise<unknown>> = [];
  try {
    amount = await db.createOrder(input);

    compensations.push(() => db.releaseStock({ checkoutId }));
    const reservation = await db.reserveStock({ checkoutId, merchantId: input.merchantId, items: input.items });
    if (reservation.outcome === 'sold_out') {
      compensations.length = 0; // nothing was held
      moveTo('sold_out');
      reservationDecided = true;
      return await finish(snapshot());
    }
    moveTo('processing');
    reservationDecided = true;

    const authorizeKey = stepKey(checkoutId, 'authorize');
    compensations.push(() => card.voidAuthorization({ idempotencyKey: stepKey(checkoutId, 'void'), authorizeKey }));
    const auth = await card.authorizePayment({
      idempotencyKey: authorizeKey,
      amount: amount.amount,
      currency: amount.currency,
      token: input.payment.token,
      reference: checkoutId,
    });
    if (auth.status === 'declined') {
      await db.recordPaymentAttempt({ attempt: { checkoutId, idempotencyKey: authorizeKey, operation: 'authorize', ...auth } });
      throw ApplicationFailure.create({
        type: FailureType.CardDeclined,
        message: `card declined: ${auth.declineCode ?? 'unknown'}`,
        nonRetryable: true,
        details: [{ declineCode: auth.declineCode }],
      });
    }
    await db.recordPaymentAttempt({
      attempt: { checkoutId, idempotencyKey: authorizeKey, operation: 'authorize', ...auth },
      status: 'authorized',
    });
    moveTo('authorized');

    // Confirming the order turns the hold into a sale; releaseStock (registered above) undoes either.
    await db.commitStock({ checkoutId });

    const captureKey = stepKey(checkoutId, 'capture');
    const capture = await card.capturePayment({ idempotencyKey: captureKey, authorizationId: auth.authorizationId, amount: amount.amount });
    await db.recordPaymentAttempt({
      attempt: { checkoutId, idempotencyKey: captureKey, operation: 'capture', ...capture },
      status: 'captured',
    });
    moveTo('captured');
    log.info('checkout captured', { checkoutId, merchantId: input.merchantId, customerId: input.customerId });
    return await finish(snapshot());
  } catch (err) {
    failure = describeFailure(err);
    log.warn('checkout failed; compensating', { checkoutId, merchantId: input.merchantId, failure });
    await CancellationScope.nonCancellable(async () => {
      for (const undo of compensations.reverse()) await undo();
      await db.setCheckoutStatus({ checkoutId, status: 'failed', failure });
    });
    moveTo('failed');
    reservationDecided = true;
    // A decline is an outcome the merchant expects, not a fault: the run completes with status
    // `failed`. Anything else fails the run too, so ops see it as broken in the Web UI.
    if (isBusinessFailure(err)) return await finish(snapshot());
    await finish(snapshot());
    throw err;
  }
}

/** Lets an in-flight reservation update return before the run closes. */
async function finish(result: CheckoutSnapshot): Promise<CheckoutSnapshot> {
  await condition(allHandlersFinished);
  return result;
}

/** The typed failure behind an error: activity failures carry it as their cause. */
function applicationFailureOf(err: unknown): ApplicationFailure | undefined {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause;
  return undefined;
}

function isBusinessFailure(err: unknown): boolean {
  const type = applicationFailureOf(err)?.type;
  return type !== undefined && type !== null && (Object.values(FailureType) as string[]).includes(type);
}

function describeFailure(err: unknown): { code: string; message: string } {
  const failure = applicationFailureOf(err);
  if (failure) {
    const declineCode = (failure.details?.[0] as { declineCode?: string } | undefined)?.declineCode;
    return { code: declineCode ?? failure.type ?? 'failed', message: failure.message };
  }
  return { code: 'failed', message: err instanceof Error ? err.message : String(err) };
}
