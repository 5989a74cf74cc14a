// The baselines' own tables, in schema `bench` of the same database the orchestrator uses, so all
// designs meet the same PostgreSQL (same disk, same settings, same connection limit) but never
// each other's rows. Deliberately minimal: a product with a stock counter, and one row per buyer.
import type pg from 'pg';

export async function ensureBenchSchema(db: pg.Pool | pg.PoolClient): Promise<void> {
  // IF NOT EXISTS throughout: the same external database serves many runs.
  await db.query(`
    CREATE SCHEMA IF NOT EXISTS bench;
    CREATE TABLE IF NOT EXISTS bench.products (
      sku          text PRIMARY KEY,
      stock        integer NOT NULL CHECK (stock >= 0),
      sold         integer NOT NULL DEFAULT 0 CHECK (sold >= 0),
      price_amount bigint NOT NULL CHECK (price_amount > 0),
      currency     char(3) NOT NULL
    );
    CREATE TABLE IF NOT EXISTS bench.orders (
      id         text PRIMARY KEY,
      sku        text NOT NULL,
      status     text NOT NULL,
      amount     bigint NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX IF NOT EXISTS orders_sku_status ON bench.orders (sku, status);
  `);
}

export async function createBenchProduct(db: pg.Pool, sku: string, stock: number, priceAmount: bigint, currency: string): Promise<void> {
  await db.query('INSERT INTO bench.products (sku, stock, price_amount, currency) VALUES ($1, $2, $3, $4)', [sku, stock, priceAmount.toString(), currency]);
}

export interface BenchOutcome {
  stockLeft: number;
  sold: number;
  /** Orders by status for the SKU, e.g. { confirmed: 300, sold_out: 2700 }. */
  orders: Record<string, number>;
}

export async function readBenchOutcome(db: pg.Pool, sku: string): Promise<BenchOutcome> {
  const { rows: product } = await db.query<{ stock: number; sold: number }>('SELECT stock, sold FROM bench.products WHERE sku = $1', [sku]);
  const { rows } = await db.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM bench.orders WHERE sku = $1 GROUP BY status', [sku]);
  return { stockLeft: product[0]!.stock, sold: product[0]!.sold, orders: Object.fromEntries(rows.map((r) => [r.status, r.n])) };
}

/** A run's rows, unless --keep-data: an external database should not fill up with benchmarks. */
export async function dropBenchRows(db: pg.Pool, sku: string): Promise<void> {
  await db.query('DELETE FROM bench.orders WHERE sku = $1', [sku]);
  await db.query('DELETE FROM bench.products WHERE sku = $1', [sku]);
}
