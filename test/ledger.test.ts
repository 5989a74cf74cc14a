// The ledger core against real PostgreSQL (the harness's DATABASE_URL): two-phase semantics,
// idempotency and conflicts, all-or-nothing refusals, the append-only journal, concurrency on a
// wallet's single row and on a hot merchant account's shards, and a model-based property test
// with retries and injected faults that re-checks the books after every step.
//
// Every test uses fresh wallet and merchant accounts; the platform clearing accounts are shared,
// so this file uses XTS, ISO 4217's code reserved for testing: no other test moves money in it.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/common';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLedgerActivities, INVALID_LEDGER_REQUEST } from '../activities/ledger.js';
import { FailureType, ledgerAccount, type TransferRequest, type TransferResult } from '../domain/index.js';
import { createPrisma, type PrismaClient } from '../platform/db.js';
import { createLogger } from '../platform/logger.js';
import {
  accountBalance,
  accountSpec,
  accountTransfers,
  checkLedger,
  createTransfer,
  HOT_ACCOUNT_SHARDS,
  LedgerError,
  postPending,
  voidPending,
  walletBalance,
  type BalanceCounters,
} from '../platform/ledger.js';
import { applyMigrations } from '../scripts/migrate.js';

const CUR = 'XTS';
const CARD = ledgerAccount.cardClearing(CUR);
const BANK = ledgerAccount.bankClearing(CUR);
const timings = process.env.TEST_LOG_LEVEL === 'info' || process.env.TEST_LOG_LEVEL === 'debug';

let prisma: PrismaClient;

beforeAll(() => {
  // Enough connections that the concurrency tests contend on rows, not on the pool.
  prisma = createPrisma(process.env.DATABASE_URL!, 20);
});

afterAll(async () => {
  await prisma?.$disconnect();
});

/** Fresh accounts for one test: a merchant, two of its customers' wallets, the shared clearing accounts. */
function fresh() {
  const run = randomUUID().slice(0, 8);
  const merchant = `m-${run}`;
  return {
    run,
    id: (name: string | number) => `${run}-${name}`,
    wallet: ledgerAccount.wallet(merchant, `alice-${run}`, CUR),
    wallet2: ledgerAccount.wallet(merchant, `bob-${run}`, CUR),
    merchant: ledgerAccount.merchantPending(merchant, CUR),
  };
}

function transfer(fields: Pick<TransferRequest, 'id' | 'debitAccountId' | 'creditAccountId' | 'amount'> & Partial<TransferRequest>): TransferRequest {
  return { currency: CUR, kind: 'posted', code: 'topup', ...fields };
}

/** The LedgerError type a write was refused with; fails the test if it succeeded or failed otherwise. */
async function refusal(write: Promise<unknown>): Promise<LedgerError['type']> {
  try {
    await write;
  } catch (err) {
    if (err instanceof LedgerError) return err.type;
    throw err;
  }
  throw new Error('expected the ledger to refuse the write');
}

const zero: BalanceCounters = { debitsPending: 0n, debitsPosted: 0n, creditsPending: 0n, creditsPosted: 0n };
const counters = (c: Partial<BalanceCounters>): BalanceCounters => ({ ...zero, ...c });

async function journalRowsTouching(accountId: string): Promise<number> {
  const [row] = await prisma.$queryRaw<Array<{ n: number }>>`
    SELECT count(*)::int AS n FROM ledger_transfers WHERE debit_account_id = ${accountId} OR credit_account_id = ${accountId}`;
  return row!.n;
}

async function expectConsistent(accountIds: string[]): Promise<void> {
  const report = await checkLedger(prisma, { accountIds });
  expect({ mismatches: report.mismatches, imbalanced: report.imbalancedCurrencies, overdrawn: report.overdrawn, invalid: report.invalidResolutions }).toEqual({
    mismatches: [],
    imbalanced: [],
    overdrawn: [],
    invalid: [],
  });
  expect(report.ok).toBe(true);
}

describe('accounts', () => {
  it('derives kind, currency, overdraft and shards from the account id', () => {
    expect(accountSpec(ledgerAccount.wallet('m1', 'c:with:colons', 'JPY'))).toEqual({
      id: 'wallet:m1:c:with:colons:JPY',
      kind: 'wallet',
      currency: 'JPY',
      allowOverdraft: false,
      shards: 1,
    });
    expect(accountSpec(ledgerAccount.merchantPending('m1', 'USD'))).toMatchObject({ kind: 'merchant_pending', currency: 'USD', allowOverdraft: true, shards: 8 });
    expect(accountSpec(ledgerAccount.merchantAvailable('m1', 'USD'))).toMatchObject({ kind: 'merchant_available', allowOverdraft: true, shards: 8 });
    expect(accountSpec(ledgerAccount.cardClearing('EUR'))).toMatchObject({ kind: 'card_clearing', currency: 'EUR', allowOverdraft: true, shards: 8 });
    expect(accountSpec(ledgerAccount.bankClearing('EUR'))).toMatchObject({ kind: 'bank_clearing', allowOverdraft: true, shards: 8 });
    for (const bad of ['', 'wallet:m:c', 'wallet:m::JPY', 'wallet:m:c:jpy', 'merchant:m:settled:JPY', 'platform:fees:JPY', 'savings:m:c:JPY']) {
      expect(() => accountSpec(bad), bad).toThrow(RangeError);
    }
  });
});

