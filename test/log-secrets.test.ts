// Secrets never reach the logs: a set of requests carrying an API key (right and wrong, a merchant's
// and the operator's), card tokens (valid, malformed, in rejected bodies, in failed workflow starts), and webhook endpoint
// secrets (shown once, in the answer that creates the endpoint) runs against the app with the real
// logger at debug level, and its output, captured where it is written, holds none of them. The
// merchants table holds only the key's SHA-256.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../platform/api-keys.js';
import type { PrismaClient } from '../platform/db.js';
import { createLogger } from '../platform/logger.js';
import { newOperatorApiKey } from '../scripts/dev-secrets.js';
import { call, createMerchant, openPrisma, send, startApi, type TestApi, type TestMerchant } from './support/api-harness.js';

let prisma: PrismaClient;
let api: TestApi;
let merchant: TestMerchant;
const operatorKey = newOperatorApiKey();
const output: string[] = [];

/** Copies what the process writes to stdout and stderr while `run` runs. */
async function capturingOutput(run: () => Promise<void>): Promise<void> {
  const original = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };
  const tap =
    (write: typeof process.stdout.write) =>
    (chunk: unknown, ...rest: unknown[]): boolean => {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
      output.push(text);
      // The app's own lines are kept for the assertions, not printed; anything else passes through.
      if (text.includes('"component":"api"')) return true;
      return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
    };
  process.stdout.write = tap(original.out) as typeof process.stdout.write;
  process.stderr.write = tap(original.err) as typeof process.stderr.write;
  try {
    await run();
  } finally {
    process.stdout.write = original.out;
    process.stderr.write = original.err;
  }
}

beforeAll(async () => {
  prisma = openPrisma();
  merchant = await createMerchant(prisma, 'secrets');
  // The real logger, at its most talkative, so every line any route writes is seen as printed.
  api = await startApi(prisma, { logger: createLogger('api', 'debug'), operatorApiKey: operatorKey });
});

afterAll(async () => {
  await api?.close();
  await prisma?.$disconnect();
});

