// End to end, on real processes: what the API and the workers write into Temporal is ciphertext.
// A checkout, a top-up and a payout go through the API; their histories, fetched raw from Temporal
// (a client without the codec, as anyone with access to Temporal's database or Web UI sees them),
// hold no card token, customer id or bank account number in any payload, and no failure message;
// through the codec server (the operator key) and `temporal workflow show --codec-endpoint` (the
// command the README gives) the same histories read in full.
import { execFile } from 'node:child_process';
import { randomInt, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { loadConfig } from '../platform/config.js';
import { createLogger } from '../platform/logger.js';
import { startStack, type Stack } from '../scripts/stack.js';
import { resolveTemporalCli } from '../scripts/temporal.js';
import { isSdkBookkeeping, isSearchAttribute, payloadsIn, plaintextIn } from './support/history-payloads.js';
import { testCustomerSearch } from './support/payload-keys.js';
import { createMerchant, type TestMerchant } from './support/merchants.js';
import { callApi, type Json } from './support/stack-http.js';

let merchant: TestMerchant;
/** Requests as this file's own merchant (made in beforeAll, in the database the stack shares). */
const customerId = `cus_enc_${randomUUID().slice(0, 8)}`;
// Seven digits, not one of the bank simulator's special accounts (0000000, 9999999).
const accountNumber = String(randomInt(1_000_001, 9_999_998));
let stack: Stack;
let connection: Connection;
/** No data converter: what is stored, as stored. */
let raw: Client;

beforeAll(async () => {
  merchant = await createMerchant(process.env.DATABASE_URL!, 'e2e_encryption');
  [stack, connection] = await Promise.all([startStack(), Connection.connect({ address: process.env.TEMPORAL_ADDRESS! })]);
  raw = new Client({ connection, namespace: stack.env.TEMPORAL_NAMESPACE! });
});

afterAll(async () => {
  await connection?.close();
  await stack?.stop();
});

const api = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => callApi(stack.apiUrl, merchant.key, method, path, body, headers);

async function until(path: string, done: (body: Json) => boolean, timeoutMs = 45_000): Promise<Json> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await api('GET', path);
    if (done(res.body)) return res.body;
    if (Date.now() > deadline) throw new Error(`${path} stuck in ${JSON.stringify(res.body.status)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The history of `workflowId` as Temporal stores it, in the JSON form histories are exported in. */
async function storedHistory(workflowId: string): Promise<unknown> {
  return JSON.parse(historyToJSON(await raw.workflow.getHandle(workflowId).fetchHistory()));
}

/** Every failure recorded in a history (activity retries' last failures, failed tasks, results). */
function failuresIn(node: unknown, found: Array<Record<string, unknown>> = []): Array<Record<string, unknown>> {
  if (Array.isArray(node)) node.forEach((child) => failuresIn(child, found));
  else if (typeof node === 'object' && node !== null) {
    const record = node as Record<string, unknown>;
    if (Object.keys(record).some((k) => k.endsWith('FailureInfo'))) found.push(record);
    Object.values(record).forEach((child) => failuresIn(child, found));
  }
  return found;
}

const SECRETS = () => ['tok_visa', 'tok_processingError', customerId, accountNumber];

describe('payloads in Temporal', () => {
  const ids: Record<'checkout' | 'topup' | 'payout', string> = { checkout: '', topup: '', payout: '' };

  beforeAll(async () => {
    const sku = `enc-${randomUUID().slice(0, 8)}`;
    expect((await api('POST', '/v1/products', { sku, name: 'Festival ticket', price: { amount: '1999', currency: 'JPY' }, stock: 5 })).status).toBe(201);
    // tok_processingError: the network answers 503 twice, so the history also records failed attempts.
    const checkout = await api('POST', '/v1/checkouts', { customerId, items: [{ sku, quantity: 1 }], payment: { method: 'card', token: 'tok_processingError' } }, { 'idempotency-key': randomUUID() });
    expect(checkout.status).toBe(201);
    ids.checkout = checkout.body.id;
    const topup = await api('POST', '/v1/topups', { customerId, amount: { amount: '5000', currency: 'JPY' }, payment: { method: 'card', token: 'tok_visa' } }, { 'idempotency-key': randomUUID() });
    expect(topup.status).toBe(201);
    ids.topup = topup.body.id;
    expect((await until(`/v1/topups/${ids.topup}`, (b) => b.status !== 'processing')).status).toBe('succeeded');
    const payout = await api('POST', '/v1/payouts', { customerId, amount: { amount: '1000', currency: 'JPY' }, bankAccount: { bankCode: '0001', accountNumber } }, { 'idempotency-key': randomUUID() });
    expect(payout.status).toBe(201);
    ids.payout = payout.body.id;
    expect((await until(`/v1/payouts/${ids.payout}`, (b) => ['paid', 'failed'].includes(b.status))).status).toBe('paid');
    expect((await until(`/v1/checkouts/${ids.checkout}`, (b) => b.status !== 'processing')).status).toBe('captured');
  }, 120_000);

  it('are ciphertext: no card token, customer id or account number in any payload of the stored histories, and failures are encoded', async () => {
    for (const [flow, id] of Object.entries(ids)) {
      const history = await storedHistory(id);
      expect({ flow, plaintext: plaintextIn(history, SECRETS()) }).toEqual({ flow, plaintext: [] });
      const payloads = payloadsIn(history);
      const data = payloads.filter((p) => !isSearchAttribute(p) && !isSdkBookkeeping(p));
      expect(data.length).toBeGreaterThan(2);
      expect({ flow, encodings: [...new Set(data.map((p) => p.metadata.encoding))] }).toEqual({ flow, encodings: ['binary/encrypted'] });
      // Search attributes stay plain and filterable; the customer only as a pseudonym.
      const attributes = Object.fromEntries(payloads.filter(isSearchAttribute).map((p) => [p.path.split('.').at(-1), p.data.toString()]));
      expect(attributes).toMatchObject({ MerchantId: `"${merchant.id}"`, CustomerId: `"${testCustomerSearch.value(merchant.id, customerId)}"` });
      // The SDK's own marker data names patches and local activities, nothing of the payment.
      for (const p of payloads.filter(isSdkBookkeeping)) {
        const value = JSON.parse(p.data.toString()) as Record<string, unknown>;
        expect(Object.keys(value).every((k) => ['id', 'deprecated', 'seq', 'attempt', 'activity_id', 'activity_type', 'complete_time', 'backoff', 'original_schedule_time'].includes(k))).toBe(true);
      }
    }
    // The checkout's failed network calls are in its history, their messages and stacks encrypted.
    const failures = failuresIn(await storedHistory(ids.checkout));
    expect(failures.length).toBeGreaterThan(0);
    for (const failure of failures) {
      expect(failure).toMatchObject({ message: 'Encoded failure', encodedAttributes: { metadata: { encoding: Buffer.from('binary/encrypted').toString('base64') } } });
      expect(failure.stackTrace ?? '').toBe('');
    }
  });

  it('read in full through the codec server with the operator key', async () => {
    const history = await storedHistory(ids.payout);
    const stored = [] as unknown[];
    const collect = (node: unknown) => {
      if (Array.isArray(node)) node.forEach(collect);
      else if (typeof node === 'object' && node !== null) {
        const record = node as Record<string, unknown>;
        if (typeof record.metadata === 'object' && record.metadata !== null && typeof record.data === 'string') stored.push(record);
        else Object.values(record).forEach(collect);
      }
    };
    collect(history);
    const res = await fetch(`${stack.codecUrl}/decode`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.env.OPERATOR_API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ payloads: stored }),
    });
    expect(res.status).toBe(200);
    const decoded = ((await res.json()) as { payloads: Array<{ data?: string }> }).payloads.map((p) => Buffer.from(p.data ?? '', 'base64').toString());
    expect(decoded.join('\n')).toContain(`"accountNumber":"${accountNumber}"`);
    expect(decoded.join('\n')).toContain(`"customerId":"${customerId}"`);
  });

  it('read in full with `temporal workflow show --codec-endpoint --codec-auth`, and not without', async () => {
    const cli = await resolveTemporalCli(loadConfig(), createLogger('e2e-payload-encryption', 'warn'));
    const show = async (extra: string[]) =>
      (
        await promisify(execFile)(cli, ['workflow', 'show', '--workflow-id', ids.checkout, '--address', process.env.TEMPORAL_ADDRESS!, '--namespace', stack.env.TEMPORAL_NAMESPACE!, '--output', 'json', ...extra], {
          maxBuffer: 64 * 1024 * 1024,
        })
      ).stdout;
    // The CLI prints payloads in the proto JSON form, data in base64: read them as stored ones are.
    const decoded = JSON.parse(await show(['--codec-endpoint', stack.codecUrl, '--codec-auth', `Bearer ${stack.env.OPERATOR_API_KEY}`]));
    expect(plaintextIn(decoded, SECRETS())).toEqual(['tok_processingError', customerId]);
    expect(plaintextIn(JSON.parse(await show([])), SECRETS())).toEqual([]);
    // A wrong key gets nothing decoded: the CLI retries the refused codec call until its time is up.
    const refused = await show(['--codec-endpoint', stack.codecUrl, '--codec-auth', 'Bearer sk_op_wrong', '--command-timeout', '3s']).then(
      (out) => ({ failed: false, out }),
      (err: { stdout?: string; stderr?: string }) => ({ failed: true, out: `${err.stdout ?? ''}${err.stderr ?? ''}` }),
    );
    expect(refused.failed).toBe(true);
    expect(refused.out).not.toContain(customerId);
  });
});
