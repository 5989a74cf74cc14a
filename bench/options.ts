// Command-line flags of `npm run bench:flash-sale`. Every parameter of the issue is a flag; a bad
// one is a usage error (exit 2) before anything is started, not a half-run benchmark.
import { parseArgs } from 'node:util';

export const DESIGNS = ['orchestrator', 'lock', 'split'] as const;
export type Design = (typeof DESIGNS)[number];

export interface BenchOptions {
  stock: number;
  buyers: number;
  concurrency: number;
  cardLatencyMs: number;
  workers: number;
  designs: Design[];
  raw: boolean;
  /** Seconds of sending each baseline gets before it stops taking new buyers. */
  baselineBudgetS: number;
  /** A buyer who waited this long (retries included) gives up and counts as a timeout. */
  buyerTimeoutMs: number;
  /**
   * Buyers sent through each design on a SKU of its own before the measured run, so the figures
   * are those of a warm system (JIT, pools, the worker's first workflow tasks), as in production.
   */
  warmup: number;
  /** Connections of each baseline server's pg pool. */
  baselinePool: number;
  /** How long the raw hot-row measurement runs. */
  rawSeconds: number;
  keepData: boolean;
  logs: boolean;
  /** Measure the load driver's own ceiling first and report it. */
  driverCheck: boolean;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const USAGE = `Usage: npm run bench:flash-sale -- [flags]

  --stock S               units of the one SKU (default 1000)
  --buyers N              buyers, one checkout each (default 10000)
  --concurrency C         requests in flight at most (default 200)
  --card-latency-ms L     card network delay per authorize and per capture (default 2000)
  --workers W             orchestrator worker processes (default 1)
  --designs LIST          comma-separated: orchestrator,lock,split (default all three)
  --raw                   also measure the hot row alone (conditional decrements per second)
  --raw-seconds T         how long the raw measurement runs (default 5)
  --baseline-budget-s B   seconds each baseline may keep sending new buyers (default 60)
  --buyer-timeout-ms T    a buyer gives up after this long, retries included (default 60000)
  --warmup W              buyers through each design before it is measured, on their own SKU (default 40; 0: none)
  --baseline-pool P       pg connections of each baseline server (default 20)
  --driver-check          first measure the load driver against a server that does nothing
  --keep-data             keep the embedded servers' data directory and the baseline rows
  --logs                  show the services' output (on stderr)
  --help

Runs against embedded PostgreSQL and Temporal unless DATABASE_URL / TEMPORAL_ADDRESS are set.`;

function positiveInt(name: string, raw: string | undefined, fallback: number, { allowZero = false } = {}): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || (!allowZero && value === 0)) {
    throw new UsageError(`--${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got "${raw}"`);
  }
  return value;
}

export function parseOptions(argv: string[]): BenchOptions | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        stock: { type: 'string' },
        buyers: { type: 'string' },
        concurrency: { type: 'string' },
        'card-latency-ms': { type: 'string' },
        workers: { type: 'string' },
        designs: { type: 'string' },
        raw: { type: 'boolean' },
        'raw-seconds': { type: 'string' },
        'baseline-budget-s': { type: 'string' },
        'buyer-timeout-ms': { type: 'string' },
        'baseline-pool': { type: 'string' },
        warmup: { type: 'string' },
        'driver-check': { type: 'boolean' },
        'keep-data': { type: 'boolean' },
        logs: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  const designs = (v.designs ?? DESIGNS.join(','))
    .split(',')
    .map((d) => d.trim())
    .filter((d) => d !== '');
  for (const d of designs) {
    if (!(DESIGNS as readonly string[]).includes(d)) throw new UsageError(`--designs: unknown design "${d}" (known: ${DESIGNS.join(', ')})`);
  }
  if (designs.length === 0) throw new UsageError('--designs: name at least one design');
  const options: BenchOptions = {
    stock: positiveInt('stock', v.stock, 1000),
    buyers: positiveInt('buyers', v.buyers, 10_000),
    concurrency: positiveInt('concurrency', v.concurrency, 200),
    cardLatencyMs: positiveInt('card-latency-ms', v['card-latency-ms'], 2000, { allowZero: true }),
    workers: positiveInt('workers', v.workers, 1),
    designs: [...new Set(designs)] as Design[],
    raw: v.raw ?? false,
    rawSeconds: positiveInt('raw-seconds', v['raw-seconds'], 5),
    baselineBudgetS: positiveInt('baseline-budget-s', v['baseline-budget-s'], 60),
    buyerTimeoutMs: positiveInt('buyer-timeout-ms', v['buyer-timeout-ms'], 60_000),
    warmup: positiveInt('warmup', v.warmup, 40, { allowZero: true }),
    baselinePool: positiveInt('baseline-pool', v['baseline-pool'], 20),
    keepData: v['keep-data'] ?? false,
    logs: v.logs ?? false,
    driverCheck: v['driver-check'] ?? false,
  };
  // The driver keeps one socket per request in flight; beyond a few thousand the benchmark
  // measures the OS's file descriptors and the servers' accept queues, not a design.
  if (options.concurrency > 5000) throw new UsageError(`--concurrency above 5000 measures the OS, not the design (got ${options.concurrency})`);
  return options;
}
