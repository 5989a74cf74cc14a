// What a checkout knows about itself, and the merchant's and customer's messages to it (updates
// and the status query) with their validators. The story that moves it forward is in workflow.ts;
// the steps that act on the outside world are in steps.ts.
//
// Every action answers only once its effect is known, and succeeds only if it took effect: a
// capture that arrives while the authorization is expiring, or a 3-D Secure result that arrives
// while the stock hold runs out, fails with InvalidCheckoutState and a code naming what happened
// instead (`checkout_expired`), never with a snapshot the merchant could read as success.
//
// The row merchants read is written by an activity *before* the workflow moves its own status, so
// an update sent by someone who just read `requires_action` or `requires_capture` can arrive while
// the workflow still says `processing`. Validators therefore check what the workflow knows (the card
// wants 3-D Secure; the authorization is capturable), not the status name.
import {
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import {
  CAPTURED_STATUSES,
  FailureType,
  PaymentStatus,
  capturedStatus,
  isAmountString,
  type CheckoutInput,
  type CheckoutParties,
  type CheckoutSnapshot,
  type CheckoutStatus,
  type Money,
  type RefundSnapshot,
} from '../../domain/index.js';
import { cancelUpdate, captureUpdate, confirmUpdate, refundUpdate, reservationUpdate, statusQuery } from '../checkout-messages.js';
import type { Saga } from '../saga.js';

/** How a checkout ends without capture. */
export type Outcome = 'canceled' | 'expired' | 'failed';

/** The payment stopped before capture for a reason that is not a failure of anything. */
export class Stop extends Error {
  constructor(
    readonly outcome: 'canceled' | 'expired',
    message: string,
  ) {
    super(message);
  }
}

export class CheckoutState {
  status: CheckoutStatus = 'pending';
  amount: Money = { amount: '0', currency: '' };
  /** The network's authorization, once one is known (card payments). */
  authorizationId: string | undefined;
  amountCapturable = 0n;
  amountCaptured = 0n;
  amountRefunded = 0n;
  refundsInFlight = 0n;
  settled = false;
  refundWindowOpen = true;
  failure: CheckoutSnapshot['failure'];
  readonly refunds = new Map<string, RefundSnapshot>();

  /** The buyer's answer is known: stock held, sold out, or failed before that. */
  reservationDecided = false;
  /** Set the moment the checkout knows it will not be captured, while its undos still run. */
  closing: { outcome: Outcome; reason: string } | undefined;
  /** The final status is written; nothing more will happen before capture. */
  closed = false;
  /** From here on the payment is taken: a cancel is too late (refund instead). */
  captureStarted = false;
  captureRequest: { amount: bigint } | undefined;
  awaitingAction = false;
  actionResult: 'succeeded' | 'failed' | undefined;
  /** The customer's 3-D Secure result has reached the network. */
  actionSettled = false;
  cancelRequested = false;

  /**
   * Everything before capture runs in this scope, so the merchant's cancel reaches whatever step
   * the checkout waits in (placing the order, a card call in flight, 3-D Secure, the capture).
   */
  readonly beforeCapture = new CancellationScope();

  readonly parties: CheckoutParties;
  readonly logFields: Record<string, string>;

  constructor(
    readonly input: CheckoutInput,
    readonly saga: Saga,
  ) {
    this.parties = { checkoutId: input.checkoutId, merchantId: input.merchantId, customerId: input.customerId, paymentMethod: input.payment.method };
    this.logFields = { checkoutId: input.checkoutId, merchantId: input.merchantId, customerId: input.customerId };
  }

  get id(): string {
    return this.input.checkoutId;
  }

  snapshot(): CheckoutSnapshot {
    return {
      checkoutId: this.id,
      status: this.status,
      amount: this.amount,
      amountCapturable: this.amountCapturable.toString(),
      amountCaptured: this.amountCaptured.toString(),
      amountRefunded: this.amountRefunded.toString(),
      refunds: [...this.refunds.values()],
      ...(this.failure ? { failure: this.failure } : {}),
      ...(this.saga.stalled ? { stalledCompensation: this.saga.stalled } : {}),
    };
  }

  moveTo(next: CheckoutStatus): void {
    this.status = next;
    upsertSearchAttributes([{ key: PaymentStatus, value: next }]);
  }

  /** The status a captured checkout shows, from its amounts. */
  capturedStatus(): CheckoutStatus {
    return capturedStatus(this.amountCaptured, this.amountRefunded, this.settled);
  }

  refundable(): bigint {
    return this.amountCaptured - this.amountRefunded - this.refundsInFlight;
  }

  /** Records that the checkout will end without capture; the first reason stands. */
  decide(outcome: Outcome, reason: string): void {
    this.closing ??= { outcome, reason };
  }

  // Writes of the checkout row after capture come from the main flow and from refund handlers at
  // once; chaining them keeps the row's last write the workflow's latest state.
  private rowWrites: Promise<unknown> = Promise.resolve();
  serially<T>(write: () => Promise<T>): Promise<T> {
    const next = this.rowWrites.then(write);
    this.rowWrites = next.catch(() => undefined);
    return next;
  }

  /** Lets in-flight updates return their answers before the run closes. */
  async finish(): Promise<CheckoutSnapshot> {
    await this.settledDown(allHandlersFinished);
    return this.snapshot();
  }

  /**
   * Registers the updates and the query. `refund` runs one refund to its end (steps.ts); the
   * handler only decides whether the request may start one.
   */
  listen(refund: (refundId: string, amount: bigint) => Promise<RefundSnapshot>): void {
    setHandler(statusQuery, () => this.snapshot());

    setHandler(reservationUpdate, async () => {
      await condition(() => this.reservationDecided);
      return this.snapshot();
    });

    setHandler(
      cancelUpdate,
      async () => {
        this.cancelRequested = true;
        this.decide('canceled', 'canceled by the merchant');
        this.beforeCapture.cancel();
        await this.settledDown(() => this.closed);
        return this.tookEffect(this.status === 'canceled');
      },
      {
        validator: () => {
          if (this.captureStarted || CAPTURED_STATUSES.includes(this.status)) {
            throw refused('checkout_already_captured', `checkout is ${this.captureStarted && this.amountCaptured === 0n ? 'being captured' : this.status}; refund it instead of canceling`);
          }
          this.refuseIfClosing('cancel');
        },
      },
    );

    setHandler(
      captureUpdate,
      async ({ amount: requested }) => {
        this.captureRequest = { amount: requested === undefined ? this.amountCapturable : BigInt(requested) };
        await this.settledDown(() => CAPTURED_STATUSES.includes(this.status) || this.closed);
        return this.tookEffect(CAPTURED_STATUSES.includes(this.status));
      },
      {
        validator: ({ amount: requested }) => {
          if (this.input.captureMethod !== 'manual') throw refused('checkout_state_invalid', 'checkout captures automatically');
          this.refuseIfClosing('capture');
          if (this.captureRequest || this.captureStarted || CAPTURED_STATUSES.includes(this.status)) {
            throw refused('checkout_already_captured', `checkout is ${this.amountCaptured > 0n ? this.status : 'being captured'}`);
          }
          if (this.amountCapturable === 0n) throw refused('checkout_state_invalid', `checkout is ${this.status}, not requires_capture`);
          if (requested !== undefined) checkAmount(requested, this.amountCapturable, 'capture');
        },
      },
    );

    setHandler(
      confirmUpdate,
      async ({ result }) => {
        this.actionResult = result;
        await this.settledDown(() => this.actionSettled || this.closed);
        return this.tookEffect(this.actionSettled);
      },
      {
        validator: ({ result }) => {
          this.refuseIfClosing('confirm');
          if (!this.awaitingAction || this.actionSettled || this.actionResult) throw refused('checkout_state_invalid', `checkout is ${this.status}, not requires_action`);
          if (result !== 'succeeded' && result !== 'failed') throw refused('checkout_state_invalid', `unknown 3-D Secure result ${String(result)}`);
        },
      },
    );

    setHandler(
      refundUpdate,
      async ({ refundId, amount: requested }) => {
        const seen = this.refunds.get(refundId);
        if (seen) {
          await this.settledDown(() => seen.status !== 'pending');
          return seen;
        }
        // Checked again here: another refund may have started since this one was validated.
        const value = requested === undefined ? this.refundable() : BigInt(requested);
        if (value <= 0n || value > this.refundable()) throw invalidAmount(`refund of ${value} exceeds the refundable ${this.refundable()}`);
        // A refund that has started runs to its end whatever happens to the run meanwhile (an
        // operator's cancel): its money may already be on its way back.
        return CancellationScope.nonCancellable(() => refund(refundId, value));
      },
      {
        validator: ({ refundId, amount: requested }) => {
          if (this.refunds.has(refundId)) return; // a retried request joins the first
          if (this.amountCaptured === 0n) {
            this.refuseIfClosing('refund');
            throw refused('checkout_state_invalid', `checkout is ${this.status}; only a captured checkout can be refunded`);
          }
          if (!this.refundWindowOpen) throw refused('checkout_closed', 'the refund window of this checkout has closed');
          checkAmount(requested ?? this.refundable().toString(), this.refundable(), 'refund');
        },
      },
    );
  }

  /** Waits without being cut short by a cancellation of the run: the answer is what the caller waits for. */
  private settledDown(done: () => boolean): Promise<void> {
    return CancellationScope.nonCancellable(() => condition(done));
  }

  /** The snapshot when the action took effect; otherwise why not, as the merchant must read it. */
  private tookEffect(effective: boolean): CheckoutSnapshot {
    if (effective) return this.snapshot();
    throw refused(`checkout_${this.status}`, `checkout is ${this.status}${this.failure ? `: ${this.failure.message}` : ''}`, this.status);
  }

  private refuseIfClosing(action: string): void {
    if (this.status === 'sold_out') throw refused('checkout_sold_out', `checkout is sold_out; nothing was held, so it cannot ${action}`, 'sold_out');
    if (!this.closing) return;
    const { outcome, reason } = this.closing;
    throw refused(`checkout_${outcome}`, `checkout ${outcome === 'failed' ? 'failed' : `is ${outcome}`} (${reason}); it cannot ${action} any more`, outcome);
  }
}

/**
 * An action that does not fit the checkout, or did not take effect: the API answers 409 with
 * `code` and the status the checkout has or is ending with.
 */
function refused(code: string, message: string, status?: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FailureType.InvalidCheckoutState, message, nonRetryable: true, details: [{ code, ...(status ? { status } : {}) }] });
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
