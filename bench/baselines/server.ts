// The two designs the field report describes, written without Temporal, as one Express process:
//
//   --design lock   one transaction holds the product row (SELECT ... FOR UPDATE) across both
//                   card calls: the design the field report started from. Never oversells; sells
//                   one unit per authorize+capture round trip.
//   --design split  a short transaction takes a unit (conditional decrement) and writes a pending
//                   order; the card calls happen outside it; a failure gives the unit back
//                   (compensation). The design the field report moved to.
//
// Both answer POST /checkout only when the outcome is known (confirmed, failed or sold_out): that
// is how those designs worked, synchronously. Card calls go to the same card-network simulator the
// orchestrator uses, through the same client, with keys derived from the order id the same way
// the orchestrator derives them from the checkout id (`<id>:authorize`, `<id>:capture`).
//
// Environment: DATABASE_URL, CARD_NETWORK_URL, CARD_NETWORK_TIMEOUT_MS (optional).
// Flags: --design lock|split --port N --pool P.
import http from 'node:http';
import { parseArgs } from 'node:util';
import express from 'express';
import pg from 'pg';
import { CardNetworkUnavailableError, createCardNetworkClient } from '../../platform/card-network-client.js';

const { values } = parseArgs({
  options: { design: { type: 'string' }, port: { type: 'string' }, pool: { type: 'string', default: '20' } },
});
const design = values.design;
if (design !== 'lock' && design !== 'split') throw new Error(`--design must be lock or split, got ${String(design)}`);
const port = Number(values.port ?? 0);
const databaseUrl = process.env.DATABASE_URL;
const cardNetworkUrl = process.env.CARD_NETWORK_URL;
if (!databaseUrl || !cardNetworkUrl) throw new Error('DATABASE_URL and CARD_NETWORK_URL must be set');

const pool = new pg.Pool({ connectionString: databaseUrl, max: Number(values.pool) });
const card = createCardNetworkClient({ baseUrl: cardNetworkUrl, timeoutMs: Number(process.env.CARD_NETWORK_TIMEOUT_MS ?? 10_000) });

type Answer = 'confirmed' | 'failed' | 'sold_out';
let inFlight = 0;
let lastConfirmedAtEpochMs = 0;

/**
 * Authorize then capture. 'declined' when the network said no. When a call may have acted without
 * answering, the authorization (found by its key) is voided before the error goes up, so a failed
 * order never leaves money held on a card.
 */
async function charge(orderId: string, amount: bigint, currency: string, token: string): Promise<'captured' | 'declined'> {
  try {
    const auth = await card.authorize({ idempotencyKey: `${orderId}:authorize`, amount, currency, token, reference: orderId });
    if (auth.status !== 'succeeded') {
      if (auth.status === 'requires_action') await card.void({ idempotencyKey: `${orderId}:void`, authorizationId: auth.authorizationId });
      return 'declined';
    }
    const capture = await card.capture({ idempotencyKey: `${orderId}:capture`, authorizationId: auth.authorizationId });
    return capture.status === 'succeeded' ? 'captured' : 'declined';
  } catch (err) {
    await voidIfAuthorized(orderId).catch(() => undefined);
    throw err;
  }
}

async function voidIfAuthorized(orderId: string): Promise<void> {
  const auth = await card.lookup(`${orderId}:authorize`);
  if (auth && auth.status !== 'declined') await card.void({ idempotencyKey: `${orderId}:void`, authorizationId: auth.authorizationId });
}

/** An order someone else (a retry with the same key) already wrote: its status, once final. */
async function existingAnswer(orderId: string): Promise<Answer | undefined> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { rows } = await pool.query<{ status: string }>('SELECT status FROM bench.orders WHERE id = $1', [orderId]);
    const status = rows[0]?.status;
    if (status === undefined) return undefined;
    if (status !== 'pending' || Date.now() > deadline) return status as Answer;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const isUniqueViolation = (err: unknown) => (err as { code?: string }).code === '23505';

async function rollbackQuietly(client: pg.PoolClient): Promise<void> {
  await client.query('ROLLBACK').catch(() => undefined);
}

/**
 * Runs one order's transaction on a client of its own. On any failure the transaction is rolled
 * back; a retry of a request that already went through (its order id is taken) gets the first
 * one's answer instead of the error.
 */
async function orderTransaction<T>(orderId: string, work: (client: pg.PoolClient) => Promise<T>): Promise<T | Answer> {
  const client = await pool.connect();
  try {
    return await work(client);
  } catch (err) {
    await rollbackQuietly(client);
    if (isUniqueViolation(err)) {
      const answer = await existingAnswer(orderId);
      if (answer) return answer;
    }
    throw err;
  } finally {
    client.release();
  }
}

