// One reconciliation at a time per scope (domain reconciliationScope: the platform, or one
// merchant): a row per scope names the run that holds it.
//
// The API claims the scope before it starts a run, so a second request is answered 409 with the
// running one's id and starts nothing. The workflow claims again as its first step (a no-op for the
// API's own run, which already holds it), so runs started by the schedule, the CLI or the Web UI
// keep the rule too and fail at once when their scope is taken. A run gives the scope back when it
// finishes, completed or failed (releaseReconciliationLease, in the same transaction as its final
// status). A holder whose workflow is gone (terminated, or never started because the API died
// between claiming and starting it) is found out by the next claim, which takes the scope over.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Prisma } from '../generated/prisma/client.js';
import { reconciliationScope, type ReconciliationAction, type ReconciliationClaim, type ReconciliationCounts, type ReconciliationKind } from '../domain/index.js';
import type { PrismaClient } from './db.js';

/**
 * How long a claim whose workflow does not exist yet counts as a run being started: the API claims,
 * then starts. Only an API that died in between leaves such a claim; its scope is free again after this.
 */
export const STARTING_GRACE_MS = 60_000;

/** A claim is retried this often when holders keep going away under it, then reported as taken. */
const CLAIM_ATTEMPTS = 5;

/**
 * Claims the scope of `merchantId` (absent: the platform's) for `reconciliationId`. Claiming again
 * for the run that holds it is a no-op that succeeds.
 */
export async function claimReconciliationLease(
  prisma: PrismaClient,
  temporal: Client,
  { reconciliationId, merchantId }: { reconciliationId: string; merchantId?: string | undefined },
): Promise<ReconciliationClaim> {
  const scope = reconciliationScope(merchantId);
  let holderId: string | undefined;
  for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
    const { count } = await prisma.reconciliationLease.createMany({ data: [{ scope, reconciliationId }], skipDuplicates: true });
    if (count === 1) return { claimed: true };
    const holder = await prisma.reconciliationLease.findUnique({ where: { scope } });
    if (!holder) continue; // given back in between
    if (holder.reconciliationId === reconciliationId) return { claimed: true };
    holderId = holder.reconciliationId;
    if (await isHolding(temporal, holder)) return { claimed: false, runningId: holder.reconciliationId };
    // Gone without finishing: its row says failed, with what it had found, and the scope is free.
    // Deleting only that very claim leaves one taken over meanwhile by someone else alone.
    await prisma.$transaction(async (tx) => {
      const taken = await tx.reconciliationLease.deleteMany({ where: { scope, reconciliationId: holder.reconciliationId, claimedAt: holder.claimedAt } });
      if (taken.count === 0) return;
      const counts = await recordedCounts(tx, holder.reconciliationId);
      await tx.reconciliation.updateMany({
        where: { id: holder.reconciliationId, status: 'running' },
        data: { status: 'failed', counts: counts as unknown as Prisma.InputJsonObject, finishedAt: new Date() },
      });
    });
  }
  if (holderId === undefined) throw new Error(`could not claim reconciliation scope ${scope}: it kept changing hands`);
  return { claimed: false, runningId: holderId };
}

/** Gives the scope back, if `reconciliationId` holds it. */
export async function releaseReconciliationLease(prisma: PrismaClient | Prisma.TransactionClient, reconciliationId: string): Promise<void> {
  await prisma.reconciliationLease.deleteMany({ where: { reconciliationId } });
}

/** The run holding a scope, if any: the API shows a run the workflow has not written yet through it. */
export async function reconciliationLeaseOf(prisma: PrismaClient, reconciliationId: string): Promise<{ scope: string } | null> {
  return prisma.reconciliationLease.findFirst({ where: { reconciliationId }, select: { scope: true } });
}

/** The counts of a run, from the items it recorded (so a chain of continued runs reports as one). */
export async function recordedCounts(prisma: PrismaClient | Prisma.TransactionClient, reconciliationId: string): Promise<ReconciliationCounts> {
  const groups = await prisma.reconciliationItem.groupBy({ by: ['kind', 'action'], where: { reconciliationId }, _count: { _all: true } });
  const counts: ReconciliationCounts = { repaired: 0, reported: 0, byKind: {} };
  for (const g of groups) {
    counts[g.action as ReconciliationAction] += g._count._all;
    counts.byKind[g.kind as ReconciliationKind] = g._count._all;
  }
  return counts;
}

/** Whether a holder's run is still on: its workflow runs, or it was claimed a moment ago and is being started. */
async function isHolding(temporal: Client, holder: { reconciliationId: string; claimedAt: Date }): Promise<boolean> {
  try {
    const { status } = await temporal.workflow.getHandle(holder.reconciliationId).describe();
    return status.name === 'RUNNING';
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
    return Date.now() - holder.claimedAt.getTime() < STARTING_GRACE_MS;
  }
}
