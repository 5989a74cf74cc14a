// Reconciliation: finds where our records disagree with the card network's, the bank's and the
// ledger's, for records older than the window's end (younger ones are in flight). Each check is one
// activity that lists one side, compares and acts: only three repairs are safe to automate, each
// idempotent under a key derived from the record (void `recon:<authorizationId>:void`, release a
// checkout's stock, credit `<topupId>:credit`), so a rerun or a retried activity never acts twice.
// Everything else is reported for a person. Items are keyed (run, kind, resource): a retry rewrites
// nothing.
import { ApplicationFailure } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Prisma } from '../generated/prisma/client.js';
import type { PrismaClient } from '../platform/db.js';
import type { BankClient } from '../platform/bank-client.js';
import { CardNetworkRejectedError, type CardNetworkClient } from '../platform/card-network-client.js';
import { checkLedger, createTransfer } from '../platform/ledger.js';
import {
  CAPTURED_STATUSES,
  CLOSED_BEFORE_CAPTURE,
  ledgerAccount,
  type CheckoutStatus,
  type ReconciliationAction,
  type ReconciliationCounts,
  type ReconciliationKind,
  type ReconciliationStatus,
  type ReconciliationWindow,
} from '../domain/index.js';
import type { Failure } from './wallet-flows.js';

export interface ReconciliationDeps {
  prisma: PrismaClient;
  cardNetwork: CardNetworkClient;
  bank: BankClient;
  /** Tells whether a payment's workflow is still running; without it nothing is repaired. */
  temporal?: Client | undefined;
  releaseStock: (req: { checkoutId: string }) => Promise<{ released: number }>;
  setTopupStatus: (req: { topupId: string; status: 'succeeded'; failure?: Failure }) => Promise<void>;
}

/** How many disagreements one check found, by kind. */
export type CheckCounts = Partial<Record<ReconciliationKind, number>>;

const REPAIRED: ReadonlySet<ReconciliationKind> = new Set(['authorization_not_voided', 'reservation_not_released', 'topup_not_credited']);

