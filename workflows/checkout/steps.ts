// The checkout's steps that act on the outside world, each declared once with its undo beside it.
// The undo is registered on the checkout's saga *before* the step runs: the step may act even when
// its call fails or is canceled. An undo of a call whose outcome is unknown resolves the call by its
// key first (resolve-by-key.ts), then acts only on what is known to have happened.
//
// Local activities (no round trip through the server) are used only where their input comes from
// the history alone (the order, an answer already recorded). A step whose input can depend on when
// an update arrived (an amount after refunds, a capture amount) is a regular activity: its input is
// recorded before it runs, so a retried workflow task can never run it again with other input.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  sleep,
} from '@temporalio/workflow';
import type { Activities } from '../../activities/index.js';
import type { CardOutcome } from '../../activities/card-network.js';
import type { PaymentAttemptRecord, PlacedOrder } from '../../activities/orders.js';
import {
  FailureType,
  cancellationRefundId,
  checkoutPostings,
  money,
  stepKey,
  type CheckoutStatus,
  type RefundSnapshot,
} from '../../domain/index.js';
import { cardNetworkCall, compensation, databaseWrite, localDatabaseWrite } from '../activity-profiles.js';
import { describeFailure, failureType } from '../failures.js';
import { cardOperationUnderKey } from '../resolve-by-key.js';
import { Stop, type CheckoutState } from './state.js';

/** How long each look for the API's order waits (inside one local activity), and the pauses between looks: about 30 s in all. */
const ADOPTION_LOOK_MS = 2_000;
const ADOPTION_PAUSES_MS = [0, 1_000, 5_000, 15_000];

/** Patch id (`patched()`): fewer steps to a capture; see CheckoutSteps.fewerSteps. */
const FEWER_STEPS = 'fewer-steps';

const db = proxyActivities<Activities>(databaseWrite);
const localDb = proxyLocalActivities<Activities>(localDatabaseWrite);
const card = proxyActivities<Activities>(cardNetworkCall);
const undo = proxyActivities<Activities>(compensation);

export class CheckoutSteps {
  /** When the stock hold runs out, if the payment has not been authorized by then. */
  private holdDeadline = 0;
  /**
   * The network's answers, once known, so an undo needs no lookup: null when it answered that it
   * did nothing (a refused request), undefined while unknown (canceled in flight, no answer).
   */
  private authorization: CardOutcome | null | undefined;
  private captured: CardOutcome | null | undefined;
  /**
   * Runs from this change on take fewer steps on the way to a capture (patch FEWER_STEPS): the
   * authorization's record, the stock commit, the merchant's credit and the capture's record are
   * one commit after the capture, and an order the API placed is not marked `processing` twice.
   * Runs recorded before it replay the steps they took.
   */
  private readonly fewerSteps: boolean;
  /** An approved authorization not recorded yet: recorded with the capture, or when the run closes. */
  private unrecordedAuthorization: CardOutcome | undefined;

  constructor(private readonly order: CheckoutState) {
    this.fewerSteps = patched(FEWER_STEPS);
  }

  private key(step: string, id?: string): string {
    return stepKey(this.order.id, step, id);
  }

  /**
   * Writes the order at today's prices and holds its stock, in one short transaction. False when
   * the stock is not there: nothing was held, nothing will be charged.
   */
  async placeOrder(): Promise<boolean> {
    const { order } = this;
    order.saga.add('release stock', () => undo.releaseStock({ checkoutId: order.id }));
    const placed = order.input.placedBy === 'api' ? await this.adoptPlacedOrder() : await localDb.placeOrder(order.input);
    order.amount = placed.amount;
    if (placed.outcome === 'not_placed') {
      throw ApplicationFailure.create({
        type: FailureType.OrderNotPlaced,
        message: 'the order was never placed: nothing was held and nothing charged',
        nonRetryable: true,
      });
    }
    if (placed.outcome === 'sold_out') {
      order.moveTo('sold_out');
      order.reservationDecided = true;
      return false;
    }
    if (BigInt(placed.amount.amount) <= 0n) {
      // The API refuses zero totals; a product priced at zero before that rule cannot be paid for.
      throw ApplicationFailure.create({ type: FailureType.InvalidAmount, message: 'the order totals zero: there is nothing to pay', nonRetryable: true });
    }
    this.holdDeadline = Date.now() + order.input.timeouts.reservationTimeoutMs;
    // The API started the run as `processing` already: no second visibility write.
    if (this.fewerSteps && order.input.placedBy === 'api') order.status = 'processing';
    else order.moveTo('processing');
    order.reservationDecided = true;
    return true;
  }

