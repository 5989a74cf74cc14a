// The checkout lifecycle through the HTTP API on real processes: manual capture, cancel, 3-D
// Secure, refunds and the card network's faults, each checked against the stock counters and the
// simulator's own records. (Timers are covered on the time-skipping server.)
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { injectCardFault } from '../simulators/card-network/test-faults.js';
import { startStack, type Stack } from '../scripts/stack.js';
import { expectBooksOf } from './support/books.js';
import { createMerchant, type TestMerchant } from './support/merchants.js';
import { callApi, type Json } from './support/stack-http.js';

let merchant: TestMerchant;
/** Requests as this file's own merchant (made in beforeAll, in the database the stack shares). */
let stack: Stack;

beforeAll(async () => {
  merchant = await createMerchant(process.env.DATABASE_URL!, 'e2e_lifecycle');
  stack = await startStack({ env: { CARD_NETWORK_LATENCY_MS: '20' } });
});

afterAll(async () => {
  await stack?.stop();
});

const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => callApi(stack.apiUrl, merchant.key, method, path, body, headers);

const yen = (amount: number) => ({ amount: String(amount), currency: 'JPY' });

async function product(stock = 5) {
  const sku = `life-${randomUUID().slice(0, 8)}`;
  expect((await call('POST', '/v1/products', { sku, name: 'Gig ticket', price: yen(4000), stock })).status).toBe(201);
  return sku;
}

async function stock(sku: string) {
  return (await call('GET', `/v1/products/${sku}`)).body.stock;
}

async function checkout(sku: string, payment: Json, extra: Json = {}) {
  const res = await call('POST', '/v1/checkouts', { customerId: 'cus_life', items: [{ sku, quantity: 1 }], payment, ...extra }, { 'idempotency-key': randomUUID() });
  expect(res.status).toBe(201);
  return res.body.id as string;
}

