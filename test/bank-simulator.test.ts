// The bank simulator over real HTTP and real PostgreSQL, driven through our typed client. The
// database comes from the test harness (DATABASE_URL); each test uses its own keys and payout
// references, so tests share one database without seeing each other.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BankRejectedError,
  BankUnavailableError,
  createBankClient,
  type BankClient,
  type BankTransfer,
  type BankTransferRequest,
} from '../platform/bank-client.js';
import { loadConfig } from '../platform/config.js';
import { createBankServer, type BankServer, type BankServerOptions } from '../simulators/bank/server.js';
import { injectBankFault, listBankFaults } from '../simulators/bank/test-faults.js';
import { rawPost as post, untilInFlight } from './support/simulator-http.js';

const databaseUrl = process.env.DATABASE_URL;
const unique = (prefix: string) => `${prefix}_${randomUUID()}`;

const OPEN_ACCOUNT = '1234567';
const CLOSED_ACCOUNT = '0000000';
const LOST_RESPONSE_ACCOUNT = '9999999';

let pool: pg.Pool;
const started: BankServer[] = [];

async function startSimulator(opts: Omit<BankServerOptions, 'pool'> = {}, db = pool) {
  const server = createBankServer({ pool: db, ...opts });
  started.push(server);
  const url = await server.listen(0, '127.0.0.1');
  return { server, url, client: createBankClient({ baseUrl: url, timeoutMs: 5_000 }) };
}

