// Units that go back on sale (a declined or canceled checkout releases its hold) reach every API
// process at once, through PostgreSQL's LISTEN/NOTIFY: the release notifies in its own transaction
// (activities/inventory.ts), so the notice arrives exactly when the units are back. Each process
// then forgets its sold-out mark for the SKU (api/stock-gate.ts) and the next buyer gets a chance.
// While the listening connection is down a notice may be missed, so every mark is forgotten
// then; the next failed hold sets it again.
import pg from 'pg';
import { STOCK_RELEASED_CHANNEL } from '../domain/index.js';
import type { Logger } from '../platform/logger.js';
import type { StockGate } from './stock-gate.js';

export interface StockNotifications {
  /** Resolves once the first LISTEN is in place (marks set before then were forgotten at that moment). */
  ready: Promise<void>;
  stop(): Promise<void>;
}

export function listenForReturnedStock(databaseUrl: string, gate: StockGate, logger: Logger): StockNotifications {
  let client: pg.Client | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  let listening!: () => void;
  const ready = new Promise<void>((resolve) => (listening = resolve));

  const connect = async (attempt: number): Promise<void> => {
    const c = new pg.Client({ connectionString: databaseUrl });
    c.on('notification', (msg) => {
      const [merchantId, sku] = (msg.payload ?? '').split('\t');
      if (merchantId && sku) gate.stockReturned(merchantId, sku);
    });
    const lost = (err?: Error) => {
      if (client !== c) return;
      client = undefined;
      gate.forgetSoldOut();
      if (stopped) return;
      logger.warn('stock notifications lost; reconnecting', { error: err?.message });
      retry = setTimeout(() => void connect(1), 1_000);
    };
    c.on('error', lost);
    c.on('end', () => lost());
    try {
      await c.connect();
      await c.query(`LISTEN ${STOCK_RELEASED_CHANNEL}`);
      client = c;
      // Marks set before this connection could have missed a release.
      gate.forgetSoldOut();
      listening();
    } catch (err) {
      await c.end().catch(() => undefined);
      if (stopped) return;
      if (attempt === 1) logger.warn('stock notifications unavailable; retrying', { error: err instanceof Error ? err.message : String(err) });
      retry = setTimeout(() => void connect(attempt + 1), Math.min(1_000 * attempt, 10_000));
    }
  };
  void connect(1);

  return {
    ready,
    async stop() {
      stopped = true;
      clearTimeout(retry);
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
    },
  };
}