describe('secrets and logs', () => {
  it('never logs an API key, an Authorization header, a card token or a webhook secret', async () => {
    const run = randomUUID().slice(0, 8);
    const token = `tok_visa_secret_${run}`;
    const malformedToken = `tok secret ${run}`;
    const wrongKey = `sk_test_wrong_${run}`;
    const nearOperatorKey = `${operatorKey.slice(0, -4)}beef`;
    const secrets: string[] = [merchant.key, wrongKey, token, malformedToken, operatorKey, nearOperatorKey];
    const sku = `sec-${run}`;
    const key = merchant.key;

    await capturingOutput(async () => {
      expect((await call(api.url, key, 'POST', '/v1/products', { sku, name: 'Ticket', price: { amount: '100', currency: 'JPY' }, stock: 5 })).status).toBe(201);
      const checkout = { customerId: 'cus_secret', items: [{ sku, quantity: 1 }], payment: { method: 'card', token } };
      expect((await call(api.url, key, 'POST', '/v1/checkouts', checkout, { 'idempotency-key': `sec-${run}-1` })).status).toBe(201);
      // Replayed, reused with other parameters, malformed, with an unknown field carrying the token.
      expect((await call(api.url, key, 'POST', '/v1/checkouts', checkout, { 'idempotency-key': `sec-${run}-1` })).status).toBe(201);
      expect((await call(api.url, key, 'POST', '/v1/checkouts', { ...checkout, customerId: 'other' }, { 'idempotency-key': `sec-${run}-1` })).status).toBe(422);
      expect((await call(api.url, key, 'POST', '/v1/checkouts', { ...checkout, payment: { method: 'card', token: malformedToken } }, { 'idempotency-key': `sec-${run}-2` })).status).toBe(400);
      expect((await call(api.url, key, 'POST', '/v1/checkouts', { ...checkout, cardToken: token }, { 'idempotency-key': `sec-${run}-3` })).status).toBe(400);
      const topup = { customerId: 'cus_secret', amount: { amount: '500', currency: 'JPY' }, payment: { method: 'card', token } };
      expect((await call(api.url, key, 'POST', '/v1/topups', topup, { 'idempotency-key': `sec-${run}-4` })).status).toBe(201);
      // A workflow start that fails inside Temporal is logged as an internal error, with its cause
      // and stack, and still without the request's token.
      const startFailure = api.temporal.client.workflow.executeUpdateWithStart;
      api.temporal.client.workflow.executeUpdateWithStart = (async () => {
        throw new Error('connection reset by Temporal');
      }) as typeof startFailure;
      const failed = await call(api.url, key, 'POST', '/v1/topups', topup, { 'idempotency-key': `sec-${run}-5` });
      api.temporal.client.workflow.executeUpdateWithStart = startFailure;
      expect(failed.status).toBe(500);

      // Keys that do not work, in every shape a client gets wrong.
      for (const authorization of [`Bearer ${wrongKey}`, `Basic ${Buffer.from(`${merchant.id}:${key}`).toString('base64')}`, `Token ${key}`, `Bearer ${key} ${key}`]) {
        const res = await send(api.url, { method: 'GET', path: '/v1/settings', headers: { authorization } });
        expect(res.status).toBe(401);
        expect(res.text).not.toContain(key);
        expect(res.text).not.toContain(wrongKey);
      }
      secrets.push(Buffer.from(`${merchant.id}:${key}`).toString('base64'));

      // The operator's key: a platform-wide action, a read, a merchant's route it is refused, and a near miss.
      const platformRun = await call(api.url, operatorKey, 'POST', '/v1/reconciliations', {});
      expect(platformRun.status, platformRun.text).toBe(202);
      try {
        expect((await call(api.url, operatorKey, 'GET', `/v1/reconciliations/${platformRun.body.id}`)).status).toBe(200);
        expect((await call(api.url, operatorKey, 'GET', '/v1/settings')).status).toBe(403);
        expect((await call(api.url, nearOperatorKey, 'POST', '/v1/reconciliations', {})).status).toBe(401);
        expect((await send(api.url, { method: 'GET', path: '/v1/settings', headers: { authorization: `Bearer ${operatorKey} ${operatorKey}` } })).status).toBe(401);
      } finally {
        // Nothing runs the fake's workflow: the platform scope is given back for later tests.
        await prisma.reconciliationLease.deleteMany({ where: { reconciliationId: platformRun.body.id } });
      }

      // A webhook endpoint's secret: in the answer that creates it, and nowhere after.
      const endpoint = await call(api.url, key, 'POST', '/v1/webhook-endpoints', { url: 'https://shop.example/hook', events: ['*'] });
      expect(endpoint.status).toBe(201);
      const secret: string = endpoint.body.secret;
      expect(secret).toMatch(/^whsec_/);
      secrets.push(secret);
      const listed = await call(api.url, key, 'GET', '/v1/webhook-endpoints');
      expect(listed.text).not.toContain(secret);
      expect((await call(api.url, key, 'DELETE', `/v1/webhook-endpoints/${endpoint.body.id}`)).status).toBe(200);
    });

    const lines = output.join('').split('\n').filter((l) => l.includes('"component":"api"'));
    // The capture saw the app's lines (one per request at least), with the business ids they carry.
    expect(lines.length).toBeGreaterThan(15);
    expect(lines.some((l) => l.includes(`"merchantId":"${merchant.id}"`) && l.includes('"checkoutId":"co_'))).toBe(true);
    expect(lines.some((l) => l.includes('"level":"error"') && l.includes('connection reset by Temporal'))).toBe(true);
    const all = lines.join('\n');
    for (const s of secrets) expect(all, `a log line holds ${s.slice(0, 12)}...`).not.toContain(s);
    expect(all.toLowerCase()).not.toMatch(/bearer|authorization/);
  });

  it('stores API keys only as their SHA-256', async () => {
    const rows = await prisma.$queryRaw<Array<{ id: string; row: string }>>`SELECT id, row_to_json(m)::text AS row FROM merchants m WHERE id = ${merchant.id}`;
    expect(rows).toHaveLength(1);
    expect(rows[0]!.row).not.toContain(merchant.key);
    const stored = await prisma.merchant.findUniqueOrThrow({ where: { id: merchant.id } });
    expect(stored.apiKeyHash).toBe(hashApiKey(merchant.key));
    expect(stored.apiKeyHash).toMatch(/^[0-9a-f]{64}$/);
    // No table anywhere in the schema has another column holding the key.
    const everywhere = await prisma.$queryRaw<Array<{ n: bigint }>>`
      SELECT count(*) AS n FROM merchants m WHERE row_to_json(m)::text LIKE ${`%${merchant.key}%`}`;
    expect(everywhere[0]!.n).toBe(0n);
  });

  it('redacts a secret-named field that code passes by mistake', async () => {
    const secret = `tok_leak_${randomUUID()}`;
    await capturingOutput(async () => {
      createLogger('api', 'info').child({ merchantId: merchant.id }).warn('a careless line', { token: secret, payment: { token: secret }, apiKey: secret, amount: 5000n });
    });
    const line = output.join('').split('\n').find((l) => l.includes('"msg":"a careless line"'));
    expect(line).toBeDefined();
    expect(line).not.toContain(secret);
    expect(JSON.parse(line!)).toMatchObject({ level: 'warn', component: 'api', merchantId: merchant.id, token: '[redacted]', payment: { token: '[redacted]' }, apiKey: '[redacted]', amount: '5000' });
  });
});
