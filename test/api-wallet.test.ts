// HTTP behaviour of the wallet API against the real PostgreSQL and ledger, with Temporal replaced by
// a fake client: top-ups, payouts (and their cancel), wallet balances and histories, and wallet
// payments on checkouts. The fake plays each workflow's part by writing the rows (and, for payouts,
// the ledger hold) the real one writes before it answers, so the API's reads see what they would in
// production. The workflows themselves are covered by test/wallet-flows.test.ts.
//
// The vitest globalSetup provides DATABASE_URL (migrated); requests go as a merchant of this file's own.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import type { AppDeps } from '../api/app.js';
import type { PrismaClient } from '../platform/db.js';
import { LedgerError, createTransfer, postPending, voidPending } from '../platform/ledger.js';
import {
  FailureType,
  checkoutId,
  ledgerAccount,
  payoutId,
  topupId,
  type CheckoutInput,
  type PayoutInput,
  type PayoutSnapshot,
  type TransferCode,
} from '../domain/index.js';
import {
  call as send,
  createMerchant,
  header,
  noUpdateExpected,
  openPrisma,
  recordingLogger,
  recordingStarts,
  recordPayout,
  recordTopup,
  rejected,
  startApi,
  type Res,
  type TestApi,
  type TestMerchant,
  type UpdateCall,
} from './support/api-harness.js';
import { testCustomerSearch } from './support/payload-keys.js';

const RUN = randomUUID().slice(0, 8);
const CARD_TOKEN = `tok_visa_secret_${RUN}`;
const ACCOUNT_NUMBER = '7654321';
const DAY_MS = 24 * 60 * 60 * 1000;

let prisma: PrismaClient;
/** Who the requests come from unless a test says otherwise. */
let merchant: TestMerchant;
let other: TestMerchant;
const apis: TestApi[] = [];
/** Every API's log lines, slow ones' too: no secret may reach any of them. */
const logLines: string[] = [];

// ---------------------------------------------------------------------------------------------
// What the workflows do before they answer (the harness's defaults write the rows), beyond the
// defaults: a payout holds its amount on the real ledger, and its cancel voids the hold.

const holdId = (id: string) => `${id}:hold`;

/** What payoutWorkflowV2 does before it answers payoutAccepted: hold on the real ledger, then the row. */
async function holdAndRecordPayout(input: PayoutInput): Promise<PayoutSnapshot> {
  try {
    await createTransfer(prisma, {
      id: holdId(input.payoutId),
      debitAccountId: ledgerAccount.wallet(input.merchantId, input.customerId, input.amount.currency),
      creditAccountId: ledgerAccount.bankClearing(input.amount.currency),
      amount: input.amount.amount,
      currency: input.amount.currency,
      kind: 'pending',
      code: 'payout',
      reference: input.payoutId,
    });
  } catch (err) {
    if (!(err instanceof LedgerError && err.type === 'InsufficientFunds')) throw err;
    return recordPayout(prisma, input, { code: 'insufficient_funds', message: 'the wallet has less available than the payout' });
  }
  return recordPayout(prisma, input);
}

/** What payoutCancel does for a pending payout: void the hold, mark the row. */
async function cancelPayout(call: UpdateCall): Promise<PayoutSnapshot> {
  await voidPending(prisma, { id: `${call.workflowId}:void`, pendingId: holdId(call.workflowId) });
  const row = await prisma.payout.update({ where: { id: call.workflowId }, data: { status: 'canceled' } });
  return { payoutId: row.id, status: 'canceled', amount: { amount: row.amount.toString(), currency: row.currency }, scheduledAt: row.scheduledAt.toISOString() };
}

/** The fake's behaviours as each test starts: workflows write their rows, no update is expected. */
function resetTemporal(target: TestApi): void {
  target.temporal.starts.length = 0;
  target.temporal.updates.length = 0;
  target.temporal.onStart = { ...recordingStarts(prisma), payoutWorkflowV2: holdAndRecordPayout };
  target.temporal.update = noUpdateExpected;
}

// ---------------------------------------------------------------------------------------------
// App and HTTP helpers

async function startWalletApi(overrides: Partial<AppDeps> = {}): Promise<TestApi> {
  const started = await startApi(prisma, { logger: recordingLogger(logLines), ...overrides });
  resetTemporal(started);
  apis.push(started);
  return started;
}

let api: TestApi;

function call(method: string, urlPath: string, opts: { body?: unknown; key?: string | null; headers?: Record<string, string>; base?: string } = {}): Promise<Res> {
  return send(opts.base ?? api.url, opts.key === undefined ? merchant.key : opts.key, method, urlPath, opts.body, opts.headers);
}

function expectError(res: Res, status: number, type: string, code?: string, param?: string): void {
  expect(res.status, res.text).toBe(status);
  expect(header(res, 'content-type')).toMatch(/^application\/json/);
  expect(res.body.error.type).toBe(type);
  if (code !== undefined) expect(res.body.error.code).toBe(code);
  if (param !== undefined) expect(res.body.error.param).toBe(param);
  expect(typeof res.body.error.message).toBe('string');
  expect(res.text).not.toMatch(/\bat .*\.(ts|js):\d+/); // no stack frames
}

const uniqueKey = () => `key-${randomUUID()}`;
const uniqueCustomer = () => `cus_${randomUUID().slice(0, 12)}`;
const jpy = (amount: string) => ({ amount, currency: 'JPY' });

function post(urlPath: string, body: unknown, idempotencyKey: string | null = uniqueKey(), opts: { key?: string; base?: string } = {}) {
  return call('POST', urlPath, { body, ...opts, headers: idempotencyKey === null ? {} : { 'idempotency-key': idempotencyKey } });
}

