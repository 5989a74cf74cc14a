// The Idempotency-Key layer (api/idempotency.ts) over HTTP, against the real PostgreSQL, with
// Temporal replaced by a fake client that writes the rows the workflows write before answering:
// replays of the first answer, 20 concurrent duplicates running the handler once, key reuse, waiting
// for a request in progress (and giving up at the deadline), taking over an abandoned claim, expiry,
// merchant scoping, stored business refusals and unstored 5xx. Top-ups and payouts are the routes
// exercised; every money-moving POST goes through the same middleware.
//
// The vitest globalSetup provides DATABASE_URL (migrated); requests go as a merchant of this file's own.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AppDeps } from '../api/app.js';
import { requestHash } from '../api/idempotency.js';
import { createTopupBody } from '../api/validation.js';
import type { PrismaClient } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import type { PayoutInput, PayoutSnapshot } from '../domain/index.js';
import { call, createMerchant, header, openPrisma, recordPayout, recordTopup, startApi, type Res, type TestApi, type TestMerchant } from './support/api-harness.js';

const HOUR_MS = 60 * 60 * 1000;

let prisma: PrismaClient;
/** Who the requests come from unless a test says otherwise. */
let merchant: TestMerchant;
let other: TestMerchant;
const apis: TestApi[] = [];

// ---------------------------------------------------------------------------------------------
// What the workflows do before they answer: top-ups write their row (the harness's default),
// payouts are refused.

