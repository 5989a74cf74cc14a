// The ledger: double entry, append-only, two-phase, on PostgreSQL. Modelled on TigerBeetle: integer
// amounts, ids chosen by the caller so a retry finds its own transfer (`exists` is an outcome, not
// an error), pending transfers resolved by exactly one post (full or partial, the rest released)
// or void, and per-account "debits must not exceed credits" enforced where the money moves.
//
// Every write is one READ COMMITTED transaction that (1) makes sure both accounts and their balance
// rows exist, (2) inserts the journal row (the id's primary key, and for resolutions the unique
// pending_id, make a retry or a race find the first writer's row), (3) updates one balance row per
// side. The journal (ledger_transfers) is the truth; ledger_balances is a cache of its sums that
// checkLedger recomputes. Nothing here knows about Temporal: activities/ledger.ts wraps it.
import { createHash } from 'node:crypto';
import { Prisma } from '../generated/prisma/client.js';
import type { PrismaClient } from './db.js';
import type { LedgerAccountKind, TransferKind, TransferRecord, TransferRequest, TransferResult } from '../domain/ledger.js';

/** Why a ledger write was refused; both are business outcomes a retry cannot change. */
export class LedgerError extends Error {
  constructor(
    readonly type: 'InsufficientFunds' | 'LedgerConflict',
    message: string,
  ) {
    super(message);
    this.name = 'LedgerError';
  }
}

// ----- Accounts -----

/**
 * Hot accounts (a merchant receiving every order of a flash sale, the platform's clearing
 * accounts) spread their writes over this many balance rows. 8 keeps checkLedger and balance reads
 * cheap while letting 8 transfers to one account commit in parallel instead of queueing on one
 * row lock.
 */
export const HOT_ACCOUNT_SHARDS = 8;

export interface AccountSpec {
  id: string;
  kind: LedgerAccountKind;
  currency: string;
  /** false: debits (posted + pending) may never exceed posted credits (TigerBeetle's debits_must_not_exceed_credits). */
  allowOverdraft: boolean;
  /** Balance rows. An account that must not overdraw has exactly one, so one conditional UPDATE enforces the limit. */
  shards: number;
}

const CURRENCY = /^[A-Z]{3}$/;

/** What an account is, read from its id (domain/ledger.ts builds the ids). Throws on an id it does not know. */
export function accountSpec(id: string): AccountSpec {
  const parts = id.split(':');
  const currency = parts[parts.length - 1] ?? '';
  const known = (kind: LedgerAccountKind, allowOverdraft: boolean): AccountSpec => ({
    id,
    kind,
    currency,
    allowOverdraft,
    shards: allowOverdraft ? HOT_ACCOUNT_SHARDS : 1,
  });
  if (CURRENCY.test(currency) && parts.every((part) => part !== '')) {
    // wallet:<merchant>:<customer>:<currency>; the customer id may itself contain ':'.
    if (parts[0] === 'wallet' && parts.length >= 4) return known('wallet', false);
    // merchant:<merchant>:pending|available:<currency>
    if (parts[0] === 'merchant' && parts.length >= 4) {
      const state = parts[parts.length - 2];
      if (state === 'pending') return known('merchant_pending', true);
      if (state === 'available') return known('merchant_available', true);
    }
    if (parts[0] === 'platform' && parts.length === 3) {
      if (parts[1] === 'card_clearing') return known('card_clearing', true);
      if (parts[1] === 'bank_clearing') return known('bank_clearing', true);
    }
  }
  throw new RangeError(`not a ledger account id: "${id}"`);
}

/**
 * The balance row a transfer uses on an account with `shards` rows: a stable hash of the transfer
 * id, so a post or void finds the rows its pending transfer held without storing them. Must never
 * change (nor may an existing account's shard count): resolutions of pending transfers written
 * before the change would release from the wrong rows.
 */
export function shardFor(transferId: string, shards: number): number {
  if (shards <= 1) return 0;
  return createHash('sha256').update(transferId).digest().readUInt32BE(0) % shards;
}

// ----- Plumbing -----

