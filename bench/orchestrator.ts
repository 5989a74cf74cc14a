// The orchestrator under flash-sale load, through its real HTTP API: POST /v1/checkouts answers
// `processing` (a unit is held for you) or `sold_out` at once; a held buyer's definitive answer is
// the checkout's end state, reached later in its workflow (captured, or failed/expired/canceled).
//
// Progress is read from PostgreSQL directly, every POLL_MS, rather than through GET /v1/checkouts:
// polling thousands of checkouts through the API would load the very process being measured.
import pg from 'pg';
import { CAPTURED_STATUSES, CLOSED_BEFORE_CAPTURE } from '../domain/index.js';
import { createCardNetworkClient } from '../platform/card-network-client.js';
import { computeFigures, type DesignFigures, type FlashSaleRun } from './figures.js';
import { runLoad } from './load.js';

const POLL_MS = 200;
/** After the last POST answer, how long held checkouts may take to end before we stop waiting. */
const QUIESCENCE_GRACE_MS = 300_000;
const PRICE_MINOR_UNITS = '12000';
const CURRENCY = 'JPY';

export interface OrchestratorRun extends FlashSaleRun {
  apiUrl: string;
  apiKey: string;
  merchantId: string;
}

export interface OrchestratorFigures extends DesignFigures {
  /** Card authorizations of this run still holding a customer's money after quiescence. */
  authorizationsLeft: number;
  /** Held checkouts not yet in an end state when we stopped waiting (0 when the run completed). */
  unfinished: number;
  /** Sampling resolution of confirmedPerMin and answeredAllMs for the held buyers. */
  pollMs: number;
  /** End states of the held checkouts, e.g. { captured: 1000 }. */
  heldEndedAs: Record<string, number>;
}

const FINAL = new Set<string>([...CAPTURED_STATUSES, ...CLOSED_BEFORE_CAPTURE]);

