// Runs one baseline design (bench/baselines/server.ts) under the same load as the orchestrator:
// its own process, its own tables in schema `bench`, the stack's card simulator. A design that
// cannot serve every buyer within the budget stops taking new ones, lets those in flight finish,
// and reports what it did with `completed: false` and a projected time to answer everyone.
import path from 'node:path';
import pg from 'pg';
import { getFreePort, nodeEntry, startProcess, waitUntil } from '../../scripts/processes.js';
import { computeFigures, isDefinitive, type DesignFigures, type FlashSaleRun } from '../figures.js';
import { runLoad } from '../load.js';
import { uncapturedAuthorizations } from '../orchestrator.js';
import { createBenchProduct, dropBenchRows, readBenchOutcome } from './schema.js';

const PRICE_MINOR_UNITS = 12_000n;
const CURRENCY = 'JPY';

export interface BaselineRun extends FlashSaleRun {
  design: 'lock' | 'split';
  rootDir: string;
  budgetS: number;
  /** Buyers sent on a SKU of their own first, unmeasured (0: none). */
  warmup: number;
  poolSize: number;
  cardLatencyMs: number;
  keepData: boolean;
  logs: boolean;
}

export interface BaselineFigures extends DesignFigures {
  authorizationsLeft: number;
  /** Every unit accounted for: stock left + sold + held = initial stock. */
  stockBalances: boolean;
}

export async function runBaseline(run: BaselineRun): Promise<BaselineFigures> {
  const { log, design } = run;
  const sku = `flash-${run.runId}-${design}`;
  const db = new pg.Pool({ connectionString: run.databaseUrl, max: 2 });
  const port = await getFreePort();
  const { command, args } = nodeEntry(path.join('bench', 'baselines', 'server.ts'), run.rootDir);
  const server = startProcess({
    name: `baseline-${design}`,
    command,
    args: [...args, '--design', design, '--port', String(port), '--pool', String(run.poolSize)],
    env: { ...process.env, DATABASE_URL: run.databaseUrl, CARD_NETWORK_URL: run.cardNetworkUrl },
    cwd: run.rootDir,
    onLine: run.logs ? (line) => process.stderr.write(`baseline-${design} | ${line}\n`) : () => undefined,
    log,
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntil(
      `baseline ${design} at ${url}`,
      async () => {
        const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
        await res.body?.cancel();
        return res.status === 200;
      },
      { timeoutMs: 60_000, intervalMs: 200, abortIf: () => (server.running ? undefined : `exited:\n${server.recentOutput(20)}`) },
    );
    if (run.warmup > 0) {
      const warmSku = `${sku}-warmup`;
      // The lock design sells one unit per two card calls, serially: one unit warms its path without
      // spending a quarter of the warm-up crowd times 2L on it.
      const warmStock = design === 'lock' ? 1 : Math.ceil(run.warmup / 4);
      await createBenchProduct(db, warmSku, warmStock, PRICE_MINOR_UNITS, CURRENCY);
      await runLoad({
        url: `${url}/checkout`,
        buyers: run.warmup,
        concurrency: Math.min(run.concurrency, run.warmup),
        timeoutMs: run.buyerTimeoutMs,
        request: (i) => ({ idempotencyKey: `bench-${run.runId}-${design}-warmup-${i}`, body: { sku: warmSku, token: 'tok_visa' } }),
      });
      if (!run.keepData) await dropBenchRows(db, warmSku);
    }
    await createBenchProduct(db, sku, run.stock, PRICE_MINOR_UNITS, CURRENCY);
    const { rows: clock } = await db.query<{ since: Date }>("SELECT now() - interval '1 second' AS since");

    log.info(`${design}: load starts`, { sku, buyers: run.buyers, concurrency: run.concurrency, budgetS: run.budgetS });
    const load = await runLoad({
      url: `${url}/checkout`,
      buyers: run.buyers,
      concurrency: run.concurrency,
      timeoutMs: run.buyerTimeoutMs,
      stopSendingAfterMs: run.budgetS * 1000,
      request: (i) => ({ idempotencyKey: `bench-${run.runId}-${design}-b${i}`, body: { sku, token: 'tok_visa' } }),
    });
    log.info(`${design}: load over; waiting for the server to go idle`, { durationMs: Math.round(load.durationMs), notSent: load.notSent });

    // Buyers who gave up may still be queued in the server (the lock design's queue in front of the
    // row lock): quiescence is when the server has nothing in flight.
    let stats = { inFlight: 0, lastConfirmedAtEpochMs: 0 };
    const idleDeadlineMs = run.buyerTimeoutMs + 4 * run.cardLatencyMs + 30_000;
    await waitUntil(
      `baseline ${design} idle`,
      async () => {
        const res = await fetch(`${url}/stats`, { signal: AbortSignal.timeout(5000) });
        stats = (await res.json()) as typeof stats;
        return stats.inFlight === 0;
      },
      { timeoutMs: idleDeadlineMs, intervalMs: 200 },
    ).catch((err: unknown) => log.warn(`${design}: server still busy; reporting what is there`, { error: String(err), inFlight: stats.inFlight }));

    const outcome = await readBenchOutcome(db, sku);
    const confirmed = outcome.orders.confirmed ?? 0;
    const pending = outcome.orders.pending ?? 0;
    const definitive = load.samples.filter((s) => isDefinitive(s.answer));
    const authorizationsLeft = await uncapturedAuthorizations(run.cardNetworkUrl, `bench-${run.runId}-${design}-b`, clock[0]!.since);
    const figures = computeFigures({
      load,
      stock: run.stock,
      buyers: run.buyers,
      confirmed,
      lastConfirmedAtMs: stats.lastConfirmedAtEpochMs > 0 ? stats.lastConfirmedAtEpochMs - load.startedAtEpochMs : 0,
      lastDefinitiveAtMs: definitive.reduce((m, s) => Math.max(m, s.answeredAtMs), 0),
      answered: definitive.length,
      failed: outcome.orders.failed ?? 0,
      oversold: Math.max(0, outcome.sold - run.stock, confirmed - run.stock),
      heldLeft: pending,
    });
    if (!run.keepData) await dropBenchRows(db, sku);
    return { ...figures, authorizationsLeft, stockBalances: outcome.stockLeft + outcome.sold + pending === run.stock };
  } finally {
    await server.stop();
    await db.end();
  }
}
