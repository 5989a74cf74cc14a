// Request limits over HTTP, in process: the body size limit (413) on every route that reads a
// body, and the rate limits (429) per merchant and per client address, with their headers, their
// settings and what a refused request leaves behind (nothing).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenBuckets } from '../api/rate-limit.js';
import { loadConfig } from '../platform/config.js';
import type { PrismaClient } from '../platform/db.js';
import { call, createMerchant, openPrisma, startApi, type Res, type TestApi, type TestMerchant } from './support/api-harness.js';

let prisma: PrismaClient;
let a: TestMerchant;
let b: TestMerchant;
const apis: TestApi[] = [];

beforeAll(async () => {
  prisma = openPrisma();
  [a, b] = await Promise.all([createMerchant(prisma, 'limits_a'), createMerchant(prisma, 'limits_b')]);
});

afterAll(async () => {
  await Promise.all(apis.map((api) => api.close()));
  await prisma?.$disconnect();
});

async function api(overrides: Parameters<typeof startApi>[1] = {}): Promise<TestApi> {
  const started = await startApi(prisma, overrides);
  apis.push(started);
  return started;
}

function expectError(res: Res, status: number, type: string, code: string): void {
  expect(res.status, res.text).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.body.error).toMatchObject({ type, code, message: expect.any(String) });
}