describe('two-phase transfers', () => {
  it('a posted transfer moves money on both accounts at once', async () => {
    const t = fresh();
    const result = await createTransfer(prisma, transfer({ id: t.id('topup'), debitAccountId: CARD, creditAccountId: t.wallet, amount: '1000', reference: 'topup-1' }));
    expect(result).toMatchObject({ outcome: 'created', transfer: { id: t.id('topup'), amount: '1000', kind: 'posted', pendingId: null, reference: 'topup-1' } });
    expect(await accountBalance(prisma, t.wallet)).toEqual(counters({ creditsPosted: 1000n }));
    expect(await walletBalance(prisma, t.wallet)).toEqual({ available: 1000n, held: 0n });
    await expectConsistent([t.wallet, CARD]);
  });

  it('a pending transfer holds the amount on both sides until it is posted in full', async () => {
    const t = fresh();
    await createTransfer(prisma, transfer({ id: t.id('topup'), debitAccountId: CARD, creditAccountId: t.wallet, amount: '1000' }));
    const hold = await createTransfer(prisma, transfer({ id: t.id('pay'), debitAccountId: t.wallet, creditAccountId: t.merchant, amount: '300', kind: 'pending', code: 'checkout_wallet_payment' }));
    expect(hold.outcome).toBe('created');
    expect(await walletBalance(prisma, t.wallet)).toEqual({ available: 700n, held: 300n });
    expect(await accountBalance(prisma, t.merchant)).toEqual(counters({ creditsPending: 300n }));

    const post = await postPending(prisma, { id: t.id('post'), pendingId: t.id('pay') });
    expect(post).toMatchObject({ outcome: 'created', transfer: { kind: 'post_pending', pendingId: t.id('pay'), amount: '300', code: 'checkout_wallet_payment' } });
    expect(await accountBalance(prisma, t.wallet)).toEqual(counters({ creditsPosted: 1000n, debitsPosted: 300n }));
    expect(await accountBalance(prisma, t.merchant)).toEqual(counters({ creditsPosted: 300n }));
    await expectConsistent([t.wallet, t.merchant, CARD]);
  });

  it('a partial post moves the posted part and releases the rest of the hold', async () => {
    const t = fresh();
    await createTransfer(prisma, transfer({ id: t.id('topup'), debitAccountId: CARD, creditAccountId: t.wallet, amount: '1000' }));
    await createTransfer(prisma, transfer({ id: t.id('pay'), debitAccountId: t.wallet, creditAccountId: t.merchant, amount: '300', kind: 'pending' }));
    const post = await postPending(prisma, { id: t.id('post'), pendingId: t.id('pay'), amount: '120' });
    expect(post.transfer.amount).toBe('120');
    expect(await walletBalance(prisma, t.wallet)).toEqual({ available: 880n, held: 0n });
    expect(await accountBalance(prisma, t.merchant)).toEqual(counters({ creditsPosted: 120n }));
    await expectConsistent([t.wallet, t.merchant]);
  });

  it('voiding a pending transfer releases the whole hold', async () => {
    const t = fresh();
    await createTransfer(prisma, transfer({ id: t.id('topup'), debitAccountId: CARD, creditAccountId: t.wallet, amount: '1000' }));
    await createTransfer(prisma, transfer({ id: t.id('payout'), debitAccountId: t.wallet, creditAccountId: BANK, amount: '400', kind: 'pending', code: 'payout' }));
    expect(await walletBalance(prisma, t.wallet)).toEqual({ available: 600n, held: 400n });
    const voided = await voidPending(prisma, { id: t.id('void'), pendingId: t.id('payout') });
    expect(voided.transfer).toMatchObject({ kind: 'void_pending', amount: '400', pendingId: t.id('payout') });
    expect(await accountBalance(prisma, t.wallet)).toEqual(counters({ creditsPosted: 1000n }));
    await expectConsistent([t.wallet, BANK]);
  });

  it('posting more than the hold is a conflict and changes nothing', async () => {
    const t = fresh();
    await createTransfer(prisma, transfer({ id: t.id('topup'), debitAccountId: CARD, creditAccountId: t.wallet, amount: '1000' }));
    await createTransfer(prisma, transfer({ id: t.id('pay'), debitAccountId: t.wallet, creditAccountId: t.merchant, amount: '300', kind: 'pending' }));
    expect(await refusal(postPending(prisma, { id: t.id('post'), pendingId: t.id('pay'), amount: '301' }))).toBe('LedgerConflict');
    await expect(postPending(prisma, { id: t.id('post'), pendingId: t.id('pay'), amount: '0' })).rejects.toThrow(RangeError);
    expect(await walletBalance(prisma, t.wallet)).toEqual({ available: 700n, held: 300n });
    expect(await journalRowsTouching(t.wallet)).toBe(2);
    // The hold is still there to post properly.
    expect((await postPending(prisma, { id: t.id('post'), pendingId: t.id('pay'), amount: '300' })).outcome).toBe('created');
  });
});

