// The books of one merchant after a test file's scenarios, read as the chaos suite reads them
// (chaos/invariants.ts): our rows against the ledger journal and the card network's and the
// bank's own records in their schemas. Only what is that merchant's is judged here; stock is left
// to each test, and rows still in flight (a capture awaiting its settlement days later) are fine.
import { expect } from 'vitest';
import { checkInvariants } from '../../chaos/invariants.js';

export async function expectBooksOf(merchantId: string): Promise<void> {
  // Other files (reconciliation's) leave network and bank records that no row accounts for on
  // purpose; they are nobody's, so not this merchant's to answer for.
  const report = await checkInvariants(process.env.DATABASE_URL!, new Map(), [merchantId], { unknownReferences: false });
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
