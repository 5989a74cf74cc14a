// The figures each design is judged by, computed the same way for all three from what the load
// driver saw and what the database says afterwards.
import type { Logger } from '../platform/logger.js';
import type { LoadResult } from './load.js';

/** What every design's run is given: the same sale (stock, card network) and the same crowd. */
export interface FlashSaleRun {
  databaseUrl: string;
  cardNetworkUrl: string;
  runId: string;
  stock: number;
  buyers: number;
  concurrency: number;
  buyerTimeoutMs: number;
  log: Logger;
}

export interface DesignFigures {
  /** Units actually sold (from the database, not from answers: a buyer who timed out may still have paid). */
  confirmed: number;
  confirmedPerMin: number;
  /** Load start until every buyer had a definitive answer (projected when `completed` is false). */
  answeredAllMs: number;
  answeredAllProjected: boolean;
  /** Every buyer was sent and answered within the budget. */
  completed: boolean;
  /** Buyers with a definitive answer (confirmed, sold out, failed...). */
  answered: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  soldOut: number;
  soldOutPerSec: number;
  /** When the first buyer heard `sold_out`: roughly when the last unit was taken (0: nobody did). */
  firstSoldOutAtMs: number;
  failed: number;
  timeouts: number;
  /** Answers that were neither a status nor a timeout (4xx/5xx that are not retried). */
  errors: number;
  retries: number;
  retryCauses: Record<string, number>;
  oversold: number;
  heldLeft: number;
  notSent: number;
}

/** Nearest-rank percentile of already sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

const round = (x: number, digits = 1) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

export interface FigureInputs {
  load: LoadResult;
  stock: number;
  buyers: number;
  confirmed: number;
  /** When the last unit was confirmed, ms since load start (0 when none was). */
  lastConfirmedAtMs: number;
  /** When the last buyer who got one had a definitive answer, ms since load start. */
  lastDefinitiveAtMs: number;
  /** Buyers with a definitive answer (for the orchestrator: the held ones count once final). */
  answered: number;
  failed: number;
  oversold: number;
  heldLeft: number;
}

const DEFINITIVE_POST_ANSWERS = new Set(['sold_out', 'confirmed', 'failed']);

export function isDefinitive(answer: string): boolean {
  return DEFINITIVE_POST_ANSWERS.has(answer);
}

export function computeFigures(i: FigureInputs): DesignFigures {
  const { load } = i;
  const latencies = load.samples.map((s) => s.latencyMs).sort((a, b) => a - b);
  const soldOutTimes = load.samples.filter((s) => s.answer === 'sold_out').map((s) => s.answeredAtMs);
  const soldOut = soldOutTimes.length;
  // Over the span in which sold-out answers were given: how fast the "no" reaches the crowd once
  // the stock is gone. Fewer than two answers span no time, so no rate.
  // reduce, not Math.min(...xs): a spread of a million buyers overflows the call stack.
  const firstSoldOut = soldOutTimes.reduce((m, t) => Math.min(m, t), Number.POSITIVE_INFINITY);
  const lastSoldOut = soldOutTimes.reduce((m, t) => Math.max(m, t), 0);
  const soldOutSpanMs = soldOut >= 2 ? lastSoldOut - firstSoldOut : 0;
  const soldOutPerSec = soldOutSpanMs > 0 ? (soldOut / soldOutSpanMs) * 1000 : 0;
  const timeouts = load.samples.filter((s) => s.answer === 'timeout').length;
  const errors = load.samples.filter((s) => s.answer === 'error' || s.answer.startsWith('http_')).length;
  const confirmedPerMin = i.lastConfirmedAtMs > 0 ? (i.confirmed / i.lastConfirmedAtMs) * 60_000 : 0;

  const completed = load.notSent === 0 && i.answered === i.buyers;
  let answeredAllMs = i.lastDefinitiveAtMs;
  if (!completed) answeredAllMs = projectAnsweredAll(i, soldOut, soldOutPerSec);

  return {
    confirmed: i.confirmed,
    confirmedPerMin: round(confirmedPerMin),
    answeredAllMs: Math.round(answeredAllMs),
    answeredAllProjected: !completed,
    completed,
    answered: i.answered,
    p50Ms: round(percentile(latencies, 50)),
    p95Ms: round(percentile(latencies, 95)),
    p99Ms: round(percentile(latencies, 99)),
    soldOut,
    soldOutPerSec: round(soldOutPerSec),
    firstSoldOutAtMs: soldOut > 0 ? Math.round(firstSoldOut) : 0,
    failed: i.failed,
    timeouts,
    errors,
    retries: load.retries,
    retryCauses: load.retryCauses,
    oversold: i.oversold,
    heldLeft: i.heldLeft,
    notSent: load.notSent,
  };
}

/**
 * A design that ran out of budget: the time it would have needed, phase by phase at the rates it
 * showed. Units left sell at the observed time per unit; the buyers after them are answered
 * sold-out at the observed sold-out rate. A plain "N buyers at the overall answer rate" would be
 * wrong by an order of magnitude for the lock design, whose first phase (one sale per two card
 * calls) is slow and whose second (sold out) is quick. When no sold-out answer was seen, that
 * phase cannot be estimated and is left out: the figure is then a lower bound (README says so).
 */
function projectAnsweredAll(i: FigureInputs, soldOut: number, soldOutPerSec: number): number {
  const elapsed = Math.max(i.load.durationMs, i.lastDefinitiveAtMs);
  const unitsLeft = Math.max(0, i.stock - i.confirmed);
  const perUnitMs = i.confirmed > 0 ? i.lastConfirmedAtMs / i.confirmed : Number.POSITIVE_INFINITY;
  const unitsMs = unitsLeft > 0 ? unitsLeft * perUnitMs : 0;
  const soldOutLeft = Math.max(0, i.buyers - Math.max(i.stock, i.confirmed) - soldOut);
  const soldOutMs = soldOutLeft > 0 && soldOutPerSec > 0 ? (soldOutLeft / soldOutPerSec) * 1000 : 0;
  const projected = elapsed + unitsMs + soldOutMs;
  return Number.isFinite(projected) ? projected : elapsed;
}