describe('idempotency and conflicts', () => {
  it('repeating any write with the same id and fields answers exists and moves nothing', async () => {
    const t = fresh();
    const topup = transfer({ id: t.id('topup'), debitAccountId: CARD, creditAccountId: t.wallet, amount: '1000' });
    const pay = transfer({ id: t.id('pay'), debitAccountId: t.wallet, creditAccountId: t.merchant, amount: '300', kind: 'pending', code: 'checkout_wallet_payment' });
    const payout = transfer({ id: t.id('payout'), debitAccountId: t.wallet, creditAccountId: BANK, amount: '200', kind: 'pending', code: 'payout' });
    const first = [
      await createTransfer(prisma, topup),
      await createTransfer(prisma, pay),
      await createTransfer(prisma, payout),
      await postPending(prisma, { id: t.id('post'), pendingId: t.id('pay'), amount: '250' }),
      await voidPending(prisma, { id: t.id('void'), pendingId: t.id('payout') }),
    ];
    expect(first.map((r) => r.outcome)).toEqual(['created', 'created', 'created', 'created', 'created']);
    const before = [await accountBalance(prisma, t.wallet), await accountBalance(prisma, t.merchant)];

    const again = [
      await createTransfer(prisma, topup),
      await createTransfer(prisma, pay),
      await createTransfer(prisma, payout),
      await postPending(prisma, { id: t.id('post'), pendingId: t.id('pay'), amount: '250' }),
      await voidPending(prisma, { id: t.id('void'), pendingId: t.id('payout') }),
    ];
    expect(again.map((r) => r.outcome)).toEqual(['exists', 'exists', 'exists', 'exists', 'exists']);
    // The replay answers with the first write's record, timestamp included.
    expect(again.map((r) => r.transfer)).toEqual(first.map((r) => r.transfer));
    expect([await accountBalance(prisma, t.wallet), await accountBalance(prisma, t.merchant)]).toEqual(before);
    expect(await journalRowsTouching(t.wallet)).toBe(5);
    await expectConsistent([t.wallet, t.merchant, CARD, BANK]);
  });

  it('reusing a transfer id with different fields is a LedgerConflict', async () => {
    const t = fresh();
    const topup = transfer({ id: t.id('topup'), debitAccountId: CARD, creditAccountId: t.wallet, amount: '1000' });
    await createTransfer(prisma, topup);
    const variants: TransferRequest[] = [
      { ...topup, amount: '1001' },
      { ...topup, creditAccountId: t.wallet2 },
      { ...topup, kind: 'pending' },
      { ...topup, code: 'checkout_refund' },
      { ...topup, reference: 'other' },
    ];
    for (const variant of variants) expect(await refusal(createTransfer(prisma, variant))).toBe('LedgerConflict');
    await createTransfer(prisma, transfer({ id: t.id('pay'), debitAccountId: t.wallet, creditAccountId: t.merchant, amount: '300', kind: 'pending' }));
    await postPending(prisma, { id: t.id('post'), pendingId: t.id('pay'), amount: '100' });
    // A resolution id retried with another amount, or as the other resolution, or a transfer id reused as a resolution.
    expect(await refusal(postPending(prisma, { id: t.id('post'), pendingId: t.id('pay'), amount: '200' }))).toBe('LedgerConflict');
    expect(await refusal(postPending(prisma, { id: t.id('post'), pendingId: t.id('pay') }))).toBe('LedgerConflict');
    expect(await refusal(voidPending(prisma, { id: t.id('post'), pendingId: t.id('pay') }))).toBe('LedgerConflict');
    expect(await refusal(postPending(prisma, { id: t.id('topup'), pendingId: t.id('pay') }))).toBe('LedgerConflict');
    expect(await accountBalance(prisma, t.wallet)).toEqual(counters({ creditsPosted: 1000n, debitsPosted: 100n }));
    expect(await accountBalance(prisma, t.wallet2)).toEqual(zero);
    await expectConsistent([t.wallet, t.wallet2, t.merchant]);
  });

  it('a pending transfer resolved once cannot be resolved again under another id', async () => {
    const t = fresh();
    await createTransfer(prisma, transfer({ id: t.id('topup'), debitAccountId: CARD, creditAccountId: t.wallet, amount: '1000' }));
    await createTransfer(prisma, transfer({ id: t.id('pay'), debitAccountId: t.wallet, creditAccountId: t.merchant, amount: '300', kind: 'pending' }));
    await postPending(prisma, { id: t.id('post-1'), pendingId: t.id('pay') });
    expect(await refusal(postPending(prisma, { id: t.id('post-2'), pendingId: t.id('pay') }))).toBe('LedgerConflict');
    expect(await refusal(voidPending(prisma, { id: t.id('void'), pendingId: t.id('pay') }))).toBe('LedgerConflict');
    expect(await accountBalance(prisma, t.wallet)).toEqual(counters({ creditsPosted: 1000n, debitsPosted: 300n }));
    expect(await journalRowsTouching(t.wallet)).toBe(3);
  });

  it('only a pending transfer that exists can be posted or voided', async () => {
    const t = fresh();
    await createTransfer(prisma, transfer({ id: t.id('topup'), debitAccountId: CARD, creditAccountId: t.wallet, amount: '1000' }));
    expect(await refusal(postPending(prisma, { id: t.id('post'), pendingId: t.id('nope') }))).toBe('LedgerConflict');
    expect(await refusal(voidPending(prisma, { id: t.id('void'), pendingId: t.id('topup') }))).toBe('LedgerConflict');
    expect(await journalRowsTouching(t.wallet)).toBe(1);
  });

  it('malformed requests are refused before anything is written', async () => {
    const t = fresh();
    const ok = transfer({ id: t.id('x'), debitAccountId: CARD, creditAccountId: t.wallet, amount: '10' });
    for (const bad of [
      { ...ok, amount: '0' },
      { ...ok, amount: '-5' },
      { ...ok, amount: '1.5' },
      { ...ok, amount: '9223372036854775808' },
      { ...ok, currency: 'JPY' },
      { ...ok, creditAccountId: CARD },
      { ...ok, creditAccountId: 'nobody' },
    ]) {
      await expect(createTransfer(prisma, bad), JSON.stringify(bad)).rejects.toThrow(RangeError);
    }
    expect(await journalRowsTouching(t.wallet)).toBe(0);
  });
});

describe('refusals are all or nothing', () => {
  it('a debit the wallet cannot cover is InsufficientFunds and writes nothing, not even the new accounts', async () => {
    const t = fresh();
    // A wallet never credited: the accounts this transfer would create are rolled back with it.
    expect(await refusal(createTransfer(prisma, transfer({ id: t.id('pay-0'), debitAccountId: t.wallet, creditAccountId: t.merchant, amount: '1', kind: 'pending' })))).toBe('InsufficientFunds');
    expect(await prisma.ledgerAccount.count({ where: { id: { in: [t.wallet, t.merchant] } } })).toBe(0);

    await createTransfer(prisma, transfer({ id: t.id('topup'), debitAccountId: CARD, creditAccountId: t.wallet, amount: '100' }));
    await createTransfer(prisma, transfer({ id: t.id('hold'), debitAccountId: t.wallet, creditAccountId: t.merchant, amount: '60', kind: 'pending' }));
    // 40 left: held money cannot be spent twice, posted or pending.
    expect(await refusal(createTransfer(prisma, transfer({ id: t.id('pay-1'), debitAccountId: t.wallet, creditAccountId: t.merchant, amount: '41', kind: 'pending' })))).toBe('InsufficientFunds');
    expect(await refusal(createTransfer(prisma, transfer({ id: t.id('pay-2'), debitAccountId: t.wallet, creditAccountId: BANK, amount: '41' })))).toBe('InsufficientFunds');
    expect(await prisma.ledgerTransfer.count({ where: { id: { in: [t.id('pay-0'), t.id('pay-1'), t.id('pay-2')] } } })).toBe(0);
    expect(await walletBalance(prisma, t.wallet)).toEqual({ available: 40n, held: 60n });
    expect(await accountBalance(prisma, t.merchant)).toEqual(counters({ creditsPending: 60n }));
    // Nothing was recorded against the refused id: once the wallet can cover it, the same id succeeds.
    expect((await createTransfer(prisma, transfer({ id: t.id('pay-2'), debitAccountId: t.wallet, creditAccountId: BANK, amount: '40' }))).outcome).toBe('created');
    expect(await walletBalance(prisma, t.wallet)).toEqual({ available: 0n, held: 60n });
    await expectConsistent([t.wallet, t.merchant, BANK]);
  });

  it('the journal refuses UPDATE and DELETE', async () => {
    const t = fresh();
    await createTransfer(prisma, transfer({ id: t.id('topup'), debitAccountId: CARD, creditAccountId: t.wallet, amount: '1000' }));
    await expect(prisma.$executeRaw`UPDATE ledger_transfers SET amount = 1 WHERE id = ${t.id('topup')}`).rejects.toThrow(/append-only/);
    await expect(prisma.$executeRaw`DELETE FROM ledger_transfers WHERE id = ${t.id('topup')}`).rejects.toThrow(/append-only/);
    expect((await prisma.ledgerTransfer.findUniqueOrThrow({ where: { id: t.id('topup') } })).amount).toBe(1000n);
  });
});

