// The rows of the wallet flows (top-ups and payouts): written by their workflows, read by the API.
// Each write is idempotent: creating an existing row changes nothing, and status writes are plain
// overwrites of the workflow's current state.
import type { PrismaClient } from '../platform/db.js';
import type { PayoutInput, PayoutStatus, TopupInput, TopupStatus } from '../domain/index.js';

export interface Failure {
  code: string;
  message: string;
}

export function createWalletFlowActivities(prisma: PrismaClient) {
  return {
    async createTopupRecord(input: TopupInput): Promise<void> {
      await prisma.topup.upsert({
        where: { id: input.topupId },
        update: {},
        create: {
          id: input.topupId,
          merchantId: input.merchantId,
          customerId: input.customerId,
          idempotencyKey: input.idempotencyKey,
          amount: BigInt(input.amount.amount),
          currency: input.amount.currency,
          status: 'processing',
        },
      });
    },

    async setTopupStatus({ topupId, status, failure }: { topupId: string; status: TopupStatus; failure?: Failure }): Promise<void> {
      await prisma.topup.update({
        where: { id: topupId },
        data: { status, failureCode: failure?.code ?? null, failureMessage: failure?.message ?? null },
      });
    },

    async createPayoutRecord({ input, status, failure }: { input: PayoutInput; status: PayoutStatus; failure?: Failure }): Promise<void> {
      await prisma.payout.upsert({
        where: { id: input.payoutId },
        update: {},
        create: {
          id: input.payoutId,
          merchantId: input.merchantId,
          customerId: input.customerId,
          idempotencyKey: input.idempotencyKey,
          amount: BigInt(input.amount.amount),
          currency: input.amount.currency,
          bankCode: input.bankAccount.bankCode,
          accountNumber: input.bankAccount.accountNumber,
          scheduledAt: new Date(input.scheduledAt),
          status,
          failureCode: failure?.code ?? null,
          failureMessage: failure?.message ?? null,
        },
      });
    },

    async setPayoutStatus({
      payoutId,
      status,
      bankTransferId,
      failure,
    }: {
      payoutId: string;
      status: PayoutStatus;
      bankTransferId?: string;
      failure?: Failure;
    }): Promise<void> {
      await prisma.payout.update({
        where: { id: payoutId },
        data: {
          status,
          ...(bankTransferId ? { bankTransferId } : {}),
          failureCode: failure?.code ?? null,
          failureMessage: failure?.message ?? null,
        },
      });
    },
  };
}

export type WalletFlowActivities = ReturnType<typeof createWalletFlowActivities>;