export type Tx = Parameters<Parameters<PrismaClient['$transaction']>[0]>[0];
/** A client or an open transaction: reads work on either. */
export type LedgerDb = Pick<PrismaClient, '$queryRaw' | '$executeRaw'>;

// READ COMMITTED on purpose: a conditional UPDATE that waited for another transaction's row lock is
// re-evaluated against the committed row (PostgreSQL's EvalPlanQual), which is exactly the
// "check funds and debit" atomicity we need; REPEATABLE READ would fail it with a serialization
// error instead. maxWait is generous because a burst queues for pool connections, not for locks.
const WRITE_TX = { isolationLevel: Prisma.TransactionIsolationLevel.ReadCommitted, maxWait: 10_000, timeout: 15_000 };

const MAX_AMOUNT = 2n ** 63n - 1n;

function parseAmount(amount: string, what: string): bigint {
  if (typeof amount !== 'string' || !/^[1-9][0-9]*$/.test(amount) || BigInt(amount) > MAX_AMOUNT) {
    throw new RangeError(`${what} must be a positive integer number of minor units as a decimal string, got ${JSON.stringify(amount)}`);
  }
  return BigInt(amount);
}

interface TransferRow {
  id: string;
  debit_account_id: string;
  credit_account_id: string;
  amount: bigint;
  currency: string;
  kind: string;
  pending_id: string | null;
  code: string;
  reference: string | null;
  created_at: Date;
}

function toRecord(row: TransferRow): TransferRecord {
  return {
    id: row.id,
    debitAccountId: row.debit_account_id,
    creditAccountId: row.credit_account_id,
    amount: row.amount.toString(),
    currency: row.currency,
    kind: row.kind as TransferKind,
    pendingId: row.pending_id,
    code: row.code,
    reference: row.reference,
    createdAt: row.created_at.toISOString(),
  };
}

async function findTransfer(db: LedgerDb, id: string): Promise<TransferRow | undefined> {
  const rows = await db.$queryRaw<TransferRow[]>`SELECT * FROM ledger_transfers WHERE id = ${id}`;
  return rows[0];
}

type StoredAccount = { id: string; currency: string; allow_overdraft: boolean; shards: number };

async function loadAccounts(tx: LedgerDb, ids: string[]): Promise<Map<string, StoredAccount>> {
  const rows = await tx.$queryRaw<StoredAccount[]>`
    SELECT id, currency, allow_overdraft, shards FROM ledger_accounts WHERE id IN (${Prisma.join(ids)})`;
  return new Map(rows.map((row) => [row.id, row]));
}

/**
 * Creates the accounts (and their balance rows) a transfer names the first time one does. Returns
 * the stored accounts: their flags and shard counts, not today's accountSpec, decide how their
 * balances are updated. Inserts go in id order, so two transactions creating the same two new
 * accounts queue instead of deadlocking.
 */
async function ensureAccounts(tx: Tx, specs: AccountSpec[]): Promise<Map<string, StoredAccount>> {
  const ids = specs.map((s) => s.id);
  const found = await loadAccounts(tx, ids);
  const missing = specs.filter((s) => !found.has(s.id)).sort((a, b) => (a.id < b.id ? -1 : 1));
  if (missing.length === 0) return found;
  await tx.$executeRaw`
    INSERT INTO ledger_accounts (id, kind, currency, allow_overdraft, shards)
    VALUES ${Prisma.join(missing.map((s) => Prisma.sql`(${s.id}, ${s.kind}, ${s.currency}, ${s.allowOverdraft}, ${s.shards})`))}
    ON CONFLICT (id) DO NOTHING`;
  const balanceRows = missing.flatMap((s) => Array.from({ length: s.shards }, (_, shard) => Prisma.sql`(${s.id}, ${shard})`));
  await tx.$executeRaw`
    INSERT INTO ledger_balances (account_id, shard) VALUES ${Prisma.join(balanceRows)}
    ON CONFLICT (account_id, shard) DO NOTHING`;
  // A concurrent transaction may have created them first (with its own flags): read what is stored.
  return loadAccounts(tx, ids);
}

