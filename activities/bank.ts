// Transfers to banks. Like the card network: every call carries the workflow's idempotency key,
// and an unknown outcome (a timeout, a lost response) is resolved by looking the key up.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { BankRejectedError, BankUnavailableError, type BankClient } from '../platform/bank-client.js';
import { FailureType } from '../domain/index.js';

export interface BankOutcome {
  status: 'paid' | 'rejected';
  bankTransferId: string;
  failureCode?: string;
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
      const beat = setInterval(() => Context.current().heartbeat(), 1_000);
      try {
        const transfer = await client.transfer({ ...req, amount: BigInt(req.amount) }).catch(async (err: unknown) => {
          if (err instanceof BankUnavailableError) {
            const known = await client.lookup(req.idempotencyKey).catch(() => null);
            if (known) return known;
          }
          throw err;
        });
        return {
          status: transfer.status === 'paid' ? 'paid' : 'rejected',
          bankTransferId: transfer.id,
          ...(transfer.failureCode ? { failureCode: transfer.failureCode } : {}),
        };
      } catch (err) {
        if (err instanceof BankRejectedError) {
          throw ApplicationFailure.create({
            type: FailureType.BankRejected,
            message: `bank rejected the request: ${err.code}`,
            nonRetryable: true,
            details: [{ code: err.code, status: err.status }],
          });
        }
        throw err;
      } finally {
        clearInterval(beat);
      }
    },
  };
}

export type BankActivities = ReturnType<typeof createBankActivities>;
