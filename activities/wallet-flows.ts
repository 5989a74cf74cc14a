// The rows of the wallet flows (top-ups and payouts): written by their workflows, read by the API.
// Each write is idempotent: creating an existing row changes nothing, and status writes are plain
// overwrites of the workflow's current state. Every status write records its event in the same
// transaction (activities/events.ts).
import type { PrismaClient } from '../platform/db.js';
import type { Payout, Topup } from '../generated/prisma/client.js';
import type { PayoutInput, PayoutStatus, TopupInput, TopupStatus } from '../domain/index.js';
import { createEventRecorder, snapshotOf, type EventDraft } from './events.js';

export interface Failure {
  code: string;
  message: string;
}

function topupEvent(t: Topup): EventDraft {
  return {
    merchantId: t.merchantId,
    resourceType: 'topup',
    resourceId: t.id,
    status: t.status,
    data: snapshotOf({
      id: t.id,
      status: t.status,
      customerId: t.customerId,
      amount: t.amount,
      currency: t.currency,
      failureCode: t.failureCode,
      failureMessage: t.failureMessage,
    }),
  };
}

function payoutEvent(p: Payout): EventDraft {
  return {
    merchantId: p.merchantId,
    resourceType: 'payout',
    resourceId: p.id,
    status: p.status,
    // The account number stays out: events travel to merchants' servers and their logs.
    data: snapshotOf({
      id: p.id,
      status: p.status,
      customerId: p.customerId,
      amount: p.amount,
      currency: p.currency,
      scheduledAt: p.scheduledAt,
      bankTransferId: p.bankTransferId,
      failureCode: p.failureCode,
      failureMessage: p.failureMessage,
    }),
  };
}

export function createWalletFlowActivities(prisma: PrismaClient) {
  const events = createEventRecorder(prisma);
  return {
    async createTopupRecord(input: TopupInput): Promise<void> {
      await events.transaction(async (tx, emit) => {
      const row = await tx.topup.upsert({
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
      if (row.status === 'processing') await emit(topupEvent(row));
      });
    },

    async setTopupStatus({ topupId, status, failure }: { topupId: string; status: TopupStatus; failure?: Failure }): Promise<void> {
      await events.transaction(async (tx, emit) => {
        const row = await tx.topup.update({
          where: { id: topupId },
          data: { status, failureCode: failure?.code ?? null, failureMessage: failure?.message ?? null },
        });
        await emit(topupEvent(row));
      });
    },

    async createPayoutRecord({ input, status, failure }: { input: PayoutInput; status: PayoutStatus; failure?: Failure }): Promise<void> {
      await events.transaction(async (tx, emit) => {
      const row = await tx.payout.upsert({
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
      // A retry finds the row as the first attempt wrote it, and that attempt's event.
      await emit(payoutEvent(row));
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
      await events.transaction(async (tx, emit) => {
        const row = await tx.payout.update({
          where: { id: payoutId },
          data: {
            status,
            ...(bankTransferId ? { bankTransferId } : {}),
            failureCode: failure?.code ?? null,
            failureMessage: failure?.message ?? null,
          },
        });
        await emit(payoutEvent(row));
      });
    },
  };
}

export type WalletFlowActivities = ReturnType<typeof createWalletFlowActivities>;
