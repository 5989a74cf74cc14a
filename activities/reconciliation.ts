// Reconciliation: finds where our records disagree with the card network's, the bank's and the
// ledger's, for records older than the window's end (younger ones are in flight). Each check reads
// one or more lists page by page with keyset cursors (the network's and the bank's reports after
// the last id, Stripe's `starting_after`; our tables after the last (created_at, id)), so a window
// of any size is read whole with one page in memory at a time, and records inserted or changing
// state meanwhile neither shift nor repeat the pages. One activity call runs a check for a bounded
// number of pages and returns where it stopped; it heartbeats the cursor of the last record it
// judged, so a retried attempt resumes there.
//
// Only four repairs are safe to automate, each idempotent under a key derived from the record (void
// `recon:<authorizationId>:void`, release a checkout's stock, credit `<topupId>:credit`, post or
// void a payout's hold as `<payoutId>:post|void`), so a rerun, a retried activity or a continued
// run never acts twice. Everything else is reported for a person. Items are keyed (run, kind,
// resource): a retry rewrites nothing and counts nothing twice.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Prisma } from '../generated/prisma/client.js';
import type { PrismaClient } from '../platform/db.js';
import type { BankClient } from '../platform/bank-client.js';
import { CardNetworkRejectedError, CardNetworkUnavailableError, type CardAuthorization, type CardNetworkClient } from '../platform/card-network-client.js';
import { checkLedger, createTransfer, postPending, voidPending } from '../platform/ledger.js';
import { claimReconciliationLease, recordedCounts, releaseReconciliationLease } from '../platform/reconciliation-leases.js';
import {
  CAPTURED_STATUSES,
  CLOSED_BEFORE_CAPTURE,
  DEFAULT_RECONCILIATION_PAGE_SIZE,
  ledgerAccount,
  type CheckCursor,
  type CheckoutStatus,
  type ReconciliationAction,
  type ReconciliationCheck,
  type ReconciliationClaim,
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
  setTopupStatus: (req: { topupId: string; status: 'succeeded' | 'failed'; failure?: Failure }) => Promise<void>;
  setCheckoutStatus: (req: { checkoutId: string; status: CheckoutStatus; failure?: Failure }) => Promise<void>;
  /** The payout flow's own status write, which records the payout's event with it. */
  setPayoutStatus: (req: { payoutId: string; status: 'paid' | 'failed'; bankTransferId?: string; failure?: Failure }) => Promise<void>;
}

/** How many disagreements one check found, by kind (new items only: a retry counts nothing twice). */
export type CheckCounts = Partial<Record<ReconciliationKind, number>>;

/** One call of a check: up to `maxPages` pages of `pageSize` records, from `cursor` on. */
export interface CheckRequest {
  window: ReconciliationWindow;
  check: ReconciliationCheck;
  /** Where the previous call stopped; absent at the check's start. */
  cursor?: CheckCursor;
  pageSize: number;
  maxPages: number;
}

export interface CheckProgress {
  counts: CheckCounts;
  /** Pages read by this call. */
  pages: number;
  /** Where to go on from; absent when the check is done. */
  next?: CheckCursor;
}

/**
 * A call stops taking new pages after this long and returns where it is, well inside the
 * workflow's start-to-close timeout, however slow the network answers.
 */
const CALL_BUDGET_MS = 2 * 60_000;

/** Statuses a checkout's workflow leaves before capture; the row must not keep one once it is gone. */
const OPEN_BEFORE_CAPTURE: readonly CheckoutStatus[] = ['pending', 'processing', 'requires_action', 'requires_capture'];

const REPAIRED: ReadonlySet<ReconciliationKind> = new Set([
  'authorization_not_voided',
  'reservation_not_released',
  'topup_not_credited',
  'topup_status_not_final',
  'checkout_status_not_final',
  'payout_hold_not_resolved',
]);

/** One list a check reads: the page after a cursor, and what it does with each record on it. */
interface Phase {
  /** Judges the records of the page after `after` in order, telling `judged` each one's cursor; resolves whether more pages follow. */
  read(after: string | undefined, take: number, judged: (cursor: string) => void): Promise<boolean>;
}

