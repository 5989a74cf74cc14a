// A customer's wallet at this merchant, read from the ledger: its balance, and its history newest
// first. Wallets are not resources of their own: the ledger account exists from the first transfer
// that names it, so a customer who never topped up has a wallet of zeros (200, not 404), and the
// merchant in the account id keeps one merchant from ever reading another's.
import { Router } from 'express';
import type { PrismaClient } from '../../platform/db.js';
import { accountTransfers, walletBalance, type AccountTransfer } from '../../platform/ledger.js';
import { ledgerAccount, money } from '../../domain/index.js';
import { merchantIdOf } from '../auth.js';
import { invalidRequest } from '../errors.js';
import { walletResource, type WalletTransactionResource, type WalletTransactionStatus } from '../serialize.js';
import { parseBody, walletPath, walletQuery, walletTransactionsQuery } from '../validation.js';

/**
 * How many journal pages one request reads at most. Resolutions of holds are folded into their
 * holds rather than listed, so a page can need more than one read; past this it answers with fewer
 * entries (and hasMore), which keeps a history full of resolutions from costing one request a scan.
 */
const MAX_READS_PER_PAGE = 5;

export function walletsRouter(prisma: PrismaClient): Router {
  const router = Router();

  router.get('/:customerId', async (req, res) => {
    const merchantId = merchantIdOf(res);
    const { customerId } = parseBody(walletPath, { customerId: req.params.customerId });
    const { currency } = parseBody(walletQuery, req.query);
    const balance = await walletBalance(prisma, ledgerAccount.wallet(merchantId, customerId, currency));
    res.json(walletResource(customerId, currency, balance));
  });

  router.get('/:customerId/transactions', async (req, res) => {
    const merchantId = merchantIdOf(res);
    const { customerId } = parseBody(walletPath, { customerId: req.params.customerId });
    const query = parseBody(walletTransactionsQuery, req.query);
    const page = await walletHistory(prisma, ledgerAccount.wallet(merchantId, customerId, query.currency), query.limit, query.starting_after);
    res.json(page);
  });

  return router;
}

export interface WalletHistoryPage {
  data: WalletTransactionResource[];
  hasMore: boolean;
  /** Pass as `starting_after` for the next (older) page; null on the last one. */
  nextCursor: string | null;
}

/**
 * The wallet's movements, newest first. A hold (a pending transfer) is one entry whose status says
 * what became of it: `held` until resolved, then `posted` (its amount is then what was posted,
 * which a partial capture makes smaller than the hold) or `voided`. The journal rows that resolve
 * holds are not entries of their own: listing them too would show every payout's money leaving twice.
 */
async function walletHistory(prisma: PrismaClient, accountId: string, limit: number, startingAfter: string | undefined): Promise<WalletHistoryPage> {
  const data: WalletTransactionResource[] = [];
  let cursor = startingAfter;
  let more = true;
  for (let read = 0; read < MAX_READS_PER_PAGE && data.length < limit && more; read++) {
    let page;
    try {
      // Asking for only what is still missing keeps the ledger's cursor exactly after the last row
      // this page has looked at, so the next page neither skips nor repeats one.
      page = await accountTransfers(prisma, accountId, { limit: limit - data.length, before: cursor });
    } catch (err) {
      // The limit is validated, so a RangeError here is the cursor's.
      if (err instanceof RangeError && cursor !== undefined) {
        throw invalidRequest('parameter_invalid', 'Invalid starting_after: must be the nextCursor of an earlier page.', 'starting_after');
      }
      throw err;
    }
    data.push(...(await entriesOf(prisma, page.transfers)));
    more = page.nextCursor !== null;
    cursor = page.nextCursor ?? undefined;
  }
  return { data, hasMore: more, nextCursor: more ? (cursor ?? null) : null };
}

async function entriesOf(prisma: PrismaClient, transfers: AccountTransfer[]): Promise<WalletTransactionResource[]> {
  const movements = transfers.filter((t) => t.kind === 'posted' || t.kind === 'pending');
  const holdIds = movements.filter((t) => t.kind === 'pending').map((t) => t.id);
  const resolutions =
    holdIds.length === 0
      ? []
      : await prisma.ledgerTransfer.findMany({ where: { pendingId: { in: holdIds } }, select: { pendingId: true, kind: true, amount: true } });
  const resolutionOf = new Map(resolutions.map((r) => [r.pendingId, r]));
  return movements.map((t) => {
    let status: WalletTransactionStatus = 'posted';
    let amount = BigInt(t.amount);
    if (t.kind === 'pending') {
      const resolution = resolutionOf.get(t.id);
      if (!resolution) status = 'held';
      else if (resolution.kind === 'void_pending') status = 'voided';
      else amount = resolution.amount;
    }
    return {
      id: t.id,
      type: t.code,
      direction: t.direction,
      amount: money(amount, t.currency),
      status,
      reference: t.reference,
      createdAt: t.createdAt,
    };
  });
}