describe('reads', () => {
  it('lists an account transfers newest first, a page at a time, with their direction', async () => {
    const t = fresh();
    await createTransfer(prisma, transfer({ id: t.id(1), debitAccountId: CARD, creditAccountId: t.wallet, amount: '500' }));
    await createTransfer(prisma, transfer({ id: t.id(2), debitAccountId: t.wallet, creditAccountId: t.merchant, amount: '100', kind: 'pending' }));
    await postPending(prisma, { id: t.id(3), pendingId: t.id(2), amount: '80' });
    await createTransfer(prisma, transfer({ id: t.id(4), debitAccountId: t.merchant, creditAccountId: t.wallet, amount: '30', code: 'checkout_refund' }));
    await createTransfer(prisma, transfer({ id: t.id(5), debitAccountId: t.wallet, creditAccountId: BANK, amount: '50', code: 'payout' }));
    await createTransfer(prisma, transfer({ id: t.id('other'), debitAccountId: CARD, creditAccountId: t.wallet2, amount: '1' }));

    const seen: Array<{ id: string; direction: string; amount: string }> = [];
    let before: string | undefined;
    let pages = 0;
    do {
      const page = await accountTransfers(prisma, t.wallet, { limit: 2, before });
      seen.push(...page.transfers.map((x) => ({ id: x.id, direction: x.direction, amount: x.amount })));
      before = page.nextCursor ?? undefined;
      pages++;
    } while (before);
    expect(pages).toBe(3);
    expect(seen).toEqual([
      { id: t.id(5), direction: 'debit', amount: '50' },
      { id: t.id(4), direction: 'credit', amount: '30' },
      { id: t.id(3), direction: 'debit', amount: '80' },
      { id: t.id(2), direction: 'debit', amount: '100' },
      { id: t.id(1), direction: 'credit', amount: '500' },
    ]);
    expect((await accountTransfers(prisma, t.merchant, { limit: 10 })).transfers.map((x) => [x.id, x.direction])).toEqual([
      [t.id(4), 'debit'],
      [t.id(3), 'credit'],
      [t.id(2), 'credit'],
    ]);
    expect(await accountTransfers(prisma, 'wallet:nobody:nobody:XTS', { limit: 5 })).toEqual({ transfers: [], nextCursor: null });
    expect(await accountBalance(prisma, 'wallet:nobody:nobody:XTS')).toEqual(zero);
    await expect(accountTransfers(prisma, t.wallet, { limit: 2, before: 'garbage' })).rejects.toThrow(RangeError);
  });

  it('checkLedger finds stored balances that disagree with the journal, unbalanced currencies and overdrawn wallets', async () => {
    const t = fresh();
    await createTransfer(prisma, transfer({ id: t.id('topup'), debitAccountId: CARD, creditAccountId: t.wallet, amount: '1000' }));
    await createTransfer(prisma, transfer({ id: t.id('pay'), debitAccountId: t.wallet, creditAccountId: t.merchant, amount: '300', kind: 'pending' }));
    const rolledBack = new Error('roll back the corruption');
    // Corrupt inside a transaction and check through it, then roll back: the shared database stays sound.
    await expect(
      prisma.$transaction(async (tx) => {
        await tx.$executeRaw`UPDATE ledger_balances SET debits_posted = debits_posted + 2000 WHERE account_id = ${t.wallet}`;
        const report = await checkLedger(tx, { accountIds: [t.wallet, t.merchant] });
        expect(report.ok).toBe(false);
        expect(report.mismatches).toEqual([
          {
            accountId: t.wallet,
            stored: counters({ creditsPosted: 1000n, debitsPosted: 2000n, debitsPending: 300n }),
            fromJournal: counters({ creditsPosted: 1000n, debitsPending: 300n }),
          },
        ]);
        expect(report.overdrawn).toEqual([{ accountId: t.wallet, available: -1300n }]);
        expect(report.imbalancedCurrencies).toEqual([expect.objectContaining({ currency: CUR })]);
        expect(report).toMatchObject({ accounts: 2, transfers: 2, unresolvedPendingCount: 1 });
        throw rolledBack;
      }),
    ).rejects.toBe(rolledBack);
    await expectConsistent([t.wallet, t.merchant]);
  });
});