/** One side of a transfer: signed changes to one balance row. */
interface Leg {
  account: StoredAccount;
  shard: number;
  debitsPending: bigint;
  debitsPosted: bigint;
  creditsPending: bigint;
  creditsPosted: bigint;
}

/**
 * Applies the legs in (account, shard) order: every ledger transaction takes its row locks in the
 * same global order, so two of them can wait for each other but never deadlock. (Wallet ids sort
 * after merchant and platform ids, so a wallet's single hot row is also locked last and held for
 * the shortest time.)
 *
 * A leg that adds debits to an account that must not overdraw is ONE conditional UPDATE of its
 * single row: funds are checked and taken atomically, and a transaction that waited for the row
 * re-checks against the committed balance. No row matched means insufficient funds; the throw
 * rolls the whole transaction back, journal row included.
 */
async function applyLegs(tx: Tx, transferId: string, legs: Leg[]): Promise<void> {
  const ordered = [...legs].sort((a, b) => (a.account.id === b.account.id ? a.shard - b.shard : a.account.id < b.account.id ? -1 : 1));
  for (const leg of ordered) {
    const needed = leg.debitsPending + leg.debitsPosted - leg.creditsPosted;
    const guarded = !leg.account.allow_overdraft && needed > 0n;
    const count = await tx.$executeRaw`
      UPDATE ledger_balances SET
        debits_pending = debits_pending + ${leg.debitsPending},
        debits_posted = debits_posted + ${leg.debitsPosted},
        credits_pending = credits_pending + ${leg.creditsPending},
        credits_posted = credits_posted + ${leg.creditsPosted}
      WHERE account_id = ${leg.account.id} AND shard = ${leg.shard}
        ${guarded ? Prisma.sql`AND credits_posted - debits_posted - debits_pending >= ${needed}` : Prisma.empty}`;
    if (count === 1) continue;
    if (guarded) throw new LedgerError('InsufficientFunds', `${leg.account.id} cannot cover ${needed} for transfer ${transferId}`);
    throw new Error(`ledger balance row ${leg.account.id}#${leg.shard} is missing (transfer ${transferId})`);
  }
}

// ----- Writes -----

/**
 * Records a posted or pending transfer. Retrying with the same id and fields returns `exists` and
 * moves nothing; the same id with other fields is a LedgerConflict; a debit a no-overdraft account
 * cannot cover is InsufficientFunds and writes nothing (so a later retry of the same id may
 * succeed: unlike TigerBeetle, failures are not recorded against the id).
 */
export function createTransfer(prisma: PrismaClient, req: TransferRequest): Promise<TransferResult> {
  return prisma.$transaction((tx) => createTransferIn(tx, req), WRITE_TX);
}

/**
 * createTransfer inside the caller's transaction (READ COMMITTED), so a step can post its money
 * and record what it did in one commit.
 */
