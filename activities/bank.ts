// Transfers to banks, each under the workflow's idempotency key (activities/keyed-call.ts).
import { ApplicationFailure } from '@temporalio/activity';
import { BankRejectedError, BankUnavailableError, type BankClient, type BankTransfer } from '../platform/bank-client.js';
import { FailureType } from '../domain/index.js';
import { callUnderKey, lookUpKey, type KeyedSystem } from './keyed-call.js';

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
  const bank: KeyedSystem<BankTransfer> = {
    call: 'bank transfer',
    lookup: (key) => client.lookup(key),
    maxProcessingMs: client.maxProcessingMs,
    isUnknown: (err) => err instanceof BankUnavailableError,
    isInProgress: (err) => err instanceof BankUnavailableError && err.status === 409,
    refusal: (err) => (err instanceof BankRejectedError ? rejected(err) : undefined),
  };

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

function rejected(err: BankRejectedError): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.BankRejected,
    message: `bank rejected the request: ${err.code}`,
    nonRetryable: true,
    details: [{ code: err.code, status: err.status }],
  });
}

export type BankActivities = ReturnType<typeof createBankActivities>;
