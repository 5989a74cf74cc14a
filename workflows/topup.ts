// Wallet top-up: charge the customer's card, then credit their wallet. If the credit cannot be
// made after the card was charged, the card is refunded: the customer never pays for value they did
// not get. A cancel from the Web UI before the credit undoes what the card did (a call in flight is
// canceled and resolved by its key first); once the wallet is credited the top-up has happened and
// a cancel changes nothing. The credit's transfer id is derived from the top-up, so a retry can
// never credit twice.
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
import type { CardOutcome } from '../activities/card-network.js';
import { FailureType, PaymentStatus, stepKey, topupInputProblem, walletPostings, type TopupInput, type TopupSnapshot, type TopupStatus } from '../domain/index.js';
import { cardNetworkCall, compensation, databaseWrite, localDatabaseWrite } from './activity-profiles.js';
import { describeFailure, failureType, interruptedByCancel, isBusinessFailure, refuseInput } from './failures.js';
import { cardOperationUnderKey } from './resolve-by-key.js';
import { Saga } from './saga.js';
import { topupAcceptedUpdate, topupStatusQuery } from './wallet-messages.js';

const db = proxyActivities<Activities>(databaseWrite);
const localDb = proxyLocalActivities<Activities>(localDatabaseWrite);
const card = proxyActivities<Activities>(cardNetworkCall);
const undo = proxyActivities<Activities>(compensation);

export async function topupWorkflowV2(input: TopupInput): Promise<TopupSnapshot> {
  // An input the API could not have built (a start by hand) fails the run before anything is charged.
  refuseInput(topupInputProblem(input));
  const { topupId, amount } = input;
  const parties = { id: topupId, merchantId: input.merchantId, customerId: input.customerId };
  const logFields = { topupId, merchantId: input.merchantId, customerId: input.customerId };
  const key = (step: string) => stepKey(topupId, step);
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

  await CancellationScope.nonCancellable(() => localDb.createTopupRecord(input));
  accepted = true;

  // The network's answers once known (null: it refused the request, so did nothing), so the undos
  // need no lookup; undefined while unknown.
  let authorization: CardOutcome | null | undefined;
  let capture: CardOutcome | null | undefined;
  const refusedMeansNothing = (set: (v: null) => void) => (err: unknown) => {
    if (failureType(err) === FailureType.CardNetworkRejected) set(null);
    throw err;
  };

  const saga = new Saga(logFields);
  try {
    saga.add('void authorization', async () => {
      const auth = authorization !== undefined ? authorization : await cardOperationUnderKey(key('authorize'), Date.now());
      if (auth && auth.status !== 'declined') await undo.voidAuthorizationById({ idempotencyKey: key('void'), authorizationId: auth.authorizationId });
    });
    const auth = await card
      .authorizePayment({ idempotencyKey: key('authorize'), amount: amount.amount, currency: amount.currency, token: input.payment.token, reference: topupId })
      .catch(refusedMeansNothing((v) => (authorization = v)));
    authorization = auth;
    if (auth.status !== 'succeeded') {
      throw ApplicationFailure.create({
        type: FailureType.CardDeclined,
        message: auth.status === 'requires_action' ? 'top-ups do not support 3-D Secure cards' : `card declined: ${auth.declineCode ?? 'unknown'}`,
        nonRetryable: true,
        details: [{ declineCode: auth.status === 'requires_action' ? 'authentication_not_supported' : auth.declineCode }],
      });
    }

    saga.add('refund card', async () => {
      const captured = capture !== undefined ? capture : await cardOperationUnderKey(key('capture'), Date.now());
      if (captured?.status === 'succeeded') await undo.refundPayment({ idempotencyKey: key('refund'), authorizationId: captured.authorizationId, amount: captured.amount });
    });
    capture = await card
      .capturePayment({ idempotencyKey: key('capture'), authorizationId: auth.authorizationId, amount: amount.amount })
      .catch(refusedMeansNothing((v) => (capture = v)));

    // The point of no return, shielded: a cancel arriving now is too late to undo a charge that
    // is about to become the customer's money.
    await CancellationScope.nonCancellable(() => db.createTransfer(walletPostings.topupCredit(parties, amount)));
  } catch (err) {
    const canceled = isCancellation(err) || interruptedByCancel(err);
    failure = canceled ? { code: 'canceled', message: 'canceled from the Web UI before the wallet was credited' } : describeFailure(err);
    log.warn('top-up did not complete; compensating', { ...logFields, failure });
    await saga.compensate();
    await CancellationScope.nonCancellable(() => db.setTopupStatus({ topupId, status: 'failed', failure }));
    moveTo('failed');
    await CancellationScope.nonCancellable(() => condition(allHandlersFinished));
    if (canceled) throw new CancelledFailure(failure.message);
    if (!isBusinessFailure(err)) throw err;
    return snapshot();
  }
  await CancellationScope.nonCancellable(() => db.setTopupStatus({ topupId, status: 'succeeded' }));
  moveTo('succeeded');
  log.info('top-up credited', { ...logFields, amount: amount.amount });
  await CancellationScope.nonCancellable(() => condition(allHandlersFinished));
  return snapshot();
}