export async function createTransferIn(tx: Tx, req: TransferRequest): Promise<TransferResult> {
  const amount = parseAmount(req.amount, 'amount');
  if (req.kind !== 'posted' && req.kind !== 'pending') throw new RangeError(`kind must be posted or pending, got ${JSON.stringify(req.kind)}`);
  if (!req.id) throw new RangeError('a transfer needs an id');
  if (!req.code) throw new RangeError('a transfer needs a code');
  if (req.debitAccountId === req.creditAccountId) throw new RangeError(`transfer ${req.id} debits and credits the same account`);
  const specs = [accountSpec(req.debitAccountId), accountSpec(req.creditAccountId)];
  for (const spec of specs) {
    if (spec.currency !== req.currency) throw new RangeError(`transfer ${req.id} is in ${req.currency} but ${spec.id} holds ${spec.currency}`);
  }
  const reference = req.reference ?? null;

  {
    const accounts = await ensureAccounts(tx, specs);
    const inserted = await tx.$queryRaw<TransferRow[]>`
      INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, currency, kind, pending_id, code, reference)
      VALUES (${req.id}, ${req.debitAccountId}, ${req.creditAccountId}, ${amount}, ${req.currency}, ${req.kind}, NULL, ${req.code}, ${reference})
      ON CONFLICT (id) DO NOTHING
      RETURNING *`;
    const row = inserted[0];
    if (!row) {
      const existing = (await findTransfer(tx, req.id))!;
      const same =
        existing.debit_account_id === req.debitAccountId &&
        existing.credit_account_id === req.creditAccountId &&
        existing.amount === amount &&
        existing.currency === req.currency &&
        existing.kind === req.kind &&
        existing.code === req.code &&
        existing.reference === reference;
      if (!same) throw new LedgerError('LedgerConflict', `transfer id ${req.id} was already used with different fields`);
      return { outcome: 'exists', transfer: toRecord(existing) };
    }

    const debit = accounts.get(req.debitAccountId)!;
    const credit = accounts.get(req.creditAccountId)!;
    for (const account of [debit, credit]) {
      if (account.currency !== req.currency) throw new RangeError(`transfer ${req.id} is in ${req.currency} but ${account.id} is stored in ${account.currency}`);
    }
    const pending = req.kind === 'pending' ? amount : 0n;
    const posted = req.kind === 'posted' ? amount : 0n;
    await applyLegs(tx, req.id, [
      { account: debit, shard: shardFor(req.id, debit.shards), debitsPending: pending, debitsPosted: posted, creditsPending: 0n, creditsPosted: 0n },
      { account: credit, shard: shardFor(req.id, credit.shards), debitsPending: 0n, debitsPosted: 0n, creditsPending: pending, creditsPosted: posted },
    ]);
    return { outcome: 'created', transfer: toRecord(row) };
  }
}

export interface PostPendingRequest {
  /** The resolution's own id, chosen by the caller like any transfer id. */
  id: string;
  pendingId: string;
  /** What to post, at most the pending amount (default: all of it); the rest of the hold is released. */
  amount?: string;
}

export interface VoidPendingRequest {
  id: string;
  pendingId: string;
}

type PendingRow = TransferRow & {
  debit_currency: string;
  debit_allow_overdraft: boolean;
  debit_shards: number;
  credit_currency: string;
  credit_allow_overdraft: boolean;
  credit_shards: number;
};

