// The checkout, start to finish: reserve stock, authorize the card (with 3-D Secure when the card
// asks for it) or hold the amount on the wallet, wait for a manual capture if the merchant wants
// one, capture, settle after the merchant's delay, and take refunds until the refund window closes.
//
// Until capture, the merchant's cancel reaches whatever step the checkout waits in, and so does a
// cancel from the Web UI; a card call in flight is canceled and resolved by its key before it is
// undone. When the payment cannot go through (declined, canceled, out of time) the undos run newest
// first (saga.ts) and the checkout ends `failed`, `canceled` or `expired` with its stock released
// and nothing left held at the network or on the wallet. After capture, a cancel from the Web UI
// gives back what is left of the payment and returns the stock; the run then shows Canceled.
//
// No lock is held across a card call: stock is held by a short conditional update and released by
// its undo. Every deadline is a workflow timer over durations given as input.
import { CancellationScope, CancelledFailure, isCancellation, log, proxyLocalActivities, sleep } from '@temporalio/workflow';
import type { Activities } from '../../activities/index.js';
import { FailureType, ORDER_NOT_PLACED, checkoutInputProblem, type CheckoutInput, type CheckoutSnapshot } from '../../domain/index.js';
import { localDatabaseWrite } from '../activity-profiles.js';
import { describeFailure, failureType, interruptedByCancel, isBusinessFailure, refuseInput } from '../failures.js';
import { Saga } from '../saga.js';
import { CheckoutState, Stop, type Outcome } from './state.js';
import { CheckoutSteps } from './steps.js';

const localDb = proxyLocalActivities<Activities>(localDatabaseWrite);

export async function checkoutWorkflowV2(input: CheckoutInput): Promise<CheckoutSnapshot> {
  // Before anything: an input the API could not have built (a start by hand) fails the run here,
  // instead of throwing from the middle of the story on every workflow task retry.
  refuseInput(checkoutInputProblem(input));
  const order = new CheckoutState(input, new Saga({ checkoutId: input.checkoutId, merchantId: input.merchantId, customerId: input.customerId }));
  const steps = new CheckoutSteps(order);
  order.listen((refundId, amount) => steps.refund(refundId, amount));

  try {
    const held = await order.beforeCapture.run(async () => {
      if (!(await steps.placeOrder())) return false;
      await steps.authorize();
      await steps.awaitCaptureRequest();
      return true;
    });
    if (!held) return await order.finish(); // sold out: nothing held, nothing charged
    beginCapture(order);
    await steps.capture();
  } catch (err) {
    return await closeWithoutCapture(order, steps, err);
  }

  // Captured. Settlement is a durable timer; refunds keep arriving as updates meanwhile.
  try {
    if (input.timeouts.settlementDelayMs > 0) await sleep(input.timeouts.settlementDelayMs);
    await steps.settle();
    if (input.timeouts.refundWindowMs > 0) await sleep(input.timeouts.refundWindowMs);
  } catch (err) {
    if (!isCancellation(err)) throw err;
    await steps.giveBackTheRest();
    await order.finish();
    throw err;
  }
  order.refundWindowOpen = false;
  return await order.finish();
}

/** The point of no return: from here a merchant's cancel is refused (refund instead). */
function beginCapture(order: CheckoutState): void {
  if (order.cancelRequested) throw new Stop('canceled', 'canceled by the merchant');
  if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('canceled from the Web UI before capture');
  order.captureStarted = true;
}

/**
 * The payment will not be captured: undo every step that ran, newest first, record how the checkout
 * ended, and answer the updates still waiting. A decline, a cancel or a timeout is an outcome the
 * merchant expects and the run completes; anything else fails it too, so ops see it in the Web UI,
 * and an operator's cancel leaves it Canceled.
 */
async function closeWithoutCapture(order: CheckoutState, steps: CheckoutSteps, err: unknown): Promise<CheckoutSnapshot> {
  // A call the cancel interrupted may end as its network's error: the cancel is still why it
  // stopped (workflows/failures.ts). A decline is not that: it is what the network decided.
  const outcome: Outcome = err instanceof Stop ? err.outcome : isCancellation(err) || interruptedByCancel(err, order.cancelRequested) ? 'canceled' : 'failed';
  const byOperator = outcome === 'canceled' && !order.cancelRequested && !(err instanceof Stop);
  order.failure =
    err instanceof Stop
      ? { code: outcome, message: err.message }
      : outcome === 'canceled'
        ? { code: 'canceled', message: byOperator ? 'canceled from the Web UI' : 'canceled by the merchant' }
        : failureType(err) === FailureType.OrderNotPlaced
          ? { code: ORDER_NOT_PLACED, message: 'the order was never placed: nothing was held and nothing charged' }
          : describeFailure(err);
  order.decide(outcome, order.failure.message);
  log.warn('checkout did not complete; compensating', { ...order.logFields, outcome, failure: order.failure });
  await order.saga.compensate();
  await CancellationScope.nonCancellable(async () => {
    // The authorization the capture would have recorded stays visible among the attempts.
    await steps.recordUnrecordedAuthorization();
    await localDb.setCheckoutStatus({ checkoutId: order.id, status: outcome, failure: order.failure });
  });
  order.amountCapturable = 0n;
  order.moveTo(outcome);
  order.closed = true;
  order.reservationDecided = true;
  await order.finish();
  if (byOperator) throw new CancelledFailure(order.failure.message);
  if (outcome === 'failed' && !isBusinessFailure(err)) throw err;
  return order.snapshot();
}
