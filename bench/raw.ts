// The database's own ceiling for one hot row: conditional decrements, autocommitted, from many
// connections at once, with no application around them. Every design above takes at least one
// such decrement per unit sold (and usually one write per sold-out buyer), so this is the line
// their figures can be read against.
import pg from 'pg';
import { ensureBenchSchema } from './baselines/schema.js';

export interface RawFigures {
  decrementsPerSec: number;
  connections: number;
  seconds: number;
  /** The server's settings while measuring: commit cost is most of a decrement's time. */
  synchronousCommit: string;
  fsync: string;
}

const RAW_STOCK = 1_000_000;

export async function runRaw(opts: { databaseUrl: string; runId: string; concurrency: number; seconds: number }): Promise<RawFigures> {
  const connections = Math.min(opts.concurrency, 50);
  const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: connections });
  const sku = `raw-${opts.runId}`;
  try {
    await ensureBenchSchema(pool);
    await pool.query("INSERT INTO bench.products (sku, stock, price_amount, currency) VALUES ($1, $2, 1, 'JPY')", [sku, RAW_STOCK]);
    const [{ rows: sc }, { rows: fs }] = await Promise.all([pool.query<{ synchronous_commit: string }>('SHOW synchronous_commit'), pool.query<{ fsync: string }>('SHOW fsync')]);
    // Open every connection before the clock starts: connecting is not what is measured.
    const clients = await Promise.all(Array.from({ length: connections }, () => pool.connect()));
    clients.forEach((c) => c.release());

    let decrements = 0;
    let soldOut = false;
    const startedAt = performance.now();
    const until = startedAt + opts.seconds * 1000;
    const lane = async () => {
      while (!soldOut && performance.now() < until) {
        const { rowCount } = await pool.query('UPDATE bench.products SET stock = stock - 1 WHERE sku = $1 AND stock > 0', [sku]);
        if (rowCount === 1) decrements++;
        else soldOut = true;
      }
    };
    await Promise.all(Array.from({ length: connections }, lane));
    const elapsedS = (performance.now() - startedAt) / 1000;
    await pool.query('DELETE FROM bench.products WHERE sku = $1', [sku]);
    return {
      decrementsPerSec: Math.round(decrements / elapsedS),
      connections,
      seconds: Math.round(elapsedS * 10) / 10,
      synchronousCommit: sc[0]!.synchronous_commit,
      fsync: fs[0]!.fsync,
    };
  } finally {
    await pool.end();
  }
}