async function rejection(promise: Promise<unknown>) {
  const err = await promise.then(
    () => expect.fail('expected the bank to refuse the request'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BankRejectedError);
  expect((err as Error).name).toBe('BankRejectedError');
  const { code, status } = err as BankRejectedError;
  return { code, status };
}

/** Resolves with the unavailable error a call failed with (a lost response has no status; a 503 has). */
async function unavailable(promise: Promise<unknown>) {
  const err = await promise.then(
    () => expect.fail('expected the bank to be unavailable'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BankUnavailableError);
  expect((err as Error).name).toBe('BankUnavailableError');
  return err as BankUnavailableError;
}

/** The bank's own books for a reference, read straight from its tables. */
async function storedRowsFor(reference: string) {
  const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM bank.transfers WHERE reference = $1', [reference]);
  return Number(rows[0]!.n);
}

let base: string;
let client: BankClient;

beforeAll(async () => {
  if (!databaseUrl) throw new Error('DATABASE_URL must point at a PostgreSQL database (the test harness provides one)');
  pool = new pg.Pool({ connectionString: databaseUrl, max: 30 });
  ({ url: base, client } = await startSimulator());
});

afterAll(async () => {
  for (const server of started) await server.close();
  await pool?.end();
});

function request(overrides: Partial<BankTransferRequest> = {}): BankTransferRequest {
  return {
    idempotencyKey: unique('tr'),
    amount: 50_000n,
    currency: 'JPY',
    bankCode: '0001',
    accountNumber: OPEN_ACCOUNT,
    reference: unique('payout'),
    ...overrides,
  };
}

const wire = (r: BankTransferRequest) => ({
  amount: r.amount.toString(),
  currency: r.currency,
  bankCode: r.bankCode,
  accountNumber: r.accountNumber,
  reference: r.reference,
});

describe('transfers', () => {
  it('pays an open account with a 201 and records the transfer for the payout', async () => {
    const r = request();
    const res = await post(`${base}/v1/transfers`, wire(r), r.idempotencyKey);
    expect(res.status).toBe(201);
    const transfer = JSON.parse(res.text) as BankTransfer;
    expect(transfer).toEqual({
      id: expect.stringMatching(/^tr_/),
      idempotencyKey: r.idempotencyKey,
      status: 'paid',
      amount: '50000',
      currency: 'JPY',
      bankCode: '0001',
      accountNumber: OPEN_ACCOUNT,
      reference: r.reference,
      createdAt: expect.any(String),
    });
    expect(await client.listTransfers(r.reference)).toEqual([transfer]);
    expect(await client.lookup(r.idempotencyKey)).toEqual(transfer);
  });

  it('carries amounts above 2^53 exactly, as integer strings', async () => {
    const r = request({ amount: 9_007_199_254_740_993n });
    expect((await client.transfer(r)).amount).toBe('9007199254740993');
  });

  it('rejects a closed account with 422 account_closed, stores the rejection and replays it', async () => {
    const r = request({ accountNumber: CLOSED_ACCOUNT });
    const first = await post(`${base}/v1/transfers`, wire(r), r.idempotencyKey);
    expect(first.status).toBe(422);
    const rejected = JSON.parse(first.text) as BankTransfer;
    expect(rejected).toMatchObject({ status: 'rejected', failureCode: 'account_closed', accountNumber: CLOSED_ACCOUNT, reference: r.reference });

    // Through the client a rejection is an answer, not an error; and it is the stored one.
    expect(await client.transfer(r)).toEqual(rejected);
    expect(await post(`${base}/v1/transfers`, wire(r), r.idempotencyKey)).toEqual(first);
    expect(await client.lookup(r.idempotencyKey)).toEqual(rejected);
    expect(await client.listTransfers(r.reference)).toEqual([rejected]);
  });

  it('finds nothing under a key never used, and does not mistake a wrong URL for "no transfer"', async () => {
    expect(await client.lookup(unique('never'))).toBeNull();
    const misrouted = createBankClient({ baseUrl: `${base}/nowhere` });
    expect(await rejection(misrouted.lookup(unique('never')))).toEqual({ code: 'route_not_found', status: 404 });
  });
});

describe('a lost response (account 9999999)', () => {
  it('pays but drops the response: the client sees BankUnavailableError, the key reveals the one transfer, a retry returns it', async () => {
    const r = request({ accountNumber: LOST_RESPONSE_ACCOUNT });
    expect((await unavailable(client.transfer(r))).status).toBeUndefined();

    const found = await client.lookup(r.idempotencyKey);
    expect(found).toMatchObject({ status: 'paid', accountNumber: LOST_RESPONSE_ACCOUNT, amount: '50000', reference: r.reference });
    expect(await client.transfer(r)).toEqual(found);
    expect(await client.transfer(r)).toEqual(found);
    expect(await client.listTransfers(r.reference)).toEqual([found]);
    expect(await storedRowsFor(r.reference)).toBe(1);
  });

  it('loses only the first try of each key: a new key loses its first answer too', async () => {
    const reference = unique('payout');
    const first = request({ accountNumber: LOST_RESPONSE_ACCOUNT, reference });
    const second = request({ accountNumber: LOST_RESPONSE_ACCOUNT, reference });
    await unavailable(client.transfer(first));
    await unavailable(client.transfer(second));
    expect(await storedRowsFor(reference)).toBe(2);
  });
});

describe('idempotency', () => {
  it('replays the first response byte for byte without paying again', async () => {
    const r = request();
    const first = await post(`${base}/v1/transfers`, wire(r), r.idempotencyKey);
    const second = await post(`${base}/v1/transfers`, wire(r), r.idempotencyKey);
    expect(second).toEqual(first);
    expect(second.status).toBe(201);
    expect(await storedRowsFor(r.reference)).toBe(1);
  });

  it('pays exactly once for 20 concurrent identical requests', async () => {
    const r = request();
    const results = await Promise.all(Array.from({ length: 20 }, () => client.transfer(r)));
    expect(new Set(results.map((t) => t.id)).size).toBe(1);
    expect(await storedRowsFor(r.reference)).toBe(1);
  });

  it('makes a lookup during an in-flight transfer wait for it, so it is not reported absent', async () => {
    const r = request();
    // Stand in for a slow transfer by holding its key's lock (the store's namespace is "BANK").
    const blocker = await pool.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query(`SELECT pg_advisory_xact_lock(x'42414e4b'::int, hashtext($1))`, [r.idempotencyKey]);
      const waiters = async () =>
        Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = x'42414e4b'::int::oid AND NOT granted`)).rows[0]!.n);
      const until = async (n: number) => {
        for (let i = 0; i < 200 && (await waiters()) < n; i++) await new Promise((resolve) => setTimeout(resolve, 25));
        expect(await waiters()).toBeGreaterThanOrEqual(n);
      };

      const transfer = client.transfer(r);
      await until(1);
      let lookupDone = false;
      const lookup = client.lookup(r.idempotencyKey).finally(() => (lookupDone = true));
      await until(2);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(lookupDone).toBe(false);

      await blocker.query('COMMIT');
      const [paid, found] = await Promise.all([transfer, lookup]);
      expect(found).toEqual(paid);
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      blocker.release();
    }
  });

  it('refuses a key reused with different parameters with 422 idempotency_key_reused, paid or rejected', async () => {
    const paid = request();
    await client.transfer(paid);
    expect(await rejection(client.transfer({ ...paid, amount: paid.amount + 1n }))).toEqual({ code: 'idempotency_key_reused', status: 422 });
    expect(await rejection(client.transfer({ ...paid, accountNumber: '7654321' }))).toEqual({ code: 'idempotency_key_reused', status: 422 });
    expect(await storedRowsFor(paid.reference)).toBe(1);

    // A 422 carrying an error, not a transfer, must not pass for a rejected transfer.
    const closed = request({ accountNumber: CLOSED_ACCOUNT });
    await client.transfer(closed);
    expect(await rejection(client.transfer({ ...closed, amount: 1n }))).toEqual({ code: 'idempotency_key_reused', status: 422 });
    expect(await storedRowsFor(closed.reference)).toBe(1);
  });
});

describe('validation', () => {
  it('rejects requests without an Idempotency-Key, with bad JSON or with a malformed field, naming the field, and stores nothing', async () => {
    const url = `${base}/v1/transfers`;
    const good = wire(request());

    const noKey = await post(url, good, null);
    expect(noKey.status).toBe(400);
    expect(JSON.parse(noKey.text).error.code).toBe('missing_idempotency_key');

    const badJson = await post(url, '{"amount": ');
    expect(badJson.status).toBe(400);
    expect(JSON.parse(badJson.text).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_json' });
    expect(badJson.text).not.toMatch(/at .*\.(ts|js):\d+/);

    const cases: Array<[string, unknown]> = [
      ['amount', 50000],
      ['amount', '500.00'],
      ['amount', '0'],
      ['amount', '-1'],
      ['currency', 'yen'],
      ['bankCode', '123'],
      ['bankCode', '12345'],
      ['bankCode', '12a4'],
      ['bankCode', 1234],
      ['accountNumber', '123456'],
      ['accountNumber', '12345678'],
      ['accountNumber', '123 567'],
      ['accountNumber', 1234567],
      ['reference', ''],
      ['memo', 'hello'],
    ];
    for (const [field, value] of cases) {
      const res = await post(url, { ...good, [field]: value });
      expect(res.status, `${field}=${JSON.stringify(value)}`).toBe(400);
      expect(JSON.parse(res.text).error).toMatchObject({ code: 'invalid_parameter', param: field });
      expect(JSON.parse(res.text).error.message).toContain(field);
    }
    const { accountNumber: _omitted, ...missing } = good;
    expect(JSON.parse((await post(url, missing)).text).error).toMatchObject({ code: 'invalid_parameter', param: 'accountNumber' });
    expect(await storedRowsFor(good.reference)).toBe(0);
  });

  it('surfaces a bad request through the client as BankRejectedError with the code and status', async () => {
    const r = request({ accountNumber: '12345' });
    expect(await rejection(client.transfer(r))).toEqual({ code: 'invalid_parameter', status: 400 });
    expect(await rejection(client.listTransfers(''))).toEqual({ code: 'invalid_parameter', status: 400 });
    expect(await storedRowsFor(r.reference)).toBe(0);
  });
});

describe('injected faults (/v1/test/faults)', () => {
  it('lose_response: the bank pays, the answer is lost, and the key reveals the one transfer', async () => {
    const r = request();
    const fault = await injectBankFault(base, { reference: r.reference, mode: 'lose_response', times: 1 });
    expect(fault).toMatchObject({ reference: r.reference, mode: 'lose_response', times: 1, remaining: 1 });

    expect((await unavailable(client.transfer(r))).status).toBeUndefined();
    const found = await client.lookup(r.idempotencyKey);
    expect(found).toMatchObject({ status: 'paid', reference: r.reference });
    expect(await client.transfer(r)).toEqual(found);
    expect(await storedRowsFor(r.reference)).toBe(1);
    expect(await listBankFaults(base, r.reference)).toEqual([{ ...fault, remaining: 0 }]);
  });

  it('error_503: answers 503 without paying as many times as asked, then pays', async () => {
    const r = request();
    await injectBankFault(base, { reference: r.reference, mode: 'error_503', times: 2 });
    for (const attempt of [1, 2]) {
      expect((await unavailable(client.transfer(r))).status, `attempt ${attempt}`).toBe(503);
      expect(await client.lookup(r.idempotencyKey)).toBeNull();
      expect(await storedRowsFor(r.reference)).toBe(0);
    }
    expect(await client.transfer(r)).toMatchObject({ status: 'paid' });
    expect(await storedRowsFor(r.reference)).toBe(1);
    expect((await listBankFaults(base, r.reference)).map((f) => f.remaining)).toEqual([0]);
  });

  it('loses the responses of retries too, and of rejections: times 2 loses the acting try and the replay', async () => {
    const r = request({ accountNumber: CLOSED_ACCOUNT });
    await injectBankFault(base, { reference: r.reference, mode: 'lose_response', times: 2 });
    await unavailable(client.transfer(r));
    await unavailable(client.transfer(r));
    const rejected = await client.transfer(r);
    expect(rejected).toMatchObject({ status: 'rejected', failureCode: 'account_closed' });
    expect(await client.lookup(r.idempotencyKey)).toEqual(rejected);
    expect(await storedRowsFor(r.reference)).toBe(1);
  });

  it('queues faults for a reference oldest first, and leaves other payouts alone', async () => {
    const r = request();
    const other = request();
    await injectBankFault(base, { reference: r.reference, mode: 'error_503', times: 1 });
    await injectBankFault(base, { reference: r.reference, mode: 'lose_response', times: 1 });
    expect(await client.transfer(other)).toMatchObject({ status: 'paid' });

    expect((await unavailable(client.transfer(r))).status).toBe(503);
    expect(await storedRowsFor(r.reference)).toBe(0);
    expect((await unavailable(client.transfer(r))).status).toBeUndefined();
    expect(await storedRowsFor(r.reference)).toBe(1);
    expect(await client.transfer(r)).toEqual(await client.lookup(r.idempotencyKey));

    expect((await listBankFaults(base, r.reference)).map((f) => [f.mode, f.remaining])).toEqual([
      ['error_503', 0],
      ['lose_response', 0],
    ]);
    // Faults are the test's script, not the bank's books.
    expect(await client.listTransfers(r.reference)).toHaveLength(1);
    expect(await listBankFaults(base, other.reference)).toEqual([]);
  });

  it('keeps injected faults across a restart', async () => {
    const firstPool = new pg.Pool({ connectionString: databaseUrl });
    const before = await startSimulator({}, firstPool);
    const r = request();
    await injectBankFault(before.url, { reference: r.reference, mode: 'error_503', times: 1 });
    await before.server.close();
    await firstPool.end();

    const restartedPool = new pg.Pool({ connectionString: databaseUrl });
    const after = await startSimulator({}, restartedPool);
    try {
      expect((await unavailable(after.client.transfer(r))).status).toBe(503);
      expect(await storedRowsFor(r.reference)).toBe(0);
      expect(await after.client.transfer(r)).toMatchObject({ status: 'paid', reference: r.reference });
    } finally {
      await after.server.close();
      await restartedPool.end();
    }
  });

  it('rejects a malformed fault, naming the field, and stores nothing', async () => {
    const reference = unique('payout');
    const good = { reference, mode: 'error_503', times: 1 };
    for (const [field, value] of [['mode', 'explode'], ['times', 0], ['times', '1'], ['times', 1.5], ['reference', ''], ['operation', 'transfer']] as const) {
      const res = await post(`${base}/v1/test/faults`, { ...good, [field]: value }, null);
      expect(res.status, `${field}=${JSON.stringify(value)}`).toBe(400);
      expect(JSON.parse(res.text).error).toMatchObject({ code: 'invalid_parameter', param: field });
    }
    expect(await listBankFaults(base, reference)).toEqual([]);
    const noReference = await fetch(`${base}/v1/test/faults`);
    expect(noReference.status).toBe(400);
  });
});

describe('failures a real bank has', () => {
  it('delays transfers by latencyMs', async () => {
    const { client: slow } = await startSimulator({ latencyMs: 300 });
    const startedAt = performance.now();
    await slow.transfer(request());
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(290);
  });

  it('treats a request that outlives the client timeout as unavailable', async () => {
    const { url } = await startSimulator({ latencyMs: 500 });
    const impatient = createBankClient({ baseUrl: url, timeoutMs: 100 });
    const err = await unavailable(impatient.transfer(request()));
    expect(err.message).toMatch(/no answer within 100 ms/);
  });

  it('with BANK_ERROR_RATE=1 answers 503 and never pays', async () => {
    const { client: flaky } = await startSimulator({ errorRate: 1 });
    const r = request();
    expect((await unavailable(flaky.transfer(r))).status).toBe(503);
    expect(await client.lookup(r.idempotencyKey)).toBeNull();
    expect(await storedRowsFor(r.reference)).toBe(0);
  });

  it('with BANK_LOST_RESPONSE_RATE=1 pays, loses the response, and the key reveals the result', async () => {
    const { client: lossy } = await startSimulator({ lostResponseRate: 1 });
    const r = request();
    await unavailable(lossy.transfer(r));
    expect(await client.lookup(r.idempotencyKey)).toMatchObject({ status: 'paid', reference: r.reference });
  });

  it('reports a bank that is not listening as unavailable', async () => {
    const { server, url } = await startSimulator();
    await server.close();
    const gone = createBankClient({ baseUrl: url, timeoutMs: 2_000 });
    expect((await unavailable(gone.transfer(request()))).status).toBeUndefined();
  });

  it('lets a request in flight finish when the server stops', async () => {
    const { server, url, client: slow } = await startSimulator({ latencyMs: 300 });
    const r = request();
    const pending = slow.transfer(r);
    await untilInFlight(`${url}/v1/transfers/by-key/${r.idempotencyKey}`);
    await server.close();
    expect(await pending).toMatchObject({ status: 'paid', reference: r.reference });
  });

  it('keeps every transfer and key across a restart', async () => {
    const ownPool = new pg.Pool({ connectionString: databaseUrl });
    const before = await startSimulator({}, ownPool);
    const paid = request();
    const closed = request({ accountNumber: CLOSED_ACCOUNT });
    const paidTransfer = await before.client.transfer(paid);
    const rejectedTransfer = await before.client.transfer(closed);
    await before.server.close();
    await ownPool.end();

    const restartedPool = new pg.Pool({ connectionString: databaseUrl });
    const after = await startSimulator({}, restartedPool);
    try {
      expect(await after.client.lookup(paid.idempotencyKey)).toEqual(paidTransfer);
      expect(await after.client.transfer(paid)).toEqual(paidTransfer);
      expect(await after.client.transfer(closed)).toEqual(rejectedTransfer);
      expect(await rejection(after.client.transfer({ ...paid, amount: 1n }))).toEqual({ code: 'idempotency_key_reused', status: 422 });
      expect(await after.client.listTransfers(paid.reference)).toEqual([paidTransfer]);
    } finally {
      await after.server.close();
      await restartedPool.end();
    }
  });
});

describe('configuration', () => {
  it('defaults to 127.0.0.1:4200, 100 ms latency, no faults, a 10 s timeout and the main database', () => {
    const config = loadConfig({});
    expect(config.bank).toEqual({
      url: 'http://127.0.0.1:4200',
      host: '127.0.0.1',
      port: 4200,
      latencyMs: 100,
      errorRate: 0,
      lostResponseRate: 0,
      requestTimeoutMs: 10_000,
      maxProcessingMs: 30_000,
      databaseUrl: config.databaseUrl,
    });
  });

  it('reads every setting from BANK_* variables and refuses nonsense', () => {
    const config = loadConfig({
      BANK_HOST: '0.0.0.0',
      BANK_PORT: '4300',
      BANK_LATENCY_MS: '5',
      BANK_ERROR_RATE: '0.25',
      BANK_LOST_RESPONSE_RATE: '0.5',
      BANK_TIMEOUT_MS: '2000',
      BANK_MAX_PROCESSING_MS: '4000',
      BANK_DATABASE_URL: 'postgresql://bank@db/bank',
    });
    expect(config.bank).toEqual({
      url: 'http://0.0.0.0:4300',
      host: '0.0.0.0',
      port: 4300,
      latencyMs: 5,
      errorRate: 0.25,
      lostResponseRate: 0.5,
      requestTimeoutMs: 2000,
      maxProcessingMs: 4000,
      databaseUrl: 'postgresql://bank@db/bank',
    });
    expect(loadConfig({ BANK_URL: 'http://bank.internal:80' }).bank.url).toBe('http://bank.internal:80');
    expect(loadConfig({ DATABASE_URL: 'postgresql://x@y/z' }).bank.databaseUrl).toBe('postgresql://x@y/z');
    expect(() => loadConfig({ BANK_ERROR_RATE: '2' })).toThrow(/BANK_ERROR_RATE/);
    expect(() => loadConfig({ BANK_PORT: '-1' })).toThrow(/BANK_PORT/);
  });
});

it('answers /health', async () => {
  const res = await fetch(`${base}/health`);
  expect(res.status).toBe(200);
});