function phase<T>(
  page: (after: string | undefined, take: number) => Promise<{ rows: T[]; more: boolean }>,
  cursorOf: (row: T) => string,
  judge: (row: T) => Promise<void>,
): Phase {
  return {
    async read(after, take, judged) {
      const { rows, more } = await page(after, take);
      for (const row of rows) {
        await judge(row);
        judged(cursorOf(row));
      }
      return more;
    },
  };
}

/** A page of a list read `take` at a time: a full page may have more after it. */
const pageOf = <T>(rows: T[], take: number) => ({ rows, more: rows.length === take });

// Our tables are read oldest first by (created_at, id); the cursor is the last pair judged.
const OLDEST_FIRST = [{ createdAt: 'asc' }, { id: 'asc' }] satisfies Array<Record<string, Prisma.SortOrder>>;

function tableCursor(row: { createdAt: Date; id: string }): string {
  return JSON.stringify([row.createdAt.toISOString(), row.id]);
}

function afterTableCursor(after: string | undefined) {
  if (after === undefined) return {};
  const [at, id] = JSON.parse(after) as [string, string];
  const createdAt = new Date(at);
  return { OR: [{ createdAt: { gt: createdAt } }, { createdAt, id: { gt: id } }] };
}

/** The heartbeat of the activity this runs in; nothing outside one (a direct call in a test). */
function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

function isCheckCursor(value: unknown): value is CheckCursor {
  return typeof value === 'object' && value !== null && Number.isInteger((value as CheckCursor).phase);
}