const topupBody = (customerId: string, overrides: Record<string, unknown> = {}) => ({
  customerId,
  amount: jpy('5000'),
  payment: { method: 'card', token: CARD_TOKEN },
  ...overrides,
});

const payoutBody = (customerId: string, overrides: Record<string, unknown> = {}) => ({
  customerId,
  amount: jpy('3000'),
  bankAccount: { bankCode: '0001', accountNumber: ACCOUNT_NUMBER },
  ...overrides,
});

let transferSeq = 0;
/** Moves money on the real ledger, as the flows do; returns the transfer id. */
async function transfer(
  kind: 'posted' | 'pending',
  code: TransferCode,
  from: string,
  to: string,
  amount: string,
  reference: string,
  currency = 'JPY',
): Promise<string> {
  const id = `test-${RUN}-${++transferSeq}`;
  await createTransfer(prisma, { id, debitAccountId: from, creditAccountId: to, amount, currency, kind, code, reference });
  return id;
}

const wallet = (customerId: string, currency = 'JPY', merchantId = merchant.id) => ledgerAccount.wallet(merchantId, customerId, currency);

/** A wallet holding `amount` from a top-up, as topupWorkflowV2 leaves it. */
async function fund(customerId: string, amount: string, currency = 'JPY', merchantId = merchant.id): Promise<string> {
  return transfer('posted', 'topup', ledgerAccount.cardClearing(currency), wallet(customerId, currency, merchantId), amount, `topup-test-${randomUUID()}`, currency);
}

async function balanceOf(customerId: string, opts: { key?: string; currency?: string } = {}) {
  const res = await call('GET', `/v1/wallets/${encodeURIComponent(customerId)}${opts.currency ? `?currency=${opts.currency}` : ''}`, { key: opts.key ?? merchant.key });
  expect(res.status, res.text).toBe(200);
  return res.body as { customerId: string; available: { amount: string; currency: string }; held: { amount: string; currency: string } };
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  prisma = openPrisma();
  [merchant, other] = await Promise.all([createMerchant(prisma, 'wallet_api'), createMerchant(prisma, 'wallet_other')]);
  api = await startWalletApi();
}, 120_000);

afterAll(async () => {
  await Promise.all(apis.map((a) => a.close()));
  await prisma?.$disconnect();
}, 60_000);

beforeEach(() => resetTemporal(api));

describe('authentication', () => {
  it.each([
    ['POST', '/v1/topups'],
    ['GET', '/v1/topups/topup-demo-x'],
    ['POST', '/v1/payouts'],
    ['GET', '/v1/payouts/payout-demo-x'],
    ['POST', '/v1/payouts/payout-demo-x/cancel'],
    ['GET', '/v1/wallets/cus_1'],
    ['GET', '/v1/wallets/cus_1/transactions'],
  ])('answers %s %s without a valid key with 401', async (method, urlPath) => {
    expectError(await call(method, urlPath, { key: null, body: method === 'POST' ? {} : undefined }), 401, 'authentication_error', 'api_key_missing');
    expectError(await call(method, urlPath, { key: 'sk_test_wrong' }), 401, 'authentication_error', 'api_key_invalid');
    expect(api.temporal.starts).toHaveLength(0);
  });
});

