// Counters of the requests an API process answered, logged as one line a minute instead of one
// line per request: in a flash sale, a line per request costs more than the sold-out answer it
// describes. Per-request lines are still there at LOG_LEVEL=debug. (Counters of this shape are what
// a metrics endpoint will serve.)
import type { Logger } from '../platform/logger.js';

/** Latency buckets' upper bounds, in milliseconds. */
const BUCKETS_MS = [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, Infinity];

export interface RequestStats {
  /** One answered request: its route (`POST /v1/checkouts`), HTTP status and duration. */
  observe(route: string, status: number, durationMs: number): void;
  /** Logs what was counted since the last call, if anything, and starts again. */
  flush(): void;
  /** Stops the periodic flush, after a last one. */
  stop(): void;
}

interface RouteCounts {
  byStatus: Record<string, number>;
  buckets: number[];
  totalMs: number;
}

export function createRequestStats(logger: Logger, intervalMs = 60_000): RequestStats {
  let routes = new Map<string, RouteCounts>();
  let since = Date.now();

  const flush = () => {
    if (routes.size === 0) return;
    const now = Date.now();
    const summary = Object.fromEntries(
      [...routes].map(([route, c]) => {
        const count = Object.values(c.byStatus).reduce((a, b) => a + b, 0);
        return [route, { count, byStatus: c.byStatus, meanMs: Math.round((c.totalMs / count) * 10) / 10, p99UnderMs: percentileBound(c.buckets, count, 0.99) }];
      }),
    );
    logger.info('requests', { seconds: Math.round((now - since) / 1000), routes: summary });
    routes = new Map();
    since = now;
  };
  const timer = setInterval(flush, intervalMs);
  timer.unref();

  return {
    observe(route, status, durationMs) {
      let c = routes.get(route);
      if (!c) routes.set(route, (c = { byStatus: {}, buckets: BUCKETS_MS.map(() => 0), totalMs: 0 }));
      const key = String(status);
      c.byStatus[key] = (c.byStatus[key] ?? 0) + 1;
      c.buckets[BUCKETS_MS.findIndex((b) => durationMs <= b)]!++;
      c.totalMs += durationMs;
    },
    flush,
    stop() {
      clearInterval(timer);
      flush();
    },
  };
}

/** The upper bound of the bucket holding the p-th request (null: above every bound). */
function percentileBound(buckets: number[], count: number, p: number): number | null {
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i]!;
    if (seen >= count * p) return Number.isFinite(BUCKETS_MS[i]!) ? BUCKETS_MS[i]! : null;
  }
  return null;
}