describe('activities', () => {
  it('turn ledger refusals and malformed requests into typed non-retryable failures', async () => {
    const t = fresh();
    const activities = createLedgerActivities(prisma);
    const failureOf = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (err) {
        return err;
      }
      throw new Error('expected a failure');
    };
    const insufficient = await failureOf(activities.createTransfer(transfer({ id: t.id('pay'), debitAccountId: t.wallet, creditAccountId: t.merchant, amount: '5', kind: 'pending' })));
    expect(insufficient).toBeInstanceOf(ApplicationFailure);
    expect(insufficient).toMatchObject({ type: FailureType.InsufficientFunds, nonRetryable: true });

    await activities.createTransfer(transfer({ id: t.id('topup'), debitAccountId: CARD, creditAccountId: t.wallet, amount: '10' }));
    await activities.createTransfer(transfer({ id: t.id('pay'), debitAccountId: t.wallet, creditAccountId: t.merchant, amount: '5', kind: 'pending' }));
    expect(await activities.postPendingTransfer({ id: t.id('post'), pendingId: t.id('pay'), amount: '4' })).toMatchObject({ outcome: 'created' });
    const conflict = await failureOf(activities.voidPendingTransfer({ id: t.id('void'), pendingId: t.id('pay') }));
    expect(conflict).toMatchObject({ type: FailureType.LedgerConflict, nonRetryable: true });

    // A request the ledger can never accept ends the step at once instead of being retried for ever.
    const bug = await failureOf(activities.createTransfer(transfer({ id: t.id('bad'), debitAccountId: 'nobody', creditAccountId: t.wallet, amount: '1' })));
    expect(bug).toMatchObject({ type: INVALID_LEDGER_REQUEST, nonRetryable: true, message: expect.stringContaining('not a ledger account') });
    const zero = await failureOf(activities.createTransfer(transfer({ id: t.id('zero'), debitAccountId: t.wallet, creditAccountId: t.merchant, amount: '0' })));
    expect(zero).toMatchObject({ type: INVALID_LEDGER_REQUEST, nonRetryable: true, message: expect.stringContaining('positive integer') });
  });
});

describe('concurrency', () => {
  it('80 simultaneous holds of 100 on a wallet holding 5,000: exactly 50 succeed and nothing overdraws', async () => {
    const t = fresh();
    await createTransfer(prisma, transfer({ id: t.id('topup'), debitAccountId: CARD, creditAccountId: t.wallet, amount: '5000' }));
    const started = performance.now();
    const results = await Promise.allSettled(
      Array.from({ length: 80 }, (_, i) =>
        createTransfer(prisma, transfer({ id: t.id(`hold-${i}`), debitAccountId: t.wallet, creditAccountId: t.merchant, amount: '100', kind: 'pending', code: 'checkout_wallet_payment' })),
      ),
    );
    const elapsed = performance.now() - started;
    const created = results.filter((r) => r.status === 'fulfilled' && r.value.outcome === 'created');
    const refused = results.filter((r) => r.status === 'rejected' && r.reason instanceof LedgerError && r.reason.type === 'InsufficientFunds');
    expect(results.filter((r) => r.status === 'rejected' && !refused.includes(r))).toEqual([]);
    expect(created).toHaveLength(50);
    expect(refused).toHaveLength(30);
    expect(await walletBalance(prisma, t.wallet)).toEqual({ available: 0n, held: 5000n });
    expect(await accountBalance(prisma, t.merchant)).toEqual(counters({ creditsPending: 5000n }));
    expect(await journalRowsTouching(t.wallet)).toBe(51);
    await expectConsistent([t.wallet, t.merchant]);
    if (timings) console.info(`80 concurrent wallet holds: ${elapsed.toFixed(0)} ms`);
  });

  it('200 simultaneous postings to one merchant from many sources all land, spread over its shards', async () => {
    const t = fresh();
    const wallets = Array.from({ length: 20 }, (_, i) => ledgerAccount.wallet(`m-${t.run}`, `buyer-${i}-${t.run}`, CUR));
    await Promise.all(wallets.map((w, i) => createTransfer(prisma, transfer({ id: t.id(`fund-${i}`), debitAccountId: CARD, creditAccountId: w, amount: '1000000' }))));
    const amounts = Array.from({ length: 200 }, () => BigInt(1 + Math.floor(Math.random() * 10_000)));
    const started = performance.now();
    const results = await Promise.all(
      amounts.map((amount, i) =>
        createTransfer(
          prisma,
          transfer({
            id: t.id(`sale-${i}`),
            // Half card captures (the card clearing account is itself sharded), half wallet payments.
            debitAccountId: i % 2 === 0 ? CARD : wallets[i % wallets.length]!,
            creditAccountId: t.merchant,
            amount: amount.toString(),
            code: i % 2 === 0 ? 'checkout_card_capture' : 'checkout_wallet_payment',
          }),
        ),
      ),
    );
    const elapsed = performance.now() - started;
    expect(results.every((r) => r.outcome === 'created')).toBe(true);
    const total = amounts.reduce((a, b) => a + b, 0n);
    expect(await accountBalance(prisma, t.merchant)).toEqual(counters({ creditsPosted: total }));
    const shards = await prisma.ledgerBalance.findMany({ where: { accountId: t.merchant }, orderBy: { shard: 'asc' } });
    expect(shards).toHaveLength(HOT_ACCOUNT_SHARDS);
    // 200 random ids over 8 shards: an empty shard has probability ~1e-11.
    expect(shards.every((s) => s.creditsPosted > 0n)).toBe(true);
    const walletDebits = amounts.filter((_, i) => i % 2 === 1).reduce((a, b) => a + b, 0n);
    const walletTotals = await Promise.all(wallets.map((w) => accountBalance(prisma, w)));
    expect(walletTotals.reduce((a, b) => a + b.debitsPosted, 0n)).toBe(walletDebits);
    await expectConsistent([t.merchant, ...wallets]);
    if (timings) console.info(`200 concurrent postings to one merchant: ${elapsed.toFixed(0)} ms, per shard ${shards.map((s) => s.creditsPosted).join(' ')}`);
  });

  it('racing resolutions of one pending transfer: exactly one wins, the rest conflict, retries of the winner answer exists', async () => {
    const t = fresh();
    await createTransfer(prisma, transfer({ id: t.id('topup'), debitAccountId: CARD, creditAccountId: t.wallet, amount: '1000' }));
    await createTransfer(prisma, transfer({ id: t.id('pay'), debitAccountId: t.wallet, creditAccountId: t.merchant, amount: '700', kind: 'pending' }));
    const attempts = Array.from({ length: 30 }, (_, i) =>
      i % 3 === 0 ? voidPending(prisma, { id: t.id(`void-${i}`), pendingId: t.id('pay') }) : postPending(prisma, { id: t.id(`post-${i}`), pendingId: t.id('pay'), amount: String(100 + i) }),
    );
    const results = await Promise.allSettled(attempts);
    const winners = results.filter((r): r is PromiseFulfilledResult<TransferResult> => r.status === 'fulfilled');
    expect(winners).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected' && r.reason instanceof LedgerError && r.reason.type === 'LedgerConflict')).toHaveLength(29);
    const winner = winners[0]!.value.transfer;
    const retries = await Promise.all(
      Array.from({ length: 10 }, () =>
        winner.kind === 'void_pending' ? voidPending(prisma, { id: winner.id, pendingId: t.id('pay') }) : postPending(prisma, { id: winner.id, pendingId: t.id('pay'), amount: winner.amount }),
      ),
    );
    expect(retries.map((r) => r.outcome)).toEqual(Array(10).fill('exists'));
    const posted = winner.kind === 'post_pending' ? BigInt(winner.amount) : 0n;
    expect(await walletBalance(prisma, t.wallet)).toEqual({ available: 1000n - posted, held: 0n });
    expect(await journalRowsTouching(t.wallet)).toBe(3);
    await expectConsistent([t.wallet, t.merchant]);
  });

  it('simultaneous retries of one new transfer create it once', async () => {
    const t = fresh();
    const topup = transfer({ id: t.id('topup'), debitAccountId: CARD, creditAccountId: t.wallet, amount: '250' });
    const results = await Promise.all(Array.from({ length: 20 }, () => createTransfer(prisma, topup)));
    expect(results.filter((r) => r.outcome === 'created')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'exists')).toHaveLength(19);
    expect(await accountBalance(prisma, t.wallet)).toEqual(counters({ creditsPosted: 250n }));
  });
});