describe('POST /v1/topups', () => {
  it('starts the top-up workflow with update-with-start and answers 201 from its row', async () => {
    const customerId = uniqueCustomer();
    const key = uniqueKey();
    const res = await post('/v1/topups', topupBody(customerId), key);
    expect(res.status, res.text).toBe(201);
    const id = topupId(merchant.id, key);
    expect(res.body).toEqual({ id, customerId, amount: jpy('5000'), status: 'processing', createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });

    expect(api.temporal.starts).toHaveLength(1);
    const start = api.temporal.starts[0]!;
    expect(start).toMatchObject({ workflowType: 'topupWorkflowV2', update: 'topupAccepted', updateId: `${id}:accepted` });
    expect(start.options).toMatchObject({
      workflowId: id,
      taskQueue: 'payments-test',
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
    });
    const attributes = start.options.typedSearchAttributes as Array<{ key: { name: string }; value: unknown }>;
    expect(Object.fromEntries(attributes.map((a) => [a.key.name, a.value]))).toEqual({ MerchantId: merchant.id, CustomerId: testCustomerSearch.value(merchant.id, customerId), PaymentStatus: 'processing' });
    expect(JSON.stringify(attributes)).not.toContain(customerId);
    expect(start.input).toEqual({
      topupId: id,
      merchantId: merchant.id,
      customerId,
      idempotencyKey: key,
      amount: jpy('5000'),
      payment: { method: 'card', token: CARD_TOKEN },
    });
  });

  it('replays a repeated key with the first answer (201), without Temporal; the row answers once the key expired', async () => {
    const customerId = uniqueCustomer();
    const key = uniqueKey();
    const first = await post('/v1/topups', topupBody(customerId), key);
    expect(first.status).toBe(201);
    await prisma.topup.update({ where: { id: first.body.id }, data: { status: 'failed', failureCode: 'card_declined', failureMessage: 'card declined: insufficient_funds' } });

    const again = await post('/v1/topups', topupBody(customerId), key);
    expect(again.status, again.text).toBe(201);
    expect(header(again, 'idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    // The card token is a parameter like any other.
    const otherCard = await post('/v1/topups', topupBody(customerId, { payment: { method: 'card', token: 'tok_other' } }), key);
    expectError(otherCard, 422, 'invalid_request_error', 'idempotency_key_reused', 'Idempotency-Key');

    // Past the key's lifetime, the top-up row is the second line of defence: 200, as it is now.
    await prisma.idempotencyRequest.update({ where: { merchantId_key: { merchantId: merchant.id, key } }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const late = await post('/v1/topups', topupBody(customerId, { payment: { method: 'card', token: 'tok_other' } }), key);
    expect(late.status, late.text).toBe(200);
    expect(late.body).toEqual({ ...first.body, status: 'failed', failure: { code: 'card_declined', message: 'card declined: insufficient_funds' } });
    expect(api.temporal.starts).toHaveLength(1);
  });

  it('rejects reuse of a key with different parameters with 422', async () => {
    const customerId = uniqueCustomer();
    const key = uniqueKey();
    expect((await post('/v1/topups', topupBody(customerId), key)).status).toBe(201);
    for (const body of [
      topupBody(customerId, { amount: jpy('5001') }),
      topupBody(customerId, { amount: { amount: '5000', currency: 'USD' } }),
      topupBody(uniqueCustomer()),
    ]) {
      expectError(await post('/v1/topups', body, key), 422, 'invalid_request_error', 'idempotency_key_reused', 'Idempotency-Key');
    }
    expect(api.temporal.starts).toHaveLength(1);
  });

  it('answers from the row when the start is rejected because the run already closed', async () => {
    const key = uniqueKey();
    api.temporal.onStart.topupWorkflowV2 = async (input) => {
      await recordTopup(prisma, input);
      throw new WorkflowExecutionAlreadyStartedError('Workflow execution already started', input.topupId, 'topupWorkflowV2');
    };
    const res = await post('/v1/topups', topupBody(uniqueCustomer()), key);
    expect(res.status, res.text).toBe(200);
    expect(res.body.id).toBe(topupId(merchant.id, key));
  });

  it('answers 409 when the run closed without a row, and 503 with Retry-After when it does not answer', async () => {
    api.temporal.onStart.topupWorkflowV2 = async (input) => {
      throw new WorkflowExecutionAlreadyStartedError('Workflow execution already started', input.topupId, 'topupWorkflowV2');
    };
    expectError(await post('/v1/topups', topupBody(uniqueCustomer())), 409, 'conflict', 'idempotency_key_closed', 'Idempotency-Key');

    const slow = await startWalletApi({ reservationTimeoutMs: 200 });
    slow.temporal.onStart.topupWorkflowV2 = (_input, signal) => new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('cancelled'))));
    const key = uniqueKey();
    const res = await post('/v1/topups', topupBody(uniqueCustomer()), key, { base: slow.url });
    expectError(res, 503, 'api_error', 'topup_pending');
    expect(header(res, 'retry-after')).toBe('1');
    expect(await prisma.topup.count({ where: { merchantId: merchant.id, idempotencyKey: key } })).toBe(0);
  });

  it('requires a well-formed Idempotency-Key', async () => {
    expectError(await post('/v1/topups', topupBody(uniqueCustomer()), null), 400, 'invalid_request_error', 'idempotency_key_missing', 'Idempotency-Key');
    expectError(await post('/v1/topups', topupBody(uniqueCustomer()), 'has space'), 400, 'invalid_request_error', 'idempotency_key_invalid', 'Idempotency-Key');
    expect(api.temporal.starts).toHaveLength(0);
  });

  const badTopups: Array<[string, (c: string) => unknown, string, string]> = [
    ['no customerId', () => ({ amount: jpy('1'), payment: { method: 'card', token: 'tok_visa' } }), 'customerId', 'parameter_missing'],
    ['a customerId with an empty part', () => topupBody('cus::1'), 'customerId', 'parameter_invalid'],
    ['a customerId ending in ":"', () => topupBody('cus:'), 'customerId', 'parameter_invalid'],
    ['a zero amount', (c) => topupBody(c, { amount: jpy('0') }), 'amount.amount', 'parameter_invalid'],
    ['a negative amount', (c) => topupBody(c, { amount: jpy('-5') }), 'amount.amount', 'parameter_invalid'],
    ['an amount as a JSON number', (c) => topupBody(c, { amount: { amount: 5000, currency: 'JPY' } }), 'amount.amount', 'parameter_invalid'],
    ['an amount of 19 digits', (c) => topupBody(c, { amount: jpy('9'.repeat(19)) }), 'amount.amount', 'parameter_invalid'],
    ['a lower-case currency', (c) => topupBody(c, { amount: { amount: '1', currency: 'jpy' } }), 'amount.currency', 'parameter_invalid'],
    ['no amount', (c) => ({ customerId: c, payment: { method: 'card', token: 'tok_visa' } }), 'amount', 'parameter_missing'],
    ['a wallet payment', (c) => topupBody(c, { payment: { method: 'wallet' } }), 'payment.method', 'parameter_invalid'],
    ['no token', (c) => topupBody(c, { payment: { method: 'card' } }), 'payment.token', 'parameter_missing'],
    ['an unknown field', (c) => topupBody(c, { description: 'x' }), 'description', 'parameter_unknown'],
  ];
  it.each(badTopups)('rejects %s with 400 naming the field', async (_name, body, param, code) => {
    expectError(await post('/v1/topups', body(uniqueCustomer())), 400, 'invalid_request_error', code, param);
    expect(api.temporal.starts).toHaveLength(0);
  });
});

describe('GET /v1/topups/:id', () => {
  it("shows this merchant's top-up and hides other merchants' as 404", async () => {
    const created = await post('/v1/topups', topupBody(uniqueCustomer()));
    const got = await call('GET', `/v1/topups/${created.body.id}`);
    expect(got.status, got.text).toBe(200);
    expect(got.body).toEqual(created.body);
    expectError(await call('GET', `/v1/topups/${created.body.id}`, { key: other.key }), 404, 'not_found', 'resource_missing');
    expectError(await call('GET', `/v1/topups/topup-${merchant.id}-${uniqueKey()}`), 404, 'not_found', 'resource_missing');
    expectError(await call('GET', `/v1/topups/${'x'.repeat(400)}`), 404, 'not_found');
  });
});

describe('POST /v1/payouts', () => {
  it('holds the amount on the wallet and answers 201 with the payout', async () => {
    const customerId = uniqueCustomer();
    await fund(customerId, '10000');
    const key = uniqueKey();
    const before = Date.now();
    const res = await post('/v1/payouts', payoutBody(customerId), key);
    expect(res.status, res.text).toBe(201);
    const id = payoutId(merchant.id, key);
    expect(res.body).toEqual({
      id,
      customerId,
      amount: jpy('3000'),
      bankAccount: { bankCode: '0001', accountNumber: ACCOUNT_NUMBER },
      scheduledAt: expect.any(String),
      status: 'pending',
      createdAt: expect.any(String),
    });
    // Without scheduledAt and with PAYOUT_DELAY_MS at its default (0): now.
    expect(Date.parse(res.body.scheduledAt)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(res.body.scheduledAt)).toBeLessThanOrEqual(Date.now());

    const start = api.temporal.starts[0]!;
    expect(start).toMatchObject({ workflowType: 'payoutWorkflowV2', update: 'payoutAccepted', updateId: `${id}:accepted` });
    expect(start.options).toMatchObject({ workflowId: id, workflowIdConflictPolicy: 'USE_EXISTING', workflowIdReusePolicy: 'REJECT_DUPLICATE' });
    const attributes = start.options.typedSearchAttributes as Array<{ key: { name: string }; value: unknown }>;
    expect(Object.fromEntries(attributes.map((a) => [a.key.name, a.value]))).toEqual({ MerchantId: merchant.id, CustomerId: testCustomerSearch.value(merchant.id, customerId), PaymentStatus: 'pending' });
    expect(JSON.stringify(attributes)).not.toContain(customerId);
    expect(start.input).toEqual({
      payoutId: id,
      merchantId: merchant.id,
      customerId,
      idempotencyKey: key,
      amount: jpy('3000'),
      bankAccount: { bankCode: '0001', accountNumber: ACCOUNT_NUMBER },
      scheduledAt: res.body.scheduledAt,
    });
    expect(await balanceOf(customerId)).toEqual({ customerId, available: jpy('7000'), held: jpy('3000') });
  });

  it('keeps a future scheduledAt (normalised to UTC), moves a past one to now, and defaults to now + PAYOUT_DELAY_MS', async () => {
    const customerId = uniqueCustomer();
    await fund(customerId, '10000');
    const future = await post('/v1/payouts', payoutBody(customerId, { amount: jpy('1'), scheduledAt: '2099-01-01T09:00:00+09:00' }));
    expect(future.status, future.text).toBe(400); // beyond 400 days
    const inTenDays = new Date(Date.now() + 10 * DAY_MS);
    const at = `${inTenDays.toISOString().slice(0, 19)}+09:00`;
    const scheduled = await post('/v1/payouts', payoutBody(customerId, { amount: jpy('1'), scheduledAt: at }));
    expect(scheduled.status, scheduled.text).toBe(201);
    expect(scheduled.body.scheduledAt).toBe(new Date(Date.parse(at)).toISOString());

    const before = Date.now();
    const past = await post('/v1/payouts', payoutBody(customerId, { amount: jpy('1'), scheduledAt: '2020-01-01T00:00:00Z' }));
    expect(past.status, past.text).toBe(201);
    expect(Date.parse(past.body.scheduledAt)).toBeGreaterThanOrEqual(before);

    const delayed = await startWalletApi({ payoutDelayMs: 3_600_000 });
    const start = Date.now();
    const res = await post('/v1/payouts', payoutBody(customerId, { amount: jpy('1') }), uniqueKey(), { base: delayed.url });
    expect(res.status, res.text).toBe(201);
    expect(Date.parse(res.body.scheduledAt)).toBeGreaterThanOrEqual(start + 3_600_000);
    expect(Date.parse(res.body.scheduledAt)).toBeLessThanOrEqual(Date.now() + 3_600_000);
  });

  it('rejects a scheduledAt more than 400 days ahead and accepts one just inside', async () => {
    const customerId = uniqueCustomer();
    await fund(customerId, '10');
    const tooFar = new Date(Date.now() + 401 * DAY_MS).toISOString();
    const res = await post('/v1/payouts', payoutBody(customerId, { amount: jpy('1'), scheduledAt: tooFar }));
    expectError(res, 400, 'invalid_request_error', 'parameter_invalid', 'scheduledAt');
    expect(res.body.error.message).toContain('400 days');
    expect(api.temporal.starts).toHaveLength(0);
    const inside = new Date(Date.now() + 399 * DAY_MS).toISOString();
    expect((await post('/v1/payouts', payoutBody(customerId, { amount: jpy('1'), scheduledAt: inside }))).status).toBe(201);
  });

  it('answers 409 insufficient_funds when the wallet cannot cover it, holds nothing, and answers the same to a replay', async () => {
    const customerId = uniqueCustomer();
    await fund(customerId, '1000');
    const key = uniqueKey();
    const res = await post('/v1/payouts', payoutBody(customerId, { amount: jpy('1001') }), key);
    expectError(res, 409, 'conflict', 'insufficient_funds', 'amount');
    expect(res.body.error.message).toMatch(/available balance is below 1001 JPY/);
    expect(await balanceOf(customerId)).toEqual({ customerId, available: jpy('1000'), held: jpy('0') });

    const again = await post('/v1/payouts', payoutBody(customerId, { amount: jpy('1001') }), key);
    expectError(again, 409, 'conflict', 'insufficient_funds', 'amount');
    expect(api.temporal.starts).toHaveLength(1);
    // The refused payout is recorded, and GET shows why.
    const got = await call('GET', `/v1/payouts/${payoutId(merchant.id, key)}`);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ status: 'failed', failure: { code: 'insufficient_funds' } });
    // A different request under the key is still a key reuse, not a second funds check.
    expectError(await post('/v1/payouts', payoutBody(customerId, { amount: jpy('10') }), key), 422, 'invalid_request_error', 'idempotency_key_reused');
  });

  it('replays a payout the bank later refused from its row with 200 once the key expired: its money had been held', async () => {
    const customerId = uniqueCustomer();
    await fund(customerId, '5000');
    const key = uniqueKey();
    const first = await post('/v1/payouts', payoutBody(customerId), key);
    expect(first.status).toBe(201);
    await voidPending(prisma, { id: `${first.body.id}:void`, pendingId: holdId(first.body.id) });
    await prisma.payout.update({ where: { id: first.body.id }, data: { status: 'failed', failureCode: 'insufficient_funds', failureMessage: 'bank' } });
    // Within the key's lifetime a retry gets the first answer.
    const replay = await post('/v1/payouts', payoutBody(customerId), key);
    expect(replay.status, replay.text).toBe(201);
    expect(replay.body).toEqual(first.body);
    await prisma.idempotencyRequest.update({ where: { merchantId_key: { merchantId: merchant.id, key } }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const again = await post('/v1/payouts', payoutBody(customerId), key);
    expect(again.status, again.text).toBe(200);
    expect(again.body).toMatchObject({ id: first.body.id, status: 'failed', failure: { code: 'insufficient_funds', message: 'bank' } });
  });

  it('replays a repeated key with the first answer and rejects different parameters with 422', async () => {
    const customerId = uniqueCustomer();
    await fund(customerId, '10000');
    const key = uniqueKey();
    const at = new Date(Date.now() + 2 * DAY_MS).toISOString();
    const first = await post('/v1/payouts', payoutBody(customerId, { scheduledAt: at }), key);
    expect(first.status, first.text).toBe(201);
    const again = await post('/v1/payouts', payoutBody(customerId, { scheduledAt: at }), key);
    expect(again.status, again.text).toBe(201);
    expect(header(again, 'idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    for (const body of [
      // Leaving out scheduledAt is other parameters here (the payout row alone, consulted once the
      // key's record expired, would take it as the first request's choice).
      payoutBody(customerId),
      payoutBody(customerId, { scheduledAt: new Date(Date.now() + 3 * DAY_MS).toISOString() }),
      payoutBody(customerId, { scheduledAt: at, amount: jpy('3001') }),
      payoutBody(customerId, { scheduledAt: at, bankAccount: { bankCode: '0002', accountNumber: ACCOUNT_NUMBER } }),
      payoutBody(customerId, { scheduledAt: at, bankAccount: { bankCode: '0001', accountNumber: '1111111' } }),
      payoutBody(uniqueCustomer(), { scheduledAt: at }),
    ]) {
      expectError(await post('/v1/payouts', body, key), 422, 'invalid_request_error', 'idempotency_key_reused', 'Idempotency-Key');
    }
    expect(api.temporal.starts).toHaveLength(1);
    expect(await balanceOf(customerId)).toEqual({ customerId, available: jpy('7000'), held: jpy('3000') });
  });

  it('treats a retry naming a past time as the same request as one that was moved to now', async () => {
    const customerId = uniqueCustomer();
    await fund(customerId, '100');
    const key = uniqueKey();
    const body = payoutBody(customerId, { amount: jpy('1'), scheduledAt: '2024-06-01T00:00:00Z' });
    expect((await post('/v1/payouts', body, key)).status).toBe(201);
    expect((await post('/v1/payouts', body, key)).status).toBe(201); // replayed
    // And so does the payout row, once the key's record has expired.
    await prisma.idempotencyRequest.update({ where: { merchantId_key: { merchantId: merchant.id, key } }, data: { expiresAt: new Date(Date.now() - 1000) } });
    expect((await post('/v1/payouts', body, key)).status).toBe(200);
  });

  const badPayouts: Array<[string, (c: string) => unknown, string, string]> = [
    ['no bankAccount', (c) => ({ customerId: c, amount: jpy('1') }), 'bankAccount', 'parameter_missing'],
    ['a 3-digit bankCode', (c) => payoutBody(c, { bankAccount: { bankCode: '123', accountNumber: ACCOUNT_NUMBER } }), 'bankAccount.bankCode', 'parameter_invalid'],
    ['a bankCode as a number', (c) => payoutBody(c, { bankAccount: { bankCode: 1234, accountNumber: ACCOUNT_NUMBER } }), 'bankAccount.bankCode', 'parameter_invalid'],
    ['an 8-digit accountNumber', (c) => payoutBody(c, { bankAccount: { bankCode: '0001', accountNumber: '12345678' } }), 'bankAccount.accountNumber', 'parameter_invalid'],
    ['a missing accountNumber', (c) => payoutBody(c, { bankAccount: { bankCode: '0001' } }), 'bankAccount.accountNumber', 'parameter_missing'],
    ['an unknown bankAccount field', (c) => payoutBody(c, { bankAccount: { bankCode: '0001', accountNumber: ACCOUNT_NUMBER, name: 'x' } }), 'bankAccount.name', 'parameter_unknown'],
    ['a scheduledAt in words', (c) => payoutBody(c, { scheduledAt: 'tomorrow' }), 'scheduledAt', 'parameter_invalid'],
    ['a scheduledAt without offset', (c) => payoutBody(c, { scheduledAt: '2030-01-01T00:00:00' }), 'scheduledAt', 'parameter_invalid'],
    ['an impossible date', (c) => payoutBody(c, { scheduledAt: '2030-02-30T00:00:00Z' }), 'scheduledAt', 'parameter_invalid'],
    ['a scheduledAt as a number', (c) => payoutBody(c, { scheduledAt: 1_900_000_000_000 }), 'scheduledAt', 'parameter_invalid'],
    ['a zero amount', (c) => payoutBody(c, { amount: jpy('0') }), 'amount.amount', 'parameter_invalid'],
    ['no customerId', () => ({ amount: jpy('1'), bankAccount: { bankCode: '0001', accountNumber: ACCOUNT_NUMBER } }), 'customerId', 'parameter_missing'],
  ];
  it.each(badPayouts)('rejects %s with 400 naming the field', async (_name, body, param, code) => {
    expectError(await post('/v1/payouts', body(uniqueCustomer())), 400, 'invalid_request_error', code, param);
    expect(api.temporal.starts).toHaveLength(0);
  });

  it('requires an Idempotency-Key', async () => {
    expectError(await post('/v1/payouts', payoutBody(uniqueCustomer()), null), 400, 'invalid_request_error', 'idempotency_key_missing', 'Idempotency-Key');
  });

  it("shows this merchant's payout on GET and hides it from another merchant", async () => {
    const customerId = uniqueCustomer();
    await fund(customerId, '3000');
    const created = await post('/v1/payouts', payoutBody(customerId));
    expect(created.status).toBe(201);
    const got = await call('GET', `/v1/payouts/${created.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(created.body);
    expectError(await call('GET', `/v1/payouts/${created.body.id}`, { key: other.key }), 404, 'not_found', 'resource_missing');
    expectError(await call('GET', `/v1/payouts/payout-${merchant.id}-${uniqueKey()}`), 404, 'not_found');
  });

  it('logs neither the card token nor the bank account number', async () => {
    const customerId = uniqueCustomer();
    await fund(customerId, '3000');
    await post('/v1/topups', topupBody(customerId));
    await post('/v1/payouts', payoutBody(customerId));
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.some((l) => l.includes(CARD_TOKEN) || l.includes(ACCOUNT_NUMBER))).toBe(false);
  });
});

describe('POST /v1/payouts/:id/cancel', () => {
  async function pendingPayout(amount = '3000'): Promise<{ id: string; customerId: string }> {
    const customerId = uniqueCustomer();
    await fund(customerId, '10000');
    const res = await post('/v1/payouts', payoutBody(customerId, { amount: jpy(amount), scheduledAt: new Date(Date.now() + DAY_MS).toISOString() }));
    expect(res.status, res.text).toBe(201);
    api.temporal.starts.length = 0;
    return { id: res.body.id, customerId };
  }

  it('cancels a pending payout, gives the money back, and answers a retry with 200 without Temporal', async () => {
    const { id, customerId } = await pendingPayout();
    api.temporal.update = cancelPayout;
    const res = await call('POST', `/v1/payouts/${id}/cancel`);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id, status: 'canceled', amount: jpy('3000') });
    expect(api.temporal.updates).toEqual([{ workflowId: id, name: 'payoutCancel', args: [], updateId: `${id}:cancel` }]);
    expect(await balanceOf(customerId)).toEqual({ customerId, available: jpy('10000'), held: jpy('0') });

    const again = await call('POST', `/v1/payouts/${id}/cancel`, { body: {} });
    expect(again.status, again.text).toBe(200);
    expect(again.body).toEqual(res.body);
    expect(api.temporal.updates).toHaveLength(1);
  });

  it('answers 409 payout_state_invalid when the workflow rejects the cancel', async () => {
    const { id } = await pendingPayout();
    await prisma.payout.update({ where: { id }, data: { status: 'processing' } });
    api.temporal.update = async () => {
      throw rejected(FailureType.InvalidPayoutState, 'payout is processing; only a pending payout can be canceled');
    };
    const res = await call('POST', `/v1/payouts/${id}/cancel`);
    expectError(res, 409, 'conflict', 'payout_state_invalid');
    expect(res.body.error.message).toContain('processing');
  });

  it('answers 409 payout_state_invalid when the payout went to the bank before the cancel took effect', async () => {
    const { id } = await pendingPayout();
    api.temporal.update = async (call) => {
      const row = await prisma.payout.update({ where: { id: call.workflowId }, data: { status: 'processing' } });
      return { payoutId: row.id, status: 'processing', amount: jpy('3000'), scheduledAt: row.scheduledAt.toISOString() } satisfies PayoutSnapshot;
    };
    const res = await call('POST', `/v1/payouts/${id}/cancel`);
    expectError(res, 409, 'conflict', 'payout_state_invalid');
    expect(res.body.error.message).toContain('processing');
  });

  it('answers 409 payout_closed when the workflow has closed, and 200 when it closed canceled', async () => {
    const { id } = await pendingPayout();
    await prisma.payout.update({ where: { id }, data: { status: 'paid' } });
    api.temporal.update = async (call) => {
      throw new WorkflowNotFoundError('workflow execution already completed', call.workflowId, undefined);
    };
    expectError(await call('POST', `/v1/payouts/${id}/cancel`), 409, 'conflict', 'payout_closed');

    // A concurrent cancel won and the run closed between our read and our update.
    const raced = await pendingPayout();
    api.temporal.update = async (call) => {
      await cancelPayout(call);
      throw new WorkflowNotFoundError('workflow execution already completed', call.workflowId, undefined);
    };
    const res = await call('POST', `/v1/payouts/${raced.id}/cancel`);
    expect(res.status, res.text).toBe(200);
    expect(res.body.status).toBe('canceled');
  });

  it('answers 503 with Retry-After when the workflow does not answer in time', async () => {
    const slow = await startWalletApi({ updateTimeoutMs: 200 });
    const { id } = await pendingPayout();
    slow.temporal.update = (_call, signal) => new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('cancelled'))));
    const res = await call('POST', `/v1/payouts/${id}/cancel`, { base: slow.url });
    expectError(res, 503, 'api_error', 'payout_update_pending');
    expect(header(res, 'retry-after')).toBe('1');
  });

  it("answers 404 for another merchant's payout and 400 for parameters, before asking the workflow", async () => {
    const { id } = await pendingPayout();
    expectError(await call('POST', `/v1/payouts/${id}/cancel`, { key: other.key }), 404, 'not_found', 'resource_missing');
    expectError(await call('POST', `/v1/payouts/${id}/cancel`, { body: { reason: 'x' } }), 400, 'invalid_request_error', 'parameter_unknown', 'reason');
    expect(api.temporal.updates).toHaveLength(0);
  });
});

describe('GET /v1/wallets/:customerId', () => {
  it('answers an unknown wallet with zeros in JPY by default, or in the currency asked for', async () => {
    const customerId = uniqueCustomer();
    expect(await balanceOf(customerId)).toEqual({ customerId, available: jpy('0'), held: jpy('0') });
    expect(await balanceOf(customerId, { currency: 'USD' })).toEqual({
      customerId,
      available: { amount: '0', currency: 'USD' },
      held: { amount: '0', currency: 'USD' },
    });
  });

  it('shows available and held from the ledger, per currency, and only to its merchant', async () => {
    const customerId = uniqueCustomer();
    await fund(customerId, '10000');
    await fund(customerId, '700', 'USD');
    await transfer('pending', 'payout', wallet(customerId), ledgerAccount.bankClearing('JPY'), '2500', 'payout-x');
    expect(await balanceOf(customerId)).toEqual({ customerId, available: jpy('7500'), held: jpy('2500') });
    expect((await balanceOf(customerId, { currency: 'USD' })).available).toEqual({ amount: '700', currency: 'USD' });
    // The same customer id at another merchant is another wallet.
    expect(await balanceOf(customerId, { key: other.key })).toEqual({ customerId, available: jpy('0'), held: jpy('0') });
  });

  it('decodes a customer id with reserved characters from the path', async () => {
    const customerId = `cus:${RUN}/é`;
    await fund(customerId, '42');
    expect((await balanceOf(customerId)).available).toEqual(jpy('42'));
  });

  it.each([
    ['a lower-case currency', '/v1/wallets/cus_1?currency=jpy', 'currency', 'parameter_invalid'],
    ['a repeated currency', '/v1/wallets/cus_1?currency=JPY&currency=USD', 'currency', 'parameter_invalid'],
    ['an unknown parameter', '/v1/wallets/cus_1?limit=5', 'limit', 'parameter_unknown'],
    ['a customer id with an empty part', '/v1/wallets/cus%3A%3A1', 'customerId', 'parameter_invalid'],
    ['a customer id over 100 characters', `/v1/wallets/${'c'.repeat(101)}`, 'customerId', 'parameter_invalid'],
  ])('rejects %s with 400', async (_name, url, param, code) => {
    expectError(await call('GET', url), 400, 'invalid_request_error', code, param);
  });
});

describe('GET /v1/wallets/:customerId/transactions', () => {
  /** A wallet with one movement of each kind, oldest first, as the flows leave them. */
  async function walletWithHistory(customerId: string) {
    const bank = ledgerAccount.bankClearing('JPY');
    const pending = ledgerAccount.merchantPending(merchant.id, 'JPY');
    const topup = await transfer('posted', 'topup', ledgerAccount.cardClearing('JPY'), wallet(customerId), '10000', 'topup-1');
    const canceledPayout = await transfer('pending', 'payout', wallet(customerId), bank, '3000', 'payout-1');
    await voidPending(prisma, { id: `${canceledPayout}:void`, pendingId: canceledPayout });
    const walletPayment = await transfer('pending', 'checkout_wallet_payment', wallet(customerId), pending, '2000', 'checkout-1');
    await postPending(prisma, { id: `${walletPayment}:capture`, pendingId: walletPayment, amount: '1500' });
    const heldPayout = await transfer('pending', 'payout', wallet(customerId), bank, '1000', 'payout-2');
    const refund = await transfer('posted', 'checkout_refund', pending, wallet(customerId), '500', 'checkout-1');
    return { topup, canceledPayout, walletPayment, heldPayout, refund };
  }

  const entry = (id: string, type: string, direction: string, amount: string, status: string, reference: string) => ({
    id,
    type,
    direction,
    amount: jpy(amount),
    status,
    reference,
    createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
  });

  it('lists movements newest first, one entry per hold with what became of it', async () => {
    const customerId = uniqueCustomer();
    const t = await walletWithHistory(customerId);
    const res = await call('GET', `/v1/wallets/${customerId}/transactions`);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({
      data: [
        entry(t.refund, 'checkout_refund', 'credit', '500', 'posted', 'checkout-1'),
        entry(t.heldPayout, 'payout', 'debit', '1000', 'held', 'payout-2'),
        // Partly captured: what left the wallet, not what was held.
        entry(t.walletPayment, 'checkout_wallet_payment', 'debit', '1500', 'posted', 'checkout-1'),
        entry(t.canceledPayout, 'payout', 'debit', '3000', 'voided', 'payout-1'),
        entry(t.topup, 'topup', 'credit', '10000', 'posted', 'topup-1'),
      ],
      hasMore: false,
      nextCursor: null,
    });
    const times = (res.body.data as Array<{ createdAt: string }>).map((d) => Date.parse(d.createdAt));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
  });

  it('pages with limit and starting_after without skipping or repeating an entry', async () => {
    const customerId = uniqueCustomer();
    const t = await walletWithHistory(customerId);
    const seen: string[] = [];
    let cursor: string | null = null;
    const pages: Array<{ ids: string[]; hasMore: boolean }> = [];
    do {
      const res: Res = await call('GET', `/v1/wallets/${customerId}/transactions?limit=2${cursor ? `&starting_after=${cursor}` : ''}`);
      expect(res.status, res.text).toBe(200);
      const ids = (res.body.data as Array<{ id: string }>).map((d) => d.id);
      pages.push({ ids, hasMore: res.body.hasMore });
      seen.push(...ids);
      cursor = res.body.nextCursor;
      expect(cursor === null).toBe(!res.body.hasMore);
    } while (cursor);
    expect(pages).toEqual([
      { ids: [t.refund, t.heldPayout], hasMore: true },
      { ids: [t.walletPayment, t.canceledPayout], hasMore: true },
      { ids: [t.topup], hasMore: false },
    ]);
    expect(seen).toHaveLength(new Set(seen).size);
  });

  it('returns 20 entries by default and keeps currencies and merchants apart', async () => {
    const customerId = uniqueCustomer();
    for (let i = 0; i < 21; i++) await fund(customerId, String(i + 1));
    await fund(customerId, '99', 'USD');
    const res = await call('GET', `/v1/wallets/${customerId}/transactions`);
    expect(res.body.data).toHaveLength(20);
    expect(res.body.data[0].amount).toEqual(jpy('21'));
    expect(res.body.hasMore).toBe(true);
    const last = await call('GET', `/v1/wallets/${customerId}/transactions?starting_after=${res.body.nextCursor}`);
    expect(last.body).toMatchObject({ data: [{ amount: jpy('1') }], hasMore: false, nextCursor: null });

    const usd = await call('GET', `/v1/wallets/${customerId}/transactions?currency=USD&limit=100`);
    expect(usd.body.data.map((d: { amount: unknown }) => d.amount)).toEqual([{ amount: '99', currency: 'USD' }]);
    const theirs = await call('GET', `/v1/wallets/${customerId}/transactions`, { key: other.key });
    expect(theirs.body).toEqual({ data: [], hasMore: false, nextCursor: null });
  });

  it.each([
    ['limit 0', 'limit=0', 'limit'],
    ['limit 101', 'limit=101', 'limit'],
    ['a fractional limit', 'limit=1.5', 'limit'],
    ['a limit in words', 'limit=ten', 'limit'],
    ['an empty cursor', 'starting_after=', 'starting_after'],
    ['a cursor that is not one', 'starting_after=not-a-cursor', 'starting_after'],
    ['a bad currency', 'currency=YEN1', 'currency'],
  ])('rejects %s with 400 naming the parameter', async (_name, query, param) => {
    expectError(await call('GET', `/v1/wallets/cus_1/transactions?${query}`), 400, 'invalid_request_error', 'parameter_invalid', param);
  });

  it('rejects unknown parameters', async () => {
    expectError(await call('GET', '/v1/wallets/cus_1/transactions?startingAfter=x'), 400, 'invalid_request_error', 'parameter_unknown', 'startingAfter');
  });
});

describe('POST /v1/checkouts with a wallet payment', () => {
  async function product(): Promise<string> {
    const sku = `sku-${randomUUID().slice(0, 12)}`;
    const res = await call('POST', '/v1/products', { body: { sku, name: 'Ticket', price: jpy('1200'), stock: 10 } });
    expect(res.status, res.text).toBe(201);
    return sku;
  }

  it('passes { method: "wallet" } to the workflow, with no token', async () => {
    const sku = await product();
    const customerId = uniqueCustomer();
    const key = uniqueKey();
    const res = await post('/v1/checkouts', { customerId, items: [{ sku, quantity: 1 }], payment: { method: 'wallet' } }, key);
    expect(res.status, res.text).toBe(201);
    expect(res.body.id).toBe(checkoutId(merchant.id, key));
    expect(api.temporal.starts[0]!.input).toMatchObject({ customerId });
    expect((api.temporal.starts[0]!.input as CheckoutInput).payment).toEqual({ method: 'wallet' });
    expect((await prisma.checkout.findUniqueOrThrow({ where: { id: res.body.id } })).paymentMethod).toBe('wallet');

    // The payment method is part of the request a key stands for.
    const card = await post('/v1/checkouts', { customerId, items: [{ sku, quantity: 1 }], payment: { method: 'card', token: CARD_TOKEN } }, key);
    expectError(card, 422, 'invalid_request_error', 'idempotency_key_reused');
    expect((await post('/v1/checkouts', { customerId, items: [{ sku, quantity: 1 }], payment: { method: 'wallet' } }, key)).status).toBe(201);
  });

  it.each([
    ['a token with a wallet payment', { method: 'wallet', token: 'tok_visa' }, 'payment.token', 'parameter_unknown'],
    ['an unknown method', { method: 'bank' }, 'payment.method', 'parameter_invalid'],
    ['no method', {}, 'payment.method', 'parameter_missing'],
  ])('rejects %s', async (_name, payment, param, code) => {
    const sku = await product();
    const res = await post('/v1/checkouts', { customerId: uniqueCustomer(), items: [{ sku, quantity: 1 }], payment });
    expectError(res, 400, 'invalid_request_error', code, param);
    expect(api.temporal.starts).toHaveLength(0);
  });

  it('rejects a customer id that cannot name a wallet, but only for wallet payments', async () => {
    const sku = await product();
    const wallet = await post('/v1/checkouts', { customerId: 'cus:', items: [{ sku, quantity: 1 }], payment: { method: 'wallet' } });
    expectError(wallet, 400, 'invalid_request_error', 'parameter_invalid', 'customerId');
    const card = await post('/v1/checkouts', { customerId: 'cus:', items: [{ sku, quantity: 1 }], payment: { method: 'card', token: CARD_TOKEN } });
    expect(card.status, card.text).toBe(201);
  });
});
