// FROZEN. The workflow type `checkoutWorkflow` as it ran until checkoutWorkflowV2 replaced it. Runs
// started before then keep replaying against this file until they drain, and test/replay.test.ts
// replays their recorded histories: change nothing here that changes the commands it issues,
// except behind `patched()` (one fix for money in flight: the settlement posting).
// New runs start checkoutWorkflowV2 (workflows/checkout/).
//
// The checkout, start to finish: reserve stock, authorize the card (with 3-D Secure when the card
// asks for it), wait for a manual capture if the merchant wants one, confirm the order, capture,
// settle after the merchant's delay, and take refunds until the refund window closes.
//
// Every step that acts on the outside world registers its undo *before* it runs (the step may act
// even when its call fails). When the payment cannot go through (declined, canceled, or out of
// time), the undos run in reverse order, shielded from cancellation, until they succeed. No lock
// is held across the card call: stock is held by a short conditional update and released by the
// undo. Every deadline is a workflow timer over durations given as input; nothing is left to TTLs
// or batch jobs.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  TimeoutFailure,
  allHandlersFinished,
  condition,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { Activities } from '../../activities/index.js';
import type { CardOutcome } from '../../activities/card-network.js';
import {
  CAPTURED_STATUSES,
  CLOSED_BEFORE_CAPTURE,
  FailureType,
  PaymentStatus,
  capturedStatus,
  isAmountString,
  ledgerAccount,
  money,
  stepKey,
  type CheckoutInput,
  type CheckoutSnapshot,
  type CheckoutStatus,
  type Money,
  type RefundSnapshot,
} from '../../domain/index.js';
import { cardNetworkCall, compensation, databaseWrite, localDatabaseWrite } from './activity-profiles-v1.js';
import { describeFailure, failureType, isBusinessFailure } from '../failures.js';
import { Saga } from './saga-v1.js';
import { cancelUpdate, captureUpdate, confirmUpdate, refundUpdate, reservationUpdate, statusQuery } from '../checkout-messages.js';

const db = proxyActivities<Activities>(databaseWrite);
const localDb = proxyLocalActivities<Activities>(localDatabaseWrite);
const card = proxyActivities<Activities>(cardNetworkCall);
const undo = proxyActivities<Activities>(compensation);

/** Patch ids (`patched()`): each marks a change of the commands a checkout issues. */
const PATCH_LOCAL_DATABASE_STEPS = 'local-database-steps';
const PATCH_SETTLEMENT_AS_ACTIVITY = 'settlement-as-activity';

/** The payment stopped before capture for a reason that is not a failure of anything. */
class Stop extends Error {
  constructor(
    readonly outcome: 'canceled' | 'expired',
    message: string,
  ) {
    super(message);
  }
}