/** The lock design: everything, the card calls included, inside one transaction on the product row. */
async function checkoutWithLock(orderId: string, sku: string, token: string, clientGone: () => boolean): Promise<Answer | 'gone'> {
  return orderTransaction(orderId, async (client) => {
    await client.query('BEGIN');
    const { rows } = await client.query<{ stock: number; price_amount: string; currency: string }>(
      'SELECT stock, price_amount, currency FROM bench.products WHERE sku = $1 FOR UPDATE',
      [sku],
    );
    const product = rows[0];
    if (!product) throw new Error(`no product ${sku}`);
    // The queue in front of the lock is where lock-design buyers time out. One who left before
    // their turn must not be charged: a real server would see the closed connection the same way.
    if (clientGone()) {
      await rollbackQuietly(client);
      return 'gone';
    }
    const amount = BigInt(product.price_amount);
    if (product.stock < 1) {
      await client.query("INSERT INTO bench.orders (id, sku, status, amount) VALUES ($1, $2, 'sold_out', $3)", [orderId, sku, amount.toString()]);
      await client.query('COMMIT');
      return 'sold_out';
    }
    let outcome: 'captured' | 'declined';
    try {
      outcome = await charge(orderId, amount, product.currency, token);
    } catch {
      outcome = 'declined';
    }
    if (outcome === 'declined') {
      await rollbackQuietly(client);
      await pool.query("INSERT INTO bench.orders (id, sku, status, amount) VALUES ($1, $2, 'failed', $3) ON CONFLICT (id) DO NOTHING", [orderId, sku, amount.toString()]);
      return 'failed';
    }
    await client.query('UPDATE bench.products SET stock = stock - 1, sold = sold + 1 WHERE sku = $1', [sku]);
    await client.query("INSERT INTO bench.orders (id, sku, status, amount) VALUES ($1, $2, 'confirmed', $3)", [orderId, sku, amount.toString()]);
    await client.query('COMMIT');
    lastConfirmedAtEpochMs = Date.now();
    return 'confirmed';
  });
}

/** The split design: a short reservation, the card calls outside it, compensation on failure. */
async function checkoutSplit(orderId: string, sku: string, token: string): Promise<Answer> {
  const reservation = await orderTransaction(orderId, async (client) => {
    await client.query('BEGIN');
    const { rows } = await client.query<{ price_amount: string; currency: string }>(
      'UPDATE bench.products SET stock = stock - 1 WHERE sku = $1 AND stock > 0 RETURNING price_amount, currency',
      [sku],
    );
    const reserved = rows[0];
    if (reserved) {
      await client.query("INSERT INTO bench.orders (id, sku, status, amount) VALUES ($1, $2, 'pending', $3)", [orderId, sku, reserved.price_amount]);
    }
    await client.query('COMMIT');
    return { reserved };
  });
  // A retry of a request that already went through: the first one's answer.
  if (typeof reservation === 'string') return reservation;
  const { reserved } = reservation;

  if (!reserved) {
    const { rowCount } = await pool.query(
      "INSERT INTO bench.orders (id, sku, status, amount) SELECT $1, $2, 'sold_out', price_amount FROM bench.products WHERE sku = $2 ON CONFLICT (id) DO NOTHING",
      [orderId, sku],
    );
    if (rowCount === 0) return (await existingAnswer(orderId)) ?? 'sold_out';
    return 'sold_out';
  }

  let outcome: 'captured' | 'declined';
  try {
    outcome = await charge(orderId, BigInt(reserved.price_amount), reserved.currency, token);
  } catch {
    outcome = 'declined';
  }
  const tx = await pool.connect();
  try {
    await tx.query('BEGIN');
    if (outcome === 'captured') {
      await tx.query("UPDATE bench.orders SET status = 'confirmed', updated_at = now() WHERE id = $1 AND status = 'pending'", [orderId]);
      await tx.query('UPDATE bench.products SET sold = sold + 1 WHERE sku = $1', [sku]);
    } else {
      // Compensation: the unit goes back only if this order still held it.
      const { rowCount } = await tx.query("UPDATE bench.orders SET status = 'failed', updated_at = now() WHERE id = $1 AND status = 'pending'", [orderId]);
      if (rowCount === 1) await tx.query('UPDATE bench.products SET stock = stock + 1 WHERE sku = $1', [sku]);
    }
    await tx.query('COMMIT');
  } catch (err) {
    await rollbackQuietly(tx);
    throw err;
  } finally {
    tx.release();
  }
  if (outcome === 'captured') {
    lastConfirmedAtEpochMs = Date.now();
    return 'confirmed';
  }
  return 'failed';
}

const app = express();
app.disable('x-powered-by');
app.use(express.json({ limit: '16kb' }));
app.get('/health', (_req, res) => {
  res.json({ status: 'ok', design });
});
app.get('/stats', (_req, res) => {
  res.json({ inFlight, lastConfirmedAtEpochMs });
});
app.post('/checkout', async (req, res) => {
  const orderId = req.get('Idempotency-Key');
  const body = req.body as { sku?: unknown; token?: unknown };
  if (!orderId || typeof body.sku !== 'string' || typeof body.token !== 'string') {
    res.status(400).json({ error: { code: 'invalid_request', message: 'Idempotency-Key, sku and token are required' } });
    return;
  }
  let gone = false;
  res.on('close', () => {
    if (!res.writableFinished) gone = true;
  });
  inFlight++;
  try {
    const answer = design === 'lock' ? await checkoutWithLock(orderId, body.sku, body.token, () => gone) : await checkoutSplit(orderId, body.sku, body.token);
    if (answer === 'gone') return;
    res.json({ id: orderId, status: answer });
  } finally {
    inFlight--;
  }
});
app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
  process.stderr.write(`baseline ${design}: ${err instanceof Error ? err.message : String(err)}\n`);
  if (!res.headersSent) res.status(err instanceof CardNetworkUnavailableError ? 502 : 500).json({ error: { code: 'internal_error', message: 'internal error' } });
});

const server = http.createServer(app);
// Longer than the driver ever leaves a socket idle, so a reused keep-alive socket is never one the
// server is closing at that moment (that would show up as retries that are not the design's).
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
server.requestTimeout = 0;
server.listen(port, '127.0.0.1', () => {
  process.stderr.write(`baseline ${design} listening on ${port}\n`);
});

const shutdown = () => {
  server.close(() => {
    void pool.end().finally(() => process.exit(0));
  });
  server.closeIdleConnections();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