export function createReconciliationActivities(deps: ReconciliationDeps) {
  const { prisma, cardNetwork, bank } = deps;

  async function isRunning(workflowId: string): Promise<boolean> {
    if (!deps.temporal) {
      throw ApplicationFailure.create({ type: 'ReconciliationMisconfigured', message: 'reconciliation needs a Temporal client to tell running payments apart', nonRetryable: true });
    }
    try {
      const d = await deps.temporal.workflow.getHandle(workflowId).describe();
      return d.status.name === 'RUNNING';
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  }

  function range(w: ReconciliationWindow) {
    return { createdBefore: new Date(w.until), ...(w.since ? { createdAfter: new Date(w.since) } : {}) };
  }
  function createdAt(w: ReconciliationWindow) {
    return { lt: new Date(w.until), ...(w.since ? { gte: new Date(w.since) } : {}) };
  }

  function recorder(w: ReconciliationWindow) {
    const counts: CheckCounts = {};
    return {
      counts,
      async record(kind: ReconciliationKind, resourceId: string, merchantId: string | null, details: Record<string, unknown>) {
        const action: ReconciliationAction = REPAIRED.has(kind) ? 'repaired' : 'reported';
        await prisma.reconciliationItem.upsert({
          where: { reconciliationId_kind_resourceId: { reconciliationId: w.reconciliationId, kind, resourceId } },
          update: {},
          create: { reconciliationId: w.reconciliationId, kind, resourceId, merchantId, action, details: details as Prisma.InputJsonObject },
        });
        counts[kind] = (counts[kind] ?? 0) + 1;
      },
    };
  }

  return {
    async startReconciliation(w: ReconciliationWindow): Promise<void> {
      await prisma.reconciliation.upsert({
        where: { id: w.reconciliationId },
        update: {},
        create: { id: w.reconciliationId, status: 'running', since: w.since ? new Date(w.since) : null, until: new Date(w.until) },
      });
    },

    async finishReconciliation({ reconciliationId, status }: { reconciliationId: string; status: Exclude<ReconciliationStatus, 'running'> }): Promise<ReconciliationCounts> {
      const groups = await prisma.reconciliationItem.groupBy({ by: ['kind', 'action'], where: { reconciliationId }, _count: { _all: true } });
      const counts: ReconciliationCounts = { repaired: 0, reported: 0, byKind: {} };
      for (const g of groups) {
        counts[g.action as ReconciliationAction] += g._count._all;
        counts.byKind[g.kind as ReconciliationKind] = g._count._all;
      }
      await prisma.reconciliation.update({ where: { id: reconciliationId }, data: { status, counts: counts as unknown as Prisma.InputJsonObject, finishedAt: new Date() } });
      return counts;
    },

    /**
     * (1) Authorizations still holding a customer's funds that nothing will capture: the checkout
     * ended without capture, has no row, or its workflow is gone. Voided. One whose checkout was
     * captured is reported: voiding would take the merchant's money back.
     */
    async reconcileAuthorizations(w: ReconciliationWindow): Promise<CheckCounts> {
      const r = recorder(w);
      for (const auth of await cardNetwork.listAuthorizations({ state: 'authorized', ...range(w) })) {
        const [checkout, topup] = await Promise.all([
          prisma.checkout.findUnique({ where: { id: auth.reference }, select: { status: true, merchantId: true } }),
          prisma.topup.findUnique({ where: { id: auth.reference }, select: { status: true, merchantId: true } }),
        ]);
        const merchantId = checkout?.merchantId ?? topup?.merchantId ?? null;
        const details = { authorizationId: auth.id, reference: auth.reference, amount: auth.amount, currency: auth.currency, checkoutStatus: checkout?.status ?? null };
        if ((checkout && CAPTURED_STATUSES.includes(checkout.status as CheckoutStatus)) || topup?.status === 'succeeded') {
          await r.record('authorization_of_captured_checkout', auth.id, merchantId, details);
          continue;
        }
        const closed = checkout ? CLOSED_BEFORE_CAPTURE.includes(checkout.status as CheckoutStatus) : !topup;
        if (!closed && (await isRunning(auth.reference))) continue;
        try {
          await cardNetwork.void({ idempotencyKey: `recon:${auth.id}:void`, authorizationId: auth.id });
        } catch (err) {
          // Captured meanwhile (the workflow was alive after all): a person looks at it.
          if (err instanceof CardNetworkRejectedError && err.code === 'already_captured') {
            await r.record('authorization_of_captured_checkout', auth.id, merchantId, details);
            continue;
          }
          throw err;
        }
        await r.record('authorization_not_voided', auth.id, merchantId, details);
      }
      return r.counts;
    },

    /**
     * (2) Stock held for a checkout that ended without capture, or whose workflow is gone, goes back
     * on sale. Held stock of a captured checkout is reported: it was sold, releasing it would oversell.
     */
    async reconcileReservations(w: ReconciliationWindow): Promise<CheckCounts> {
      const r = recorder(w);
      const held = await prisma.stockReservation.findMany({
        where: { status: 'held', createdAt: createdAt(w) },
        select: { checkoutId: true, merchantId: true, checkout: { select: { status: true } } },
        distinct: ['checkoutId'],
      });
      for (const res of held) {
        const status = res.checkout.status as CheckoutStatus;
        const details = { checkoutId: res.checkoutId, checkoutStatus: status };
        if (CAPTURED_STATUSES.includes(status)) {
          if (!(await isRunning(res.checkoutId))) await r.record('reservation_of_captured_checkout', res.checkoutId, res.merchantId, details);
          continue;
        }
        if (!CLOSED_BEFORE_CAPTURE.includes(status) && (await isRunning(res.checkoutId))) continue;
        const { released } = await deps.releaseStock({ checkoutId: res.checkoutId });
        await r.record('reservation_not_released', res.checkoutId, res.merchantId, { ...details, released });
      }
      return r.counts;
    },

    /**
     * (3) A top-up whose card was captured (and not refunded) but whose wallet was never credited:
     * credited now under the top-up's own transfer id, which the workflow would have used, so the
     * wallet can never get it twice.
     */
    async reconcileTopups(w: ReconciliationWindow): Promise<CheckCounts> {
      const r = recorder(w);
      const topups = await prisma.topup.findMany({ where: { status: { in: ['processing', 'failed'] }, createdAt: createdAt(w) } });
      for (const t of topups) {
        const credit = `${t.id}:credit`;
        if (await prisma.ledgerTransfer.findUnique({ where: { id: credit }, select: { id: true } })) continue;
        const ops = await cardNetwork.listOperations(t.id);
        const captured = ops.some((op) => op.type === 'capture' && op.status === 'succeeded');
        const refunded = ops.some((op) => op.type === 'refund' && op.status === 'succeeded');
        if (!captured || refunded || (await isRunning(t.id))) continue;
        await createTransfer(prisma, {
          id: credit,
          debitAccountId: ledgerAccount.cardClearing(t.currency),
          creditAccountId: ledgerAccount.wallet(t.merchantId, t.customerId, t.currency),
          amount: t.amount.toString(),
          currency: t.currency,
          kind: 'posted',
          code: 'topup',
          reference: t.id,
        });
        await deps.setTopupStatus({ topupId: t.id, status: 'succeeded' });
        await r.record('topup_not_credited', t.id, t.merchantId, { topupId: t.id, previousStatus: t.status, amount: t.amount.toString(), currency: t.currency, transferId: credit });
      }
      return r.counts;
    },

    /** (4) Captures on one side only. Reported: which side is right needs a person. */
    async reportCaptures(w: ReconciliationWindow): Promise<CheckCounts> {
      const r = recorder(w);
      const checkouts = await prisma.checkout.findMany({
        where: { status: { in: [...CAPTURED_STATUSES] }, paymentMethod: 'card', createdAt: createdAt(w) },
        select: { id: true, merchantId: true, status: true },
      });
      for (const c of checkouts) {
        const ops = await cardNetwork.listOperations(c.id);
        if (!ops.some((op) => op.type === 'capture' && op.status === 'succeeded')) {
          await r.record('checkout_captured_without_network_capture', c.id, c.merchantId, { checkoutId: c.id, checkoutStatus: c.status });
        }
      }
      for (const auth of await cardNetwork.listAuthorizations({ state: 'captured', ...range(w) })) {
        const details = { authorizationId: auth.id, reference: auth.reference, capturedAmount: auth.capturedAmount, currency: auth.currency };
        const [checkout, topup] = await Promise.all([
          prisma.checkout.findUnique({ where: { id: auth.reference }, select: { status: true, merchantId: true } }),
          prisma.topup.findUnique({ where: { id: auth.reference }, select: { id: true } }),
        ]);
        if (topup) continue; // top-ups are check (3)'s
        if (!checkout) {
          await r.record('network_capture_unknown_reference', auth.id, null, details);
        } else if (!CAPTURED_STATUSES.includes(checkout.status as CheckoutStatus) && !(await isRunning(auth.reference))) {
          await r.record('network_capture_without_captured_checkout', auth.id, checkout.merchantId, { ...details, checkoutStatus: checkout.status });
        }
      }
      return r.counts;
    },

    /** (4) Payouts the bank paid that the ledger never posted, and posts with no paid bank transfer. Reported. */
    async reportPayouts(w: ReconciliationWindow): Promise<CheckCounts> {
      const r = recorder(w);
      const ids = new Set<string>();
      for (const p of await prisma.payout.findMany({ where: { status: 'paid', createdAt: createdAt(w) }, select: { id: true } })) ids.add(p.id);
      for (const t of await bank.listTransfersByStatus({ status: 'paid', ...range(w) })) ids.add(t.reference);
      for (const t of await prisma.ledgerTransfer.findMany({ where: { code: 'payout', kind: 'post_pending', createdAt: createdAt(w) }, select: { reference: true } })) {
        if (t.reference) ids.add(t.reference);
      }
      for (const id of ids) {
        const payout = await prisma.payout.findUnique({ where: { id }, select: { merchantId: true, status: true, bankTransferId: true } });
        if (payout && (await isRunning(id))) continue;
        const [posted, transfers] = await Promise.all([
          prisma.ledgerTransfer.findUnique({ where: { id: `${id}:post` }, select: { id: true } }),
          bank.listTransfers(id),
        ]);
        const paid = transfers.find((t) => t.status === 'paid');
        const details = { payoutId: id, payoutStatus: payout?.status ?? null, bankTransferId: paid?.id ?? payout?.bankTransferId ?? null };
        if ((paid || payout?.status === 'paid') && !posted) await r.record('payout_paid_not_posted', id, payout?.merchantId ?? null, details);
        else if (posted && !paid) await r.record('payout_posted_without_bank_transfer', id, payout?.merchantId ?? null, details);
      }
      return r.counts;
    },

    /**
     * (4) Refunds on one side only. Reported, never repaired: refunding again or posting a refund
     * transfer moves money a person must decide about. (a) a `succeeded` row without a succeeded
     * refund at the network under its key (card checkouts) or without its ledger transfer; (b) a
     * succeeded refund at the network for a checkout that no `succeeded` row accounts for (row
     * missing, failed, or pending with the workflow gone): the card got money back our books do not
     * show; (c) a `pending` row whose checkout workflow is gone, with nothing at the network.
     */
    async reportRefunds(w: ReconciliationWindow): Promise<CheckCounts> {
      const r = recorder(w);
      const until = new Date(w.until);
      const refundKey = (checkoutId: string, refundId: string) => `${checkoutId}:refund:${refundId}`;

      // (a)
      const succeeded = await prisma.refund.findMany({
        where: { status: 'succeeded', createdAt: createdAt(w) },
        select: { id: true, checkoutId: true, merchantId: true, amount: true, currency: true, checkout: { select: { paymentMethod: true } } },
      });
      for (const row of succeeded) {
        const key = refundKey(row.checkoutId, row.id);
        const transferId = `${row.checkoutId}:ledger-refund:${row.id}`;
        const [op, transfer] = await Promise.all([
          row.checkout.paymentMethod === 'card' ? cardNetwork.lookup(key) : Promise.resolve(null),
          prisma.ledgerTransfer.findUnique({ where: { id: transferId }, select: { id: true } }),
        ]);
        const networkRefunded = row.checkout.paymentMethod !== 'card' || (op?.type === 'refund' && op.status === 'succeeded');
        if (networkRefunded && transfer) continue;
        await r.record('refund_without_network_refund', row.id, row.merchantId, {
          refundId: row.id,
          checkoutId: row.checkoutId,
          amount: row.amount.toString(),
          currency: row.currency,
          idempotencyKey: key,
          networkRefund: networkRefunded,
          networkStatus: op ? `${op.type}:${op.status}` : null,
          ledgerTransferId: transfer ? transferId : null,
        });
      }

      // (b) Every card checkout of the window, its network refunds older than the window's end.
      // The capture compensation (`<checkout>:refund:compensation`, workflows/checkout.ts) has no row
      // by design: it gives back a capture of a checkout that then failed.
      const accounted = new Set<string>();
      const checkouts = await prisma.checkout.findMany({ where: { paymentMethod: 'card', createdAt: createdAt(w) }, select: { id: true, merchantId: true } });
      for (const c of checkouts) {
        const prefix = `${c.id}:refund:`;
        const ops = (await cardNetwork.listOperations(c.id)).filter(
          (op) => op.type === 'refund' && op.status === 'succeeded' && new Date(op.createdAt) < until && op.idempotencyKey.startsWith(prefix),
        );
        for (const op of ops) {
          const refundId = op.idempotencyKey.slice(prefix.length);
          if (refundId === 'compensation') continue;
          const row = await prisma.refund.findFirst({ where: { id: refundId, checkoutId: c.id }, select: { status: true } });
          if (row?.status === 'succeeded') continue;
          if (row?.status === 'pending') {
            if (await isRunning(c.id)) continue; // the workflow is still finishing it
            accounted.add(refundId);
          }
          await r.record('network_refund_without_refund', op.id, c.merchantId, {
            networkRefundId: op.id,
            idempotencyKey: op.idempotencyKey,
            refundId,
            checkoutId: c.id,
            refundStatus: row?.status ?? null,
            amount: op.amount,
            currency: op.currency,
          });
        }
      }

      // (c)
      const pending = await prisma.refund.findMany({
        where: { status: 'pending', createdAt: createdAt(w) },
        select: { id: true, checkoutId: true, merchantId: true, amount: true, currency: true },
      });
      for (const row of pending) {
        if (accounted.has(row.id) || (await isRunning(row.checkoutId))) continue;
        await r.record('refund_stuck_pending', row.id, row.merchantId, {
          refundId: row.id,
          checkoutId: row.checkoutId,
          amount: row.amount.toString(),
          currency: row.currency,
        });
      }
      return r.counts;
    },

    /** (4) The ledger's own invariants (platform/ledger.ts checkLedger), over every account. Reported. */
    async reportLedger(w: ReconciliationWindow): Promise<CheckCounts> {
      const r = recorder(w);
      const report = await checkLedger(prisma);
      if (!report.ok) {
        await r.record('ledger_check_failed', 'ledger', null, {
          mismatches: report.mismatches.map((m) => m.accountId),
          imbalancedCurrencies: report.imbalancedCurrencies.map((c) => c.currency),
          overdrawn: report.overdrawn.map((o) => ({ accountId: o.accountId, available: o.available.toString() })),
          invalidResolutions: report.invalidResolutions,
        });
      }
      return r.counts;
    },
  };
}

export type ReconciliationActivities = ReturnType<typeof createReconciliationActivities>;