export async function checkoutWorkflow(input: CheckoutInput): Promise<CheckoutSnapshot> {
  const { checkoutId, merchantId, timeouts } = input;
  const logFields = { checkoutId, merchantId, customerId: input.customerId };
  // The main flow's short writes to our own database (payment attempts, stock, ledger postings,
  // status) run as local activities: no activity task goes through the server, so a card checkout
  // costs three workflow tasks and two activity tasks instead of eight activity tasks. Runs that
  // began before this change (their history has no marker) replay with regular activities.
  const write = patched(PATCH_LOCAL_DATABASE_STEPS) ? localDb : db;

  let status: CheckoutStatus = 'pending';
  let amount: Money = { amount: '0', currency: '' };
  let authorizationId: string | undefined;
  let amountCapturable = 0n;
  let amountCaptured = 0n;
  let amountRefunded = 0n;
  let refundsInFlight = 0n;
  let settled = false;
  let refundWindowOpen = true;
  let failure: CheckoutSnapshot['failure'];
  const refunds = new Map<string, RefundSnapshot>();

  // What the merchant and the customer have asked for, set by the update handlers below.
  let reservationDecided = false;
  let cancelRequested = false;
  let captureRequest: { amount: bigint } | undefined;
  let actionResult: 'succeeded' | 'failed' | undefined;
  // The row that merchants and customers read is written by an activity *before* the workflow
  // moves its own status, so an update sent by someone who just read `requires_action` or
  // `requires_capture` can arrive while the workflow still says `processing`. Validators therefore
  // check what the workflow knows (the card wants 3-D Secure; the authorization is capturable;
  // money was captured), not the status name, and handlers wait for a settled outcome.
  let awaitingAction = false;
  let actionSettled = false;

  const snapshot = (): CheckoutSnapshot => ({
    checkoutId,
    status,
    amount,
    amountCapturable: amountCapturable.toString(),
    amountCaptured: amountCaptured.toString(),
    amountRefunded: amountRefunded.toString(),
    refunds: [...refunds.values()],
    ...(failure ? { failure } : {}),
    ...(saga.stalled ? { stalledCompensation: saga.stalled } : {}),
  });
  const moveTo = (next: CheckoutStatus) => {
    status = next;
    upsertSearchAttributes([{ key: PaymentStatus, value: next }]);
  };
  const refundable = () => amountCaptured - amountRefunded - refundsInFlight;

  // Writes of the checkout row after capture come from the main flow and from refund handlers at
  // once; chaining them keeps the row's last write the workflow's latest state.
  let rowWrites: Promise<unknown> = Promise.resolve();
  const serially = <T>(write: () => Promise<T>): Promise<T> => {
    const next = rowWrites.then(write);
    rowWrites = next.catch(() => undefined);
    return next;
  };

  const saga = new Saga(logFields);
  setHandler(statusQuery, snapshot);

  setHandler(reservationUpdate, async () => {
    await condition(() => reservationDecided);
    return snapshot();
  });

  setHandler(
    cancelUpdate,
    async () => {
      cancelRequested = true;
      await condition(() => CLOSED_BEFORE_CAPTURE.includes(status) || CAPTURED_STATUSES.includes(status));
      return snapshot();
    },
    {
      validator: () => {
        if (CAPTURED_STATUSES.includes(status)) throw invalidState(`checkout is ${status}; refund it instead of canceling`);
        if (CLOSED_BEFORE_CAPTURE.includes(status)) throw invalidState(`checkout is already ${status}`);
      },
    },
  );

  setHandler(
    captureUpdate,
    async ({ amount: requested }) => {
      captureRequest = { amount: requested === undefined ? amountCapturable : BigInt(requested) };
      await condition(() => CAPTURED_STATUSES.includes(status) || CLOSED_BEFORE_CAPTURE.includes(status));
      return snapshot();
    },
    {
      validator: ({ amount: requested }) => {
        if (input.captureMethod !== 'manual') throw invalidState('checkout captures automatically');
        const capturable = amountCapturable > 0n && !CAPTURED_STATUSES.includes(status) && !CLOSED_BEFORE_CAPTURE.includes(status);
        if (!capturable || captureRequest || cancelRequested) throw invalidState(`checkout is ${status}, not requires_capture`);
        if (requested !== undefined) checkAmount(requested, amountCapturable, 'capture');
      },
    },
  );

  setHandler(
    confirmUpdate,
    async ({ result }) => {
      actionResult = result;
      await condition(() => actionSettled);
      return snapshot();
    },
    {
      validator: ({ result }) => {
        if (!awaitingAction || actionSettled || actionResult || cancelRequested) throw invalidState(`checkout is ${status}, not requires_action`);
        if (result !== 'succeeded' && result !== 'failed') throw invalidState(`unknown 3-D Secure result ${String(result)}`);
      },
    },
  );

  setHandler(
    refundUpdate,
    async ({ refundId, amount: requested }) => {
      const seen = refunds.get(refundId);
      if (seen) {
        await condition(() => seen.status !== 'pending');
        return seen;
      }
      // Checked again here: another refund may have started since this one was validated.
      const value = requested === undefined ? refundable() : BigInt(requested);
      if (value <= 0n || value > refundable()) throw invalidAmount(`refund of ${value} exceeds the refundable ${refundable()}`);
      refundsInFlight += value;
      const refund: RefundSnapshot = { refundId, amount: money(value, amount.currency), status: 'pending' };
      refunds.set(refundId, refund);
      // Before settlement the money comes out of the merchant's pending balance, after it out of
      // the available one; it goes back where it came from (the card network or the wallet).
      const fromAccount = settled ? ledgerAccount.merchantAvailable(merchantId, amount.currency) : ledgerAccount.merchantPending(merchantId, amount.currency);
      try {
        await db.createRefund({ refundId, checkoutId, merchantId, amount: refund.amount });
        if (input.payment.method === 'card') {
          await card.refundPayment({ idempotencyKey: stepKey(checkoutId, 'refund', refundId), authorizationId: authorizationId!, amount: refund.amount.amount });
        }
        await db.createTransfer({
          id: `${checkoutId}:ledger-refund:${refundId}`,
          debitAccountId: fromAccount,
          creditAccountId: input.payment.method === 'card' ? ledgerAccount.cardClearing(amount.currency) : walletAccount(),
          amount: refund.amount.amount,
          currency: amount.currency,
          kind: 'posted',
          code: 'checkout_refund',
          reference: checkoutId,
        });
        amountRefunded += value;
        refund.status = 'succeeded';
      } catch (err) {
        refund.status = 'failed';
        refund.failureCode = describeFailure(err).code;
        log.warn('refund failed', { ...logFields, refundId, failure: refund.failureCode });
      } finally {
        refundsInFlight -= value;
      }
      moveTo(capturedStatus(amountCaptured, amountRefunded, settled));
      await serially(() =>
        db.completeRefund({
          refundId,
          checkoutId,
          status: refund.status as 'succeeded' | 'failed',
          ...(refund.failureCode ? { failureCode: refund.failureCode } : {}),
          amountRefunded: amountRefunded.toString(),
          checkoutStatus: capturedStatus(amountCaptured, amountRefunded, settled),
        }),
      );
      return refund;
    },
    {
      validator: ({ refundId, amount: requested }) => {
        if (refunds.has(refundId)) return; // a retried request joins the first
        if (amountCaptured === 0n) throw invalidState(`checkout is ${status}; only a captured checkout can be refunded`);
        if (!refundWindowOpen) throw invalidState('the refund window of this checkout has closed');
        checkAmount(requested ?? refundable().toString(), refundable(), 'refund');
      },
    },
  );

  const walletAccount = () => ledgerAccount.wallet(merchantId, input.customerId, amount.currency);
  const walletHoldId = `${checkoutId}:wallet-hold`;
  const walletVoidId = `${checkoutId}:wallet-void`;
  const walletCaptureId = `${checkoutId}:wallet-capture`;
  /** The wallet's answer to an authorization: held, or declined for want of funds. */
  const holdOnWallet = async (): Promise<CardOutcome> => {
    const outcome = { networkId: walletHoldId, authorizationId: walletHoldId, amount: amount.amount, currency: amount.currency };
    try {
      await write.createTransfer({
        id: walletHoldId,
        debitAccountId: walletAccount(),
        creditAccountId: ledgerAccount.merchantPending(merchantId, amount.currency),
        amount: amount.amount,
        currency: amount.currency,
        kind: 'pending',
        code: 'checkout_wallet_payment',
        reference: checkoutId,
      });
      return { status: 'succeeded', ...outcome };
    } catch (err) {
      if (failureType(err) !== FailureType.InsufficientFunds) throw err;
      return { status: 'declined', declineCode: 'insufficient_funds', ...outcome };
    }
  };

  try {
    saga.add('release stock', () => undo.releaseStock({ checkoutId }));
    const placed = await localDb.placeOrder(input);
    amount = placed.amount;
    if (placed.outcome === 'sold_out') {
      saga.clear(); // nothing was held
      moveTo('sold_out');
      reservationDecided = true;
      return await finish(snapshot());
    }
    // The hold lasts until the payment is authorized, and no longer than the merchant allows.
    const holdDeadline = Date.now() + timeouts.reservationTimeoutMs;
    moveTo('processing');
    reservationDecided = true;

    const authorizeKey = stepKey(checkoutId, 'authorize');
    let auth: CardOutcome;
    const recordAuthorize = (outcome: CardOutcome, next?: CheckoutStatus) =>
      write.recordPaymentAttempt({ attempt: { checkoutId, idempotencyKey: authorizeKey, operation: 'authorize', ...outcome }, ...(next ? { status: next } : {}) });
    if (input.payment.method === 'wallet') {
      // A wallet payment is a two-phase ledger transfer: held now, posted at capture.
      saga.add('release wallet hold', () => undo.releaseHold({ id: walletVoidId, pendingId: walletHoldId }));
      auth = await holdOnWallet();
      await recordAuthorize(auth);
    } else {
      const token = input.payment.token;
      saga.add('void authorization', () => undo.voidAuthorization({ idempotencyKey: stepKey(checkoutId, 'void'), authorizeKey }));
      const authorizeWithinHold = proxyActivities<Activities>({
        ...cardNetworkCall,
        scheduleToCloseTimeout: Math.max(holdDeadline - Date.now(), 1),
      }).authorizePayment;
      try {
        auth = await authorizeWithinHold({ idempotencyKey: authorizeKey, amount: amount.amount, currency: amount.currency, token, reference: checkoutId });
      } catch (err) {
        if (isTimeout(err)) throw new Stop('expired', 'the card was not authorized before the stock hold expired');
        throw err;
      }
      authorizationId = auth.authorizationId;
      if (cancelRequested) throw new Stop('canceled', 'canceled by the merchant');

      if (auth.status === 'requires_action') {
        awaitingAction = true;
        await recordAuthorize(auth, 'requires_action');
        moveTo('requires_action');
        // Whichever comes first: the customer's time for the challenge, or the stock hold's.
        const holdLeft = holdDeadline - Date.now();
        const waitMs = Math.min(timeouts.actionTimeoutMs, holdLeft);
        const answered = waitMs > 0 && (await condition(() => actionResult !== undefined || cancelRequested, waitMs));
        if (cancelRequested) throw new Stop('canceled', 'canceled by the merchant');
        if (!answered) {
          throw new Stop(
            'expired',
            holdLeft < timeouts.actionTimeoutMs ? 'the stock hold expired before 3-D Secure was completed' : 'the customer did not complete 3-D Secure in time',
          );
        }
        const authenticateKey = stepKey(checkoutId, 'authenticate');
        auth = await card.authenticatePayment({ idempotencyKey: authenticateKey, authorizationId, result: actionResult! });
        await write.recordPaymentAttempt({ attempt: { checkoutId, idempotencyKey: authenticateKey, operation: 'authenticate', ...auth }, status: 'processing' });
        actionSettled = true;
        moveTo('processing');
      } else {
        await recordAuthorize(auth);
      }
    }
    if (auth.status === 'declined') {
      throw ApplicationFailure.create({
        type: FailureType.CardDeclined,
        message: `card declined: ${auth.declineCode ?? 'unknown'}`,
        nonRetryable: true,
        details: [{ declineCode: auth.declineCode }],
      });
    }
    amountCapturable = BigInt(amount.amount);

    if (input.captureMethod === 'manual') {
      await write.setCheckoutStatus({ checkoutId, status: 'requires_capture' });
      moveTo('requires_capture');
      const decided = await condition(() => captureRequest !== undefined || cancelRequested, timeouts.authorizationTtlMs);
      if (cancelRequested) throw new Stop('canceled', 'canceled by the merchant');
      if (!decided) throw new Stop('expired', 'the authorization expired before it was captured');
    }
    if (cancelRequested) throw new Stop('canceled', 'canceled by the merchant');

    // Confirming the order turns the hold into a sale; 'release stock' (registered above) undoes either.
    await write.commitStock({ checkoutId });
    const captureAmount = captureRequest?.amount ?? amountCapturable;
    const captureKey = stepKey(checkoutId, 'capture');
    let capture: CardOutcome;
    if (input.payment.method === 'wallet') {
      saga.add('give back wallet payment', () =>
        undo.reversePostedTransfer({ id: `${checkoutId}:wallet-reversal`, transferId: walletCaptureId, code: 'checkout_refund' }),
      );
      await write.postPendingTransfer({ id: walletCaptureId, pendingId: walletHoldId, amount: captureAmount.toString() });
      capture = { status: 'succeeded', networkId: walletCaptureId, authorizationId: walletHoldId, amount: captureAmount.toString(), currency: amount.currency };
    } else {
      saga.add('refund capture', () => undo.refundCapture({ idempotencyKey: stepKey(checkoutId, 'refund', 'compensation'), captureKey }));
      capture = await card.capturePayment({ idempotencyKey: captureKey, authorizationId: authorizationId!, amount: captureAmount.toString() });
      // The card network owes the merchant what it captured: credit their pending balance.
      saga.add('take back merchant credit', () =>
        undo.reversePostedTransfer({ id: `${checkoutId}:merchant-credit-reversal`, transferId: `${checkoutId}:merchant-credit`, code: 'checkout_refund' }),
      );
      await write.createTransfer({
        id: `${checkoutId}:merchant-credit`,
        debitAccountId: ledgerAccount.cardClearing(amount.currency),
        creditAccountId: ledgerAccount.merchantPending(merchantId, amount.currency),
        amount: captureAmount.toString(),
        currency: amount.currency,
        kind: 'posted',
        code: 'checkout_card_capture',
        reference: checkoutId,
      });
    }
    amountCaptured = captureAmount;
    amountCapturable = 0n;
    // Refunds may start from here on; their row writes are chained after this one.
    await serially(() =>
      write.recordPaymentAttempt({
        attempt: { checkoutId, idempotencyKey: captureKey, operation: 'capture', ...capture },
        status: 'captured',
        amountCaptured: amountCaptured.toString(),
      }),
    );
    moveTo(capturedStatus(amountCaptured, amountRefunded, settled));
    log.info('checkout captured', { ...logFields, amount: amountCaptured.toString() });
  } catch (err) {
    const outcome = err instanceof Stop ? err.outcome : isCancellation(err) ? 'canceled' : 'failed';
    failure = err instanceof Stop ? { code: outcome, message: err.message } : describeFailure(err);
    log.warn('checkout did not complete; compensating', { ...logFields, outcome, failure });
    await saga.compensate();
    await CancellationScope.nonCancellable(() => write.setCheckoutStatus({ checkoutId, status: outcome, failure }));
    amountCapturable = 0n;
    actionSettled = true;
    moveTo(outcome);
    reservationDecided = true;
    await finish(snapshot());
    // A decline, a cancel or a timeout is an outcome the merchant expects: the run completes.
    // Anything else fails the run too, so ops see it as broken in the Web UI.
    if (outcome === 'failed' && !isBusinessFailure(err)) throw err;
    return snapshot();
  }

  // Captured. Settlement is a durable timer; refunds keep arriving as updates meanwhile.
  if (timeouts.settlementDelayMs > 0) await sleep(timeouts.settlementDelayMs);
  // What is still the merchant's moves from pending to available; refunds in flight finish first,
  // and later ones are taken from the available balance.
  await condition(() => refundsInFlight === 0n);
  const settlement = amountCaptured - amountRefunded;
  settled = true;
  // Runs that reach settlement from now on post it as a regular activity, recorded before it runs:
  // as a local activity, a workflow task retried with a refund delivered first ran it again with
  // another amount, and the ledger's conflict failed the run (see workflows/checkout/steps.ts).
  const settle = patched(PATCH_SETTLEMENT_AS_ACTIVITY) ? db : write;
  if (settlement > 0n) {
    await settle.createTransfer({
      id: `${checkoutId}:settlement`,
      debitAccountId: ledgerAccount.merchantPending(merchantId, amount.currency),
      creditAccountId: ledgerAccount.merchantAvailable(merchantId, amount.currency),
      amount: settlement.toString(),
      currency: amount.currency,
      kind: 'posted',
      code: 'settlement',
      reference: checkoutId,
    });
  }
  moveTo(capturedStatus(amountCaptured, amountRefunded, settled));
  await serially(() => write.markSettled({ checkoutId, status: capturedStatus(amountCaptured, amountRefunded, settled) }));
  log.info('checkout settled', logFields);

  if (timeouts.refundWindowMs > 0) await sleep(timeouts.refundWindowMs);
  refundWindowOpen = false;
  return await finish(snapshot());
}

/** Lets in-flight updates return their answers before the run closes. */
async function finish(result: CheckoutSnapshot): Promise<CheckoutSnapshot> {
  await condition(allHandlersFinished);
  return result;
}

function invalidState(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.InvalidCheckoutState, message, nonRetryable: true });
}

function invalidAmount(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.InvalidAmount, message, nonRetryable: true });
}

function checkAmount(requested: string, limit: bigint, what: string): void {
  if (!isAmountString(requested)) throw invalidAmount(`${what} amount must be an integer string of minor units`);
  const value = BigInt(requested);
  if (value <= 0n) throw invalidAmount(`${what} amount must be positive`);
  if (value > limit) throw invalidAmount(`${what} amount ${value} exceeds the ${limit} available`);
}

function isTimeout(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof TimeoutFailure;
}