export async function runOrchestrator(run: OrchestratorRun): Promise<OrchestratorFigures> {
  const { log } = run;
  const headers = { authorization: `Bearer ${run.apiKey}` };
  const sku = `flash-${run.runId}`;
  const created = await fetch(`${run.apiUrl}/v1/products`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ sku, name: 'Flash-sale benchmark drop', price: { amount: PRICE_MINOR_UNITS, currency: CURRENCY }, stock: run.stock }),
  });
  if (created.status !== 201) throw new Error(`creating product ${sku} failed: HTTP ${created.status} ${await created.text()}`);

  const pool = new pg.Pool({ connectionString: run.databaseUrl, max: 2 });
  try {
    // The database's clock bounds the index range scan below (checkouts by merchant and
    // created_at), so it does not depend on this machine's clock agreeing with the server's.
    const { rows: clock } = await pool.query<{ since: Date }>("SELECT now() - interval '1 second' AS since");
    const since = clock[0]!.since;
    const countByStatus = async (): Promise<Map<string, number>> => {
      const { rows } = await pool.query<{ status: string; n: number }>(
        `SELECT c.status, count(*)::int AS n
           FROM checkouts c JOIN checkout_items i ON i.checkout_id = c.id
          WHERE c.merchant_id = $1 AND c.created_at >= $2 AND i.sku = $3
          GROUP BY c.status`,
        [run.merchantId, since, sku],
      );
      return new Map(rows.map((r) => [r.status, r.n]));
    };

    let loadDone = false;
    let lastPollAtMs = 0;
    let confirmedSeen = -1;
    let confirmedChangedAtMs = 0;
    let allFinalAtMs: number | undefined;
    let latest = new Map<string, number>();
    let answeredWithCheckout = 0;
    let lastPostAnswerAtMs = 0;
    let startedAt = 0;

    const poll = async (nowMs: number) => {
      latest = await countByStatus();
      lastPollAtMs = nowMs;
      const captured = CAPTURED_STATUSES.reduce((n, s) => n + (latest.get(s) ?? 0), 0);
      if (captured !== confirmedSeen) {
        confirmedSeen = captured;
        confirmedChangedAtMs = nowMs;
      }
      const total = [...latest.values()].reduce((a, b) => a + b, 0);
      const open = [...latest.entries()].filter(([s]) => !FINAL.has(s)).reduce((n, [, c]) => n + c, 0);
      if (loadDone && open === 0 && total >= answeredWithCheckout && allFinalAtMs === undefined) allFinalAtMs = nowMs;
    };

    let polling = true;
    const poller = (async () => {
      while (polling) {
        await new Promise((r) => setTimeout(r, POLL_MS));
        if (startedAt === 0) continue;
        try {
          await poll(performance.now() - startedAt);
        } catch (err) {
          log.warn('progress poll failed', { error: String(err) });
        }
      }
    })();

    log.info('orchestrator: load starts', { sku, buyers: run.buyers, concurrency: run.concurrency });
    startedAt = performance.now();
    const load = await runLoad({
      url: `${run.apiUrl}/v1/checkouts`,
      headers,
      buyers: run.buyers,
      concurrency: run.concurrency,
      timeoutMs: run.buyerTimeoutMs,
      request: (i) => ({
        idempotencyKey: `bench-${run.runId}-b${i}`,
        body: { customerId: `buyer-${i}`, items: [{ sku, quantity: 1 }], payment: { method: 'card', token: 'tok_visa' } },
      }),
    });
    // The driver's clock starts a hair after ours; its sample times are moved onto ours.
    const driverOffset = load.startedAt - startedAt;
    for (const s of load.samples) {
      if (s.answer === 'processing' || s.answer === 'sold_out') answeredWithCheckout++;
      lastPostAnswerAtMs = Math.max(lastPostAnswerAtMs, s.answeredAtMs + driverOffset);
    }
    loadDone = true;
    log.info('orchestrator: all POSTs answered; waiting for held checkouts to end', { durationMs: Math.round(load.durationMs), retries: load.retries });

    const deadline = performance.now() + QUIESCENCE_GRACE_MS;
    while (allFinalAtMs === undefined && performance.now() < deadline) await new Promise((r) => setTimeout(r, POLL_MS));
    polling = false;
    await poller;
    if (allFinalAtMs === undefined) log.warn('orchestrator: held checkouts did not all end in time', { statuses: Object.fromEntries(latest) });

    const { rows: productRows } = await pool.query<{ available: number; reserved: number; sold: number }>(
      'SELECT available, reserved, sold FROM products WHERE merchant_id = $1 AND sku = $2',
      [run.merchantId, sku],
    );
    const product = productRows[0]!;
    const final = await countByStatus();
    const captured = CAPTURED_STATUSES.reduce((n, s) => n + (final.get(s) ?? 0), 0);
    const failed = ['failed', 'expired', 'canceled'].reduce((n, s) => n + (final.get(s) ?? 0), 0);
    const soldOutRows = final.get('sold_out') ?? 0;
    const open = [...final.entries()].filter(([s]) => !FINAL.has(s)).reduce((n, [, c]) => n + c, 0);
    const heldEndedAs = Object.fromEntries([...final.entries()].filter(([s]) => s !== 'sold_out'));

    const authorizationsLeft = await uncapturedAuthorizations(run.cardNetworkUrl, `checkout-${run.merchantId}-bench-${run.runId}-b`, since);

    const figures = computeFigures({
      load: { ...load, samples: load.samples.map((s) => ({ ...s, answeredAtMs: s.answeredAtMs + driverOffset, sentAtMs: s.sentAtMs + driverOffset })) },
      stock: run.stock,
      buyers: run.buyers,
      confirmed: captured,
      lastConfirmedAtMs: captured > 0 ? confirmedChangedAtMs : 0,
      lastDefinitiveAtMs: Math.max(lastPostAnswerAtMs, allFinalAtMs ?? lastPollAtMs),
      // A buyer told `processing` has a definitive answer once the checkout ended; one told
      // `sold_out` had it at once. Rows, not answers: those are what ended.
      answered: captured + failed + soldOutRows,
      failed,
      oversold: Math.max(0, product.sold - run.stock, captured - run.stock),
      heldLeft: product.reserved,
    });
    return { ...figures, authorizationsLeft, unfinished: open, pollMs: POLL_MS, heldEndedAs };
  } finally {
    await pool.end();
  }
}

/**
 * Authorizations whose reference starts with `referencePrefix` still in `authorized` (money held
 * on a card, neither captured nor voided) or `requires_action`. The network's report returns at
 * most 1000 per state; a run that leaves more has a bigger problem than this count.
 */
export async function uncapturedAuthorizations(cardNetworkUrl: string, referencePrefix: string, createdAfter: Date): Promise<number> {
  const client = createCardNetworkClient({ baseUrl: cardNetworkUrl });
  let left = 0;
  for (const state of ['authorized', 'requires_action'] as const) {
    const list = await client.listAuthorizations({ state, createdAfter });
    left += list.filter((a) => a.reference.startsWith(referencePrefix)).length;
  }
  return left;
}
