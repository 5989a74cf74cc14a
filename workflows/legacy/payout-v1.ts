// FROZEN. The workflow type `payoutWorkflow` as it ran until payoutWorkflowV2 replaced it. Runs
// started before then keep replaying against this file until they drain, and test/replay.test.ts
// replays their recorded histories: change nothing here that changes the commands it issues.
// New runs start payoutWorkflowV2 (workflows/payout.ts).
//
// Payout: hold the amount on the customer's wallet, wait until the scheduled time on a durable
// timer, send it to the bank, then post the hold (paid) or void it (the bank refused: the money is
// back). Until it is sent, the payout can be canceled and the hold voided. The hold is a two-phase
// ledger transfer, so the held money can be neither spent twice nor lost in between.
import {
  ApplicationFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  log,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { Activities } from '../../activities/index.js';
import { FailureType, PaymentStatus, ledgerAccount, type PayoutInput, type PayoutSnapshot, type PayoutStatus } from '../../domain/index.js';
import { bankCall, compensation, databaseWrite, localDatabaseWrite } from './activity-profiles-v1.js';
import { describeFailure, failureType } from '../failures.js';
import { payoutAcceptedUpdate, payoutCancelUpdate, payoutStatusQuery } from '../wallet-messages.js';

const db = proxyActivities<Activities>(databaseWrite);
const localDb = proxyLocalActivities<Activities>(localDatabaseWrite);
const bank = proxyActivities<Activities>(bankCall);
const undo = proxyActivities<Activities>(compensation);

export async function payoutWorkflow(input: PayoutInput): Promise<PayoutSnapshot> {
  const { payoutId, amount } = input;
  const logFields = { payoutId, merchantId: input.merchantId, customerId: input.customerId };
  const key = (step: string) => `${payoutId}:${step}`;
  let status: PayoutStatus = 'pending';
  let failure: PayoutSnapshot['failure'];
  let accepted = false;
  let cancelRequested = false;

  const snapshot = (): PayoutSnapshot => ({ payoutId, status, amount, scheduledAt: input.scheduledAt, ...(failure ? { failure } : {}) });
  const moveTo = (next: PayoutStatus) => {
    status = next;
    upsertSearchAttributes([{ key: PaymentStatus, value: next }]);
  };
  const done = async () => {
    await condition(allHandlersFinished);
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
      await condition(() => status !== 'pending');
      return snapshot();
    },
    {
      validator: () => {
        if (status !== 'pending') {
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
  try {
    await localDb.createTransfer({
      id: key('hold'),
      debitAccountId: ledgerAccount.wallet(input.merchantId, input.customerId, amount.currency),
      creditAccountId: ledgerAccount.bankClearing(amount.currency),
      amount: amount.amount,
      currency: amount.currency,
      kind: 'pending',
      code: 'payout',
      reference: payoutId,
    });
  } catch (err) {
    if (failureType(err) !== FailureType.InsufficientFunds) throw err;
    failure = { code: 'insufficient_funds', message: 'the wallet has less available than the payout' };
    await localDb.createPayoutRecord({ input, status: 'failed', failure });
    moveTo('failed');
    accepted = true;
    return done();
  }
  await localDb.createPayoutRecord({ input, status: 'pending' });
  accepted = true;

  const waitMs = Date.parse(input.scheduledAt) - Date.now();
  if (waitMs > 0) await condition(() => cancelRequested, waitMs);
  if (cancelRequested) {
    await CancellationScope.nonCancellable(async () => {
      await undo.voidPendingTransfer({ id: key('void'), pendingId: key('hold') });
      await db.setPayoutStatus({ payoutId, status: 'canceled' });
    });
    moveTo('canceled');
    log.info('payout canceled', logFields);
    return done();
  }

  await db.setPayoutStatus({ payoutId, status: 'processing' });
  moveTo('processing');
  let sent: Awaited<ReturnType<typeof bank.sendBankTransfer>>;
  try {
    sent = await bank.sendBankTransfer({
      idempotencyKey: key('transfer'),
      amount: amount.amount,
      currency: amount.currency,
      bankCode: input.bankAccount.bankCode,
      accountNumber: input.bankAccount.accountNumber,
      reference: payoutId,
    });
  } catch (err) {
    // The bank refused the request itself (it never acted): the money goes back to the wallet.
    failure = describeFailure(err);
    await CancellationScope.nonCancellable(async () => {
      await undo.voidPendingTransfer({ id: key('void'), pendingId: key('hold') });
      await db.setPayoutStatus({ payoutId, status: 'failed', failure });
    });
    moveTo('failed');
    log.warn('payout failed; hold voided', { ...logFields, failure });
    if (failureType(err) !== FailureType.BankRejected) throw err;
    return done();
  }

  if (sent.status === 'rejected') {
    failure = { code: sent.failureCode ?? 'rejected', message: 'the bank rejected the transfer' };
    await undo.voidPendingTransfer({ id: key('void'), pendingId: key('hold') });
    await db.setPayoutStatus({ payoutId, status: 'failed', bankTransferId: sent.bankTransferId, failure });
    moveTo('failed');
    log.warn('payout rejected by the bank; hold voided', { ...logFields, failure });
    return done();
  }
  // The bank paid: from here the hold is only ever posted, never voided.
  await db.postPendingTransfer({ id: key('post'), pendingId: key('hold') });
  await db.setPayoutStatus({ payoutId, status: 'paid', bankTransferId: sent.bankTransferId });
  moveTo('paid');
  log.info('payout paid', { ...logFields, amount: amount.amount });
  return done();
}
