// How POST /v1/checkouts writes a new checkout: the order at today's prices and its stock hold in
// one short transaction, or a sold-out checkout in one statement, each with its event. These are
// the statements a flash sale runs once per buyer, so they are plain SQL on node-postgres rather
// than Prisma (whose query interpreter cost about half of the API's CPU per request). Prices and
// currencies of products never change once created, so they are cached per process.
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { checkoutEventData, eventType, type CheckoutStatus } from '../domain/index.js';
import type { CheckoutRow } from './serialize.js';

export interface PricedLine {
  sku: string;
  quantity: number;
  unitAmount: bigint;
}

/** A checkout about to be written, priced. */
export interface NewCheckout {
  id: string;
  merchantId: string;
  customerId: string;
  idempotencyKey: string;
  paymentMethod: 'card' | 'wallet';
  captureMethod: 'automatic' | 'manual';
  lines: PricedLine[];
  total: bigint;
  currency: string;
  /** The task queue whose outbox relay delivers the checkout's events. */
  deliveryQueue: string;
}

export type Placement =
  /** Written `processing` with every line held. */
  | { outcome: 'reserved'; row: CheckoutRow }
  /** Not enough stock for `sku`: written `sold_out`, nothing held. */
  | { outcome: 'sold_out'; row: CheckoutRow; sku: string }
  /** A checkout with this id or key exists already (an earlier request, or its workflow's fence). */
  | { outcome: 'exists'; row: CheckoutRow };

export interface ProductInfo {
  priceAmount: bigint;
  currency: string;
}

export interface CheckoutStore {
  /** Price and currency of each SKU the merchant has (cached: they never change). */
  products(merchantId: string, skus: readonly string[]): Promise<Map<string, ProductInfo>>;
  /** Units available now, per SKU. */
  available(merchantId: string, skus: readonly string[]): Promise<Map<string, number>>;
  /** Writes the order and holds its stock, all lines or none; sold out writes a sold-out checkout instead. */
  place(c: NewCheckout): Promise<Placement>;
  /** Writes a sold-out checkout (nothing held), or finds the one its id or key already names. */
  recordSoldOut(c: NewCheckout, sku: string): Promise<Placement>;
  /** The merchant's checkout for a key, with its lines. */
  findByKey(merchantId: string, idempotencyKey: string): Promise<CheckoutRow | null>;
}

/** Product rows are immutable in price and currency; a bounded cache is enough. */
const PRODUCT_CACHE_LIMIT = 10_000;