async function resolvePending(prisma: PrismaClient, kind: 'post_pending' | 'void_pending', req: { id: string; pendingId: string; amount?: string | undefined }): Promise<TransferResult> {
  if (!req.id || !req.pendingId) throw new RangeError('a resolution needs an id and a pendingId');
  const requested = req.amount === undefined ? undefined : parseAmount(req.amount, 'amount');

  return prisma.$transaction(async (tx) => {
    const [pending] = await tx.$queryRaw<PendingRow[]>`
      SELECT t.*,
        d.currency AS debit_currency, d.allow_overdraft AS debit_allow_overdraft, d.shards AS debit_shards,
        c.currency AS credit_currency, c.allow_overdraft AS credit_allow_overdraft, c.shards AS credit_shards
      FROM ledger_transfers t
      JOIN ledger_accounts d ON d.id = t.debit_account_id
      JOIN ledger_accounts c ON c.id = t.credit_account_id
      WHERE t.id = ${req.pendingId}`;
    if (!pending) throw new LedgerError('LedgerConflict', `pending transfer ${req.pendingId} not found`);
    if (pending.kind !== 'pending') throw new LedgerError('LedgerConflict', `transfer ${req.pendingId} is ${pending.kind}, not pending`);
    const amount = kind === 'void_pending' ? pending.amount : (requested ?? pending.amount);
    if (amount > pending.amount) {
      throw new LedgerError('LedgerConflict', `cannot post ${amount} of pending transfer ${req.pendingId}: it holds ${pending.amount}`);
    }

    // No conflict target: a clash on the id is a retry (or a reused id), a clash on pending_id is a
    // pending transfer someone else already resolved. The unique index settles races between the two.
    const inserted = await tx.$queryRaw<TransferRow[]>`
      INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, currency, kind, pending_id, code, reference)
      VALUES (${req.id}, ${pending.debit_account_id}, ${pending.credit_account_id}, ${amount}, ${pending.currency}, ${kind}, ${pending.id}, ${pending.code}, ${pending.reference})
      ON CONFLICT DO NOTHING
      RETURNING *`;
    const row = inserted[0];
    if (!row) {
      const existing = await findTransfer(tx, req.id);
      if (existing) {
        if (existing.kind === kind && existing.pending_id === req.pendingId && existing.amount === amount) {
          return { outcome: 'exists', transfer: toRecord(existing) };
        }
        throw new LedgerError('LedgerConflict', `transfer id ${req.id} was already used with different fields`);
      }
      const [resolution] = await tx.$queryRaw<TransferRow[]>`SELECT * FROM ledger_transfers WHERE pending_id = ${req.pendingId}`;
      throw new LedgerError('LedgerConflict', `pending transfer ${req.pendingId} was already resolved by ${resolution?.kind ?? 'another transfer'} ${resolution?.id ?? ''}`.trim());
    }

    // The hold leaves the rows it was placed on; what is posted lands on the same rows.
    const posted = kind === 'post_pending' ? amount : 0n;
    const account = (side: 'debit' | 'credit'): StoredAccount => ({
      id: side === 'debit' ? pending.debit_account_id : pending.credit_account_id,
      currency: side === 'debit' ? pending.debit_currency : pending.credit_currency,
      allow_overdraft: side === 'debit' ? pending.debit_allow_overdraft : pending.credit_allow_overdraft,
      shards: side === 'debit' ? pending.debit_shards : pending.credit_shards,
    });
    const debit = account('debit');
    const credit = account('credit');
    await applyLegs(tx, req.id, [
      { account: debit, shard: shardFor(pending.id, debit.shards), debitsPending: -pending.amount, debitsPosted: posted, creditsPending: 0n, creditsPosted: 0n },
      { account: credit, shard: shardFor(pending.id, credit.shards), debitsPending: 0n, debitsPosted: 0n, creditsPending: -pending.amount, creditsPosted: posted },
    ]);
    return { outcome: 'created', transfer: toRecord(row) };
  }, WRITE_TX);
}

/**
 * Posts a pending transfer, fully or partly (TigerBeetle's post_pending_transfer): `amount` (default
 * the whole hold) moves to posted on both accounts and the remainder of the hold is released.
 * LedgerConflict when the pending transfer is unknown, is not pending, was already resolved by
 * another transfer, or holds less than `amount`.
 */
export function postPending(prisma: PrismaClient, req: PostPendingRequest): Promise<TransferResult> {
  return resolvePending(prisma, 'post_pending', req);
}

/** Releases a pending transfer's whole hold (TigerBeetle's void_pending_transfer). Conflicts as postPending. */
export function voidPending(prisma: PrismaClient, req: VoidPendingRequest): Promise<TransferResult> {
  return resolvePending(prisma, 'void_pending', { id: req.id, pendingId: req.pendingId });
}

// ----- Reads -----

export interface BalanceCounters {
  debitsPending: bigint;
  debitsPosted: bigint;
  creditsPending: bigint;
  creditsPosted: bigint;
}

type CounterText = { debits_pending: string; debits_posted: string; credits_pending: string; credits_posted: string };

function counters(row: CounterText | undefined): BalanceCounters {
  return {
    debitsPending: BigInt(row?.debits_pending ?? 0),
    debitsPosted: BigInt(row?.debits_posted ?? 0),
    creditsPending: BigInt(row?.credits_pending ?? 0),
    creditsPosted: BigInt(row?.credits_posted ?? 0),
  };
}

/** The account's four counters summed over its shards; zeros for an account no transfer has named. */
export async function accountBalance(db: LedgerDb, accountId: string): Promise<BalanceCounters> {
  // Sums travel as text: sum(bigint) is numeric, and text is the lossless way into a bigint.
  const [row] = await db.$queryRaw<CounterText[]>`
    SELECT coalesce(sum(debits_pending), 0)::text AS debits_pending, coalesce(sum(debits_posted), 0)::text AS debits_posted,
           coalesce(sum(credits_pending), 0)::text AS credits_pending, coalesce(sum(credits_posted), 0)::text AS credits_posted
    FROM ledger_balances WHERE account_id = ${accountId}`;
  return counters(row);
}