// ----- Model-based property test -----

class InjectedFault extends Error {}

type Fault = { kind: 'none' } | { kind: 'before-commit'; statement: number } | { kind: 'after-commit' };

/**
 * The client a step writes through: `before-commit` makes the n-th SQL statement of the write's
 * transaction throw (so it rolls back part-way), `after-commit` lets it commit and then loses the
 * answer (the caller sees a failure although the transfer exists): the two ways an activity
 * attempt fails that a retry must survive.
 */
function faulty(client: PrismaClient, fault: Fault): PrismaClient {
  if (fault.kind === 'none') return client;
  const failAt = fault.kind === 'before-commit' ? fault.statement : 0;
  const failingTx = <T extends object>(tx: T): T => {
    let statements = 0;
    return new Proxy(tx, {
      get(target, prop) {
        const value: unknown = Reflect.get(target, prop);
        if (typeof value !== 'function') return value;
        if (prop !== '$queryRaw' && prop !== '$executeRaw') return value.bind(target);
        return (...args: unknown[]) => {
          if (++statements === failAt) throw new InjectedFault(`statement ${failAt} failed`);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  };
  return new Proxy(client, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop);
      if (prop !== '$transaction') return typeof value === 'function' ? value.bind(target) : value;
      return async (fn: (tx: object) => Promise<unknown>, options?: object) => {
        const result = await target.$transaction((tx) => fn(fault.kind === 'before-commit' ? failingTx(tx) : tx), options);
        if (fault.kind === 'after-commit') throw new InjectedFault('answer lost after commit');
        return result;
      };
    },
  });
}

type Outcome = 'created' | 'exists' | 'InsufficientFunds' | 'LedgerConflict';

type Write =
  | { fn: 'create'; req: TransferRequest }
  | { fn: 'post'; id: string; pendingId: string; amount?: string }
  | { fn: 'void'; id: string; pendingId: string };

function send(client: PrismaClient, write: Write): Promise<TransferResult> {
  if (write.fn === 'create') return createTransfer(client, write.req);
  if (write.fn === 'post') return postPending(client, { id: write.id, pendingId: write.pendingId, ...(write.amount === undefined ? {} : { amount: write.amount }) });
  return voidPending(client, { id: write.id, pendingId: write.pendingId });
}

async function outcomeOf(write: Promise<TransferResult>): Promise<Outcome | 'fault'> {
  try {
    return (await write).outcome;
  } catch (err) {
    if (err instanceof LedgerError) return err.type;
    if (err instanceof InjectedFault) return 'fault';
    throw err;
  }
}

interface ModelTransfer {
  debit: string;
  credit: string;
  amount: bigint;
  kind: 'posted' | 'pending' | 'post_pending' | 'void_pending';
  code: string;
  reference: string | null;
  pendingId: string | null;
  resolvedBy?: string;
}

/** What the ledger must do, written independently of it: plain maps, the TigerBeetle rules by hand. */
class LedgerModel {
  readonly balances = new Map<string, BalanceCounters>();
  readonly transfers = new Map<string, ModelTransfer>();

  balance(account: string): BalanceCounters {
    return this.balances.get(account) ?? zero;
  }

  private add(account: string, delta: Partial<BalanceCounters>): void {
    const b = this.balance(account);
    this.balances.set(account, {
      debitsPending: b.debitsPending + (delta.debitsPending ?? 0n),
      debitsPosted: b.debitsPosted + (delta.debitsPosted ?? 0n),
      creditsPending: b.creditsPending + (delta.creditsPending ?? 0n),
      creditsPosted: b.creditsPosted + (delta.creditsPosted ?? 0n),
    });
  }

  available(account: string): bigint {
    const b = this.balance(account);
    return b.creditsPosted - b.debitsPosted - b.debitsPending;
  }

  /** The outcome the ledger must answer, and (for `created`) the change to apply once it has. */
  expect(write: Write): { outcome: Outcome; apply?: () => void } {
    if (write.fn === 'create') {
      const { req } = write;
      const amount = BigInt(req.amount);
      const existing = this.transfers.get(req.id);
      if (existing) {
        const same =
          existing.debit === req.debitAccountId &&
          existing.credit === req.creditAccountId &&
          existing.amount === amount &&
          existing.kind === req.kind &&
          existing.code === req.code &&
          existing.reference === (req.reference ?? null);
        return { outcome: same ? 'exists' : 'LedgerConflict' };
      }
      if (req.debitAccountId.startsWith('wallet:') && this.available(req.debitAccountId) < amount) return { outcome: 'InsufficientFunds' };
      return {
        outcome: 'created',
        apply: () => {
          this.transfers.set(req.id, { debit: req.debitAccountId, credit: req.creditAccountId, amount, kind: req.kind, code: req.code, reference: req.reference ?? null, pendingId: null });
          const pending = req.kind === 'pending';
          this.add(req.debitAccountId, pending ? { debitsPending: amount } : { debitsPosted: amount });
          this.add(req.creditAccountId, pending ? { creditsPending: amount } : { creditsPosted: amount });
        },
      };
    }
    const pending = this.transfers.get(write.pendingId);
    if (!pending || pending.kind !== 'pending') return { outcome: 'LedgerConflict' };
    const kind = write.fn === 'post' ? 'post_pending' : 'void_pending';
    const amount = write.fn === 'post' && write.amount !== undefined ? BigInt(write.amount) : pending.amount;
    if (amount > pending.amount) return { outcome: 'LedgerConflict' };
    const existing = this.transfers.get(write.id);
    if (existing) return { outcome: existing.kind === kind && existing.pendingId === write.pendingId && existing.amount === amount ? 'exists' : 'LedgerConflict' };
    if (pending.resolvedBy) return { outcome: 'LedgerConflict' };
    return {
      outcome: 'created',
      apply: () => {
        pending.resolvedBy = write.id;
        this.transfers.set(write.id, { ...pending, kind, amount, pendingId: write.pendingId, resolvedBy: undefined });
        const posted = kind === 'post_pending' ? amount : 0n;
        this.add(pending.debit, { debitsPending: -pending.amount, debitsPosted: posted });
        this.add(pending.credit, { creditsPending: -pending.amount, creditsPosted: posted });
      },
    };
  }
}

type Step =
  | { op: 'topup' | 'pay' | 'payout' | 'refund'; wallet: 0 | 1; amount: bigint; fault: Fault }
  | { op: 'post'; pick: number; part: 'full' | 'over' | number; fault: Fault }
  | { op: 'void' | 'resolveAgain' | 'retry' | 'reuse'; pick: number; fault: Fault };

const faultArb: fc.Arbitrary<Fault> = fc.oneof(
  { weight: 6, arbitrary: fc.constant<Fault>({ kind: 'none' }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 6 }).map((statement): Fault => ({ kind: 'before-commit', statement })) },
  { weight: 1, arbitrary: fc.constant<Fault>({ kind: 'after-commit' }) },
);
// Top-ups larger than spends on average, so most holds succeed and there is something to post or void.
const topupArb = fc.bigInt({ min: 1n, max: 5000n });
const amountArb = fc.bigInt({ min: 1n, max: 2000n });
const walletArb = fc.constantFrom<0 | 1>(0, 1);
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('topup' as const), wallet: walletArb, amount: topupArb, fault: faultArb }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('pay' as const), wallet: walletArb, amount: amountArb, fault: faultArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('payout' as const), wallet: walletArb, amount: amountArb, fault: faultArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('refund' as const), wallet: walletArb, amount: amountArb, fault: faultArb }) },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('post' as const),
      pick: fc.nat(),
      part: fc.oneof(fc.constant<'full'>('full'), fc.constant<'over'>('over'), fc.integer({ min: 1, max: 100 })),
      fault: faultArb,
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('void' as const), pick: fc.nat(), fault: faultArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('resolveAgain' as const), pick: fc.nat(), fault: faultArb }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('retry' as const), pick: fc.nat(), fault: faultArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('reuse' as const), pick: fc.nat(), fault: faultArb }) },
);

