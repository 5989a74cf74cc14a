// Ledger writes as activities. The ledger core (platform/ledger.ts) makes every write idempotent by
// transfer id, so Temporal may retry any of these freely: a retry whose first attempt committed
// answers `exists` and moves nothing. Refusals the data decides (insufficient funds, a conflicting
// transfer id or resolution) become non-retryable failures typed for the workflow to branch on;
// anything else (database down, a lock timeout, a bug) stays retryable.
import { ApplicationFailure } from '@temporalio/activity';
import { FailureType, type TransferRequest, type TransferResult } from '../domain/index.js';
import type { PrismaClient } from '../platform/db.js';
import { createTransfer, LedgerError, postPending, voidPending, type PostPendingRequest, type VoidPendingRequest } from '../platform/ledger.js';

/** Not a business outcome (domain FailureType): a workflow that meets it fails, after its undos. */
export const INVALID_LEDGER_REQUEST = 'InvalidLedgerRequest';

export async function refusalsAsFailures<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (err instanceof LedgerError) {
      throw ApplicationFailure.create({ type: FailureType[err.type], message: err.message, nonRetryable: true });
    }
    // A malformed request (a zero or negative amount, an account id the ledger does not know) is
    // the caller's bug: the same request can only fail again, so it ends the step at once, visibly,
    // instead of being retried for ever.
    if (err instanceof RangeError) {
      throw ApplicationFailure.create({ type: INVALID_LEDGER_REQUEST, message: err.message, nonRetryable: true });
    }
    throw err;
  }
}

export function createLedgerActivities(prisma: PrismaClient) {
  return {
    /** A posted or pending transfer. InsufficientFunds when a no-overdraft account cannot cover it. */
    async createTransfer(req: TransferRequest): Promise<TransferResult> {
      return refusalsAsFailures(() => createTransfer(prisma, req));
    },

    /** Posts all or part of a pending transfer; the rest of the hold is released. */
    async postPendingTransfer(req: PostPendingRequest): Promise<TransferResult> {
      return refusalsAsFailures(() => postPending(prisma, req));
    },

    /** Releases a pending transfer's hold. */
    async voidPendingTransfer(req: VoidPendingRequest): Promise<TransferResult> {
      return refusalsAsFailures(() => voidPending(prisma, req));
    },
  };
}

export type LedgerActivities = ReturnType<typeof createLedgerActivities>;