  /**
   * The order the API placed right after it started this run (api/routes/checkouts.ts). It is
   * almost always there by the time the first look ends; if the API is slow, look again for a
   * while, and if it never appears (the API died between the start and its write), fence the id
   * off so that nothing can be held under it later.
   */
  private async adoptPlacedOrder(): Promise<PlacedOrder> {
    for (const pauseMs of ADOPTION_PAUSES_MS) {
      if (pauseMs > 0) await sleep(pauseMs);
      const found = await localDb.awaitPlacedOrder({ checkoutId: this.order.id, waitMs: ADOPTION_LOOK_MS });
      if (found) return found;
    }
    return await localDb.fenceOrder(this.order.input);
  }

  /** Holds the money: a card authorization (3-D Secure when the card asks), or a hold on the wallet. */
  async authorize(): Promise<void> {
    const auth = this.order.input.payment.method === 'wallet' ? await this.holdOnWallet() : await this.authorizeCard(this.order.input.payment.token);
    if (auth.status === 'declined') {
      throw ApplicationFailure.create({
        type: FailureType.CardDeclined,
        message: `${this.order.input.payment.method === 'wallet' ? 'wallet' : 'card'} declined: ${auth.declineCode ?? 'unknown'}`,
        nonRetryable: true,
        details: [{ declineCode: auth.declineCode }],
      });
    }
    this.order.amountCapturable = BigInt(this.order.amount.amount);
  }

  private async authorizeCard(token: string): Promise<CardOutcome> {
    const { order } = this;
    order.saga.add('void authorization', () => this.voidAuthorization());
    const reason = 'the card was not authorized before the stock hold expired';
    const request = { idempotencyKey: this.key('authorize'), amount: order.amount.amount, currency: order.amount.currency, token, reference: order.id };
    let auth = await this.beforeHoldExpires(reason, () => card.authorizePayment(request)).catch((err: unknown) => {
      if (failureType(err) === FailureType.CardNetworkRejected) this.authorization = null;
      throw err;
    });
    this.authorization = auth;
    order.authorizationId = auth.authorizationId;
    if (auth.status === 'requires_action') auth = await this.authenticate(auth);
    else if (this.fewerSteps && auth.status === 'succeeded') {
      // Recorded with the capture (or, for a manual capture, with the wait for it).
      if (order.input.captureMethod === 'manual') await this.record('authorize', auth, 'requires_capture');
      else this.unrecordedAuthorization = auth;
    } else await this.record('authorize', auth);
    return auth;
  }

  /** Records an approved authorization that was waiting for its capture, if the run closes first. */
  async recordUnrecordedAuthorization(): Promise<void> {
    const auth = this.unrecordedAuthorization;
    if (!auth) return;
    this.unrecordedAuthorization = undefined;
    await this.record('authorize', auth);
  }

  /** Undo of authorizeCard: whatever the network holds under the authorize key is released. */
  private async voidAuthorization(): Promise<void> {
    const auth = this.authorization !== undefined ? this.authorization : await cardOperationUnderKey(this.key('authorize'), Date.now());
    if (!auth || auth.status === 'declined') return;
    await undo.voidAuthorizationById({ idempotencyKey: this.key('void'), authorizationId: auth.authorizationId });
  }

