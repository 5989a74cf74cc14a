// The books of one merchant after a test file's scenarios, read as the chaos suite reads them
// (chaos/invariants.ts): our rows against the ledger journal and the card network's and the
// bank's own records. Only what is that merchant's is judged here; stock is left to each test, and
// rows still in flight (a capture awaiting its settlement days later) are fine.
//
// End-to-end files read the simulators' records; workflow files (time-skipping, in-process fakes)
// pass `{ fakes: true }` and the records of every fake their tests made are read instead.
import { expect } from 'vitest';
import { checkInvariants, type OutsideRecords } from '../../chaos/invariants.js';
import { banksMade } from './fake-bank.js';
import { cardNetworksMade } from './fake-card-network.js';

export async function expectBooksOf(merchantId: string, { fakes = false }: { fakes?: boolean } = {}): Promise<void> {
  // Other files (reconciliation's) leave network and bank records that no row accounts for on
  // purpose; they are nobody's, so not this merchant's to answer for.
  const report = await checkInvariants(process.env.DATABASE_URL!, new Map(), [merchantId], {
    unknownReferences: false,
    ...(fakes ? { outside: recordsOfFakes() } : {}),
  });
  const { ledgerMismatches, doubleCaptures, lostTopups, payoutsUnresolved } = report;
  expect({ ledgerMismatches, doubleCaptures, lostTopups, payoutsUnresolved }, report.problems.join('\n')).toEqual({
    ledgerMismatches: 0,
    doubleCaptures: 0,
    lostTopups: 0,
    payoutsUnresolved: 0,
  });
  // It looked at something: a file that wrote nothing for its merchant proves nothing here.
  expect(report.seen.checkouts + report.seen.topups + report.seen.payouts).toBeGreaterThan(0);
}

/** The fakes' operations in the simulators' shapes, with each authorization's state as the simulator keeps it. */
function recordsOfFakes(): OutsideRecords {
  const operations = cardNetworksMade.flatMap((n) => n.operations);
  const of = (authId: string, type: string) => operations.filter((op) => op.authorizationId === authId && op.type === type && op.status === 'succeeded');
  const sum = (ops: typeof operations) => ops.reduce((total, op) => total + BigInt(op.amount), 0n).toString();
  return {
    cardOperations: operations.map((op) => ({
      idempotency_key: op.idempotencyKey,
      type: op.type,
      status: op.status,
      amount: op.amount,
      reference: op.reference,
      authorization_id: op.authorizationId,
    })),
    authorizations: operations
      .filter((op) => op.type === 'authorization')
      .map((auth) => {
        const authenticationDeclined = operations.some((op) => op.authorizationId === auth.id && op.type === 'authentication' && op.status === 'declined');
        const state =
          auth.status === 'declined' || authenticationDeclined
            ? 'declined'
            : of(auth.id, 'void').length > 0
              ? 'voided'
              : of(auth.id, 'capture').length > 0
                ? 'captured'
                : auth.status === 'requires_action' && of(auth.id, 'authentication').length === 0
                  ? 'requires_action'
                  : 'authorized';
        return { id: auth.id, state, captured_amount: sum(of(auth.id, 'capture')), refunded_amount: sum(of(auth.id, 'refund')), reference: auth.reference };
      }),
    bankTransfers: banksMade.flatMap((b) => b.transfers.map((t) => ({ reference: t.reference, status: t.status, amount: t.amount }))),
  };
}