async function until(id: string, status: string) {
  const deadline = Date.now() + 45_000;
  for (;;) {
    const res = await call('GET', `/v1/checkouts/${id}`);
    if (res.body.status === status) return res.body;
    if (Date.now() > deadline) throw new Error(`${id} is ${res.body.status}, expected ${status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function operations(reference: string): Promise<Json[]> {
  const res = await fetch(`${stack.cardNetworkUrl}/v1/operations?reference=${encodeURIComponent(reference)}`);
  return ((await res.json()) as { data: Json[] }).data;
}

const count = (ops: Json[], type: string) => ops.filter((op) => op.type === type && op.status === 'succeeded').length;

describe('checkout lifecycle over HTTP', () => {
  it('captures less than authorized on a manual capture, and refuses to cancel afterwards', async () => {
    const sku = await product();
    const id = await checkout(sku, { method: 'card', token: 'tok_visa' }, { captureMethod: 'manual' });
    await until(id, 'requires_capture');
    expect(await stock(sku)).toEqual({ available: 4, reserved: 1, sold: 0 });

    const captured = await call('POST', `/v1/checkouts/${id}/capture`, { amount: yen(3000) });
    expect(captured.status).toBe(200);
    expect(captured.body).toMatchObject({ status: 'captured', amountCaptured: yen(3000) });
    expect(await stock(sku)).toEqual({ available: 4, reserved: 0, sold: 1 });
    expect((await operations(id)).filter((op) => op.type === 'capture').map((op) => op.amount)).toEqual(['3000']);

    const cancel = await call('POST', `/v1/checkouts/${id}/cancel`);
    expect(cancel.status).toBe(409);
    expect(count(await operations(id), 'void')).toBe(0);
  });

  it('cancels before capture: voids at the network and returns the stock', async () => {
    const sku = await product();
    const id = await checkout(sku, { method: 'card', token: 'tok_visa' }, { captureMethod: 'manual' });
    await until(id, 'requires_capture');

    const canceled = await call('POST', `/v1/checkouts/${id}/cancel`);
    expect(canceled.status).toBe(200);
    expect(canceled.body.status).toBe('canceled');
    expect(await stock(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
    const ops = await operations(id);
    expect(count(ops, 'void')).toBe(1);
    expect(count(ops, 'capture')).toBe(0);
  });

  it('continues after 3-D Secure is confirmed', async () => {
    const sku = await product();
    const id = await checkout(sku, { method: 'card', token: 'tok_threeDSecureRequired' });
    await until(id, 'requires_action');

    expect((await call('POST', `/v1/checkouts/${id}/confirm`, { result: 'succeeded' })).status).toBe(200);
    await until(id, 'captured');
    expect(await stock(sku)).toEqual({ available: 4, reserved: 0, sold: 1 });
    expect(count(await operations(id), 'capture')).toBe(1);
  });

  it('refunds partially, then fully, and refuses more than was captured', async () => {
    const sku = await product();
    const id = await checkout(sku, { method: 'card', token: 'tok_visa' });
    await until(id, 'captured');

    const first = await call('POST', `/v1/checkouts/${id}/refunds`, { amount: yen(1500) }, { 'idempotency-key': 'refund-1' });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ status: 'succeeded', amount: yen(1500) });
    const replay = await call('POST', `/v1/checkouts/${id}/refunds`, { amount: yen(1500) }, { 'idempotency-key': 'refund-1' });
    expect(replay.body.id).toBe(first.body.id);
    expect((await call('GET', `/v1/checkouts/${id}`)).body.status).toBe('partially_refunded');

    expect((await call('POST', `/v1/checkouts/${id}/refunds`, { amount: yen(2501) })).status).toBe(400);
    const rest = await call('POST', `/v1/checkouts/${id}/refunds`, {}, { 'idempotency-key': 'refund-2' });
    expect(rest.body).toMatchObject({ status: 'succeeded', amount: yen(2500) });

    const done = await call('GET', `/v1/checkouts/${id}`);
    expect(done.body).toMatchObject({ status: 'refunded', amountCaptured: yen(4000), amountRefunded: yen(4000) });
    expect(done.body.refunds).toHaveLength(2);
    expect((await operations(id)).filter((op) => op.type === 'refund').map((op) => op.amount).sort()).toEqual(['1500', '2500']);
  });

  it('rides out transient errors and lost responses without acting twice', async () => {
    const sku = await product();
    const flaky = await checkout(sku, { method: 'card', token: 'tok_processingError' });
    const lost = await checkout(sku, { method: 'card', token: 'tok_timeout' });
    await until(flaky, 'captured');
    await until(lost, 'captured');

    for (const id of [flaky, lost]) {
      const ops = await operations(id);
      expect(ops.filter((op) => op.type === 'authorization')).toHaveLength(1);
      expect(count(ops, 'capture')).toBe(1);
    }
    expect(await stock(sku)).toEqual({ available: 3, reserved: 0, sold: 2 });
  });

  it('voids, refunds and authenticates once when their responses are lost', async () => {
    const sku = await product();
    // Void: cancel a manual-capture checkout while the network keeps losing the void's answer.
    const canceled = await checkout(sku, { method: 'card', token: 'tok_visa' }, { captureMethod: 'manual' });
    await until(canceled, 'requires_capture');
    await injectCardFault(stack.cardNetworkUrl, { reference: canceled, operation: 'void', mode: 'lose_response', times: 2 });
    expect((await call('POST', `/v1/checkouts/${canceled}/cancel`)).body.status).toBe('canceled');
    expect(count(await operations(canceled), 'void')).toBe(1);

    // Refund.
    const refunded = await checkout(sku, { method: 'card', token: 'tok_visa' });
    await until(refunded, 'captured');
    await injectCardFault(stack.cardNetworkUrl, { reference: refunded, operation: 'refund', mode: 'lose_response', times: 2 });
    const refund = await call('POST', `/v1/checkouts/${refunded}/refunds`, { amount: yen(1000) });
    expect(refund.body).toMatchObject({ status: 'succeeded', amount: yen(1000) });
    expect(count(await operations(refunded), 'refund')).toBe(1);

    // 3-D Secure authentication.
    const challenged = await checkout(sku, { method: 'card', token: 'tok_threeDSecureRequired' });
    await until(challenged, 'requires_action');
    await injectCardFault(stack.cardNetworkUrl, { reference: challenged, operation: 'authenticate', mode: 'lose_response', times: 2 });
    await call('POST', `/v1/checkouts/${challenged}/confirm`, { result: 'succeeded' });
    await until(challenged, 'captured');
    expect((await operations(challenged)).filter((op) => op.type === 'authentication')).toHaveLength(1);
    expect(count(await operations(challenged), 'capture')).toBe(1);
    expect(await stock(sku)).toEqual({ available: 3, reserved: 0, sold: 2 });
  });

  it('captures once when the capture response is lost', async () => {
    const sku = await product();
    const id = await checkout(sku, { method: 'card', token: 'tok_visa' }, { captureMethod: 'manual' });
    await until(id, 'requires_capture');
    await injectCardFault(stack.cardNetworkUrl, { reference: id, operation: 'capture', mode: 'lose_response', times: 2 });

    expect((await call('POST', `/v1/checkouts/${id}/capture`)).body.status).toBe('captured');
    expect(count(await operations(id), 'capture')).toBe(1);
  });
});

describe('races over HTTP', () => {
  /** The checkout's journal entries, as `code:amount`, from the stack's own database. */
  async function journal(id: string): Promise<string[]> {
    const db = new pg.Client({ connectionString: stack.env.DATABASE_URL });
    await db.connect();
    try {
      const { rows } = await db.query<{ code: string; kind: string; amount: string }>(
        'SELECT code, kind, amount::text FROM ledger_transfers WHERE reference = $1 ORDER BY created_at, id',
        [id],
      );
      return rows.map((r) => `${r.code}:${r.kind}:${r.amount}`);
    } finally {
      await db.end();
    }
  }

  it('two refunds sent at once that add up to more than was captured: one succeeds, the other is refused, and only one is paid back', async () => {
    const sku = await product();
    const id = await checkout(sku, { method: 'card', token: 'tok_visa' });
    await until(id, 'captured');
    const before = await journal(id);

    const answers = await Promise.all(
      ['race-refund-a', 'race-refund-b'].map((k) => call('POST', `/v1/checkouts/${id}/refunds`, { amount: yen(2500) }, { 'idempotency-key': `${id}-${k}` })),
    );
    expect(answers.map((a) => a.status).sort()).toEqual([201, 400]);
    const refused = answers.find((a) => a.status === 400)!;
    expect(refused.body.error).toMatchObject({ type: 'invalid_request_error', param: 'amount' });

    const done = await call('GET', `/v1/checkouts/${id}`);
    expect(done.body).toMatchObject({ status: 'partially_refunded', amountCaptured: yen(4000), amountRefunded: yen(2500) });
    expect(done.body.refunds).toHaveLength(1);
    expect((await operations(id)).filter((op) => op.type === 'refund' && op.status === 'succeeded').map((op) => op.amount)).toEqual(['2500']);
    const added = (await journal(id)).slice(before.length);
    expect(added).toEqual(['checkout_refund:posted:2500']);
  });

  it('capture and cancel sent at once on an authorized checkout: exactly one takes effect, and the card and stock agree with it', async () => {
    const sku = await product();
    const id = await checkout(sku, { method: 'card', token: 'tok_visa' }, { captureMethod: 'manual' });
    await until(id, 'requires_capture');

    const [capture, cancel] = await Promise.all([call('POST', `/v1/checkouts/${id}/capture`, {}), call('POST', `/v1/checkouts/${id}/cancel`, {})]);
    expect([capture.status, cancel.status].sort()).toEqual([200, 409]);
    const ops = await operations(id);
    if (capture.status === 200) {
      expect(capture.body.status).toBe('captured');
      expect(cancel.body.error.checkout).toMatchObject({ id });
      expect((await call('GET', `/v1/checkouts/${id}`)).body.status).toBe('captured');
      expect([count(ops, 'capture'), count(ops, 'void')]).toEqual([1, 0]);
      expect(await stock(sku)).toEqual({ available: 4, reserved: 0, sold: 1 });
      expect(await journal(id)).toEqual(['checkout_card_capture:posted:4000']);
    } else {
      expect(cancel.body.status).toBe('canceled');
      expect(capture.body.error.checkout).toMatchObject({ id });
      expect((await call('GET', `/v1/checkouts/${id}`)).body.status).toBe('canceled');
      expect([count(ops, 'capture'), count(ops, 'void')]).toEqual([0, 1]);
      expect(await stock(sku)).toEqual({ available: 5, reserved: 0, sold: 0 });
      expect(await journal(id)).toEqual([]);
    }
  });
});

describe('the books', () => {
  it('of this file\'s merchant match every row, the network and the bank after all of the above', async () => {
    await expectBooksOf(merchant.id);
  });
});