export function createCheckoutStore(pool: pg.Pool): CheckoutStore {
  const productCache = new Map<string, ProductInfo>();
  const cacheKey = (merchantId: string, sku: string) => `${merchantId}\u0000${sku}`;

  const rowOf = (c: NewCheckout, status: CheckoutStatus, createdAt: Date, updatedAt: Date): CheckoutRow => ({
    id: c.id,
    merchantId: c.merchantId,
    customerId: c.customerId,
    idempotencyKey: c.idempotencyKey,
    status,
    amount: c.total,
    currency: c.currency,
    paymentMethod: c.paymentMethod,
    captureMethod: c.captureMethod,
    amountCaptured: 0n,
    amountRefunded: 0n,
    settledAt: null,
    failureCode: null,
    failureMessage: null,
    createdAt,
    updatedAt,
    items: [...c.lines].sort((a, b) => (a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0)).map((l) => ({ checkoutId: c.id, sku: l.sku, quantity: l.quantity, unitAmount: l.unitAmount })),
  });

  const eventJson = (c: NewCheckout, status: CheckoutStatus) =>
    JSON.stringify(
      checkoutEventData({
        id: c.id,
        status,
        customerId: c.customerId,
        amount: c.total,
        currency: c.currency,
        amountCaptured: 0n,
        amountRefunded: 0n,
        paymentMethod: c.paymentMethod,
        captureMethod: c.captureMethod,
        settledAt: null,
        failureCode: null,
        failureMessage: null,
      }),
    );

  const lineArrays = (c: NewCheckout) => [c.lines.map((l) => l.sku), c.lines.map((l) => l.quantity), c.lines.map((l) => l.unitAmount.toString())] as const;

  async function findByKey(merchantId: string, idempotencyKey: string): Promise<CheckoutRow | null> {
    const { rows } = await pool.query<RawCheckout>({ name: 'checkout-by-key', text: `SELECT * FROM checkouts WHERE merchant_id = $1 AND idempotency_key = $2`, values: [merchantId, idempotencyKey] });
    const row = rows[0];
    if (!row) return null;
    const items = await pool.query<RawItem>({ name: 'checkout-items', text: `SELECT * FROM checkout_items WHERE checkout_id = $1 ORDER BY sku`, values: [row.id] });
    return fromRaw(row, items.rows);
  }

  /** The existing checkout an id or key conflict hit (ON CONFLICT also skips a clash on the id alone). */
  async function existing(c: NewCheckout): Promise<Placement> {
    const row = (await findByKey(c.merchantId, c.idempotencyKey)) ?? (await findById(c.id));
    if (!row) throw new Error(`checkout ${c.id} was neither written nor found`);
    return { outcome: 'exists', row };
  }

  async function findById(id: string): Promise<CheckoutRow | null> {
    const { rows } = await pool.query<RawCheckout>({ name: 'checkout-by-id', text: `SELECT * FROM checkouts WHERE id = $1`, values: [id] });
    if (!rows[0]) return null;
    const items = await pool.query<RawItem>({ name: 'checkout-items', text: `SELECT * FROM checkout_items WHERE checkout_id = $1 ORDER BY sku`, values: [id] });
    return fromRaw(rows[0], items.rows);
  }

  async function recordSoldOut(c: NewCheckout, sku: string): Promise<Placement> {
    const [skus, quantities, unitAmounts] = lineArrays(c);
    // One statement: the checkout, its lines and its `checkout.sold_out` event. What most buyers
    // of a flash sale cost.
    const { rows } = await pool.query<{ created_at: Date; updated_at: Date }>({
      name: 'checkout-sold-out',
      text: `
        WITH c AS (
          INSERT INTO checkouts (id, merchant_id, customer_id, idempotency_key, status, amount, currency, payment_method, capture_method, updated_at)
          VALUES ($1, $2, $3, $4, 'sold_out', $5, $6, $7, $8, now())
          ON CONFLICT DO NOTHING
          RETURNING id, created_at, updated_at
        ), items AS (
          INSERT INTO checkout_items (checkout_id, sku, quantity, unit_amount)
          SELECT c.id, line.sku, line.quantity, line.unit_amount
          FROM c CROSS JOIN unnest($9::text[], $10::int[], $11::bigint[]) AS line(sku, quantity, unit_amount)
        ), recorded AS (
          INSERT INTO events (id, merchant_id, type, resource_type, resource_id, data, delivery_queue)
          SELECT $12, $2, $13, 'checkout', c.id, $14::jsonb, $15 FROM c
          ON CONFLICT DO NOTHING
        )
        SELECT created_at, updated_at FROM c`,
      values: [
        c.id, c.merchantId, c.customerId, c.idempotencyKey, c.total.toString(), c.currency, c.paymentMethod, c.captureMethod,
        skus, quantities, unitAmounts, `evt_${randomUUID()}`, eventType('checkout', 'sold_out'), eventJson(c, 'sold_out'), c.deliveryQueue,
      ],
    });
    const written = rows[0];
    if (!written) return existing(c);
    return { outcome: 'sold_out', row: rowOf(c, 'sold_out', written.created_at, written.updated_at), sku };
  }

  async function place(c: NewCheckout): Promise<Placement> {
    const [skus, quantities, unitAmounts] = lineArrays(c);
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const inserted = await client.query<{ created_at: Date; updated_at: Date }>({
        name: 'checkout-place',
        text: `INSERT INTO checkouts (id, merchant_id, customer_id, idempotency_key, status, amount, currency, payment_method, capture_method, updated_at)
               VALUES ($1, $2, $3, $4, 'processing', $5, $6, $7, $8, now())
               ON CONFLICT DO NOTHING
               RETURNING created_at, updated_at`,
        values: [c.id, c.merchantId, c.customerId, c.idempotencyKey, c.total.toString(), c.currency, c.paymentMethod, c.captureMethod],
      });
      const written = inserted.rows[0];
      if (!written) {
        await client.query('ROLLBACK');
        return await existing(c);
      }
      // Sorted, so two checkouts of the same SKUs take the product rows' locks in the same order;
      // each lock is held only until the commit below.
      for (const line of [...c.lines].sort((a, b) => (a.sku < b.sku ? -1 : 1))) {
        const held = await client.query({
          name: 'checkout-hold',
          text: `UPDATE products SET available = available - $3, reserved = reserved + $3, updated_at = now()
                 WHERE merchant_id = $1 AND sku = $2 AND available >= $3`,
          values: [c.merchantId, line.sku, line.quantity],
        });
        if (held.rowCount === 0) {
          await client.query('ROLLBACK');
          return await recordSoldOut(c, line.sku);
        }
      }
      await client.query({
        name: 'checkout-lines',
        text: `
          WITH items AS (
            INSERT INTO checkout_items (checkout_id, sku, quantity, unit_amount)
            SELECT $1, line.sku, line.quantity, line.unit_amount FROM unnest($3::text[], $4::int[], $5::bigint[]) AS line(sku, quantity, unit_amount)
          ), holds AS (
            INSERT INTO stock_reservations (checkout_id, merchant_id, sku, quantity, status, updated_at)
            SELECT $1, $2, line.sku, line.quantity, 'held', now() FROM unnest($3::text[], $4::int[]) AS line(sku, quantity)
          )
          INSERT INTO events (id, merchant_id, type, resource_type, resource_id, data, delivery_queue)
          VALUES ($6, $2, $7, 'checkout', $1, $8::jsonb, $9)
          ON CONFLICT DO NOTHING`,
        values: [c.id, c.merchantId, skus, quantities, unitAmounts, `evt_${randomUUID()}`, eventType('checkout', 'processing'), eventJson(c, 'processing'), c.deliveryQueue],
      });
      await client.query('COMMIT');
      return { outcome: 'reserved', row: rowOf(c, 'processing', written.created_at, written.updated_at) };
    } catch (err) {
      await client.query('ROLLBACK').catch((e: Error) => (broken = e));
      throw err;
    } finally {
      client.release(broken);
    }
  }

  return {
    async products(merchantId, skus) {
      const found = new Map<string, ProductInfo>();
      const missing: string[] = [];
      for (const sku of skus) {
        const cached = productCache.get(cacheKey(merchantId, sku));
        if (cached) found.set(sku, cached);
        else missing.push(sku);
      }
      if (missing.length > 0) {
        const { rows } = await pool.query<{ sku: string; price_amount: string; currency: string }>({
          name: 'product-prices',
          text: `SELECT sku, price_amount, currency FROM products WHERE merchant_id = $1 AND sku = ANY($2::text[])`,
          values: [merchantId, missing],
        });
        for (const r of rows) {
          const info = { priceAmount: BigInt(r.price_amount), currency: r.currency };
          if (productCache.size >= PRODUCT_CACHE_LIMIT) productCache.delete(productCache.keys().next().value!);
          productCache.set(cacheKey(merchantId, r.sku), info);
          found.set(r.sku, info);
        }
      }
      return found;
    },
    async available(merchantId, skus) {
      const { rows } = await pool.query<{ sku: string; available: number }>({
        name: 'product-available',
        text: `SELECT sku, available FROM products WHERE merchant_id = $1 AND sku = ANY($2::text[])`,
        values: [merchantId, skus],
      });
      return new Map(rows.map((r) => [r.sku, r.available]));
    },
    place,
    recordSoldOut,
    findByKey,
  };
}

