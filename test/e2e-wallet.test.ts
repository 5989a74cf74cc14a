// Wallet flows through the HTTP API on real processes: top-up, concurrent wallet checkouts,
// payouts to the bank simulator, and the history derived from the ledger.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../scripts/stack.js';
import { expectBooksOf } from './support/books.js';
import { createMerchant, type TestMerchant } from './support/merchants.js';
import { callApi, type Json } from './support/stack-http.js';

let merchant: TestMerchant;
/** Requests as this file's own merchant (made in beforeAll, in the database the stack shares). */
let stack: Stack;

beforeAll(async () => {
  merchant = await createMerchant(process.env.DATABASE_URL!, 'e2e_wallet');
  stack = await startStack({ env: { CARD_NETWORK_LATENCY_MS: '20', BANK_LATENCY_MS: '20' } });
});

afterAll(async () => {
  await stack?.stop();
});

const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => callApi(stack.apiUrl, merchant.key, method, path, body, headers);

const yen = (amount: number) => ({ amount: String(amount), currency: 'JPY' });
const key = () => ({ 'idempotency-key': randomUUID() });

async function until(path: string, done: (body: Json) => boolean, timeoutMs = 45_000): Promise<Json> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await call('GET', path);
    if (done(res.body)) return res.body;
    if (Date.now() > deadline) throw new Error(`${path} stuck at ${JSON.stringify(res.body)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function topUp(customerId: string, amount: number) {
  const res = await call('POST', '/v1/topups', { customerId, amount: yen(amount), payment: { method: 'card', token: 'tok_visa' } }, key());
  expect(res.status).toBe(201);
  return until(`/v1/topups/${res.body.id}`, (b) => b.status !== 'processing');
}

describe('wallet over HTTP', () => {
  it('top-up 5,000, then 80 simultaneous wallet checkouts of 100: exactly 50 captured and the wallet at 0', async () => {
    const customerId = `cus_${randomUUID()}`;
    expect((await topUp(customerId, 5000)).status).toBe('succeeded');
    expect((await call('GET', `/v1/wallets/${customerId}`)).body).toMatchObject({ available: yen(5000), held: yen(0) });

    const sku = `beans-${randomUUID().slice(0, 8)}`;
    expect((await call('POST', '/v1/products', { sku, name: 'Coffee beans', price: yen(100), stock: 200 })).status).toBe(201);
    const created = await Promise.all(
      Array.from({ length: 80 }, () => call('POST', '/v1/checkouts', { customerId, items: [{ sku, quantity: 1 }], payment: { method: 'wallet' } }, key())),
    );
    expect(created.filter((c) => c.status !== 201)).toEqual([]);
    const final = await Promise.all(created.map((c) => until(`/v1/checkouts/${c.body.id}`, (b) => ['captured', 'failed'].includes(b.status))));

    expect(final.filter((c) => c.status === 'captured')).toHaveLength(50);
    expect(final.filter((c) => c.status === 'failed').map((c) => c.failure?.code)).toEqual(Array(30).fill('insufficient_funds'));
    expect((await call('GET', `/v1/wallets/${customerId}`)).body).toMatchObject({ available: yen(0), held: yen(0) });
    expect((await call('GET', `/v1/products/${sku}`)).body.stock).toEqual({ available: 150, reserved: 0, sold: 50 });
  });

  it('pays out 1,000 from a 3,000 wallet, refuses one above the balance, and lists every movement', async () => {
    const customerId = `cus_${randomUUID()}`;
    await topUp(customerId, 3000);

    const payout = await call('POST', '/v1/payouts', { customerId, amount: yen(1000), bankAccount: { bankCode: '0001', accountNumber: '1234567' } }, key());
    expect(payout.status).toBe(201);
    expect((await until(`/v1/payouts/${payout.body.id}`, (b) => ['paid', 'failed'].includes(b.status))).status).toBe('paid');
    expect((await call('GET', `/v1/wallets/${customerId}`)).body).toMatchObject({ available: yen(2000), held: yen(0) });
    const sent = await fetch(`${stack.bankUrl}/v1/transfers?reference=${encodeURIComponent(payout.body.id)}`);
    expect(((await sent.json()) as { data: unknown[] }).data).toHaveLength(1);

    const tooMuch = await call('POST', '/v1/payouts', { customerId, amount: yen(2001), bankAccount: { bankCode: '0001', accountNumber: '1234567' } }, key());
    expect(tooMuch.status).toBe(409);
    expect((await call('GET', `/v1/wallets/${customerId}`)).body).toMatchObject({ available: yen(2000), held: yen(0) });

    const history = (await call('GET', `/v1/wallets/${customerId}/transactions`)).body;
    const moves = history.data.map((t: Json) => `${t.type}:${t.direction}:${t.amount.amount}`);
    expect(moves).toEqual(expect.arrayContaining(['topup:credit:3000', 'payout:debit:1000']));
    // Newest first.
    expect(history.data[0].type).toBe('payout');
  });
});

describe('the bank loses its answer', () => {
  it('a payout to the account whose first answer is lost is paid once, and the wallet debited once', async () => {
    const customerId = `cus_${randomUUID()}`;
    await topUp(customerId, 3000);
    // simulators/bank: 9999999 pays, then loses its first response.
    const payout = await call('POST', '/v1/payouts', { customerId, amount: yen(1000), bankAccount: { bankCode: '0001', accountNumber: '9999999' } }, key());
    expect(payout.status, JSON.stringify(payout.body)).toBe(201);
    expect((await until(`/v1/payouts/${payout.body.id}`, (b) => ['paid', 'failed'].includes(b.status))).status).toBe('paid');
    const sent = ((await (await fetch(`${stack.bankUrl}/v1/transfers?reference=${encodeURIComponent(payout.body.id)}`)).json()) as { data: Json[] }).data;
    expect(sent.map((t) => [t.status, t.amount])).toEqual([['paid', '1000']]);
    expect((await call('GET', `/v1/wallets/${customerId}`)).body).toMatchObject({ available: yen(2000), held: yen(0) });
  });
});

describe('races over HTTP', () => {
  it('a payout canceled about its scheduled time is either canceled with nothing sent, or paid once: never both, never neither', async () => {
    // Cancels sent at, just after and well after the scheduled time, so both outcomes occur.
    await Promise.all([0, 250, 1_000].map((lateMs) => cancelAround(lateMs)));
  });

  async function cancelAround(lateMs: number): Promise<void> {
    const customerId = `cus_${randomUUID()}`;
    await topUp(customerId, 3000);
    const at = Date.now() + 2_000;
    const payout = await call(
      'POST',
      '/v1/payouts',
      { customerId, amount: yen(1000), bankAccount: { bankCode: '0001', accountNumber: '1234567' }, scheduledAt: new Date(at).toISOString() },
      key(),
    );
    expect(payout.status, JSON.stringify(payout.body)).toBe(201);
    await new Promise((r) => setTimeout(r, Math.max(0, at + lateMs - Date.now())));
    const cancel = await call('POST', `/v1/payouts/${payout.body.id}/cancel`, {});
    const final = await until(`/v1/payouts/${payout.body.id}`, (b) => ['paid', 'failed', 'canceled'].includes(b.status));
    const sent = ((await (await fetch(`${stack.bankUrl}/v1/transfers?reference=${encodeURIComponent(payout.body.id)}`)).json()) as { data: Json[] }).data;
    const wallet = (await call('GET', `/v1/wallets/${customerId}`)).body;
    if (cancel.status === 200) {
      // The cancel won: the payout never reached the bank and the hold went back to the wallet.
      expect(final.status).toBe('canceled');
      expect(cancel.body.status).toBe('canceled');
      expect(sent).toEqual([]);
      expect(wallet).toMatchObject({ available: yen(3000), held: yen(0) });
    } else {
      // The payout had left: the cancel is refused, and the bank paid once.
      expect(cancel.status, JSON.stringify(cancel.body)).toBe(409);
      expect(cancel.body.error.code).toMatch(/^payout_(state_invalid|closed)$/);
      expect(final.status).toBe('paid');
      expect(sent).toHaveLength(1);
      expect(wallet).toMatchObject({ available: yen(2000), held: yen(0) });
    }
  }
});

describe('the books', () => {
  it('of this file\'s merchant match every row, the network and the bank after all of the above', async () => {
    await expectBooksOf(merchant.id);
  });
});
