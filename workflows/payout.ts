// Payout: hold the amount on the customer's wallet, wait until the scheduled time on a durable
// timer, send it to the bank, then post the hold (paid) or void it (the bank refused: the money is
// back). Until it is sent, the merchant can cancel it (and an operator can, from the Web UI): the
// hold is voided. A cancel from the Web UI while the bank call is in flight cancels the call and
// resolves it by its key: if the bank paid, the payout is paid (the money has left); if not, the
// hold is voided. The hold is a two-phase ledger transfer, so the held money can be neither spent
// twice nor lost in between, and its void goes through the same compensation as every flow's.
import {
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  allHandlersFinished,
  condition,
  isCancellation,
  log,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { BankOutcome } from '../activities/bank.js';
import { FailureType, PaymentStatus, payoutInputProblem, stepKey, walletPostings, type PayoutInput, type PayoutSnapshot, type PayoutStatus } from '../domain/index.js';
import { bankCall, compensation, databaseWrite, localDatabaseWrite } from './activity-profiles.js';
import { describeFailure, failureType, interruptedByCancel, refuseInput } from './failures.js';
import { bankTransferUnderKey } from './resolve-by-key.js';
import { Saga } from './saga.js';
import { payoutAcceptedUpdate, payoutCancelUpdate, payoutStatusQuery } from './wallet-messages.js';

const db = proxyActivities<Activities>(databaseWrite);
const localDb = proxyLocalActivities<Activities>(localDatabaseWrite);
const bank = proxyActivities<Activities>(bankCall);
const undo = proxyActivities<Activities>(compensation);

export async function payoutWorkflowV2(input: PayoutInput): Promise<PayoutSnapshot> {
  // An input the API could not have built (a start by hand) fails the run before anything is held.
  refuseInput(payoutInputProblem(input));
  const { payoutId, amount } = input;
  const parties = { id: payoutId, merchantId: input.merchantId, customerId: input.customerId };
  const logFields = { payoutId, merchantId: input.merchantId, customerId: input.customerId };
  let status: PayoutStatus = 'pending';
  let failure: PayoutSnapshot['failure'];
  let accepted = false;
  let cancelRequested = false;
  /** Until the bank is called, the merchant's cancel (and an operator's) reaches the wait. */
  const beforeSending = new CancellationScope();

  const snapshot = (): PayoutSnapshot => ({ payoutId, status, amount, scheduledAt: input.scheduledAt, ...(failure ? { failure } : {}) });
  const moveTo = (next: PayoutStatus) => {
    status = next;
    upsertSearchAttributes([{ key: PaymentStatus, value: next }]);
  };
  const setStatus = (next: PayoutStatus, extra: { bankTransferId?: string } = {}) =>
    CancellationScope.nonCancellable(async () => {
      await db.setPayoutStatus({ payoutId, status: next, ...extra, ...(failure ? { failure } : {}) });
      moveTo(next);
    });
  const done = async () => {
    await CancellationScope.nonCancellable(() => condition(allHandlersFinished));
    return snapshot();
  };

  setHandler(payoutStatusQuery, snapshot);
  setHandler(payoutAcceptedUpdate, async () => {
    await condition(() => accepted);
    return snapshot();
  });
  setHandler(
    payoutCancelUpdate,
    async () => {
      cancelRequested = true;
      beforeSending.cancel();
      await CancellationScope.nonCancellable(() => condition(() => status !== 'pending'));
      return snapshot();
    },
    {
      validator: () => {
        if (status !== 'pending' || cancelRequested) {
          throw ApplicationFailure.create({
            type: FailureType.InvalidPayoutState,
            message: `payout is ${status}; only a pending payout can be canceled`,
            nonRetryable: true,
          });
        }
      },
    },
  );

  // The hold is the payout's first step and its answer to the merchant: no money, no payout.
  const saga = new Saga(logFields);
  const held = await CancellationScope.nonCancellable(async () => {
    saga.add('void hold', () => undo.releaseHold(walletPostings.payoutVoid(parties)));
    try {
      await localDb.createTransfer(walletPostings.payoutHold(parties, amount));
    } catch (err) {
      if (failureType(err) !== FailureType.InsufficientFunds) throw err;
      failure = { code: 'insufficient_funds', message: 'the wallet has less available than the payout' };
      await localDb.createPayoutRecord({ input, status: 'failed', failure });
      return false;
    }
    await localDb.createPayoutRecord({ input, status: 'pending' });
    return true;
  });
  if (!held) {
    moveTo('failed');
    accepted = true;
    return done();
  }
  accepted = true;

  try {
    const waitMs = Date.parse(input.scheduledAt) - Date.now();
    if (waitMs > 0) await beforeSending.run(() => condition(() => false, waitMs));
    if (cancelRequested) throw new CancelledFailure('canceled by the merchant');
  } catch (err) {
    if (!isCancellation(err)) throw err;
    failure = undefined;
    await saga.compensate();
    await setStatus('canceled');
    log.info('payout canceled', { ...logFields, by: cancelRequested ? 'merchant' : 'operator' });
    await done();
    if (!cancelRequested) throw new CancelledFailure('canceled from the Web UI');
    return snapshot();
  }

  await setStatus('processing');
  const sent = await sendToBank(input, stepKey(payoutId, 'transfer'));
  if (sent.transfer?.status === 'paid') {
    // The bank paid: from here the hold is only ever posted, never voided.
    await CancellationScope.nonCancellable(() => db.postPendingTransfer(walletPostings.payoutPost(parties)));
    await setStatus('paid', { bankTransferId: sent.transfer.bankTransferId });
    log.info('payout paid', { ...logFields, amount: amount.amount, afterCancel: sent.canceled });
  } else {
    failure = sent.canceled
      ? { code: 'canceled', message: 'canceled from the Web UI while the bank was being called; the bank made no transfer' }
      : sent.transfer
        ? { code: sent.transfer.failureCode ?? 'rejected', message: 'the bank rejected the transfer' }
        : sent.failure;
    await saga.compensate();
    await setStatus(sent.canceled ? 'canceled' : 'failed', sent.transfer ? { bankTransferId: sent.transfer.bankTransferId } : {});
    log.warn('payout not paid; hold voided', { ...logFields, failure });
  }
  await done();
  // A cancel that came too late (the bank had paid) changed nothing: the run completes.
  if (sent.canceled && sent.transfer?.status !== 'paid') throw new CancelledFailure('canceled from the Web UI');
  return snapshot();
}

/**
 * The bank's answer to the payout's one transfer. A cancel from the Web UI aborts the call; the
 * transfer is then resolved by its key, since the bank may have paid before it heard of the cancel.
 */
async function sendToBank(
  input: PayoutInput,
  idempotencyKey: string,
): Promise<{ transfer: BankOutcome | null; canceled: boolean; failure?: { code: string; message: string } }> {
  const { amount, bankAccount } = input;
  try {
    const transfer = await bank.sendBankTransfer({ idempotencyKey, amount: amount.amount, currency: amount.currency, ...bankAccount, reference: input.payoutId });
    return { transfer, canceled: false };
  } catch (err) {
    if (isCancellation(err) || interruptedByCancel(err)) {
      const transfer = await CancellationScope.nonCancellable(() => bankTransferUnderKey(idempotencyKey, Date.now()));
      return { transfer, canceled: true };
    }
    // The bank refused the request itself (it never acted); anything else is retried until it answers.
    if (failureType(err) === FailureType.BankRejected) return { transfer: null, canceled: false, failure: describeFailure(err) };
    throw err;
  }
}
