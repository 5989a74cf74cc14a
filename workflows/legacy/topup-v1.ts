// FROZEN. The workflow type `topupWorkflow` as it ran until topupWorkflowV2 replaced it. Runs
// started before then keep replaying against this file until they drain, and test/replay.test.ts
// replays their recorded histories: change nothing here that changes the commands it issues.
// New runs start topupWorkflowV2 (workflows/topup.ts).
//
// Wallet top-up: charge the customer's card, then credit their wallet. If the credit cannot be
// made after the card was charged, the card is refunded: the customer never pays for value they
// did not get. The credit's ledger transfer id is derived from the top-up, so a retry can never
// credit twice.
import { ApplicationFailure, CancellationScope, condition, allHandlersFinished, log, proxyActivities, proxyLocalActivities, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { Activities } from '../../activities/index.js';
import { FailureType, PaymentStatus, ledgerAccount, type TopupInput, type TopupSnapshot, type TopupStatus } from '../../domain/index.js';
import { cardNetworkCall, compensation, databaseWrite, localDatabaseWrite } from './activity-profiles-v1.js';
import { describeFailure, isBusinessFailure } from '../failures.js';
import { Saga } from './saga-v1.js';
import { topupAcceptedUpdate, topupStatusQuery } from '../wallet-messages.js';

const db = proxyActivities<Activities>(databaseWrite);
const localDb = proxyLocalActivities<Activities>(localDatabaseWrite);
const card = proxyActivities<Activities>(cardNetworkCall);
const undo = proxyActivities<Activities>(compensation);

export async function topupWorkflow(input: TopupInput): Promise<TopupSnapshot> {
  const { topupId, amount } = input;
  const logFields = { topupId, merchantId: input.merchantId, customerId: input.customerId };
  let status: TopupStatus = 'processing';
  let failure: TopupSnapshot['failure'];
  let accepted = false;
  const snapshot = (): TopupSnapshot => ({ topupId, status, amount, ...(failure ? { failure } : {}) });
  const moveTo = (next: TopupStatus) => {
    status = next;
    upsertSearchAttributes([{ key: PaymentStatus, value: next }]);
  };
  setHandler(topupStatusQuery, snapshot);
  setHandler(topupAcceptedUpdate, async () => {
    await condition(() => accepted);
    return snapshot();
  });

  await localDb.createTopupRecord(input);
  accepted = true;

  const saga = new Saga(logFields);
  const key = (step: string) => `${topupId}:${step}`;
  try {
    saga.add('void authorization', () => undo.voidAuthorization({ idempotencyKey: key('void'), authorizeKey: key('authorize') }));
    const auth = await card.authorizePayment({
      idempotencyKey: key('authorize'),
      amount: amount.amount,
      currency: amount.currency,
      token: input.payment.token,
      reference: topupId,
    });
    if (auth.status !== 'succeeded') {
      throw ApplicationFailure.create({
        type: FailureType.CardDeclined,
        message: auth.status === 'requires_action' ? 'top-ups do not support 3-D Secure cards' : `card declined: ${auth.declineCode ?? 'unknown'}`,
        nonRetryable: true,
        details: [{ declineCode: auth.status === 'requires_action' ? 'authentication_not_supported' : auth.declineCode }],
      });
    }

    saga.add('refund card', () => undo.refundCapture({ idempotencyKey: key('refund'), captureKey: key('capture') }));
    await card.capturePayment({ idempotencyKey: key('capture'), authorizationId: auth.authorizationId, amount: amount.amount });

    await db.createTransfer({
      id: key('credit'),
      debitAccountId: ledgerAccount.cardClearing(amount.currency),
      creditAccountId: ledgerAccount.wallet(input.merchantId, input.customerId, amount.currency),
      amount: amount.amount,
      currency: amount.currency,
      kind: 'posted',
      code: 'topup',
      reference: topupId,
    });
    await db.setTopupStatus({ topupId, status: 'succeeded' });
    moveTo('succeeded');
    log.info('top-up credited', { ...logFields, amount: amount.amount });
  } catch (err) {
    failure = describeFailure(err);
    log.warn('top-up failed; compensating', { ...logFields, failure });
    await saga.compensate();
    await CancellationScope.nonCancellable(() => db.setTopupStatus({ topupId, status: 'failed', failure }));
    moveTo('failed');
    await condition(allHandlersFinished);
    if (!isBusinessFailure(err)) throw err;
    return snapshot();
  }
  await condition(allHandlersFinished);
  return snapshot();
}
