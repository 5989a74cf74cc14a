// Transfers to banks. Like the card network: every call carries the workflow's idempotency key,
// and an unknown outcome (a timeout, a lost response) is resolved by looking the key up.
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { BankRejectedError, BankUnavailableError, type BankClient, type BankTransfer } from '../platform/bank-client.js';
import { FailureType } from '../domain/index.js';

export interface BankOutcome {
  status: 'paid' | 'rejected';
  bankTransferId: string;
  failureCode?: string;
}

/** Where a transfer under a key stands at the bank; read like CardLookup (activities/card-network.ts). */
export interface BankLookup {
  transfer: BankOutcome | null;
  inProgress: boolean;
  maxProcessingMs: number;
}

export function createBankActivities(client: BankClient) {
  return {
    async sendBankTransfer(req: {
      idempotencyKey: string;
      amount: string;
      currency: string;
      bankCode: string;
      accountNumber: string;
      reference: string;
    }): Promise<BankOutcome> {
      const context = Context.current();
      const beat = setInterval(() => context.heartbeat(), 1_000);
      try {
        const transfer = await client.transfer({ ...req, amount: BigInt(req.amount), signal: context.cancellationSignal }).catch(async (err: unknown) => {
          // Canceled by the workflow: it resolves the key itself before it undoes anything.
          if (context.cancellationSignal.aborted) throw new CancelledFailure(`bank transfer under ${req.idempotencyKey} canceled`);
          if (err instanceof BankUnavailableError) {
            const known = await client.lookup(req.idempotencyKey).catch(() => null);
            if (known) return known;
          }
          throw err;
        });
        return outcomeOf(transfer);
      } catch (err) {
        if (err instanceof BankRejectedError) throw rejected(err);
        throw err;
      } finally {
        clearInterval(beat);
      }
    },

    /** What the bank did under a key, for a payout whose transfer call was canceled or never answered. */
    async lookUpBankTransfer({ idempotencyKey }: { idempotencyKey: string }): Promise<BankLookup> {
      try {
        const transfer = await client.lookup(idempotencyKey);
        return { transfer: transfer ? outcomeOf(transfer) : null, inProgress: false, maxProcessingMs: client.maxProcessingMs };
      } catch (err) {
        if (err instanceof BankUnavailableError && err.status === 409) return { transfer: null, inProgress: true, maxProcessingMs: client.maxProcessingMs };
        if (err instanceof BankRejectedError) throw rejected(err);
        throw err;
      }
    },
  };
}

function outcomeOf(transfer: BankTransfer): BankOutcome {
  return { status: transfer.status === 'paid' ? 'paid' : 'rejected', bankTransferId: transfer.id, ...(transfer.failureCode ? { failureCode: transfer.failureCode } : {}) };
}

function rejected(err: BankRejectedError): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.BankRejected,
    message: `bank rejected the request: ${err.code}`,
    nonRetryable: true,
    details: [{ code: err.code, status: err.status }],
  });
}

export type BankActivities = ReturnType<typeof createBankActivities>;