  /** 3-D Secure: waits for the customer's result (within the hold and the action timeout), then tells the network. */
  private async authenticate(auth: CardOutcome): Promise<CardOutcome> {
    const { order } = this;
    const { actionTimeoutMs } = order.input.timeouts;
    order.awaitingAction = true;
    await this.record('authorize', auth, 'requires_action');
    order.moveTo('requires_action');
    const holdLeft = this.holdDeadline - Date.now();
    const waitMs = Math.min(actionTimeoutMs, holdLeft);
    const answered = waitMs > 0 && (await condition(() => order.actionResult !== undefined, waitMs));
    if (!answered) {
      const reason = holdLeft < actionTimeoutMs ? 'the stock hold expired before 3-D Secure was completed' : 'the customer did not complete 3-D Secure in time';
      order.decide('expired', reason);
      throw new Stop('expired', reason);
    }
    const result = await this.beforeHoldExpires('the stock hold expired while 3-D Secure was being confirmed', () =>
      card.authenticatePayment({ idempotencyKey: this.key('authenticate'), authorizationId: auth.authorizationId, result: order.actionResult! }),
    );
    await this.record('authenticate', result, 'processing');
    order.actionSettled = true;
    order.moveTo('processing');
    return result;
  }

  /** A wallet payment is a two-phase ledger transfer: held now, posted at capture. */
  private async holdOnWallet(): Promise<CardOutcome> {
    const { order } = this;
    const hold = checkoutPostings.walletHold(order.parties, order.amount);
    order.saga.add('release wallet hold', () => undo.releaseHold(checkoutPostings.walletVoid(order.parties)));
    const outcome = { networkId: hold.id, authorizationId: hold.id, amount: hold.amount, currency: hold.currency };
    let auth: CardOutcome;
    try {
      await localDb.createTransfer(hold);
      auth = { status: 'succeeded', ...outcome };
    } catch (err) {
      if (failureType(err) !== FailureType.InsufficientFunds) throw err;
      auth = { status: 'declined', declineCode: 'insufficient_funds', ...outcome };
    }
    await this.record('authorize', auth);
    return auth;
  }

  /** Manual capture: waits for the merchant's capture until the authorization expires. */
  async awaitCaptureRequest(): Promise<void> {
    const { order } = this;
    if (order.input.captureMethod !== 'manual') return;
    // With fewer steps, a card's row says requires_capture already (recorded with its authorization).
    if (!(this.fewerSteps && order.input.payment.method === 'card' && !order.awaitingAction)) {
      await localDb.setCheckoutStatus({ checkoutId: order.id, status: 'requires_capture' });
    }
    order.moveTo('requires_capture');
    const requested = await condition(() => order.captureRequest !== undefined, order.input.timeouts.authorizationTtlMs);
    if (!requested) {
      const reason = 'the authorization expired before it was captured';
      order.decide('expired', reason);
      throw new Stop('expired', reason);
    }
  }