/** What a wallet can spend (posted credits less posted and held debits) and what is held. */
export async function walletBalance(db: LedgerDb, accountId: string): Promise<{ available: bigint; held: bigint }> {
  const b = await accountBalance(db, accountId);
  return { available: b.creditsPosted - b.debitsPosted - b.debitsPending, held: b.debitsPending };
}

export type AccountTransfer = TransferRecord & { direction: 'debit' | 'credit' };

export interface AccountTransfersPage {
  transfers: AccountTransfer[];
  /** Pass as `before` for the next (older) page; null on the last page. */
  nextCursor: string | null;
}

function encodeCursor(row: TransferRow): string {
  return Buffer.from(JSON.stringify([row.created_at.toISOString(), row.id])).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: string; id: string } {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[];
    if (typeof createdAt === 'string' && typeof id === 'string' && !Number.isNaN(Date.parse(createdAt))) return { createdAt, id };
  } catch {
    // fall through
  }
  throw new RangeError('invalid transfers cursor');
}

/**
 * The account's transfers, newest first, `limit` at a time. The cursor is the last row's
 * (created_at, id), so pages neither skip nor repeat rows as new transfers arrive. (created_at is
 * the writing transaction's start, so a transfer that commits late can land behind a page already
 * read: fine for a history view, not a change feed.)
 */
export async function accountTransfers(db: LedgerDb, accountId: string, { limit, before }: { limit: number; before?: string | undefined }): Promise<AccountTransfersPage> {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) throw new RangeError(`limit must be 1..1000, got ${limit}`);
  const cursor = before === undefined ? undefined : decodeCursor(before);
  const after = (column: Prisma.Sql) =>
    cursor ? Prisma.sql`AND ${column} = ${accountId} AND (created_at, id) < (${cursor.createdAt}::timestamptz, ${cursor.id})` : Prisma.sql`AND ${column} = ${accountId}`;
  // Two index scans (one per side) merged, rather than an OR that cannot use either index in order.
  const rows = await db.$queryRaw<Array<TransferRow & { direction: 'debit' | 'credit' }>>`
    SELECT * FROM (
      (SELECT *, 'debit' AS direction FROM ledger_transfers WHERE true ${after(Prisma.sql`debit_account_id`)}
        ORDER BY created_at DESC, id DESC LIMIT ${limit + 1})
      UNION ALL
      (SELECT *, 'credit' AS direction FROM ledger_transfers WHERE true ${after(Prisma.sql`credit_account_id`)}
        ORDER BY created_at DESC, id DESC LIMIT ${limit + 1})
    ) page
    ORDER BY created_at DESC, id DESC
    LIMIT ${limit + 1}`;
  const more = rows.length > limit;
  const pageRows = rows.slice(0, limit);
  return {
    transfers: pageRows.map((row) => ({ ...toRecord(row), direction: row.direction })),
    nextCursor: more && pageRows.length > 0 ? encodeCursor(pageRows[pageRows.length - 1]!) : null,
  };
}

// ----- Consistency check -----

export interface LedgerCheckReport {
  /** True when nothing below is wrong. */
  ok: boolean;
  accounts: number;
  transfers: number;
  /** Accounts whose stored counters differ from what the journal alone says they must be. */
  mismatches: Array<{ accountId: string; stored: BalanceCounters; fromJournal: BalanceCounters }>;
  /** Currencies whose stored debits and credits (posted, or pending) do not add up to the same total. */
  imbalancedCurrencies: Array<{ currency: string; debitsPosted: bigint; creditsPosted: bigint; debitsPending: bigint; creditsPending: bigint }>;
  /** No-overdraft accounts whose debits exceed their posted credits. */
  overdrawn: Array<{ accountId: string; available: bigint }>;
  /** Resolutions that name no pending transfer, or do not match it (accounts, currency, amount). */
  invalidResolutions: Array<{ id: string; pendingId: string }>;
  /** Pending transfers not yet posted or voided: holds still in force (not an error). */
  unresolvedPendingCount: number;
}