interface RawCheckout {
  id: string;
  merchant_id: string;
  customer_id: string;
  idempotency_key: string;
  status: string;
  amount: string;
  currency: string;
  payment_method: string;
  capture_method: string;
  amount_captured: string;
  amount_refunded: string;
  settled_at: Date | null;
  failure_code: string | null;
  failure_message: string | null;
  created_at: Date;
  updated_at: Date;
}

interface RawItem {
  checkout_id: string;
  sku: string;
  quantity: number;
  unit_amount: string;
}

function fromRaw(r: RawCheckout, items: RawItem[]): CheckoutRow {
  return {
    id: r.id,
    merchantId: r.merchant_id,
    customerId: r.customer_id,
    idempotencyKey: r.idempotency_key,
    status: r.status,
    amount: BigInt(r.amount),
    currency: r.currency,
    paymentMethod: r.payment_method,
    captureMethod: r.capture_method,
    amountCaptured: BigInt(r.amount_captured),
    amountRefunded: BigInt(r.amount_refunded),
    settledAt: r.settled_at,
    failureCode: r.failure_code,
    failureMessage: r.failure_message,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    items: items.map((i) => ({ checkoutId: i.checkout_id, sku: i.sku, quantity: i.quantity, unitAmount: BigInt(i.unit_amount) })),
  };
}