  /**
   * Confirms the order (held units become sold) and takes the money. Not cancellable: a capture in
   * flight is seen through, and whatever follows it (a refund) starts from what it did.
   */
  async capture(): Promise<void> {
    const { order } = this;
    const requested = order.captureRequest?.amount ?? order.amountCapturable;
    await CancellationScope.nonCancellable(async () => {
      // 'release stock' (registered with the order) undoes a sale as well as a hold. With fewer
      // steps the stock is committed in the capture's record, below.
      if (!this.fewerSteps) await localDb.commitStock({ checkoutId: order.id });
      let capture: CardOutcome;
      if (order.input.payment.method === 'wallet') {
        order.saga.add('give back wallet payment', () => undo.reversePostedTransfer(checkoutPostings.walletCaptureReversal(order.parties)));
        // A regular activity: the amount came from an update (see the top of this file).
        const posted = await db.postPendingTransfer({ ...checkoutPostings.walletCapture(order.parties), amount: requested.toString() });
        capture = { status: 'succeeded', networkId: posted.transfer.id, authorizationId: posted.transfer.pendingId ?? posted.transfer.id, amount: posted.transfer.amount, currency: order.amount.currency };
      } else {
        order.saga.add('refund capture', () => this.refundCapture());
        capture = await card
          .capturePayment({ idempotencyKey: this.key('capture'), authorizationId: order.authorizationId!, amount: requested.toString() })
          .catch((err: unknown) => {
            if (failureType(err) === FailureType.CardNetworkRejected) this.captured = null;
            throw err;
          });
        this.captured = capture;
        // The card network owes the merchant what it captured: credit their pending balance.
        order.saga.add('take back merchant credit', () => undo.reversePostedTransfer(checkoutPostings.cardCaptureReversal(order.parties)));
        if (!this.fewerSteps) await localDb.createTransfer(checkoutPostings.cardCapture(order.parties, money(BigInt(capture.amount), capture.currency)));
      }
      order.amountCaptured = BigInt(capture.amount);
      order.amountCapturable = 0n;
      // Refunds may start from here on; their row writes are chained after this one.
      if (this.fewerSteps) {
        const attempts = [...(this.unrecordedAuthorization ? [this.attempt('authorize', this.unrecordedAuthorization)] : []), this.attempt('capture', capture)];
        this.unrecordedAuthorization = undefined;
        const credit = order.input.payment.method === 'card' ? checkoutPostings.cardCapture(order.parties, money(BigInt(capture.amount), capture.currency)) : undefined;
        await order.serially(() => localDb.recordCapture({ attempts, amountCaptured: order.amountCaptured.toString(), ...(credit ? { credit } : {}) }));
      } else {
        await order.serially(() => this.record('capture', capture, 'captured', order.amountCaptured.toString()));
      }
      order.moveTo(order.capturedStatus());
      // The payment is complete: from here it is undone only by refunds (giveBackTheRest).
      order.saga.done();
    });
    log.debug('checkout captured', { ...order.logFields, amount: order.amountCaptured.toString() });
  }

  /** Undo of capture: gives back what the network captured under the capture key, net of refunds. */
  private async refundCapture(): Promise<void> {
    const capture = this.captured !== undefined ? this.captured : await cardOperationUnderKey(this.key('capture'), Date.now());
    if (capture?.status !== 'succeeded') return;
    const rest = BigInt(capture.amount) - this.order.amountRefunded;
    if (rest <= 0n) return;
    await undo.refundPayment({ idempotencyKey: this.key('refund', 'compensation'), authorizationId: capture.authorizationId, amount: rest.toString() });
  }

  /**
   * Settlement: what is still the merchant's moves from pending to available. Refunds in flight
   * finish first; later ones are taken from the available balance.
   */
  async settle(): Promise<void> {
    const { order } = this;
    await CancellationScope.nonCancellable(async () => {
      await condition(() => order.refundsInFlight === 0n);
      const settlement = order.amountCaptured - order.amountRefunded;
      order.settled = true;
      if (settlement > 0n) await db.createTransfer(checkoutPostings.settlement(order.parties, money(settlement, order.amount.currency)));
      order.moveTo(order.capturedStatus());
      await order.serially(() => db.markSettled({ checkoutId: order.id, status: order.capturedStatus() }));
    });
    log.debug('checkout settled', order.logFields);
  }