/** Everything a request could write, counted. */
async function rows(): Promise<string> {
  const [row] = await prisma.$queryRaw<Array<Record<string, bigint>>>`
    SELECT (SELECT count(*) FROM products) p, (SELECT count(*) FROM checkouts) c, (SELECT count(*) FROM topups) t, (SELECT count(*) FROM payouts) po,
           (SELECT count(*) FROM webhook_endpoints) w, (SELECT count(*) FROM idempotency_requests) i, (SELECT count(*) FROM refunds) r`;
  return JSON.stringify(row, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

describe('body size limit', () => {
  const bodyRoutes: Array<[string, string]> = [
    ['POST', '/v1/products'],
    ['POST', '/v1/checkouts'],
    ['POST', '/v1/checkouts/checkout-x/capture'],
    ['POST', '/v1/checkouts/checkout-x/cancel'],
    ['POST', '/v1/checkouts/checkout-x/confirm'],
    ['POST', '/v1/checkouts/checkout-x/refunds'],
    ['PATCH', '/v1/settings'],
    ['POST', '/v1/topups'],
    ['POST', '/v1/payouts'],
    ['POST', '/v1/payouts/payout-x/cancel'],
    ['POST', `/v1/events/evt_${randomUUID()}/redeliver`],
    ['POST', '/v1/webhook-endpoints'],
    ['POST', '/v1/reconciliations'],
  ];

  it.each(bodyRoutes)('%s %s answers 413 naming the 100kb limit for a larger body, and writes nothing', async (method, path) => {
    const server = await api();
    const before = await rows();
    const res = await call(server.url, a.key, method, path, { customerId: 'x'.repeat(110 * 1024) }, { 'idempotency-key': `big-${randomUUID()}` });
    expectError(res, 413, 'invalid_request_error', 'body_too_large');
    expect(res.body.error.message).toContain('100kb');
    expect(await rows()).toBe(before);
    expect(server.temporal.starts).toHaveLength(0);
  });

  it('accepts a body just under the limit', async () => {
    const server = await api();
    // A valid shape would be refused on its merits; under the limit it reaches validation (400).
    const res = await call(server.url, a.key, 'POST', '/v1/products', { sku: 'x', name: 'y'.repeat(90 * 1024), price: { amount: '1', currency: 'JPY' }, stock: 1 });
    expectError(res, 400, 'invalid_request_error', 'parameter_invalid');
    expect(res.body.error.param).toBe('name');
  });

  it('does not read a body sent without a valid key', async () => {
    const server = await api();
    const res = await call(server.url, 'sk_test_wrong', 'POST', '/v1/products', { name: 'x'.repeat(200 * 1024) });
    expectError(res, 401, 'authentication_error', 'api_key_invalid');
  });
});

describe('rate limits', () => {
  it('answers the request past the burst 429 with Retry-After, leaves other merchants alone, and refills', async () => {
    let now = 1_000_000;
    const server = await api({ rateLimit: { perSecond: 5, burst: 5 }, now: () => now });
    for (let i = 0; i < 5; i++) {
      const res = await call(server.url, a.key, 'GET', '/v1/settings');
      expect(res.status, res.text).toBe(200);
      expect(res.headers['ratelimit-limit']).toBe('5');
      expect(res.headers['ratelimit-remaining']).toBe(String(4 - i));
    }
    const refused = await call(server.url, a.key, 'GET', '/v1/settings');
    expectError(refused, 429, 'rate_limit_error', 'rate_limit_exceeded');
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.headers['ratelimit-remaining']).toBe('0');
    expect(refused.body.error.message).toMatch(/5 requests per second/);

    // Another merchant has a bucket of its own.
    expect((await call(server.url, b.key, 'GET', '/v1/settings')).status).toBe(200);

    // A refused request is refused before its body is read: nothing is created.
    const sku = `rl-${randomUUID().slice(0, 8)}`;
    const before = await rows();
    const create = await call(server.url, a.key, 'POST', '/v1/products', { sku, name: 'Limited', price: { amount: '1', currency: 'JPY' }, stock: 1 });
    expectError(create, 429, 'rate_limit_error', 'rate_limit_exceeded');
    expect(await rows()).toBe(before);

    // 200 ms gives back one token (5 a second): one request, then refused again.
    now += 200;
    expect((await call(server.url, a.key, 'GET', '/v1/settings')).status).toBe(200);
    expect((await call(server.url, a.key, 'GET', '/v1/settings')).status).toBe(429);
    // After a second the whole burst is back.
    now += 1_000;
    const again = await Promise.all(Array.from({ length: 5 }, () => call(server.url, a.key, 'GET', '/v1/settings')));
    expect(again.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect((await call(server.url, a.key, 'GET', '/v1/settings')).status).toBe(429);
  });

  it('refills on the real clock too', async () => {
    const server = await api({ rateLimit: { perSecond: 10, burst: 2 } });
    expect((await call(server.url, a.key, 'GET', '/v1/settings')).status).toBe(200);
    expect((await call(server.url, a.key, 'GET', '/v1/settings')).status).toBe(200);
    const refused = await call(server.url, a.key, 'GET', '/v1/settings');
    expect(refused.status).toBe(429);
    await new Promise((resolve) => setTimeout(resolve, 1000 / 10 + 50));
    expect((await call(server.url, a.key, 'GET', '/v1/settings')).status).toBe(200);
  });

  it('limits a client address before its key is looked up, so random keys cannot hammer the database', async () => {
    let now = 5_000_000;
    const server = await api({ ipRateLimit: { perSecond: 3, burst: 3 }, rateLimit: { perSecond: 100, burst: 100 }, now: () => now });
    for (let i = 0; i < 3; i++) expect((await call(server.url, `sk_test_random_${i}`, 'GET', '/v1/settings')).status).toBe(401);
    const refused = await call(server.url, 'sk_test_random_x', 'GET', '/v1/settings');
    expectError(refused, 429, 'rate_limit_error', 'rate_limit_exceeded');
    expect(refused.body.error.message).toMatch(/client address/);
    expect(refused.headers['retry-after']).toBe('1');
    // The address is out of tokens whichever key it sends.
    expect((await call(server.url, a.key, 'GET', '/v1/settings')).status).toBe(429);
    now += 1_000;
    expect((await call(server.url, a.key, 'GET', '/v1/settings')).status).toBe(200);
    // Unversioned routes are not limited: a health check always answers.
    expect((await call(server.url, null, 'GET', '/health')).status).toBe(200);
  });

  it("has defaults that carry one merchant's flash sale, and settings that change or disable them", () => {
    const config = loadConfig({});
    expect(config.api.rateLimit).toEqual({ perSecond: 2_000, burst: 4_000 });
    expect(config.api.ipRateLimit).toEqual({ perSecond: 5_000, burst: 10_000 });
    const custom = loadConfig({ API_RATE_LIMIT_PER_SECOND: '50', API_IP_RATE_LIMIT_PER_SECOND: '0' });
    expect(custom.api.rateLimit).toEqual({ perSecond: 50, burst: 100 });
    expect(custom.api.ipRateLimit).toBeUndefined();
    expect(loadConfig({ API_RATE_LIMIT_PER_SECOND: '0' }).api.rateLimit).toBeUndefined();
    expect(loadConfig({ API_RATE_LIMIT_BURST: '7' }).api.rateLimit).toEqual({ perSecond: 2_000, burst: 7 });
    expect(() => loadConfig({ API_RATE_LIMIT_PER_SECOND: '-1' })).toThrow(/API_RATE_LIMIT_PER_SECOND/);
    expect(() => loadConfig({ API_RATE_LIMIT_BURST: '0' })).toThrow(/API_RATE_LIMIT_BURST/);

    // The flash-sale benchmark: ~10,000 checkouts from one key as fast as the API answers. The
    // default lets 4,000 through at once and then sustains 2,000 a second; 10,000 arriving at
    // 1,000 a second (faster than the API answers them) are never refused.
    const buckets = new TokenBuckets(config.api.rateLimit!);
    let refused = 0;
    for (let i = 0; i < 10_000; i++) if (!buckets.take('demo', i).allowed) refused++;
    expect(refused).toBe(0);
    const burst = new TokenBuckets(config.api.rateLimit!);
    const atOnce = Array.from({ length: 4_001 }, () => burst.take('demo', 0).allowed);
    expect(atOnce.filter(Boolean)).toHaveLength(4_000);
    expect(burst.take('demo', 0)).toEqual({ allowed: false, remaining: 0, retryAfterSeconds: 1 });
  });

  it('keeps its memory bounded, dropping refilled buckets first', () => {
    const buckets = new TokenBuckets({ perSecond: 1, burst: 10 }, 3);
    for (let i = 0; i < 10; i++) buckets.take('busy', 0);
    buckets.take('x', 0);
    buckets.take('y', 0);
    // A second later 'x' and 'y' are full again and are dropped to make room; 'busy' has one token
    // back and keeps its state (a new bucket would have 9 left after this request, not 0).
    expect(buckets.take('z', 1_000).allowed).toBe(true);
    expect(buckets.take('busy', 1_000)).toEqual({ allowed: true, remaining: 0, retryAfterSeconds: 0 });
    expect(buckets.take('busy', 1_000).allowed).toBe(false);
  });
});