export interface CheckScope {
  /**
   * Only these accounts' counters, overdraft and transfers are checked (the per-currency balance is
   * always over every account: a subset of accounts need not balance).
   */
  accountIds?: string[];
}

/**
 * Recomputes every account's counters from the journal alone and compares them with the balance
 * rows, checks that each currency's debits equal its credits and that no account that may not
 * overdraw has. Journal rules: `posted` and `post_pending` count as posted (a post_pending's amount
 * is what was posted); a `pending` counts as pending until a resolution names it, then not at all;
 * `void_pending` counts nothing. Runs in one REPEATABLE READ snapshot when given a client, so
 * transfers committing meanwhile cannot show up as mismatches; given a transaction, it uses that.
 */
export async function checkLedger(db: PrismaClient | LedgerDb, scope: CheckScope = {}): Promise<LedgerCheckReport> {
  if ('$transaction' in db) {
    return db.$transaction((tx) => runChecks(tx, scope), { isolationLevel: Prisma.TransactionIsolationLevel.RepeatableRead, maxWait: 10_000, timeout: 120_000 });
  }
  return runChecks(db, scope);
}

async function runChecks(db: LedgerDb, scope: CheckScope): Promise<LedgerCheckReport> {
  const ids = scope.accountIds;
  if (ids !== undefined && ids.length === 0) {
    return { ok: true, accounts: 0, transfers: 0, mismatches: [], imbalancedCurrencies: [], overdrawn: [], invalidResolutions: [], unresolvedPendingCount: 0 };
  }
  const idList = ids ? Prisma.join(ids) : undefined;
  const inScope = (column: Prisma.Sql) => (idList ? Prisma.sql`${column} IN (${idList})` : Prisma.sql`true`);
  const transferInScope = Prisma.sql`(${inScope(Prisma.sql`t.debit_account_id`)} OR ${inScope(Prisma.sql`t.credit_account_id`)})`;

  type Compared = { account_id: string } & { [K in `${'s' | 'j'}_${keyof CounterText}`]: string };
  const compared = await db.$queryRaw<Compared[]>`
    WITH journal AS (
      SELECT t.debit_account_id, t.credit_account_id,
        CASE WHEN t.kind IN ('posted', 'post_pending') THEN t.amount ELSE 0 END AS posted,
        CASE WHEN t.kind = 'pending' AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = t.id) THEN t.amount ELSE 0 END AS pending
      FROM ledger_transfers t
      WHERE ${transferInScope}
    ), legs AS (
      SELECT debit_account_id AS account_id, pending AS dpe, posted AS dpo, 0::bigint AS cpe, 0::bigint AS cpo FROM journal
      UNION ALL
      SELECT credit_account_id, 0, 0, pending, posted FROM journal
    ), from_journal AS (
      SELECT account_id, sum(dpe) AS dpe, sum(dpo) AS dpo, sum(cpe) AS cpe, sum(cpo) AS cpo
      FROM legs WHERE ${inScope(Prisma.sql`account_id`)} GROUP BY account_id
    ), stored AS (
      SELECT account_id, sum(debits_pending) AS dpe, sum(debits_posted) AS dpo, sum(credits_pending) AS cpe, sum(credits_posted) AS cpo
      FROM ledger_balances WHERE ${inScope(Prisma.sql`account_id`)} GROUP BY account_id
    )
    SELECT account_id,
      coalesce(s.dpe, 0)::text AS s_debits_pending, coalesce(s.dpo, 0)::text AS s_debits_posted,
      coalesce(s.cpe, 0)::text AS s_credits_pending, coalesce(s.cpo, 0)::text AS s_credits_posted,
      coalesce(j.dpe, 0)::text AS j_debits_pending, coalesce(j.dpo, 0)::text AS j_debits_posted,
      coalesce(j.cpe, 0)::text AS j_credits_pending, coalesce(j.cpo, 0)::text AS j_credits_posted
    FROM stored s FULL JOIN from_journal j USING (account_id)
    WHERE s.dpe IS DISTINCT FROM j.dpe OR s.dpo IS DISTINCT FROM j.dpo OR s.cpe IS DISTINCT FROM j.cpe OR s.cpo IS DISTINCT FROM j.cpo
    ORDER BY account_id`;
  const pick = (row: Compared, p: 's' | 'j'): BalanceCounters =>
    counters({ debits_pending: row[`${p}_debits_pending`], debits_posted: row[`${p}_debits_posted`], credits_pending: row[`${p}_credits_pending`], credits_posted: row[`${p}_credits_posted`] });
  const same = (a: BalanceCounters, b: BalanceCounters) =>
    a.debitsPending === b.debitsPending && a.debitsPosted === b.debitsPosted && a.creditsPending === b.creditsPending && a.creditsPosted === b.creditsPosted;
  // IS DISTINCT FROM also flags an account present on one side with zeros on the other; keep real differences only.
  const mismatches = compared
    .map((row) => ({ accountId: row.account_id, stored: pick(row, 's'), fromJournal: pick(row, 'j') }))
    .filter((m) => !same(m.stored, m.fromJournal));

  const currencies = await db.$queryRaw<Array<{ currency: string } & CounterText>>`
    SELECT a.currency, sum(b.debits_pending)::text AS debits_pending, sum(b.debits_posted)::text AS debits_posted,
           sum(b.credits_pending)::text AS credits_pending, sum(b.credits_posted)::text AS credits_posted
    FROM ledger_balances b JOIN ledger_accounts a ON a.id = b.account_id
    GROUP BY a.currency ORDER BY a.currency`;
  const imbalancedCurrencies = currencies
    .map((row) => ({ currency: row.currency, ...counters(row) }))
    .filter((c) => c.debitsPosted !== c.creditsPosted || c.debitsPending !== c.creditsPending);

  const overdrawnRows = await db.$queryRaw<Array<{ account_id: string; available: string }>>`
    SELECT a.id AS account_id, sum(b.credits_posted - b.debits_posted - b.debits_pending)::text AS available
    FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id
    WHERE NOT a.allow_overdraft AND ${inScope(Prisma.sql`a.id`)}
    GROUP BY a.id HAVING sum(b.credits_posted - b.debits_posted - b.debits_pending) < 0
    ORDER BY a.id`;

  const invalidResolutions = await db.$queryRaw<Array<{ id: string; pendingId: string }>>`
    SELECT t.id, t.pending_id AS "pendingId"
    FROM ledger_transfers t LEFT JOIN ledger_transfers p ON p.id = t.pending_id
    WHERE t.pending_id IS NOT NULL AND ${transferInScope}
      AND (p.id IS NULL OR p.kind <> 'pending'
        OR p.debit_account_id <> t.debit_account_id OR p.credit_account_id <> t.credit_account_id OR p.currency <> t.currency
        OR t.amount > p.amount OR (t.kind = 'void_pending' AND t.amount <> p.amount))
    ORDER BY t.id`;

  const [counts] = await db.$queryRaw<Array<{ accounts: number; transfers: number; unresolved: number }>>`
    SELECT
      (SELECT count(*)::int FROM ledger_accounts a WHERE ${inScope(Prisma.sql`a.id`)}) AS accounts,
      (SELECT count(*)::int FROM ledger_transfers t WHERE ${transferInScope}) AS transfers,
      (SELECT count(*)::int FROM ledger_transfers t
        WHERE t.kind = 'pending' AND ${transferInScope}
          AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = t.id)) AS unresolved`;

  const overdrawn = overdrawnRows.map((row) => ({ accountId: row.account_id, available: BigInt(row.available) }));
  return {
    ok: mismatches.length === 0 && imbalancedCurrencies.length === 0 && overdrawn.length === 0 && invalidResolutions.length === 0,
    accounts: counts?.accounts ?? 0,
    transfers: counts?.transfers ?? 0,
    mismatches,
    imbalancedCurrencies,
    overdrawn,
    invalidResolutions,
    unresolvedPendingCount: counts?.unresolved ?? 0,
  };
}