  /**
   * One refund, to its end: the row first (`pending`, so it is never invisible), then the network
   * (card payments), then the ledger. A refund the network refuses ends `failed` with nothing moved.
   */
  async refund(refundId: string, value: bigint): Promise<RefundSnapshot> {
    const { order } = this;
    const refund: RefundSnapshot = { refundId, amount: money(value, order.amount.currency), status: 'pending' };
    order.refunds.set(refundId, refund);
    order.refundsInFlight += value;
    // Taken from where the money is now: pending before settlement, available after it.
    const settled = order.settled;
    try {
      await db.createRefund({ refundId, checkoutId: order.id, merchantId: order.input.merchantId, amount: refund.amount });
      if (order.input.payment.method === 'card') {
        await card.refundPayment({ idempotencyKey: this.key('refund', refundId), authorizationId: order.authorizationId!, amount: refund.amount.amount });
      }
      await db.createTransfer(checkoutPostings.refund(order.parties, refundId, refund.amount, settled));
      order.amountRefunded += value;
      refund.status = 'succeeded';
    } catch (err) {
      refund.status = 'failed';
      refund.failureCode = describeFailure(err).code;
      log.warn('refund failed', { ...order.logFields, refundId, failure: refund.failureCode });
    } finally {
      order.refundsInFlight -= value;
    }
    order.moveTo(order.capturedStatus());
    const status: CheckoutStatus = order.capturedStatus();
    await order.serially(() =>
      db.completeRefund({
        refundId,
        checkoutId: order.id,
        status: refund.status as 'succeeded' | 'failed',
        ...(refund.failureCode ? { failureCode: refund.failureCode } : {}),
        amountRefunded: order.amountRefunded.toString(),
        checkoutStatus: status,
      }),
    );
    return refund;
  }

  /**
   * An operator canceled the run after capture: the order is undone as far as it happened. New
   * refunds are refused, those in flight finish, what is left of the capture is refunded (retried
   * until it goes through, visibly) and the sold units go back on sale.
   */
  async giveBackTheRest(): Promise<void> {
    const { order } = this;
    order.refundWindowOpen = false;
    await CancellationScope.nonCancellable(async () => {
      await condition(() => order.refundsInFlight === 0n);
      const rest = order.amountCaptured - order.amountRefunded;
      if (rest > 0n) {
        order.saga.add('refund what is left', async () => {
          const refund = await this.refund(cancellationRefundId(order.id), rest);
          if (refund.status !== 'succeeded') throw new Error(`refund of what was left failed: ${refund.failureCode ?? 'unknown'}`);
        });
      }
      order.saga.add('return the sold stock', () => undo.releaseStock({ checkoutId: order.id }));
      // Newest first: the stock returns once the money has.
      await order.saga.compensate();
    });
    log.warn('checkout canceled after capture; what was left was refunded', { ...order.logFields, amountRefunded: order.amountRefunded.toString() });
  }

  /** Runs a step that must finish before the stock hold runs out; past it the step is canceled. */
  private async beforeHoldExpires<T>(reason: string, step: () => Promise<T>): Promise<T> {
    const left = this.holdDeadline - Date.now();
    if (left <= 0) {
      this.order.decide('expired', reason);
      throw new Stop('expired', reason);
    }
    let expired = false;
    const stepScope = new CancellationScope();
    const timerScope = new CancellationScope();
    const timer = timerScope.run(() => sleep(left)).then(
      () => {
        expired = true;
        this.order.decide('expired', reason);
        stepScope.cancel();
      },
      () => undefined,
    );
    try {
      const result = await stepScope.run(step);
      // Answered after the hold ran out, before the cancel reached the call: the stock is no
      // longer held for this payment, so it expires anyway (its undo resolves what was done).
      if (expired) throw new Stop('expired', reason);
      return result;
    } catch (err) {
      if (expired) throw new Stop('expired', reason);
      throw err;
    } finally {
      timerScope.cancel();
      await timer;
    }
  }

  private attempt(operation: 'authorize' | 'authenticate' | 'capture', outcome: CardOutcome): PaymentAttemptRecord {
    return { checkoutId: this.order.id, idempotencyKey: this.key(operation), operation, ...outcome };
  }

  private record(operation: 'authorize' | 'authenticate' | 'capture', outcome: CardOutcome, status?: CheckoutStatus, amountCaptured?: string): Promise<void> {
    return localDb.recordPaymentAttempt({
      attempt: this.attempt(operation, outcome),
      ...(status ? { status } : {}),
      ...(amountCaptured !== undefined ? { amountCaptured } : {}),
    });
  }
}