describe('model-based: random wallet flows with retries and faults', () => {
  it('after every step the books balance, no wallet is negative, stored balances equal the journal and the model', async () => {
    let steps = 0;
    const tally = new Map<string, number>();
    const count = (key: string) => tally.set(key, (tally.get(key) ?? 0) + 1);
    const started = performance.now();
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 40, size: 'max' }), async (plan) => {
        const t = fresh();
        const wallets = [t.wallet, t.wallet2] as const;
        const own = [t.wallet, t.wallet2, t.merchant];
        const all = [...own, CARD, BANK];
        const model = new LedgerModel();
        const sent: Write[] = [];
        // The clearing accounts are shared with earlier runs: compare their change since this run began.
        const baseline = new Map(await Promise.all([CARD, BANK].map(async (a) => [a, await accountBalance(prisma, a)] as const)));

        const pendings = (resolved: boolean) => [...model.transfers.entries()].filter(([, x]) => x.kind === 'pending' && !!x.resolvedBy === resolved).map(([id]) => id);

        const writeFor = (step: Step, n: number): Write | undefined => {
          const id = t.id(n);
          switch (step.op) {
            case 'topup':
              return { fn: 'create', req: transfer({ id, debitAccountId: CARD, creditAccountId: wallets[step.wallet], amount: step.amount.toString(), code: 'topup' }) };
            case 'pay':
              return { fn: 'create', req: transfer({ id, debitAccountId: wallets[step.wallet], creditAccountId: t.merchant, amount: step.amount.toString(), kind: 'pending', code: 'checkout_wallet_payment' }) };
            case 'payout':
              return { fn: 'create', req: transfer({ id, debitAccountId: wallets[step.wallet], creditAccountId: BANK, amount: step.amount.toString(), kind: 'pending', code: 'payout' }) };
            case 'refund':
              return { fn: 'create', req: transfer({ id, debitAccountId: t.merchant, creditAccountId: wallets[step.wallet], amount: step.amount.toString(), code: 'checkout_refund' }) };
            case 'void': {
              const open = pendings(false);
              return open.length === 0 ? undefined : { fn: 'void', id, pendingId: open[step.pick % open.length]! };
            }
            case 'post': {
              const open = pendings(false);
              if (open.length === 0) return undefined;
              const pendingId = open[step.pick % open.length]!;
              const held = model.transfers.get(pendingId)!.amount;
              if (step.part === 'full') return { fn: 'post', id, pendingId };
              const amount = step.part === 'over' ? held + 1n : held * BigInt(step.part) / 100n || 1n;
              return { fn: 'post', id, pendingId, amount: amount.toString() };
            }
            case 'resolveAgain': {
              const resolved = pendings(true);
              if (resolved.length === 0) return undefined;
              const pendingId = resolved[step.pick % resolved.length]!;
              return step.pick % 2 === 0 ? { fn: 'void', id, pendingId } : { fn: 'post', id, pendingId };
            }
            case 'retry':
              return sent.length === 0 ? undefined : sent[step.pick % sent.length];
            case 'reuse': {
              // An earlier id with one field changed: a conflict if that id was written, else a new transfer.
              const earlier = sent[step.pick % Math.max(sent.length, 1)];
              if (!earlier) return undefined;
              if (earlier.fn === 'create') return { fn: 'create', req: { ...earlier.req, amount: (BigInt(earlier.req.amount) + 1n).toString() } };
              return earlier.fn === 'post' ? { fn: 'void', id: earlier.id, pendingId: earlier.pendingId } : { fn: 'post', id: earlier.id, pendingId: earlier.pendingId };
            }
          }
        };

        const assertInvariants = async (context: string) => {
          const report = await checkLedger(prisma, { accountIds: all });
          expect({ context, mismatches: report.mismatches, imbalanced: report.imbalancedCurrencies, overdrawn: report.overdrawn, invalid: report.invalidResolutions }).toEqual({
            context,
            mismatches: [],
            imbalanced: [],
            overdrawn: [],
            invalid: [],
          });
          for (const w of wallets) expect((await walletBalance(prisma, w)).available, `${context}: ${w}`).toBeGreaterThanOrEqual(0n);
          for (const a of own) expect(await accountBalance(prisma, a), `${context}: ${a}`).toEqual(model.balance(a));
          for (const a of [CARD, BANK]) {
            const base = baseline.get(a)!;
            const delta = model.balance(a);
            expect(await accountBalance(prisma, a), `${context}: ${a}`).toEqual({
              debitsPending: base.debitsPending + delta.debitsPending,
              debitsPosted: base.debitsPosted + delta.debitsPosted,
              creditsPending: base.creditsPending + delta.creditsPending,
              creditsPosted: base.creditsPosted + delta.creditsPosted,
            });
          }
          // The journal holds exactly the model's transfers: nothing applied twice, nothing refused left behind.
          const rows = await prisma.ledgerTransfer.findMany({
            where: { OR: [{ debitAccountId: { in: own } }, { creditAccountId: { in: own } }] },
            select: { id: true, kind: true, amount: true, pendingId: true },
            orderBy: { id: 'asc' },
          });
          expect(rows, context).toEqual(
            [...model.transfers.entries()]
              .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
              .map(([id, x]) => ({ id, kind: x.kind, amount: x.amount, pendingId: x.pendingId })),
          );
        };

        for (const [n, step] of plan.entries()) {
          const write = writeFor(step, n);
          if (!write) continue;
          sent.push(write);
          steps++;
          const context = `step ${n} ${JSON.stringify(step, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`;
          const expected = model.expect(write);
          const got = await outcomeOf(send(faulty(prisma, step.fault), write));
          count(`${write.fn}:${expected.outcome}${got === 'fault' ? `:${step.fault.kind}` : ''}`);

          if (got === 'fault' && step.fault.kind === 'after-commit') {
            // The write committed but its answer was lost: the model applies it, and the retry finds it.
            expect(['created', 'exists'], context).toContain(expected.outcome);
            expected.apply?.();
            await assertInvariants(`${context} (answer lost)`);
            expect(await outcomeOf(send(prisma, write)), `${context} retry`).toBe('exists');
          } else if (got === 'fault') {
            // Rolled back part-way: nothing may have changed; the retry gets the answer the first attempt should have.
            await assertInvariants(`${context} (rolled back)`);
            expect(await outcomeOf(send(prisma, write)), `${context} retry`).toBe(expected.outcome);
            expected.apply?.();
          } else {
            expect(got, context).toBe(expected.outcome);
            expected.apply?.();
          }
          await assertInvariants(context);
        }
      }),
      { numRuns: 25 },
    );
    if (timings) console.info(`model-based: ${steps} writes in 25 runs, ${(performance.now() - started).toFixed(0)} ms`, Object.fromEntries([...tally].sort()));
  }, 300_000);
});