export function createReconciliationActivities(deps: ReconciliationDeps) {
  const { prisma, cardNetwork, bank } = deps;

  function temporal(): Client {
    if (!deps.temporal) {
      throw ApplicationFailure.create({ type: 'ReconciliationMisconfigured', message: 'reconciliation needs a Temporal client to tell running payments apart', nonRetryable: true });
    }
    return deps.temporal;
  }

  async function isRunning(workflowId: string): Promise<boolean> {
    try {
      const d = await temporal().workflow.getHandle(workflowId).describe();
      return d.status.name === 'RUNNING';
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  }

  /**
   * Whether a payment's workflow is gone for good: never started here, deleted, or closed before
   * the window's end. One that closed later may still have an activity attempt in flight at the
   * bank; the next run judges it.
   */
  async function closedBefore(workflowId: string, until: Date): Promise<boolean> {
    try {
      const d = await temporal().workflow.getHandle(workflowId).describe();
      return d.status.name !== 'RUNNING' && d.closeTime !== undefined && d.closeTime < until;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return true;
      throw err;
    }
  }

  /** Our rows to read: in one merchant's run, that merchant's only. */
  function ours(w: ReconciliationWindow) {
    return w.merchantId === undefined ? {} : { merchantId: w.merchantId };
  }
  /**
   * Whether a record of the network's or the bank's is this run's to judge. In one merchant's run,
   * only one that our rows attribute to that merchant: a record no row accounts for belongs to no
   * merchant, and is the platform run's.
   */
  function inScope(w: ReconciliationWindow, merchantId: string | null): boolean {
    return w.merchantId === undefined || merchantId === w.merchantId;
  }

  function range(w: ReconciliationWindow) {
    return { createdBefore: new Date(w.until), ...(w.since ? { createdAfter: new Date(w.since) } : {}) };
  }
  function createdAt(w: ReconciliationWindow) {
    return { lt: new Date(w.until), ...(w.since ? { gte: new Date(w.since) } : {}) };
  }
  function inWindow(w: ReconciliationWindow, at: Date): boolean {
    return at < new Date(w.until) && (!w.since || at >= new Date(w.since));
  }

  /** The network's report of authorizations in one state, a page after the last id judged. */
  function networkReport(w: ReconciliationWindow, state: CardAuthorization['state']) {
    return async (after: string | undefined, take: number) =>
      pageOf(await cardNetwork.listAuthorizations({ state, ...range(w), ...(after !== undefined ? { startingAfter: after } : {}), limit: take }), take);
  }

  function recorder(w: ReconciliationWindow) {
    const counts: CheckCounts = {};
    return {
      counts,
      async record(kind: ReconciliationKind, resourceId: string, merchantId: string | null, details: Record<string, unknown>) {
        const action: ReconciliationAction = REPAIRED.has(kind) ? 'repaired' : 'reported';
        const { count } = await prisma.reconciliationItem.createMany({
          data: [{ reconciliationId: w.reconciliationId, kind, resourceId, merchantId, action, details: details as Prisma.InputJsonObject }],
          skipDuplicates: true,
        });
        if (count > 0) counts[kind] = (counts[kind] ?? 0) + count;
      },
    };
  }
  type Recorder = ReturnType<typeof recorder>;

  /**
   * (1) Authorizations still holding a customer's funds that nothing will capture: the checkout
   * ended without capture, has no row, or its workflow is gone. Voided. One whose checkout was
   * captured is reported: voiding would take the merchant's money back.
   */
  function authorizations(w: ReconciliationWindow, r: Recorder): Phase[] {
    return [
      phase(networkReport(w, 'authorized'), (auth) => auth.id, async (auth) => {
        const [checkout, topup] = await Promise.all([
          prisma.checkout.findUnique({ where: { id: auth.reference }, select: { status: true, merchantId: true } }),
          prisma.topup.findUnique({ where: { id: auth.reference }, select: { status: true, merchantId: true } }),
        ]);
        const merchantId = checkout?.merchantId ?? topup?.merchantId ?? null;
        if (!inScope(w, merchantId)) return;
        const details = { authorizationId: auth.id, reference: auth.reference, amount: auth.amount, currency: auth.currency, checkoutStatus: checkout?.status ?? null };
        if ((checkout && CAPTURED_STATUSES.includes(checkout.status as CheckoutStatus)) || topup?.status === 'succeeded') {
          await r.record('authorization_of_captured_checkout', auth.id, merchantId, details);
          return;
        }
        const closed = checkout ? CLOSED_BEFORE_CAPTURE.includes(checkout.status as CheckoutStatus) : !topup;
        if (!closed && (await isRunning(auth.reference))) return;
        const idempotencyKey = `recon:${auth.id}:void`;
        try {
          await cardNetwork.void({ idempotencyKey, authorizationId: auth.id });
        } catch (err) {
          // Captured meanwhile (the workflow was alive after all): a person looks at it.
          if (err instanceof CardNetworkRejectedError && err.code === 'already_captured') {
            await r.record('authorization_of_captured_checkout', auth.id, merchantId, details);
            return;
          }
          // No answer: the void may have happened, and a retry would no longer find the authorization
          // in the report to record it. Its key tells.
          if (!(err instanceof CardNetworkUnavailableError)) throw err;
          const op = await cardNetwork.lookup(idempotencyKey);
          if (op?.type !== 'void' || op.status !== 'succeeded') throw err;
        }
        await r.record('authorization_not_voided', auth.id, merchantId, details);
      }),
    ];
  }

  /**
   * (2) Stock held for a checkout that ended without capture, or whose workflow is gone, goes back
   * on sale. Held stock of a captured checkout is reported: it was sold, releasing it would oversell.
   * Read by checkout id: a checkout holds one row per SKU and is judged once, as a whole (releasing
   * it releases every line), so the next page starts after it even if some of its lines were cut off.
   */
  function reservations(w: ReconciliationWindow, r: Recorder): Phase[] {
    const page = async (after: string | undefined, take: number) => {
      const rows = await prisma.stockReservation.findMany({
        where: { status: 'held', createdAt: createdAt(w), ...ours(w), ...(after !== undefined ? { checkoutId: { gt: after } } : {}) },
        select: { checkoutId: true, merchantId: true, checkout: { select: { status: true } } },
        orderBy: [{ checkoutId: 'asc' }, { sku: 'asc' }],
        take,
      });
      return { rows: [...new Map(rows.map((row) => [row.checkoutId, row])).values()], more: rows.length === take };
    };
    return [
      phase(page, (res) => res.checkoutId, async (res) => {
        const status = res.checkout.status as CheckoutStatus;
        const details = { checkoutId: res.checkoutId, checkoutStatus: status };
        if (CAPTURED_STATUSES.includes(status)) {
          if (!(await isRunning(res.checkoutId))) await r.record('reservation_of_captured_checkout', res.checkoutId, res.merchantId, details);
          return;
        }
        if (!CLOSED_BEFORE_CAPTURE.includes(status) && (await isRunning(res.checkoutId))) return;
        const { released } = await deps.releaseStock({ checkoutId: res.checkoutId });
        await r.record('reservation_not_released', res.checkoutId, res.merchantId, { ...details, released });
      }),
      // A checkout left before capture by a workflow that is gone (terminated) ends `failed`, so
      // no row stays non-final; its stock (held, or sold by a capture that never happened) goes
      // back, and an authorization it left open is check (1)'s.
      phase(
        async (after, take) =>
          pageOf(
            await prisma.checkout.findMany({
              where: { status: { in: [...OPEN_BEFORE_CAPTURE] }, createdAt: createdAt(w), ...ours(w), ...afterTableCursor(after) },
              select: { id: true, merchantId: true, status: true, createdAt: true },
              orderBy: OLDEST_FIRST,
              take,
            }),
            take,
          ),
        tableCursor,
        async (c) => {
          if (await isRunning(c.id)) return;
          const { released } = await deps.releaseStock({ checkoutId: c.id });
          await deps.setCheckoutStatus({ checkoutId: c.id, status: 'failed', failure: { code: 'not_completed', message: 'the checkout stopped before capture; nothing was charged' } });
          await r.record('checkout_status_not_final', c.id, c.merchantId, { checkoutId: c.id, previousStatus: c.status, released });
        },
      ),
    ];
  }

  /**
   * (3) A top-up whose card was captured (and not refunded) but whose wallet was never credited:
   * credited now under the top-up's own transfer id, which the workflow would have used, so the
   * wallet can never get it twice. A top-up left `processing` by a workflow that is gone gets the
   * status its books show: `succeeded` once credited, `failed` when the card kept nothing.
   */
  function topups(w: ReconciliationWindow, r: Recorder): Phase[] {
    const page = async (after: string | undefined, take: number) =>
      pageOf(
        await prisma.topup.findMany({ where: { status: { in: ['processing', 'failed'] }, createdAt: createdAt(w), ...ours(w), ...afterTableCursor(after) }, orderBy: OLDEST_FIRST, take }),
        take,
      );
    return [
      phase(page, tableCursor, async (t) => {
        const credit = `${t.id}:credit`;
        const notFinal = { topupId: t.id, previousStatus: t.status, amount: t.amount.toString(), currency: t.currency };
        if (await prisma.ledgerTransfer.findUnique({ where: { id: credit }, select: { id: true } })) {
          if (t.status === 'processing' && !(await isRunning(t.id))) {
            await deps.setTopupStatus({ topupId: t.id, status: 'succeeded' });
            await r.record('topup_status_not_final', t.id, t.merchantId, { ...notFinal, status: 'succeeded', transferId: credit });
          }
          return;
        }
        const ops = await cardNetwork.listOperations(t.id);
        const captured = ops.some((op) => op.type === 'capture' && op.status === 'succeeded');
        const refunded = ops.some((op) => op.type === 'refund' && op.status === 'succeeded');
        if (!captured || refunded) {
          // Nothing kept from the card (an authorization left open is voided by check 1).
          if (t.status === 'processing' && !(await isRunning(t.id))) {
            await deps.setTopupStatus({ topupId: t.id, status: 'failed', failure: { code: 'not_completed', message: 'the top-up stopped before the card was charged; nothing was kept' } });
            await r.record('topup_status_not_final', t.id, t.merchantId, { ...notFinal, status: 'failed' });
          }
          return;
        }
        if (await isRunning(t.id)) return;
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
      }),
    ];
  }

  /**
   * (3) A payout left `pending` or `processing` by a workflow that is gone, its wallet hold
   * (`<payoutId>:hold`) unresolved: the bank's answer under the payout's key decides, as it would
   * have in the workflow. Paid: the hold is posted (`<payoutId>:post`) and the payout is `paid`.
   * Rejected, or nothing under the key (the workflow never sent it, and nothing will now): the hold
   * is voided (`<payoutId>:void`), the money is back on the wallet, and the payout is `failed`, not
   * `canceled`, which is kept for a cancel someone asked for. A hold already resolved the way the
   * bank went only has its status written; one resolved the other way is check (4)'s to report.
   */
  function payoutHolds(w: ReconciliationWindow, r: Recorder): Phase[] {
    const until = new Date(w.until);
    const page = async (after: string | undefined, take: number) =>
      pageOf(
        await prisma.payout.findMany({
          where: { status: { in: ['pending', 'processing'] }, createdAt: createdAt(w), ...ours(w), ...afterTableCursor(after) },
          select: { id: true, merchantId: true, status: true, createdAt: true },
          orderBy: OLDEST_FIRST,
          take,
        }),
        take,
      );
    return [
      phase(page, tableCursor, async (p) => {
        if (!(await closedBefore(p.id, until))) return;
        // Keys as the payout workflow derives them from its id; the id itself is never parsed.
        const key = (step: string) => `${p.id}:${step}`;
        const [hold, resolution] = await Promise.all([
          prisma.ledgerTransfer.findUnique({ where: { id: key('hold') }, select: { kind: true } }),
          prisma.ledgerTransfer.findUnique({ where: { pendingId: key('hold') }, select: { id: true, kind: true } }),
        ]);
        // No hold: nothing was taken from the wallet, so there is nothing to give back or to post.
        if (hold?.kind !== 'pending') return;
        const transfer = await bank.lookup(key('transfer'));
        const paid = transfer?.status === 'paid';
        if (resolution && resolution.kind !== (paid ? 'post_pending' : 'void_pending')) return;
        if (paid) {
          if (!resolution) await postPending(prisma, { id: key('post'), pendingId: key('hold') });
          await deps.setPayoutStatus({ payoutId: p.id, status: 'paid', bankTransferId: transfer.id });
        } else {
          if (!resolution) await voidPending(prisma, { id: key('void'), pendingId: key('hold') });
          const failure: Failure = transfer
            ? { code: transfer.failureCode ?? 'rejected', message: 'the bank rejected the transfer' }
            : { code: 'not_sent', message: 'the payout stopped before it was sent to the bank; the held amount is back on the wallet' };
          await deps.setPayoutStatus({ payoutId: p.id, status: 'failed', ...(transfer ? { bankTransferId: transfer.id } : {}), failure });
        }
        await r.record('payout_hold_not_resolved', p.id, p.merchantId, {
          payoutId: p.id,
          previousStatus: p.status,
          status: paid ? 'paid' : 'failed',
          bankTransferId: transfer?.id ?? null,
          bankStatus: transfer?.status ?? null,
          transferId: resolution?.id ?? key(paid ? 'post' : 'void'),
          holdAlreadyResolved: resolution !== null,
        });
      }),
    ];
  }

  /** (4) Captures on one side only. Reported: which side is right needs a person. */
  function captures(w: ReconciliationWindow, r: Recorder): Phase[] {
    const capturedCheckouts = async (after: string | undefined, take: number) =>
      pageOf(
        await prisma.checkout.findMany({
          where: { status: { in: [...CAPTURED_STATUSES] }, paymentMethod: 'card', createdAt: createdAt(w), ...ours(w), ...afterTableCursor(after) },
          select: { id: true, merchantId: true, status: true, createdAt: true },
          orderBy: OLDEST_FIRST,
          take,
        }),
        take,
      );
    return [
      phase(capturedCheckouts, tableCursor, async (c) => {
        const ops = await cardNetwork.listOperations(c.id);
        if (!ops.some((op) => op.type === 'capture' && op.status === 'succeeded')) {
          await r.record('checkout_captured_without_network_capture', c.id, c.merchantId, { checkoutId: c.id, checkoutStatus: c.status });
        }
      }),
      phase(networkReport(w, 'captured'), (auth) => auth.id, async (auth) => {
        const details = { authorizationId: auth.id, reference: auth.reference, capturedAmount: auth.capturedAmount, currency: auth.currency };
        const [checkout, topup] = await Promise.all([
          prisma.checkout.findUnique({ where: { id: auth.reference }, select: { status: true, merchantId: true } }),
          prisma.topup.findUnique({ where: { id: auth.reference }, select: { id: true } }),
        ]);
        if (topup) return; // top-ups are check (3)'s
        if (!inScope(w, checkout?.merchantId ?? null)) return;
        if (!checkout) {
          await r.record('network_capture_unknown_reference', auth.id, null, details);
        } else if (!CAPTURED_STATUSES.includes(checkout.status as CheckoutStatus) && !(await isRunning(auth.reference))) {
          await r.record('network_capture_without_captured_checkout', auth.id, checkout.merchantId, { ...details, checkoutStatus: checkout.status });
        }
      }),
    ];
  }

  /**
   * (4) Payouts the bank paid that the ledger never posted, and posts with no paid bank transfer.
   * Reported. Three lists name payouts to judge (our paid payouts, the bank's paid transfers, the
   * ledger's payout posts); one named by more than one is judged again, and recorded once.
   */
  function payouts(w: ReconciliationWindow, r: Recorder): Phase[] {
    const judge = async (id: string) => {
      const payout = await prisma.payout.findUnique({ where: { id }, select: { merchantId: true, status: true, bankTransferId: true } });
      if (!inScope(w, payout?.merchantId ?? null)) return;
      if (payout && (await isRunning(id))) return;
      const [posted, transfers] = await Promise.all([
        prisma.ledgerTransfer.findUnique({ where: { id: `${id}:post` }, select: { id: true } }),
        bank.listTransfers(id),
      ]);
      const paid = transfers.find((t) => t.status === 'paid');
      const details = { payoutId: id, payoutStatus: payout?.status ?? null, bankTransferId: paid?.id ?? payout?.bankTransferId ?? null };
      if ((paid || payout?.status === 'paid') && !posted) await r.record('payout_paid_not_posted', id, payout?.merchantId ?? null, details);
      else if (posted && !paid) await r.record('payout_posted_without_bank_transfer', id, payout?.merchantId ?? null, details);
    };
    const paidPayouts = async (after: string | undefined, take: number) =>
      pageOf(
        await prisma.payout.findMany({ where: { status: 'paid', createdAt: createdAt(w), ...ours(w), ...afterTableCursor(after) }, select: { id: true, createdAt: true }, orderBy: OLDEST_FIRST, take }),
        take,
      );
    const bankStatement = async (after: string | undefined, take: number) =>
      pageOf(await bank.listTransfersByStatus({ status: 'paid', ...range(w), ...(after !== undefined ? { startingAfter: after } : {}), limit: take }), take);
    const ledgerPosts = async (after: string | undefined, take: number) =>
      pageOf(
        await prisma.ledgerTransfer.findMany({
          where: { code: 'payout', kind: 'post_pending', createdAt: createdAt(w), ...afterTableCursor(after) },
          select: { id: true, reference: true, createdAt: true },
          orderBy: OLDEST_FIRST,
          take,
        }),
        take,
      );
    return [
      phase(paidPayouts, tableCursor, (p) => judge(p.id)),
      phase(bankStatement, (t) => t.id, (t) => judge(t.reference)),
      phase(ledgerPosts, tableCursor, async (t) => {
        if (t.reference) await judge(t.reference);
      }),
    ];
  }

  /**
   * (4) Refunds on one side only. Reported, never repaired: refunding again or posting a refund
   * transfer moves money a person must decide about. (a) a `succeeded` row without a succeeded
   * refund at the network under its key (card checkouts) or without its ledger transfer; (b) a
   * succeeded refund at the network for a checkout that no `succeeded` row accounts for (row
   * missing, failed, or pending with the workflow gone): the card got money back our books do not
   * show; (c) a `pending` row whose checkout workflow is gone, with nothing at the network.
   */
  function refunds(w: ReconciliationWindow, r: Recorder): Phase[] {
    const until = new Date(w.until);
    const refundKey = (checkoutId: string, refundId: string) => `${checkoutId}:refund:${refundId}`;
    /** A succeeded refund at the network, before the window's end: what (b) looks for. */
    const networkRefunded = (op: { type: string; status: string; createdAt: string }) => op.type === 'refund' && op.status === 'succeeded' && new Date(op.createdAt) < until;

    const succeeded = async (after: string | undefined, take: number) =>
      pageOf(
        await prisma.refund.findMany({
          where: { status: 'succeeded', createdAt: createdAt(w), ...ours(w), ...afterTableCursor(after) },
          select: { id: true, checkoutId: true, merchantId: true, amount: true, currency: true, createdAt: true, checkout: { select: { paymentMethod: true } } },
          orderBy: OLDEST_FIRST,
          take,
        }),
        take,
      );
    // (b) reads every card checkout of the window, its network refunds older than the window's end.
    const cardCheckouts = async (after: string | undefined, take: number) =>
      pageOf(
        await prisma.checkout.findMany({
          where: { paymentMethod: 'card', createdAt: createdAt(w), ...ours(w), ...afterTableCursor(after) },
          select: { id: true, merchantId: true, createdAt: true },
          orderBy: OLDEST_FIRST,
          take,
        }),
        take,
      );
    const pending = async (after: string | undefined, take: number) =>
      pageOf(
        await prisma.refund.findMany({
          where: { status: 'pending', createdAt: createdAt(w), ...ours(w), ...afterTableCursor(after) },
          select: { id: true, checkoutId: true, merchantId: true, amount: true, currency: true, createdAt: true, checkout: { select: { paymentMethod: true, createdAt: true } } },
          orderBy: OLDEST_FIRST,
          take,
        }),
        take,
      );

    return [
      // (a)
      phase(succeeded, tableCursor, async (row) => {
        const key = refundKey(row.checkoutId, row.id);
        const transferId = `${row.checkoutId}:ledger-refund:${row.id}`;
        const [op, transfer] = await Promise.all([
          row.checkout.paymentMethod === 'card' ? cardNetwork.lookup(key) : Promise.resolve(null),
          prisma.ledgerTransfer.findUnique({ where: { id: transferId }, select: { id: true } }),
        ]);
        const refundedAtNetwork = row.checkout.paymentMethod !== 'card' || (op?.type === 'refund' && op.status === 'succeeded');
        if (refundedAtNetwork && transfer) return;
        await r.record('refund_without_network_refund', row.id, row.merchantId, {
          refundId: row.id,
          checkoutId: row.checkoutId,
          amount: row.amount.toString(),
          currency: row.currency,
          idempotencyKey: key,
          networkRefund: refundedAtNetwork,
          networkStatus: op ? `${op.type}:${op.status}` : null,
          ledgerTransferId: transfer ? transferId : null,
        });
      }),
      // (b) The capture compensation (`<checkout>:refund:compensation`, the checkout workflow) has
      // no row by design: it gives back a capture of a checkout that then failed.
      phase(cardCheckouts, tableCursor, async (c) => {
        const prefix = `${c.id}:refund:`;
        const ops = (await cardNetwork.listOperations(c.id)).filter((op) => networkRefunded(op) && op.idempotencyKey.startsWith(prefix));
        for (const op of ops) {
          const refundId = op.idempotencyKey.slice(prefix.length);
          if (refundId === 'compensation') continue;
          const row = await prisma.refund.findFirst({ where: { id: refundId, checkoutId: c.id }, select: { status: true } });
          if (row?.status === 'succeeded') continue;
          if (row?.status === 'pending' && (await isRunning(c.id))) continue; // the workflow is still finishing it
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
      }),
      // (c) A pending row the network did refund is (b)'s to report, when (b) read its checkout.
      phase(pending, tableCursor, async (row) => {
        if (await isRunning(row.checkoutId)) return;
        if (row.checkout.paymentMethod === 'card' && inWindow(w, row.checkout.createdAt)) {
          const op = await cardNetwork.lookup(refundKey(row.checkoutId, row.id));
          if (op && networkRefunded(op)) return;
        }
        await r.record('refund_stuck_pending', row.id, row.merchantId, {
          refundId: row.id,
          checkoutId: row.checkoutId,
          amount: row.amount.toString(),
          currency: row.currency,
        });
      }),
    ];
  }

  /**
   * (4) The ledger's own invariants (platform/ledger.ts checkLedger), over every account, as one
   * page. Reported. They hold over the whole journal, so they are the platform run's: one merchant's
   * run has nothing to check here.
   */
  function ledger(w: ReconciliationWindow, r: Recorder): Phase[] {
    if (w.merchantId !== undefined) return [];
    return [
      phase(async () => ({ rows: [await checkLedger(prisma)], more: false }), () => 'ledger', async (report) => {
        if (report.ok) return;
        await r.record('ledger_check_failed', 'ledger', null, {
          mismatches: report.mismatches.map((m) => m.accountId),
          imbalancedCurrencies: report.imbalancedCurrencies.map((c) => c.currency),
          overdrawn: report.overdrawn.map((o) => ({ accountId: o.accountId, available: o.available.toString() })),
          invalidResolutions: report.invalidResolutions,
        });
      }),
    ];
  }

  const CHECKS: Record<ReconciliationCheck, (w: ReconciliationWindow, r: Recorder) => Phase[]> = {
    authorizations,
    reservations,
    topups,
    payout_holds: payoutHolds,
    captures,
    payouts,
    refunds,
    ledger,
  };

  /**
   * Runs one check from a cursor for at most `maxPages` pages (and `budgetMs`), heartbeating the
   * cursor after every record judged. A retried attempt starts from the last heartbeat instead of
   * the request's cursor: the records before it were judged, and judging one twice is harmless
   * anyway (every repair is idempotent), only slower.
   */
  async function runCheck(req: CheckRequest, budgetMs: number): Promise<CheckProgress> {
    const r = recorder(req.window);
    const phases = CHECKS[req.check](req.window, r);
    const context = activityContext();
    const resumed: unknown = context?.info.heartbeatDetails;
    let at: CheckCursor = isCheckCursor(resumed) ? resumed : (req.cursor ?? { phase: 0 });
    const started = Date.now();
    let pages = 0;
    while (at.phase < phases.length) {
      if (pages >= req.maxPages || (pages > 0 && Date.now() - started >= budgetMs)) return { counts: r.counts, pages, next: at };
      const current = at.phase;
      context?.heartbeat(at);
      const more = await phases[current]!.read(at.after, req.pageSize, (after) => {
        at = { phase: current, after };
        context?.heartbeat(at);
      });
      pages += 1;
      if (!more) at = { phase: current + 1 };
    }
    return { counts: r.counts, pages };
  }

  /** A whole check in one call, for the runs of the first reconciliation workflow (one activity per check). */
  async function wholeCheck(check: ReconciliationCheck, window: ReconciliationWindow): Promise<CheckCounts> {
    const { counts } = await runCheck({ window, check, pageSize: DEFAULT_RECONCILIATION_PAGE_SIZE, maxPages: Number.POSITIVE_INFINITY }, Number.POSITIVE_INFINITY);
    return counts;
  }

  return {
    /**
     * The run's scope (its merchant's, or the platform's) for this run alone, or the id of the run
     * of that scope already running (platform/reconciliation-leases.ts).
     */
    async claimReconciliation({ reconciliationId, merchantId }: { reconciliationId: string; merchantId?: string }): Promise<ReconciliationClaim> {
      return claimReconciliationLease(prisma, temporal(), { reconciliationId, merchantId });
    },

    async startReconciliation(w: ReconciliationWindow): Promise<void> {
      await prisma.reconciliation.upsert({
        where: { id: w.reconciliationId },
        update: {},
        create: { id: w.reconciliationId, status: 'running', since: w.since ? new Date(w.since) : null, until: new Date(w.until), merchantId: w.merchantId ?? null },
      });
    },

    /** The final status and counts, and the run's scope given back, at once. */
    async finishReconciliation({ reconciliationId, status }: { reconciliationId: string; status: Exclude<ReconciliationStatus, 'running'> }): Promise<ReconciliationCounts> {
      return prisma.$transaction(async (tx) => {
        const counts = await recordedCounts(tx, reconciliationId);
        await tx.reconciliation.update({ where: { id: reconciliationId }, data: { status, counts: counts as unknown as Prisma.InputJsonObject, finishedAt: new Date() } });
        await releaseReconciliationLease(tx, reconciliationId);
        return counts;
      });
    },

    /** One call of one check (reconciliationWorkflowV2): up to `maxPages` pages, then where it stopped. */
    async runReconciliationCheck(req: CheckRequest): Promise<CheckProgress> {
      return runCheck(req, CALL_BUDGET_MS);
    },

    // The first reconciliation workflow's activities, one whole check each: its runs started
    // before reconciliationWorkflowV2 existed still call them. They read every page too.
    reconcileAuthorizations: (w: ReconciliationWindow) => wholeCheck('authorizations', w),
    reconcileReservations: (w: ReconciliationWindow) => wholeCheck('reservations', w),
    reconcileTopups: (w: ReconciliationWindow) => wholeCheck('topups', w),
    reportCaptures: (w: ReconciliationWindow) => wholeCheck('captures', w),
    reportPayouts: (w: ReconciliationWindow) => wholeCheck('payouts', w),
    reportRefunds: (w: ReconciliationWindow) => wholeCheck('refunds', w),
    reportLedger: (w: ReconciliationWindow) => wholeCheck('ledger', w),
  };
}

export type ReconciliationActivities = ReturnType<typeof createReconciliationActivities>;
