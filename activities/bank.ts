// Transfers to banks, each under the workflow's idempotency key (activities/keyed-call.ts).
import { BankRejectedError, BankUnavailableError, type BankClient, type BankTransfer } from '../platform/bank-client.js';
import { FailureType } from '../domain/index.js';
import { callUnderKey, keyedSystem, lookUpKey } from './keyed-call.js';

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
  const bank = keyedSystem<BankTransfer>({
    name: 'bank',
    call: 'bank transfer',
    client,
    Unavailable: BankUnavailableError,
    Rejected: BankRejectedError,
    rejectedType: FailureType.BankRejected,
  });

  return {
    async sendBankTransfer(req: {
      idempotencyKey: string;
      amount: string;
      currency: string;
      bankCode: string;
      accountNumber: string;
      reference: string;
    }): Promise<BankOutcome> {
      return outcomeOf(await callUnderKey(bank, req.idempotencyKey, (signal) => client.transfer({ ...req, amount: BigInt(req.amount), signal })));
    },

    /** What the bank did under a key, for a payout whose transfer call was canceled or never answered. */
    async lookUpBankTransfer({ idempotencyKey }: { idempotencyKey: string }): Promise<BankLookup> {
      const { found, inProgress, maxProcessingMs } = await lookUpKey(bank, idempotencyKey);
      return { transfer: found ? outcomeOf(found) : null, inProgress, maxProcessingMs };
    },
  };
}

function outcomeOf(transfer: BankTransfer): BankOutcome {
  return { status: transfer.status === 'paid' ? 'paid' : 'rejected', bankTransferId: transfer.id, ...(transfer.failureCode ? { failureCode: transfer.failureCode } : {}) };
}

export type BankActivities = ReturnType<typeof createBankActivities>;