/** payoutWorkflowV2 when the wallet cannot cover the hold: a failed row, nothing held. */
const refusePayout = (input: PayoutInput): Promise<PayoutSnapshot> =>
  recordPayout(prisma, input, { code: 'insufficient_funds', message: 'available balance too low' });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` holds (10 s at most). */
async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + 10_000; !(await check()); await sleep(10)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

/**
 * An API pool that counts the layer's reads of a key's row (api/idempotency.ts, 'idempotency-read'):
 * a request that found its key claimed reads the row until it can answer.
 */
function countingPool(): { pool: pg.Pool; ofKeys: () => number } {
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 5 });
  pools.push(pool);
  let reads = 0;
  const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  pool.query = ((...args: unknown[]) => {
    if ((args[0] as { name?: string } | undefined)?.name === 'idempotency-read') reads++;
    return query(...args);
  }) as typeof pool.query;
  return { pool, ofKeys: () => reads };
}
const pools: pg.Pool[] = [];

/** A workflow that never answers: only the request's deadline ends the wait. */
function neverAnswers(_input: unknown, signal: AbortSignal): Promise<never> {
  return new Promise((_resolve, reject) => {
    signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  });
}

// ---------------------------------------------------------------------------------------------
// App and HTTP helpers

const quietLogger: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => quietLogger };

/** An API on the shared database, quiet: this file asserts nothing about logs. */
async function start(overrides: Partial<AppDeps> = {}): Promise<TestApi> {
  const started = await startApi(prisma, { logger: quietLogger, ...overrides });
  started.temporal.onStart.payoutWorkflowV2 = refusePayout;
  apis.push(started);
  return started;
}

let api: TestApi;

function post(urlPath: string, body: unknown, idempotencyKey: string, opts: { key?: string; base?: string } = {}): Promise<Res> {
  return call(opts.base ?? api.url, opts.key ?? merchant.key, 'POST', urlPath, body, { 'idempotency-key': idempotencyKey });
}

function expectError(res: Res, status: number, type: string, code: string): void {
  expect(res.status, res.text).toBe(status);
  expect(res.body.error.type).toBe(type);
  expect(res.body.error.code).toBe(code);
}

const replayed = (res: Res) => header(res, 'idempotent-replayed');
const uniqueKey = () => `key-${randomUUID()}`;
const uniqueCustomer = () => `cus_${randomUUID().slice(0, 12)}`;
const topupBody = (customerId: string, amount = '5000') => ({
  customerId,
  amount: { amount, currency: 'JPY' },
  payment: { method: 'card', token: 'tok_visa' },
});
const payoutBody = (customerId: string) => ({
  customerId,
  amount: { amount: '3000', currency: 'JPY' },
  bankAccount: { bankCode: '0001', accountNumber: '7654321' },
});
const keyRow = (key: string, merchantId = merchant.id) => prisma.idempotencyRequest.findUnique({ where: { merchantId_key: { merchantId, key } } });

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  prisma = openPrisma();
  [merchant, other] = await Promise.all([createMerchant(prisma, 'idem'), createMerchant(prisma, 'idem_other')]);
  api = await start();
}, 120_000);

afterAll(async () => {
  await Promise.all(apis.map((a) => a.close()));
  await Promise.all(pools.map((p) => p.end()));
  await prisma?.$disconnect();
}, 60_000);

beforeEach(() => {
  api.temporal.starts.length = 0;
  api.temporal.onStart.topupWorkflowV2 = (input) => recordTopup(prisma, input);
  api.temporal.onStart.payoutWorkflowV2 = refusePayout;
});

describe('Idempotency-Key', () => {
  it('replays the first status and body with Idempotent-Replayed: true and starts the workflow once', async () => {
    const key = uniqueKey();
    const body = topupBody(uniqueCustomer());
    const first = await post('/v1/topups', body, key);
    expect(first.status, first.text).toBe(201);
    expect(replayed(first)).toBeNull();
    // The workflow moves on; the replay is still the first answer.
    await prisma.topup.update({ where: { id: first.body.id }, data: { status: 'succeeded' } });

    const again = await post('/v1/topups', body, key);
    expect(again.status, again.text).toBe(201);
    expect(replayed(again)).toBe('true');
    expect(again.body).toEqual(first.body);
    expect(api.temporal.starts).toHaveLength(1);

    const row = await keyRow(key);
    expect(row).toMatchObject({
      method: 'POST',
      path: '/v1/topups',
      requestHash: requestHash('POST', '/v1/topups', createTopupBody.parse(body)),
      status: 'completed',
      responseStatus: 201,
      responseBody: first.body,
      lockedUntil: null,
    });
    // Kept 24 h by default.
    expect(row!.expiresAt.getTime() - row!.createdAt.getTime()).toBe(24 * HOUR_MS);
  });

  it('answers 20 concurrent identical requests identically, running the handler once', async () => {
    api.temporal.onStart.topupWorkflowV2 = async (input) => {
      await sleep(200);
      return recordTopup(prisma, input);
    };
    const key = uniqueKey();
    const body = topupBody(uniqueCustomer());
    const answers = await Promise.all(Array.from({ length: 20 }, () => post('/v1/topups', body, key)));
    expect(api.temporal.starts).toHaveLength(1);
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(201));
    for (const a of answers) expect(a.body).toEqual(answers[0]!.body);
    expect(answers.filter((a) => replayed(a) === 'true')).toHaveLength(19);
    expect(await prisma.topup.count({ where: { merchantId: merchant.id, idempotencyKey: key } })).toBe(1);
    expect(await keyRow(key)).toMatchObject({ status: 'completed', responseStatus: 201 });
  });

  it('rejects the key with other parameters or on another route with 422 idempotency_key_reused', async () => {
    const key = uniqueKey();
    const customerId = uniqueCustomer();
    expect((await post('/v1/topups', topupBody(customerId), key)).status).toBe(201);
    const stored = await keyRow(key);

    expectError(await post('/v1/topups', topupBody(customerId, '5001'), key), 422, 'invalid_request_error', 'idempotency_key_reused');
    expectError(await post('/v1/payouts', payoutBody(customerId), key), 422, 'invalid_request_error', 'idempotency_key_reused');
    expect(api.temporal.starts).toHaveLength(1);
    expect(await keyRow(key)).toEqual(stored);
  });

  it('waits for a request in progress with the same key and then replays its answer', async () => {
    // The first request's workflow answers only when the test says so.
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    const reads = countingPool();
    const waiting = await start({ pool: reads.pool });
    waiting.temporal.onStart.topupWorkflowV2 = async (input) => {
      await answered;
      return recordTopup(prisma, input);
    };
    const key = uniqueKey();
    const body = topupBody(uniqueCustomer());
    const first = post('/v1/topups', body, key, { base: waiting.url });
    await until('the first request to claim the key', async () => (await keyRow(key)) !== null);
    expect(await keyRow(key)).toMatchObject({ status: 'in_progress', responseStatus: null, responseBody: null });
    expect((await keyRow(key))!.lockedUntil).toBeInstanceOf(Date);

    const secondAnswer = post('/v1/topups', body, key, { base: waiting.url });
    // The second finds the key claimed and keeps reading its row; only then does the first finish.
    await until('the second request to wait on the key', () => reads.ofKeys() >= 2);
    answer();
    const second = await secondAnswer;
    expect(second.status, second.text).toBe(201);
    expect(replayed(second)).toBe('true');
    expect(second.body).toEqual((await first).body);
    expect(waiting.temporal.starts).toHaveLength(1);
  });

  it('answers 409 idempotency_request_in_progress when the first request outlasts the wait', async () => {
    const slow = await start({ reservationTimeoutMs: 1_500, idempotencyWaitMs: 200 });
    slow.temporal.onStart.topupWorkflowV2 = neverAnswers;
    const key = uniqueKey();
    const body = topupBody(uniqueCustomer());
    const first = post('/v1/topups', body, key, { base: slow.url });
    await until('the first request to claim the key', async () => (await keyRow(key)) !== null);

    const started = Date.now();
    const second = await post('/v1/topups', body, key, { base: slow.url });
    expectError(second, 409, 'conflict', 'idempotency_request_in_progress');
    expect(second.body.error.param).toBe('Idempotency-Key');
    expect(header(second, 'retry-after')).toBe('1');
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(slow.temporal.starts).toHaveLength(1);

    // The first gives up with a 503, which is not stored: the key is free for a retry.
    expectError(await first, 503, 'api_error', 'topup_pending');
    expect(await keyRow(key)).toBeNull();
  });

  it('takes over an abandoned in-progress claim with the same parameters, but not with others', async () => {
    const key = uniqueKey();
    const body = topupBody(uniqueCustomer());
    const hash = requestHash('POST', '/v1/topups', createTopupBody.parse(body));
    const longAgo = new Date(Date.now() - HOUR_MS);
    // A request that claimed the key and died: its lease ran out long ago.
    await prisma.idempotencyRequest.create({
      data: { merchantId: merchant.id, key, method: 'POST', path: '/v1/topups', requestHash: hash, status: 'in_progress', lockedUntil: longAgo, createdAt: longAgo, expiresAt: new Date(Date.now() + HOUR_MS) },
    });
    expectError(await post('/v1/topups', topupBody(body.customerId, '1'), key), 422, 'invalid_request_error', 'idempotency_key_reused');
    expect(api.temporal.starts).toHaveLength(0);

    const res = await post('/v1/topups', body, key);
    expect(res.status, res.text).toBe(201);
    expect(replayed(res)).toBeNull();
    expect(api.temporal.starts).toHaveLength(1);
    const row = await keyRow(key);
    expect(row).toMatchObject({ status: 'completed', responseStatus: 201, responseBody: res.body, lockedUntil: null });
    expect(row!.createdAt.getTime()).toBeGreaterThan(longAgo.getTime());
  });

  it('treats an expired key as new, whatever it was used for', async () => {
    const key = uniqueKey();
    const past = new Date(Date.now() - HOUR_MS);
    await prisma.idempotencyRequest.create({
      data: {
        merchantId: merchant.id, key, method: 'POST', path: '/v1/payouts', requestHash: 'f'.repeat(64), status: 'completed',
        responseStatus: 409, responseBody: { error: { code: 'insufficient_funds' } }, createdAt: new Date(past.getTime() - 24 * HOUR_MS), expiresAt: past,
      },
    });
    const body = topupBody(uniqueCustomer());
    const res = await post('/v1/topups', body, key);
    expect(res.status, res.text).toBe(201);
    expect(replayed(res)).toBeNull();
    expect(api.temporal.starts).toHaveLength(1);
    const row = await keyRow(key);
    expect(row).toMatchObject({ path: '/v1/topups', requestHash: requestHash('POST', '/v1/topups', createTopupBody.parse(body)), status: 'completed', responseStatus: 201 });
    expect(row!.expiresAt.getTime()).toBeGreaterThan(Date.now() + 23 * HOUR_MS);
  });

  it('scopes keys to the merchant', async () => {
    const key = uniqueKey();
    const mine = await post('/v1/topups', topupBody(uniqueCustomer()), key);
    const theirs = await post('/v1/topups', topupBody(uniqueCustomer(), '7000'), key, { key: other.key });
    expect([mine.status, theirs.status]).toEqual([201, 201]);
    expect([replayed(mine), replayed(theirs)]).toEqual([null, null]);
    expect(theirs.body.id).not.toBe(mine.body.id);
    expect(api.temporal.starts).toHaveLength(2);
    expect(await keyRow(key)).toMatchObject({ responseBody: mine.body });
    expect(await keyRow(key, other.id)).toMatchObject({ responseBody: theirs.body });
  });

  it('stores a business refusal: a retried payout without funds gets the same 409', async () => {
    const key = uniqueKey();
    const body = payoutBody(uniqueCustomer());
    const first = await post('/v1/payouts', body, key);
    expectError(first, 409, 'conflict', 'insufficient_funds');
    const again = await post('/v1/payouts', body, key);
    expect(again.status).toBe(409);
    expect(replayed(again)).toBe('true');
    expect(again.body).toEqual(first.body);
    expect(api.temporal.starts).toHaveLength(1);
    expect(await keyRow(key)).toMatchObject({ status: 'completed', responseStatus: 409, responseBody: first.body });
  });

  it('does not store a 5xx: the key is released and a retry runs the handler again', async () => {
    api.temporal.onStart.topupWorkflowV2 = async () => {
      throw new Error('the database fell over');
    };
    const key = uniqueKey();
    const body = topupBody(uniqueCustomer());
    expectError(await post('/v1/topups', body, key), 500, 'api_error', 'internal_error');
    expect(await keyRow(key)).toBeNull();

    api.temporal.onStart.topupWorkflowV2 = (input) => recordTopup(prisma, input);
    const retry = await post('/v1/topups', body, key);
    expect(retry.status, retry.text).toBe(201);
    expect(replayed(retry)).toBeNull();
    expect(api.temporal.starts).toHaveLength(2);
    expect(await keyRow(key)).toMatchObject({ status: 'completed', responseStatus: 201 });
  });

  it('claims nothing for a body that fails validation, so the client can fix it under the same key', async () => {
    const key = uniqueKey();
    const customerId = uniqueCustomer();
    const bad = await post('/v1/topups', { ...topupBody(customerId), amount: { amount: '0', currency: 'JPY' } }, key);
    expectError(bad, 400, 'invalid_request_error', 'parameter_invalid');
    expect(await keyRow(key)).toBeNull();
    expect((await post('/v1/topups', topupBody(customerId), key)).status).toBe(201);
  });

  it('after its record expired, a key reused with other parameters is refused without being claimed: the first request still gets its resource', async () => {
    const key = uniqueKey();
    const body = topupBody(uniqueCustomer());
    const first = await post('/v1/topups', body, key);
    expect(first.status, first.text).toBe(201);
    // A day later the key's record has expired; the top-up it created stays, under the same key.
    await prisma.idempotencyRequest.update({ where: { merchantId_key: { merchantId: merchant.id, key } }, data: { expiresAt: new Date(Date.now() - 1000) } });

    expectError(await post('/v1/topups', topupBody(uniqueCustomer(), '7000'), key), 422, 'invalid_request_error', 'idempotency_key_reused');
    // The refusal speaks for the key's owner, not for this request: nothing is stored under the key.
    expect(await keyRow(key)).toBeNull();

    // The route finds the top-up the key made and answers it (200: nothing new was created).
    const retry = await post('/v1/topups', body, key);
    expect(retry.status, retry.text).toBe(200);
    expect(retry.body).toEqual(first.body);
    expect(api.temporal.starts).toHaveLength(1);
    expect(await keyRow(key)).toMatchObject({ status: 'completed', responseStatus: 200, responseBody: first.body });
  });
});
