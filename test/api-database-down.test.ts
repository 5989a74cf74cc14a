// While PostgreSQL is down (stopped, restarting, unreachable), the API answers 503 with Retry-After:
// the request did nothing, and a retry with the same Idempotency-Key is safe. Not a 500: the chaos
// suite saw those while it restarted PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDatabaseUnavailable } from '../api/errors.js';
import { createPrisma, type PrismaClient } from '../platform/db.js';
import { getFreePort } from '../scripts/processes.js';
import { call, startApi, type TestApi } from './support/api-harness.js';

let prisma: PrismaClient;
let api: TestApi;

beforeAll(async () => {
  // A port nothing listens on: every query fails to connect, as while PostgreSQL restarts.
  const port = await getFreePort();
  prisma = createPrisma(`postgresql://postgres:postgres@127.0.0.1:${port}/payments`, 2);
  api = await startApi(prisma);
});

afterAll(async () => {
  await api?.close();
  await prisma?.$disconnect();
});

describe('API while the database is unreachable', () => {
  it('answers 503 with Retry-After for a read, naming the retry as safe', async () => {
    const res = await call(api.url, 'sk_test_demo', 'GET', '/v1/products');
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.body.error).toMatchObject({ type: 'api_error', code: 'service_unavailable' });
    expect(res.body.error.message).toMatch(/Idempotency-Key/);
  });

  it('answers 503 for a money-moving POST too, so the client retries with its key', async () => {
    const res = await call(api.url, 'sk_test_demo', 'POST', '/v1/checkouts', {
      customerId: 'c1',
      items: [{ sku: 'tee', quantity: 1 }],
      payment: { method: 'card', token: 'tok_visa' },
    }, { 'idempotency-key': 'db-down-1' });
    expect(res.status).toBe(503);
    expect(api.temporal.starts).toEqual([]);
  });

  it('tells connection failures from other errors by code and cause, not by class', () => {
    expect(isDatabaseUnavailable({ code: 'P1001', message: "Can't reach database server" })).toBe(true);
    expect(isDatabaseUnavailable(new Error('wrapped', { cause: { code: 'ECONNREFUSED' } }))).toBe(true);
    expect(isDatabaseUnavailable({ message: 'x', cause: { code: '57P01' } })).toBe(true);
    expect(isDatabaseUnavailable(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isDatabaseUnavailable({ code: 'P2002', message: 'Unique constraint failed' })).toBe(false);
    expect(isDatabaseUnavailable(new TypeError('x is undefined'))).toBe(false);
  });
});