// ----- npm run ledger:check -----

describe('scripts/ledger-check.ts', () => {
  const adminUrl = process.env.DATABASE_URL!;
  const name = `ledger_check_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  const url = Object.assign(new URL(adminUrl), { pathname: `/${name}` }).toString();
  const run = async (databaseUrl: string) => {
    const tsx = path.resolve(import.meta.dirname, '..', 'node_modules', '.bin', 'tsx');
    try {
      const { stdout } = await promisify(execFile)(tsx, ['scripts/ledger-check.ts'], { cwd: path.resolve(import.meta.dirname, '..'), env: { ...process.env, DATABASE_URL: databaseUrl } });
      return { code: 0, out: stdout };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, out: e.stdout + e.stderr };
    }
  };
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };

  afterAll(async () => {
    await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });

  it('exits 0 on consistent books, 1 when a balance disagrees with the journal, 2 when it cannot check', async () => {
    // A database of its own, so corrupting it cannot disturb any other test.
    await admin(`CREATE DATABASE ${name}`);
    await applyMigrations(url, undefined, createLogger('ledger-test', 'error'));
    const db = createPrisma(url, 2);
    try {
      const t = fresh();
      await createTransfer(db, transfer({ id: t.id('topup'), debitAccountId: CARD, creditAccountId: t.wallet, amount: '1000' }));
      await createTransfer(db, transfer({ id: t.id('pay'), debitAccountId: t.wallet, creditAccountId: t.merchant, amount: '300', kind: 'pending' }));
      const ok = await run(url);
      expect(ok.out).toContain('ledger OK: 3 accounts, 2 transfers, 1 pending holds unresolved');
      expect(ok.code).toBe(0);

      await db.$executeRaw`UPDATE ledger_balances SET credits_posted = credits_posted + 1 WHERE account_id = ${t.wallet}`;
      const bad = await run(url);
      expect(bad.code).toBe(1);
      expect(bad.out).toContain('ledger INCONSISTENT');
      expect(bad.out).toContain(t.wallet);
    } finally {
      await db.$disconnect();
    }
    const down = await run(Object.assign(new URL(adminUrl), { port: '1', pathname: `/${name}` }).toString());
    expect(down.code).toBe(2);
  }, 60_000);
});
