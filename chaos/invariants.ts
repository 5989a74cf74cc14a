// What must hold after the storm, read from the books rather than from what the load was told: our
// tables, the ledger journal, and the simulators' own records (the card network's and the bank's
// schemas in the same PostgreSQL, read directly: their listing endpoints answer per reference, and
// one query over their tables sees every reference at once, including ones we never heard of).
import pg from 'pg';
import { createPrisma } from '../platform/db.js';
import { checkLedger } from '../platform/ledger.js';

export interface InvariantReport {
  /** Products whose sold units exceed their stock, or whose available + reserved + sold != stock. */
  oversold: number;
  /** Products whose `sold` differs from the units of captured checkouts (or of committed reservations). */
  stockMismatches: number;
  /** References (checkouts, top-ups) with more than one capture at the card network. */
  doubleCaptures: number;
  /** Top-ups charged and not credited exactly once, or credited without a charge. */
  lostTopups: number;
  /** Checkouts whose ledger entries, network records and refunds do not match their row. */
  ledgerMismatches: number;
  /** Sum over currencies of |debits - credits| (posted and pending), in minor units. */
  ledgerImbalance: string;
  /** checkLedger: counters that differ from the journal, overdrawn wallets, invalid resolutions. */
  ledgerCheckFailures: number;
  /** Pending ledger transfers, stock still held, authorizations still open at the network. */
  pendingHolds: number;
  /** Payouts neither paid (once, posted) nor returned (hold voided or never taken, no money sent). */
  payoutsUnresolved: number;
  /** Checkouts, top-ups, payouts and refunds whose row is not in a final status. */
  nonFinalRows: number;
  /** The first problems found, one line each, for the human summary. */
  problems: string[];
  /** What was looked at. */
  seen: { checkouts: number; capturedCheckouts: number; topups: number; payouts: number; refunds: number; transfers: number };
}

const CAPTURED = new Set(['captured', 'settled', 'partially_refunded', 'refunded']);
const CLOSED_BEFORE_CAPTURE = new Set(['sold_out', 'failed', 'canceled', 'expired']);

interface Transfer {
  id: string;
  debit: string;
  credit: string;
  amount: bigint;
  kind: string;
  pendingId: string | null;
  code: string;
  reference: string | null;
}
interface NetOp {
  key: string;
  type: string;
  status: string;
  amount: bigint;
  reference: string;
  authorizationId: string;
}

const big = (v: string | number | null | undefined) => BigInt(v ?? 0);

/**
 * Network references that name one of our checkouts or top-ups (domain/ids.ts: `co_`/`tu_` and a
 * hash; `checkout-`/`topup-` and the merchant before that scheme), to find charges no row accounts
 * for. Only the given merchants' rows are loaded, so a reference that another merchant's row
 * accounts for is left alone.
 */
const CHECKOUT_ID_PREFIXES = ['co_', 'checkout-'];
const TOPUP_ID_PREFIXES = ['tu_', 'topup-'];

export interface InvariantOptions {
  /**
   * Also judge the network's and the bank's records that no row of any merchant accounts for (a
   * charge or payment with no checkout, top-up or payout). True for a database of one run's own;
   * false where other tests leave such records on purpose (the shared test database).
   */
  unknownReferences?: boolean;
  /**
   * The network's and the bank's records when they are not the simulators' (a workflow test's
   * in-process fakes); by default they are read from the simulators' schemas.
   */
  outside?: OutsideRecords;
}

/** The card network's and the bank's own records, in the simulators' table shapes. */
export interface OutsideRecords {
  /** Every operation, in the order the network made them. */
  cardOperations: Array<{ idempotency_key: string; type: string; status: string; amount: string; reference: string; authorization_id: string }>;
  /** `state`: requires_action, authorized, captured, voided, declined, expired. */
  authorizations: Array<{ id: string; state: string; captured_amount: string; refunded_amount: string; reference: string }>;
  bankTransfers: Array<{ reference: string; status: string; amount: string }>;
}

async function readSimulators(q: <T extends pg.QueryResultRow>(sql: string) => Promise<T[]>): Promise<OutsideRecords> {
  return {
    cardOperations: await q(`SELECT idempotency_key, type, status, amount::text, reference, authorization_id FROM card_network.operations ORDER BY seq`),
    authorizations: await q(`SELECT id, state, captured_amount::text, refunded_amount::text, reference FROM card_network.authorizations`),
    bankTransfers: await q(`SELECT reference, status, amount::text FROM bank.transfers`),
  };
}

