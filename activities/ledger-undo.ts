// Undo steps for ledger movements, registered before the step they undo. Each looks first at what
// the journal says happened, so it is safe whether the step ran, ran twice or never ran.
import type { PrismaClient } from '../platform/db.js';
import { createTransfer, voidPending } from '../platform/ledger.js';
import type { TransferCode } from '../domain/index.js';

export function createLedgerUndoActivities(prisma: PrismaClient) {
  return {
    /**
     * Voids a hold if it exists and is still unresolved. A hold that was never made (the wallet
     * was short) has nothing to undo; one already posted is given back by reversePostedTransfer.
     */
    async releaseHold({ id, pendingId }: { id: string; pendingId: string }): Promise<'voided' | 'nothing_to_do'> {
      const pending = await prisma.ledgerTransfer.findUnique({ where: { id: pendingId } });
      if (!pending) return 'nothing_to_do';
      const resolution = await prisma.ledgerTransfer.findUnique({ where: { pendingId } });
      if (resolution && resolution.id !== id) return 'nothing_to_do';
      await voidPending(prisma, { id, pendingId });
      return 'voided';
    },

    /** Moves back what a transfer (posted, or a posted hold) moved, if it happened. */
    async reversePostedTransfer({ id, transferId, code }: { id: string; transferId: string; code: TransferCode }): Promise<'reversed' | 'nothing_to_do'> {
      const done = await prisma.ledgerTransfer.findUnique({ where: { id: transferId } });
      if (!done) return 'nothing_to_do';
      await createTransfer(prisma, {
        id,
        debitAccountId: done.creditAccountId,
        creditAccountId: done.debitAccountId,
        amount: done.amount.toString(),
        currency: done.currency,
        kind: 'posted',
        code,
        ...(done.reference ? { reference: done.reference } : {}),
      });
      return 'reversed';
    },
  };
}

export type LedgerUndoActivities = ReturnType<typeof createLedgerUndoActivities>;