/** `merchantIds`: the merchants the load ran as; records of others in the same tables are not looked at. */
export async function checkInvariants(
  databaseUrl: string,
  initialStock: ReadonlyMap<string, number>,
  merchantIds: readonly string[] = ['demo'],
  { unknownReferences = true, outside }: InvariantOptions = {},
): Promise<InvariantReport> {
  const problems: string[] = [];
  const problem = (line: string) => {
    if (problems.length < 50) problems.push(line);
  };
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const q = async <T extends pg.QueryResultRow>(sql: string, params: unknown[] = []) => (await db.query<T>(sql, params)).rows;
    const records = outside ?? (await readSimulators(q));

    // ----- Stock -----
    let oversold = 0;
    let stockMismatches = 0;
    const products = await q<{ sku: string; available: number; reserved: number; sold: number }>(
      `SELECT sku, available, reserved, sold FROM products WHERE merchant_id = ANY($1)`,
      [merchantIds],
    );
    const soldByCaptured = new Map(
      (
        await q<{ sku: string; units: string }>(
          `SELECT i.sku, sum(i.quantity)::text AS units FROM checkout_items i JOIN checkouts c ON c.id = i.checkout_id
            WHERE c.merchant_id = ANY($1) AND c.status = ANY($2) GROUP BY i.sku`,
          [merchantIds, [...CAPTURED]],
        )
      ).map((r) => [r.sku, Number(r.units)]),
    );
    const reservations = await q<{ sku: string; status: string; units: string }>(
      `SELECT sku, status, sum(quantity)::text AS units FROM stock_reservations WHERE merchant_id = ANY($1) GROUP BY sku, status`,
      [merchantIds],
    );
    const units = (sku: string, status: string) => Number(reservations.find((r) => r.sku === sku && r.status === status)?.units ?? 0);
    let heldStock = 0;
    for (const p of products) {
      const stock = initialStock.get(p.sku);
      if (stock === undefined) continue; // not one of this run's products
      if (p.sold > stock || p.available + p.reserved + p.sold !== stock) {
        oversold++;
        problem(`oversold: ${p.sku} stock ${stock} but available ${p.available} + reserved ${p.reserved} + sold ${p.sold}`);
      }
      const captured = soldByCaptured.get(p.sku) ?? 0;
      if (p.sold !== captured || p.sold !== units(p.sku, 'committed') || p.reserved !== units(p.sku, 'held')) {
        stockMismatches++;
        problem(`stock: ${p.sku} sold ${p.sold} reserved ${p.reserved}, but captured checkouts hold ${captured}, committed ${units(p.sku, 'committed')}, held ${units(p.sku, 'held')}`);
      }
      heldStock += p.reserved;
    }

    // ----- The books -----
    const transfers = new Map<string, Transfer>();
    for (const t of await q<{ id: string; debit_account_id: string; credit_account_id: string; amount: string; kind: string; pending_id: string | null; code: string; reference: string | null }>(
      `SELECT id, debit_account_id, credit_account_id, amount::text, kind, pending_id, code, reference FROM ledger_transfers`,
    )) {
      transfers.set(t.id, { id: t.id, debit: t.debit_account_id, credit: t.credit_account_id, amount: big(t.amount), kind: t.kind, pendingId: t.pending_id, code: t.code, reference: t.reference });
    }
    const opsByRef = new Map<string, NetOp[]>();
    const opsByKey = new Map<string, NetOp>();
    for (const o of records.cardOperations) {
      const op = { key: o.idempotency_key, type: o.type, status: o.status, amount: big(o.amount), reference: o.reference, authorizationId: o.authorization_id };
      opsByKey.set(op.key, op);
      opsByRef.set(op.reference, [...(opsByRef.get(op.reference) ?? []), op]);
    }
    const auths = records.authorizations;
    const authsByRef = new Map<string, typeof auths>();
    for (const a of auths) authsByRef.set(a.reference, [...(authsByRef.get(a.reference) ?? []), a]);
    const captureOps = (ref: string) => (opsByRef.get(ref) ?? []).filter((o) => o.type === 'capture' && o.status === 'succeeded');

    let doubleCaptures = 0;
    for (const [ref, ops] of opsByRef) {
      const captures = ops.filter((o) => o.type === 'capture' && o.status === 'succeeded');
      if (captures.length > 1) {
        doubleCaptures++;
        problem(`double capture: ${ref} captured ${captures.length} times (${captures.map((c) => c.amount).join(', ')})`);
      }
      const authorizations = ops.filter((o) => o.type === 'authorization');
      if (authorizations.length > 1) {
        doubleCaptures++;
        problem(`double authorization: ${ref} authorized ${authorizations.length} times`);
      }
    }
    const openAuthorizations = auths.filter((a) => a.state === 'authorized' || a.state === 'requires_action');
    for (const a of openAuthorizations.slice(0, 5)) problem(`open authorization: ${a.id} (${a.state}) of ${a.reference}`);

    // ----- Checkouts: each captured one has exactly its entries; the others have none left -----
    let ledgerMismatches = 0;
    let nonFinalRows = 0;
    const checkouts = await q<{ id: string; merchant_id: string; status: string; amount: string; amount_captured: string; amount_refunded: string; payment_method: string; settled_at: Date | null }>(
      `SELECT id, merchant_id, status, amount::text, amount_captured::text, amount_refunded::text, payment_method, settled_at FROM checkouts WHERE merchant_id = ANY($1)`,
      [merchantIds],
    );
    const refunds = await q<{ id: string; checkout_id: string; amount: string; status: string }>(`SELECT id, checkout_id, amount::text, status FROM refunds WHERE merchant_id = ANY($1)`, [merchantIds]);
    const refundsOf = new Map<string, typeof refunds>();
    for (const r of refunds) refundsOf.set(r.checkout_id, [...(refundsOf.get(r.checkout_id) ?? []), r]);
    nonFinalRows += refunds.filter((r) => r.status === 'pending').length;

    let capturedCheckouts = 0;
    for (const c of checkouts) {
      const wrong: string[] = [];
      const t = (suffix: string) => transfers.get(`${c.id}:${suffix}`);
      const captured = CAPTURED.has(c.status);
      const card = c.payment_method === 'card';
      const amountCaptured = big(c.amount_captured);
      if (!captured && !CLOSED_BEFORE_CAPTURE.has(c.status)) nonFinalRows++;
      if (captured && c.settled_at === null) nonFinalRows++;
      const captures = captureOps(c.id);
      const rs = refundsOf.get(c.id) ?? [];
      const refundTransfers = [...transfers.values()].filter((x) => x.reference === c.id && x.code === 'checkout_refund' && x.id.includes(':ledger-refund:'));

      if (captured) {
        capturedCheckouts++;
        if (card) {
          if (captures.length !== 1 || captures[0]!.amount !== amountCaptured) wrong.push(`network captures ${captures.map((x) => x.amount).join('+') || 'none'} != ${amountCaptured}`);
          const credit = t('merchant-credit');
          if (!credit || credit.amount !== amountCaptured) wrong.push(`merchant-credit ${credit?.amount ?? 'missing'} != ${amountCaptured}`);
          if (t('merchant-credit-reversal')) wrong.push('merchant credit reversed on a captured checkout');
          if (opsByKey.has(`${c.id}:refund:compensation`)) wrong.push('compensation refund at the network on a captured checkout');
        } else {
          const hold = t('wallet-hold');
          const post = t('wallet-capture');
          if (!hold || hold.kind !== 'pending' || hold.amount !== big(c.amount)) wrong.push(`wallet-hold ${hold?.amount ?? 'missing'} != ${c.amount}`);
          if (!post || post.kind !== 'post_pending' || post.amount !== amountCaptured) wrong.push(`wallet-capture ${post?.amount ?? 'missing'} != ${amountCaptured}`);
          if (t('wallet-void') || t('wallet-reversal')) wrong.push('wallet payment voided or reversed on a captured checkout');
        }
        // Refunds: each succeeded one has its ledger transfer (and network refund), failed ones have neither.
        let refunded = 0n;
        for (const r of rs) {
          const lt = t(`ledger-refund:${r.id}`);
          const op = opsByKey.get(`${c.id}:refund:${r.id}`);
          if (r.status === 'succeeded') {
            refunded += big(r.amount);
            if (!lt || lt.amount !== big(r.amount)) wrong.push(`refund ${r.id}: ledger ${lt?.amount ?? 'missing'} != ${r.amount}`);
            if (card && (!op || op.amount !== big(r.amount))) wrong.push(`refund ${r.id}: network ${op?.amount ?? 'missing'} != ${r.amount}`);
          } else if (lt || op) {
            wrong.push(`refund ${r.id} is ${r.status} but has ${lt ? 'a ledger transfer' : ''}${op ? ' a network refund' : ''}`);
          }
        }
        if (refunded !== big(c.amount_refunded)) wrong.push(`refunds sum ${refunded} != amount_refunded ${c.amount_refunded}`);
        if (refundTransfers.length !== rs.filter((r) => r.status === 'succeeded').length) wrong.push(`${refundTransfers.length} ledger refunds for ${rs.filter((r) => r.status === 'succeeded').length} succeeded refunds`);
        if (card) {
          const networkRefunded = (authsByRef.get(c.id) ?? []).reduce((sum, a) => sum + big(a.refunded_amount), 0n);
          if (networkRefunded !== big(c.amount_refunded)) wrong.push(`network refunded ${networkRefunded} != amount_refunded ${c.amount_refunded}`);
        }
        // Settlement moves what was captured and not refunded before it; refunds before it came
        // out of the pending balance, later ones out of the available one.
        if (c.settled_at !== null) {
          const pendingAccount = `merchant:${c.merchant_id}:pending:`;
          const fromPending = refundTransfers.filter((x) => x.debit.startsWith(pendingAccount)).reduce((s, x) => s + x.amount, 0n);
          const settlement = t('settlement')?.amount ?? 0n;
          if (fromPending + settlement !== amountCaptured) wrong.push(`settlement ${settlement} + refunds before it ${fromPending} != captured ${amountCaptured}`);
        }
      } else {
        // Nothing charged, nothing owed: no capture left standing, no merchant credit, no wallet money taken.
        if (captures.length > 0 && !opsByKey.has(`${c.id}:refund:compensation`)) wrong.push(`captured at the network (${captures[0]!.amount}) but ${c.status} and never refunded`);
        if (t('merchant-credit') && !t('merchant-credit-reversal')) wrong.push(`merchant credited but ${c.status}`);
        if (t('wallet-capture') && !t('wallet-reversal')) wrong.push(`wallet charged but ${c.status}`);
        if (rs.length > 0 || refundTransfers.length > 0) wrong.push(`refunds on a checkout that is ${c.status}`);
        if (amountCaptured !== 0n) wrong.push(`amount_captured ${amountCaptured} on a checkout that is ${c.status}`);
      }
      if (wrong.length > 0) {
        ledgerMismatches++;
        problem(`checkout ${c.id} (${c.payment_method}, ${c.status}): ${wrong.join('; ')}`);
      }
    }
    const othersIds = new Set(
      (
        await q<{ id: string }>(
          `SELECT id FROM checkouts WHERE NOT merchant_id = ANY($1)
           UNION ALL SELECT id FROM topups WHERE NOT merchant_id = ANY($1)
           UNION ALL SELECT id FROM payouts WHERE NOT merchant_id = ANY($1)`,
          [merchantIds],
        )
      ).map((r) => r.id),
    );
    const isOurs = (ref: string, prefixes: readonly string[]) => unknownReferences && prefixes.some((p) => ref.startsWith(p)) && !othersIds.has(ref);
    // Captures at the network for checkouts we have no row of (an orphan would be money taken silently).
    const checkoutIds = new Set(checkouts.map((c) => c.id));
    for (const ref of opsByRef.keys()) {
      if (isOurs(ref, CHECKOUT_ID_PREFIXES) && !checkoutIds.has(ref) && captureOps(ref).length > 0) {
        ledgerMismatches++;
        problem(`capture at the network for unknown checkout ${ref}`);
      }
    }

    // ----- Top-ups: charged => credited exactly once; credited => charged -----
    let lostTopups = 0;
    const topups = await q<{ id: string; status: string; amount: string }>(`SELECT id, status, amount::text FROM topups WHERE merchant_id = ANY($1)`, [merchantIds]);
    const topupIds = new Set(topups.map((x) => x.id));
    for (const tu of topups) {
      if (tu.status === 'processing') nonFinalRows++;
      const charges = captureOps(tu.id);
      const refundedBack = opsByKey.get(`${tu.id}:refund`)?.status === 'succeeded';
      const charged = charges.length > 0 && !refundedBack;
      const credits = [...transfers.values()].filter((x) => x.code === 'topup' && x.reference === tu.id);
      const creditedOnce = credits.length === 1 && credits[0]!.amount === big(tu.amount);
      const ok = charged ? creditedOnce && tu.status === 'succeeded' : credits.length === 0 && tu.status !== 'succeeded';
      if (!ok) {
        lostTopups++;
        problem(`top-up ${tu.id} (${tu.status}): ${charges.length} charge(s)${refundedBack ? ' refunded' : ''}, ${credits.length} credit(s) ${credits.map((x) => x.amount).join('+')} for ${tu.amount}`);
      }
    }
    // A credit of one of these merchants' wallets (`wallet:<merchant>:…`) that none of their top-ups
    // accounts for.
    const oursWallet = (account: string) => merchantIds.some((m) => account.startsWith(`wallet:${m}:`));
    for (const x of transfers.values()) {
      if (x.code === 'topup' && oursWallet(x.credit) && (x.reference === null || !topupIds.has(x.reference))) {
        lostTopups++;
        problem(`wallet credited by ${x.id} for no known top-up`);
      }
    }
    for (const ref of opsByRef.keys()) {
      if (isOurs(ref, TOPUP_ID_PREFIXES) && !topupIds.has(ref) && captureOps(ref).length > 0) {
        lostTopups++;
        problem(`card charged for unknown top-up ${ref}`);
      }
    }

    // ----- Payouts: paid (one bank transfer paid, hold posted) or returned (hold voided or never taken, nothing paid) -----
    let payoutsUnresolved = 0;
    const payouts = await q<{ id: string; status: string; amount: string; failure_code: string | null }>(
      `SELECT id, status, amount::text, failure_code FROM payouts WHERE merchant_id = ANY($1)`,
      [merchantIds],
    );
    const bankByRef = new Map<string, Array<{ status: string; amount: bigint }>>();
    for (const b of records.bankTransfers) {
      bankByRef.set(b.reference, [...(bankByRef.get(b.reference) ?? []), { status: b.status, amount: big(b.amount) }]);
    }
    for (const p of payouts) {
      const sent = bankByRef.get(p.id) ?? [];
      const paid = sent.filter((s) => s.status === 'paid');
      const hold = transfers.get(`${p.id}:hold`);
      const posted = transfers.get(`${p.id}:post`);
      const voided = transfers.get(`${p.id}:void`);
      let ok: boolean;
      if (p.status === 'paid') ok = paid.length === 1 && paid[0]!.amount === big(p.amount) && sent.length === 1 && !!hold && !!posted && posted.amount === big(p.amount) && !voided;
      else if (p.status === 'failed' || p.status === 'canceled') ok = paid.length === 0 && !posted && (hold ? !!voided : p.failure_code === 'insufficient_funds');
      else ok = false;
      if (p.status === 'pending' || p.status === 'processing') nonFinalRows++;
      if (!ok) {
        payoutsUnresolved++;
        problem(`payout ${p.id} (${p.status}${p.failure_code ? ` ${p.failure_code}` : ''}): bank ${sent.map((s) => s.status).join('+') || 'nothing'}, hold ${hold ? 'yes' : 'no'}, posted ${posted ? 'yes' : 'no'}, voided ${voided ? 'yes' : 'no'}`);
      }
    }
    const payoutIds = new Set(payouts.map((p) => p.id));
    for (const [ref, sent] of bankByRef) {
      if (unknownReferences && !payoutIds.has(ref) && !othersIds.has(ref) && sent.some((s) => s.status === 'paid')) {
        payoutsUnresolved++;
        problem(`bank paid ${ref}, which is no payout of ours`);
      }
    }

    // ----- The ledger as a whole -----
    const prisma = createPrisma(databaseUrl, 2);
    let report;
    try {
      report = await checkLedger(prisma);
    } finally {
      await prisma.$disconnect();
    }
    let imbalance = 0n;
    const abs = (v: bigint) => (v < 0n ? -v : v);
    for (const c of report.imbalancedCurrencies) imbalance += abs(c.debitsPosted - c.creditsPosted) + abs(c.debitsPending - c.creditsPending);
    const ledgerCheckFailures = report.mismatches.length + report.overdrawn.length + report.invalidResolutions.length;
    if (!report.ok) problem(`ledger check: ${JSON.stringify({ mismatches: report.mismatches.length, imbalanced: report.imbalancedCurrencies.length, overdrawn: report.overdrawn.length, invalidResolutions: report.invalidResolutions.length }, null, 0)}`);
    if (report.unresolvedPendingCount > 0) {
      const pending = [...transfers.values()].filter((x) => x.kind === 'pending' && ![...transfers.values()].some((r) => r.pendingId === x.id));
      for (const x of pending.slice(0, 5)) problem(`pending ledger transfer left: ${x.id} (${x.amount})`);
    }
    if (heldStock > 0) problem(`stock still reserved: ${heldStock} unit(s)`);

    return {
      oversold,
      stockMismatches,
      doubleCaptures,
      lostTopups,
      ledgerMismatches,
      ledgerImbalance: imbalance.toString(),
      ledgerCheckFailures,
      pendingHolds: report.unresolvedPendingCount + heldStock + openAuthorizations.length,
      payoutsUnresolved,
      nonFinalRows,
      problems,
      seen: { checkouts: checkouts.length, capturedCheckouts, topups: topups.length, payouts: payouts.length, refunds: refunds.length, transfers: transfers.size },
    };
  } finally {
    await db.end();
  }
}
