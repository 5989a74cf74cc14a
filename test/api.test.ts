// HTTP behaviour of the API against a real PostgreSQL, with Temporal replaced by a fake client: auth,
// validation, products, the idempotent replay path through the database, the checkout actions
// (capture, cancel, confirm, refunds) and how the workflow's answers and rejections map to HTTP,
// merchant settings, error shapes and limits. The fake plays the workflow's part by writing the
// rows the real one writes before it answers. The real-Temporal checkout path is covered end to end
// in e2e-checkout.test.ts.
//
// The vitest globalSetup provides DATABASE_URL (migrated); requests go as merchants of this file's own.
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ApplicationFailure, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import type { AppDeps } from '../api/app.js';
import { hashApiKey } from '../platform/api-keys.js';
import type { PrismaClient } from '../platform/db.js';
import {
  checkoutId,
  DEFAULT_CHECKOUT_TIMEOUTS,
  FailureType,
  type CheckoutInput,
  type CheckoutSnapshot,
  type CheckoutStatus,
  type RefundSnapshot,
} from '../domain/index.js';
import {
  call as send,
  createMerchant,
  header,
  noUpdateExpected,
  openPrisma,
  recordCheckout,
  recordingLogger,
  rejected,
  startApi,
  type Res,
  type TestApi,
  type TestMerchant,
  type UpdateBehaviour,
  type UpdateCall,
} from './support/api-harness.js';
import { testCustomerSearch } from './support/payload-keys.js';

const RUN = randomUUID().slice(0, 8);
const CARD_TOKEN = `tok_visa_secret_${RUN}`;

let prisma: PrismaClient;
/** Who the requests come from unless a test says otherwise: a merchant of this file's own. */
let merchant: TestMerchant;
let other: TestMerchant;
const apis: TestApi[] = [];
/** Every API's log lines, slow ones' too: no secret may reach any of them. */
const logLines: string[] = [];

// ---------------------------------------------------------------------------------------------
// What the workflow does before it answers (the fake Temporal client is the harness's): the
// checkout row and the snapshot it reports.

/** What the workflow's placeOrder activity does before it answers the reservation update. */
async function writeCheckoutAs(input: CheckoutInput, status: CheckoutStatus): Promise<CheckoutSnapshot> {
  await recordCheckout(prisma, input, status);
  return snapshotOf(input.checkoutId);
}

/** What the workflow reports, built from the rows it wrote. */
async function snapshotOf(id: string): Promise<CheckoutSnapshot> {
  const row = await prisma.checkout.findUniqueOrThrow({ where: { id }, include: { refunds: true } });
  return {
    checkoutId: id,
    status: row.status as CheckoutStatus,
    amount: { amount: row.amount.toString(), currency: row.currency },
    amountCapturable: row.status === 'requires_capture' ? row.amount.toString() : '0',
    amountCaptured: row.amountCaptured.toString(),
    amountRefunded: row.amountRefunded.toString(),
    refunds: row.refunds.map((r) => ({
      refundId: r.id,
      amount: { amount: r.amount.toString(), currency: r.currency },
      status: r.status as RefundSnapshot['status'],
      ...(r.failureCode ? { failureCode: r.failureCode } : {}),
    })),
  };
}

/** The fake's behaviours as each test starts: a new checkout is processing, no update is expected. */
function resetTemporal(target: TestApi): void {
  target.temporal.starts.length = 0;
  target.temporal.updates.length = 0;
  // The API places the order itself; the workflow's start writes nothing.
  target.temporal.onStart.checkoutWorkflowV2 = async () => undefined;
  target.temporal.update = noUpdateExpected;
}

// ---------------------------------------------------------------------------------------------
// App and HTTP helpers

async function startCheckoutApi(overrides: Partial<AppDeps> = {}): Promise<TestApi> {
  const started = await startApi(prisma, { logger: recordingLogger(logLines), ...overrides });
  resetTemporal(started);
  apis.push(started);
  return started;
}

let api: TestApi;

/** A request as this file's merchant unless `key` says otherwise; `body` goes as JSON, `raw` as is. */
function call(
  method: string,
  urlPath: string,
  opts: { body?: unknown; raw?: string | Buffer; key?: string | null; headers?: Record<string, string>; base?: string } = {},
): Promise<Res> {
  const body = opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
  return send(opts.base ?? api.url, opts.key === undefined ? merchant.key : opts.key, method, urlPath, body, opts.headers);
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

const uniqueSku = (prefix = 'sku') => `${prefix}-${randomUUID().slice(0, 12)}`;
const uniqueKey = () => `key-${randomUUID()}`;

async function createProduct(overrides: Record<string, unknown> = {}, key = merchant.key) {
  const body = { sku: uniqueSku(), name: 'Festival ticket', price: { amount: '1999', currency: 'JPY' }, stock: 10, ...overrides };
  const res = await call('POST', '/v1/products', { body, key });
  expect(res.status, res.text).toBe(201);
  return res.body as { sku: string; price: { amount: string; currency: string } };
}

function checkoutBody(items: Array<{ sku: string; quantity: number }>, overrides: Record<string, unknown> = {}) {
  return { customerId: 'cus_123', items, payment: { method: 'card', token: CARD_TOKEN }, ...overrides };
}

function postCheckout(body: unknown, idempotencyKey: string | null = uniqueKey(), opts: { key?: string; base?: string } = {}) {
  return call('POST', '/v1/checkouts', { body, ...opts, headers: idempotencyKey === null ? {} : { 'idempotency-key': idempotencyKey } });
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  prisma = openPrisma();
  [merchant, other] = await Promise.all([createMerchant(prisma, 'api'), createMerchant(prisma, 'other')]);
  api = await startCheckoutApi();
}, 120_000);

afterAll(async () => {
  await Promise.all(apis.map((a) => a.close()));
  await prisma?.$disconnect();
}, 60_000);

beforeEach(() => resetTemporal(api));

describe('health and routing', () => {
  it('answers /health without a key', async () => {
    const res = await call('GET', '/health', { key: null });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true });
    expect(header(res, 'request-id')).toMatch(/^req_/);
  });

  it('answers unknown routes with a JSON 404', async () => {
    expectError(await call('GET', '/nope', { key: null }), 404, 'not_found', 'route_not_found');
    expectError(await call('DELETE', '/v1/products/x'), 404, 'not_found', 'route_not_found');
    expectError(await call('GET', '/v1/nothing-here'), 404, 'not_found', 'route_not_found');
  });

  it('answers a malformed %-escape in the path with a 400, not a 500', async () => {
    expectError(await call('GET', '/v1/products/%E0%A4%A'), 400, 'invalid_request_error');
  });
});

describe('authentication', () => {
  it('rejects a missing key with 401 before revealing which routes exist', async () => {
    const res = await call('GET', '/v1/nothing-here', { key: null });
    expectError(res, 401, 'authentication_error', 'api_key_missing');
    expect(header(res, 'www-authenticate')).toMatch(/^Bearer/);
  });

  it('rejects a wrong key and a non-Bearer scheme', async () => {
    expectError(await call('GET', '/v1/products/x', { key: 'sk_test_wrong' }), 401, 'authentication_error', 'api_key_invalid');
    expectError(
      await call('GET', '/v1/products/x', { key: null, headers: { authorization: `Basic ${Buffer.from('basic:x').toString('base64')}` } }),
      401,
      'authentication_error',
      'api_key_invalid',
    );
    expectError(await call('GET', '/v1/products/x', { key: 'a'.repeat(5000) }), 401, 'authentication_error');
  });

  it('does not parse or store a body sent without a valid key', async () => {
    const sku = uniqueSku();
    const res = await call('POST', '/v1/products', {
      key: 'sk_test_wrong',
      body: { sku, name: 'x', price: { amount: '1', currency: 'JPY' }, stock: 1 },
    });
    expectError(res, 401, 'authentication_error');
    expect(await prisma.product.count({ where: { sku } })).toBe(0);
  });
});

describe('products', () => {
  it('refuses a zero price: nothing could pay for it', async () => {
    const sku = uniqueSku();
    expectError(await call('POST', '/v1/products', { body: { sku, name: 'Free gift', price: { amount: '0', currency: 'JPY' }, stock: 5 } }), 400, 'invalid_request_error', 'parameter_invalid', 'price.amount');
    expect(await prisma.product.count({ where: { sku } })).toBe(0);
  });

  it('creates a product and reads it back with exact minor-unit amounts', async () => {
    const sku = uniqueSku();
    const res = await call('POST', '/v1/products', {
      body: { sku, name: 'Big ticket', price: { amount: '999999999999999999', currency: 'USD' }, stock: 7 },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toEqual({
      sku,
      name: 'Big ticket',
      price: { amount: '999999999999999999', currency: 'USD' },
      stock: { available: 7, reserved: 0, sold: 0 },
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    const got = await call('GET', `/v1/products/${sku}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(res.body);
    const row = await prisma.product.findUniqueOrThrow({ where: { merchantId_sku: { merchantId: merchant.id, sku } } });
    expect(row.priceAmount).toBe(999999999999999999n);
  });

  it('rejects a duplicate sku with 409 and keeps the first product', async () => {
    const first = await createProduct({ name: 'First' });
    const res = await call('POST', '/v1/products', { body: { sku: first.sku, name: 'Second', price: { amount: '5', currency: 'JPY' }, stock: 1 } });
    expectError(res, 409, 'conflict', 'product_exists', 'sku');
    const rows = await prisma.product.findMany({ where: { merchantId: merchant.id, sku: first.sku } });
    expect(rows.map((r) => r.name)).toEqual(['First']);
  });

  it('lets exactly one of several concurrent creates of one sku win', async () => {
    const sku = uniqueSku();
    const body = { sku, name: 'Race', price: { amount: '100', currency: 'JPY' }, stock: 1 };
    const results = await Promise.all(Array.from({ length: 6 }, () => call('POST', '/v1/products', { body })));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
  });

  it("keeps merchants' catalogues apart", async () => {
    const mine = await createProduct();
    expectError(await call('GET', `/v1/products/${mine.sku}`, { key: other.key }), 404, 'not_found', 'resource_missing');
    // The same sku is free for another merchant.
    await createProduct({ sku: mine.sku, name: 'Theirs' }, other.key);
    expect((await call('GET', `/v1/products/${mine.sku}`)).body.name).toBe('Festival ticket');
  });

  it('answers 404 for an unknown or impossible sku', async () => {
    expectError(await call('GET', `/v1/products/${uniqueSku()}`), 404, 'not_found');
    expectError(await call('GET', `/v1/products/${encodeURIComponent('a b\u0000')}`), 404, 'not_found');
  });

  const valid = () => ({ sku: uniqueSku(), name: 'Ticket', price: { amount: '1999', currency: 'JPY' }, stock: 5 });
  const badBodies: Array<[string, (b: ReturnType<typeof valid>) => unknown, string | undefined, string]> = [
    ['amount as a JSON number', (b) => ({ ...b, price: { amount: 1999, currency: 'JPY' } }), 'price.amount', 'parameter_invalid'],
    ['amount with a fraction', (b) => ({ ...b, price: { amount: '19.99', currency: 'JPY' } }), 'price.amount', 'parameter_invalid'],
    ['negative amount', (b) => ({ ...b, price: { amount: '-1', currency: 'JPY' } }), 'price.amount', 'parameter_invalid'],
    ['amount with a leading zero', (b) => ({ ...b, price: { amount: '01', currency: 'JPY' } }), 'price.amount', 'parameter_invalid'],
    ['amount beyond BIGINT', (b) => ({ ...b, price: { amount: '99999999999999999999', currency: 'JPY' } }), 'price.amount', 'parameter_invalid'],
    ['lower-case currency', (b) => ({ ...b, price: { amount: '1', currency: 'jpy' } }), 'price.currency', 'parameter_invalid'],
    ['price as an array', (b) => ({ ...b, price: ['1', 'JPY'] }), 'price', 'parameter_invalid'],
    ['missing price', ({ price: _p, ...b }) => b, 'price', 'parameter_missing'],
    ['negative stock', (b) => ({ ...b, stock: -1 }), 'stock', 'parameter_invalid'],
    ['fractional stock', (b) => ({ ...b, stock: 1.5 }), 'stock', 'parameter_invalid'],
    ['stock as a string', (b) => ({ ...b, stock: '5' }), 'stock', 'parameter_invalid'],
    ['stock beyond INTEGER', (b) => ({ ...b, stock: 2 ** 31 }), 'stock', 'parameter_invalid'],
    ['sku with a space', (b) => ({ ...b, sku: 'a b' }), 'sku', 'parameter_invalid'],
    ['sku of 65 characters', (b) => ({ ...b, sku: 'a'.repeat(65) }), 'sku', 'parameter_invalid'],
    ['name with NUL', (b) => ({ ...b, name: 'a\u0000b' }), 'name', 'parameter_invalid'],
    ['blank name', (b) => ({ ...b, name: '   ' }), 'name', 'parameter_invalid'],
    ['name as an object', (b) => ({ ...b, name: { toString: 'x' } }), 'name', 'parameter_invalid'],
    ['unknown field', (b) => ({ ...b, colour: 'red' }), 'colour', 'parameter_unknown'],
    ['constructor key', (b) => ({ ...b, constructor: { prototype: { polluted: true } } }), 'constructor', 'parameter_unknown'],
    ['top-level array', (b) => [b], undefined, 'parameter_invalid'],
    ['top-level null', () => null, undefined, 'invalid_json'],
  ];
  it.each(badBodies)('rejects %s with 400 naming the field, and stores nothing', async (_name, mutate, param, code) => {
    const body = valid();
    const res = await call('POST', '/v1/products', { body: mutate(body) });
    expectError(res, 400, 'invalid_request_error', code);
    expect(res.body.error.param).toBe(param);
    if (param) expect(res.body.error.message).toContain(param);
    expect(await prisma.product.count({ where: { sku: body.sku } })).toBe(0);
  });

  it('rejects hostile raw JSON without a 500 or prototype pollution', async () => {
    const sku = uniqueSku();
    const cases: Array<[string, number, string | undefined]> = [
      [`{"__proto__":{"polluted":true},"sku":"${sku}","name":"x","price":{"amount":"1","currency":"JPY"},"stock":1}`, 400, '__proto__'],
      [`{"sku":"${sku}","name":"x","price":{"amount":"1","currency":"JPY","__proto__":{"polluted":1}},"stock":1}`, 400, 'price.__proto__'],
      [`{"sku":"${sku}","name":"x","price":{"amount":"1","currency":"JPY"},"stock":1e400}`, 400, 'stock'],
      [`{"sku":"${sku}","name":"x","price":{"amount":"1","currency":"JPY"},"stock":123456789012345678901234567890}`, 400, 'stock'],
      [`{"sku":"${sku}","name":"x","price":{"amount":"1","currency":"JPY"},"stock":-0.0000001}`, 400, 'stock'],
      [`{"sku":"${sku}","name":"x","price":{"amount":"1","currency":"JPY"},"stock":1`, 400, undefined],
      [`"just a string"`, 400, undefined],
      [`${'['.repeat(5000)}${']'.repeat(5000)}`, 400, undefined],
      [``, 400, 'sku'],
    ];
    for (const [raw, status, param] of cases) {
      const res = await call('POST', '/v1/products', { raw });
      expectError(res, status, 'invalid_request_error');
      expect(res.body.error.param, raw.slice(0, 80)).toBe(param);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(await prisma.product.count({ where: { sku } })).toBe(0);
  });

  it('names malformed JSON as invalid_json', async () => {
    expectError(await call('POST', '/v1/products', { raw: '{"sku": ' }), 400, 'invalid_request_error', 'invalid_json');
  });

  it('answers 415 for a body that is not JSON', async () => {
    const res = await call('POST', '/v1/products', { raw: 'sku=a', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expectError(res, 415, 'invalid_request_error', 'unsupported_media_type');
    const latin1 = await call('POST', '/v1/products', { raw: '{}', headers: { 'content-type': 'application/json; charset=latin1' } });
    expectError(latin1, 415, 'invalid_request_error', 'unsupported_media_type');
  });

  it('answers 413 in JSON for a body over 100kb', async () => {
    const res = await call('POST', '/v1/products', { body: { ...valid(), name: 'x'.repeat(110 * 1024) } });
    expectError(res, 413, 'invalid_request_error', 'body_too_large');
  });
});

describe('POST /v1/checkouts', () => {
  it('starts the workflow with the idempotency key as its id and answers 201 from the stored row', async () => {
    const a = await createProduct({ price: { amount: '1500', currency: 'JPY' } });
    const b = await createProduct({ price: { amount: '250', currency: 'JPY' } });
    const key = uniqueKey();
    const shop = await prisma.merchant.findUniqueOrThrow({ where: { id: merchant.id } });
    const res = await postCheckout(checkoutBody([{ sku: a.sku, quantity: 2 }, { sku: b.sku, quantity: 1 }]), key);
    expect(res.status, res.text).toBe(201);
    const id = checkoutId(merchant.id, key);
    expect(res.body).toEqual({
      id,
      status: 'processing',
      amount: { amount: '3250', currency: 'JPY' },
      captureMethod: 'automatic',
      amountCaptured: { amount: '0', currency: 'JPY' },
      amountRefunded: { amount: '0', currency: 'JPY' },
      items: expect.arrayContaining([
        { sku: a.sku, quantity: 2, unitAmount: { amount: '1500', currency: 'JPY' } },
        { sku: b.sku, quantity: 1, unitAmount: { amount: '250', currency: 'JPY' } },
      ]),
      customerId: 'cus_123',
      createdAt: expect.stringMatching(/^\d{4}-/),
      settledAt: null,
    });

    expect(api.temporal.starts).toHaveLength(1);
    const op = api.temporal.starts[0]!;
    expect(op.workflowType).toBe('checkoutWorkflowV2');
    expect(op.options).toMatchObject({
      workflowId: id,
      taskQueue: 'payments-test',
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
    });
    expect(op.options.args).toEqual([
      {
        checkoutId: id,
        merchantId: merchant.id,
        customerId: 'cus_123',
        idempotencyKey: key,
        items: [
          { sku: a.sku, quantity: 2 },
          { sku: b.sku, quantity: 1 },
        ],
        payment: { method: 'card', token: CARD_TOKEN },
        captureMethod: 'automatic',
        // The merchant's settings, in milliseconds.
        timeouts: {
          reservationTimeoutMs: shop.reservationTimeoutSeconds * 1000,
          actionTimeoutMs: shop.actionTimeoutSeconds * 1000,
          authorizationTtlMs: shop.authorizationTtlSeconds * 1000,
          settlementDelayMs: shop.settlementDelaySeconds * 1000,
          refundWindowMs: shop.refundWindowSeconds * 1000,
        },
        // The API places the order itself, after the start; the workflow adopts it.
        placedBy: 'api',
      },
    ]);
    const attributes = op.options.typedSearchAttributes as Array<{ key: { name: string }; value: unknown }>;
    // Search attributes are stored and shown in plain text: the customer id only as its keyed pseudonym.
    expect(attributes.map((p) => [p.key.name, p.value])).toEqual([
      ['MerchantId', merchant.id],
      ['CustomerId', testCustomerSearch.value(merchant.id, 'cus_123')],
      ['PaymentStatus', 'processing'],
    ]);
    expect(JSON.stringify(attributes)).not.toContain('cus_123');
    // A plain start: no update, so the answer never waits for a worker.
    expect(api.temporal.starts[0]!.update).toBeUndefined();
    // The order, placed by the API: its row, its lines, the stock held, its event.
    const row = await prisma.checkout.findUniqueOrThrow({ where: { id }, include: { items: true, reservations: true } });
    expect(row).toMatchObject({ status: 'processing', amount: 3250n, currency: 'JPY', idempotencyKey: key });
    expect(row.reservations.map((r) => [r.sku, r.quantity, r.status]).sort()).toEqual([
      [a.sku, 2, 'held'],
      [b.sku, 1, 'held'],
    ].sort());
    expect((await prisma.product.findUniqueOrThrow({ where: { merchantId_sku: { merchantId: merchant.id, sku: a.sku } } }))).toMatchObject({ available: 8, reserved: 2 });
    expect(await prisma.event.count({ where: { resourceId: id, type: 'checkout.processing' } })).toBe(1);
  });

  it('replays a repeated request with the first answer (201), without touching Temporal', async () => {
    const p = await createProduct();
    const key = uniqueKey();
    const body = checkoutBody([{ sku: p.sku, quantity: 1 }]);
    const first = await postCheckout(body, key);
    expect(first.status).toBe(201);
    expect(header(first, 'idempotent-replayed')).toBeNull();
    // The workflow moves on after answering; the replay is still the first answer, as at Stripe.
    await prisma.checkout.update({ where: { id: first.body.id }, data: { status: 'captured' } });

    const again = await postCheckout(body, key);
    expect(again.status, again.text).toBe(201);
    expect(header(again, 'idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    expect(api.temporal.starts).toHaveLength(1);
    expect(await prisma.checkout.count({ where: { merchantId: merchant.id, idempotencyKey: key } })).toBe(1);

    // Once the key's record has expired, the checkout row still answers a retry (200, as it is now).
    await prisma.idempotencyRequest.update({ where: { merchantId_key: { merchantId: merchant.id, key } }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const late = await postCheckout(body, key);
    expect(late.status, late.text).toBe(200);
    expect(header(late, 'idempotent-replayed')).toBeNull();
    expect(late.body).toEqual({ ...first.body, status: 'captured' });
    expect(api.temporal.starts).toHaveLength(1);
  });

  it('rejects reuse of a key with different parameters with 409', async () => {
    const p = await createProduct();
    const key = uniqueKey();
    expect((await postCheckout(checkoutBody([{ sku: p.sku, quantity: 1 }]), key)).status).toBe(201);
    const res = await postCheckout(checkoutBody([{ sku: p.sku, quantity: 3 }]), key);
    expectError(res, 422, 'invalid_request_error', 'idempotency_key_reused', 'Idempotency-Key');
    const other = await postCheckout(checkoutBody([{ sku: p.sku, quantity: 1 }], { customerId: 'cus_other' }), key);
    expectError(other, 422, 'invalid_request_error', 'idempotency_key_reused');
    const manual = await postCheckout(checkoutBody([{ sku: p.sku, quantity: 1 }], { captureMethod: 'manual' }), key);
    expectError(manual, 422, 'invalid_request_error', 'idempotency_key_reused');
    // Spelling out the default is the same request: parameters are compared as parsed.
    const explicit = await postCheckout(checkoutBody([{ sku: p.sku, quantity: 1 }], { captureMethod: 'automatic' }), key);
    expect(explicit.status, explicit.text).toBe(201);
    expect(header(explicit, 'idempotent-replayed')).toBe('true');
    expect(api.temporal.starts).toHaveLength(1);
  });

  it('answers a sold-out checkout with 201 and status sold_out, and records its checkout.sold_out event', async () => {
    const p = await createProduct({ stock: 0 });
    api.temporal.onStart.checkoutWorkflowV2 = (input) => writeCheckoutAs(input, 'sold_out');
    const key = uniqueKey();
    const res = await postCheckout(checkoutBody([{ sku: p.sku, quantity: 1 }]), key);
    expect(res.status, res.text).toBe(201);
    expect(res.body.status).toBe('sold_out');
    // The fast path answered without a workflow; its status change is an event like any other,
    // waiting in the outbox for the relay of the API's task queue.
    expect(api.temporal.starts).toHaveLength(0);
    const events = await prisma.event.findMany({ where: { resourceId: res.body.id } });
    expect(events).toEqual([
      expect.objectContaining({ merchantId: merchant.id, type: 'checkout.sold_out', resourceType: 'checkout', deliveryQueue: 'payments-test', dispatchedAt: null, data: expect.objectContaining({ id: res.body.id, status: 'sold_out', amount: '1999' }) }),
    ]);
    const listed = await call('GET', '/v1/events?type=checkout.sold_out&limit=100');
    expect(listed.body.data.map((e: { resourceId: string }) => e.resourceId)).toContain(res.body.id);
    // A retry is answered from the row and records nothing twice.
    const retry = await postCheckout(checkoutBody([{ sku: p.sku, quantity: 1 }]), key);
    expect([retry.status, retry.body.id, header(retry, 'idempotent-replayed')]).toEqual([201, res.body.id, 'true']);
    expect(await prisma.event.count({ where: { resourceId: res.body.id } })).toBe(1);
  });

  it('refuses a checkout that totals zero (a product priced at zero before prices had to be positive)', async () => {
    const sku = uniqueSku();
    await prisma.product.create({ data: { merchantId: merchant.id, sku, name: 'Legacy freebie', priceAmount: 0n, currency: 'JPY', available: 5 } });
    const key = uniqueKey();
    expectError(await postCheckout(checkoutBody([{ sku, quantity: 2 }]), key), 400, 'invalid_request_error', 'amount_too_small', 'items');
    expect(api.temporal.starts).toHaveLength(0);
    expect(await prisma.checkout.count({ where: { merchantId: merchant.id, idempotencyKey: key } })).toBe(0);
    expect(await prisma.product.findUniqueOrThrow({ where: { merchantId_sku: { merchantId: merchant.id, sku } } })).toMatchObject({ available: 5, reserved: 0 });
  });

  it('keeps merchants apart whose ids and keys once joined into the same id', async () => {
    // `checkout-<merchant>-<key>` was the same for merchant `m` with key `rt-X` and `m-rt` with `X`.
    const base = `cx${RUN}`;
    const keys = { [base]: `sk_test_${randomUUID()}`, [`${base}-rt`]: `sk_test_${randomUUID()}` };
    for (const [id, key] of Object.entries(keys)) await prisma.merchant.create({ data: { id, name: id, apiKeyHash: hashApiKey(key) } });
    const answers = [];
    for (const [merchant, idempotencyKey] of [
      [base, 'rt-X'],
      [`${base}-rt`, 'X'],
    ] as const) {
      const p = await createProduct({}, keys[merchant]);
      const res = await postCheckout(checkoutBody([{ sku: p.sku, quantity: 1 }]), idempotencyKey, { key: keys[merchant] });
      expect(res.status, res.text).toBe(201);
      answers.push(res.body.id as string);
    }
    expect(answers[0]).not.toBe(answers[1]);
    expect((await call('GET', `/v1/checkouts/${answers[0]}`, { key: keys[base] })).status).toBe(200);
    expect((await call('GET', `/v1/checkouts/${answers[0]}`, { key: keys[`${base}-rt`] })).status).toBe(404);
    expect((await call('GET', `/v1/checkouts/${answers[1]}`, { key: keys[`${base}-rt`] })).status).toBe(200);
  });

  it('accepts an Idempotency-Key of 255 characters and derives an id of fixed length from it', async () => {
    const p = await createProduct();
    const key = `${randomUUID()}/${'~'.repeat(218)}`;
    expect(key).toHaveLength(255);
    const res = await postCheckout(checkoutBody([{ sku: p.sku, quantity: 1 }]), key);
    expect(res.status, res.text).toBe(201);
    expect(res.body.id).toBe(checkoutId(merchant.id, key));
    expect(res.body.id).toMatch(/^co_[0-9a-f]{32}$/);
  });

  it('scopes idempotency keys to the merchant', async () => {
    const mine = await createProduct();
    const theirs = await createProduct({}, other.key);
    const key = uniqueKey();
    const a = await postCheckout(checkoutBody([{ sku: mine.sku, quantity: 1 }]), key);
    const b = await postCheckout(checkoutBody([{ sku: theirs.sku, quantity: 1 }]), key, { key: other.key });
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(a.body.id).not.toBe(b.body.id);
    expect(b.body.id).toBe(checkoutId(other.id, key));
  });

  it('returns the stored checkout when the start is rejected because the run already closed', async () => {
    const p = await createProduct();
    const key = uniqueKey();
    // The row appears between our lookup and the start: another request's run wrote it and closed.
    api.temporal.onStart.checkoutWorkflowV2 = async (input) => {
      await writeCheckoutAs(input, 'failed');
      throw new WorkflowExecutionAlreadyStartedError('Workflow execution already started', input.checkoutId, 'checkoutWorkflowV2');
    };
    const res = await postCheckout(checkoutBody([{ sku: p.sku, quantity: 1 }]), key);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id: checkoutId(merchant.id, key), status: 'failed' });
  });

  it('answers 409 when the run closed without ever writing a checkout', async () => {
    const p = await createProduct();
    const key = uniqueKey();
    api.temporal.onStart.checkoutWorkflowV2 = async (input) => {
      throw new WorkflowExecutionAlreadyStartedError('Workflow execution already started', input.checkoutId, 'checkoutWorkflowV2');
    };
    expectError(await postCheckout(checkoutBody([{ sku: p.sku, quantity: 1 }]), key), 409, 'conflict', 'idempotency_key_closed');
    expect(await prisma.checkout.count({ where: { merchantId: merchant.id, idempotencyKey: key } })).toBe(0);
  });

  it('answers a Temporal fault with a generic 500 and logs it', async () => {
    const p = await createProduct();
    api.temporal.onStart.checkoutWorkflowV2 = async () => {
      throw new Error('14 UNAVAILABLE: internal-detail-xyz');
    };
    const res = await postCheckout(checkoutBody([{ sku: p.sku, quantity: 1 }]));
    expectError(res, 500, 'api_error', 'internal_error');
    expect(res.text).not.toContain('internal-detail-xyz');
    expect(logLines.some((l) => l.includes('internal-detail-xyz') && l.includes('"level":"error"'))).toBe(true);
  });

  it('answers 503 with Retry-After when the reservation is not answered in time', async () => {
    const slow = await startCheckoutApi({ reservationTimeoutMs: 200 });
    slow.temporal.onStart.checkoutWorkflowV2 = (_input, signal) =>
      new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('cancelled'))));
    const p = await createProduct();
    const key = uniqueKey();
    const res = await postCheckout(checkoutBody([{ sku: p.sku, quantity: 1 }]), key, { base: slow.url });
    expectError(res, 503, 'api_error', 'checkout_pending');
    expect(header(res, 'retry-after')).toBe('1');
    expect(await prisma.checkout.count({ where: { merchantId: merchant.id, idempotencyKey: key } })).toBe(0);
  });

  describe('rejects bad requests before anything starts', () => {
    let sku: string;
    let usd: string;
    beforeAll(async () => {
      sku = (await createProduct()).sku;
      usd = (await createProduct({ price: { amount: '100', currency: 'USD' } })).sku;
    });

    it('requires a well-formed Idempotency-Key', async () => {
      const body = checkoutBody([{ sku, quantity: 1 }]);
      expectError(await postCheckout(body, null), 400, 'invalid_request_error', 'idempotency_key_missing', 'Idempotency-Key');
      for (const key of ['has space', 'a'.repeat(256), 'clé', 'tab\there']) {
        expectError(await postCheckout(body, key), 400, 'invalid_request_error', 'idempotency_key_invalid', 'Idempotency-Key');
      }
      expect(api.temporal.starts).toHaveLength(0);
    });

    const cases: Array<[string, () => unknown, string, string]> = [
      ['duplicate skus', () => checkoutBody([{ sku, quantity: 1 }, { sku, quantity: 2 }]), 'items[1].sku', 'parameter_invalid'],
      ['quantity 0', () => checkoutBody([{ sku, quantity: 0 }]), 'items[0].quantity', 'parameter_invalid'],
      ['quantity 1001', () => checkoutBody([{ sku, quantity: 1001 }]), 'items[0].quantity', 'parameter_invalid'],
      ['fractional quantity', () => checkoutBody([{ sku, quantity: 1.5 }]), 'items[0].quantity', 'parameter_invalid'],
      ['quantity as a string', () => checkoutBody([{ sku, quantity: '1' } as never]), 'items[0].quantity', 'parameter_invalid'],
      ['no items', () => checkoutBody([]), 'items', 'parameter_invalid'],
      ['51 items', () => checkoutBody(Array.from({ length: 51 }, (_, i) => ({ sku: `s${i}`, quantity: 1 }))), 'items', 'parameter_invalid'],
      ['items as an object', () => ({ ...checkoutBody([]), items: { 0: { sku, quantity: 1 } } }), 'items', 'parameter_invalid'],
      ['an item as a string', () => ({ ...checkoutBody([]), items: [sku] }), 'items[0]', 'parameter_invalid'],
      ['missing sku in an item', () => ({ ...checkoutBody([]), items: [{ quantity: 1 }] }), 'items[0].sku', 'parameter_missing'],
      ['an unknown sku', () => checkoutBody([{ sku, quantity: 1 }, { sku: uniqueSku(), quantity: 1 }]), 'items[1].sku', 'product_not_found'],
      ["another merchant's sku", () => checkoutBody([{ sku: `nope-${RUN}`, quantity: 1 }]), 'items[0].sku', 'product_not_found'],
      ['mixed currencies', () => checkoutBody([{ sku, quantity: 1 }, { sku: usd, quantity: 1 }]), 'items[1].sku', 'currency_mismatch'],
      ['missing customerId', () => ({ items: [{ sku, quantity: 1 }], payment: { method: 'card', token: 'tok_visa' } }), 'customerId', 'parameter_missing'],
      ['customerId of 101 characters', () => checkoutBody([{ sku, quantity: 1 }], { customerId: 'c'.repeat(101) }), 'customerId', 'parameter_invalid'],
      ['customerId with a newline', () => checkoutBody([{ sku, quantity: 1 }], { customerId: 'cus\n1' }), 'customerId', 'parameter_invalid'],
      ['another payment method', () => checkoutBody([{ sku, quantity: 1 }], { payment: { method: 'paypal', token: 'x' } }), 'payment.method', 'parameter_invalid'],
      ['missing token', () => checkoutBody([{ sku, quantity: 1 }], { payment: { method: 'card' } }), 'payment.token', 'parameter_missing'],
      ['empty token', () => checkoutBody([{ sku, quantity: 1 }], { payment: { method: 'card', token: '' } }), 'payment.token', 'parameter_invalid'],
      ['unknown field in an item', () => checkoutBody([{ sku, quantity: 1, price: '1' } as never]), 'items[0].price', 'parameter_unknown'],
      ['an unknown captureMethod', () => checkoutBody([{ sku, quantity: 1 }], { captureMethod: 'later' }), 'captureMethod', 'parameter_invalid'],
      ['captureMethod in the wrong case', () => checkoutBody([{ sku, quantity: 1 }], { captureMethod: 'Manual' }), 'captureMethod', 'parameter_invalid'],
      ['captureMethod null', () => checkoutBody([{ sku, quantity: 1 }], { captureMethod: null }), 'captureMethod', 'parameter_invalid'],
    ];
    it.each(cases)('%s', async (_name, body, param, code) => {
      const key = uniqueKey();
      const res = await postCheckout(body(), key);
      expectError(res, 400, 'invalid_request_error', code, param);
      expect(res.body.error.message).toContain(param);
      expect(api.temporal.starts).toHaveLength(0);
      expect(await prisma.checkout.count({ where: { idempotencyKey: key } })).toBe(0);
    });

    it('rejects a total that cannot be stored', async () => {
      const expensive = (await createProduct({ price: { amount: '999999999999999999', currency: 'JPY' } })).sku;
      const res = await postCheckout(checkoutBody([{ sku: expensive, quantity: 1000 }]));
      expectError(res, 400, 'invalid_request_error', 'amount_too_large', 'items');
      expect(api.temporal.starts).toHaveLength(0);
    });
  });
});

describe('GET /v1/checkouts/:id', () => {
  it('shows the stored checkout with its items and payment attempts', async () => {
    const p = await createProduct({ price: { amount: '700', currency: 'JPY' } });
    const created = await postCheckout(checkoutBody([{ sku: p.sku, quantity: 3 }]));
    expect(created.status).toBe(201);
    const id: string = created.body.id;
    await prisma.paymentAttempt.create({
      data: { idempotencyKey: `${id}:authorize`, checkoutId: id, operation: 'authorize', status: 'declined', amount: 2100n, currency: 'JPY', declineCode: 'card_declined' },
    });
    await prisma.checkout.update({ where: { id }, data: { status: 'failed', failureCode: 'card_declined', failureMessage: 'card declined: card_declined' } });

    const res = await call('GET', `/v1/checkouts/${encodeURIComponent(id)}`);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({
      ...created.body,
      status: 'failed',
      failure: { code: 'card_declined', message: 'card declined: card_declined' },
      paymentAttempts: [
        { operation: 'authorize', status: 'declined', amount: { amount: '2100', currency: 'JPY' }, declineCode: 'card_declined', createdAt: expect.any(String) },
      ],
      refunds: [],
    });
  });

  it("answers 404 for another merchant's checkout and for unknown ids", async () => {
    const p = await createProduct();
    const created = await postCheckout(checkoutBody([{ sku: p.sku, quantity: 1 }]));
    expectError(await call('GET', `/v1/checkouts/${encodeURIComponent(created.body.id)}`, { key: other.key }), 404, 'not_found');
    expectError(await call('GET', `/v1/checkouts/checkout-${merchant.id}-${uniqueKey()}`), 404, 'not_found');
    expectError(await call('GET', `/v1/checkouts/${'x'.repeat(2000)}`), 404, 'not_found');
  });
});

// ---------------------------------------------------------------------------------------------
// Settings, and what they do to new checkouts

const DEFAULT_SETTINGS = {
  reservationTimeoutSeconds: 600,
  actionTimeoutSeconds: 900,
  authorizationTtlSeconds: 604_800,
  settlementDelaySeconds: 172_800,
  refundWindowSeconds: 15_552_000,
};
/** Only the settings columns of a merchant row. */
const settingsColumns = {
  select: { reservationTimeoutSeconds: true, actionTimeoutSeconds: true, authorizationTtlSeconds: true, settlementDelaySeconds: true, refundWindowSeconds: true },
} as const;

describe('settings', () => {
  it("shows a new merchant the default timings, which are the domain's defaults", async () => {
    const m = await createMerchant(prisma, 'own');
    const res = await call('GET', '/v1/settings', { key: m.key });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual(DEFAULT_SETTINGS);
    expect({
      reservationTimeoutMs: res.body.reservationTimeoutSeconds * 1000,
      actionTimeoutMs: res.body.actionTimeoutSeconds * 1000,
      authorizationTtlMs: res.body.authorizationTtlSeconds * 1000,
      settlementDelayMs: res.body.settlementDelaySeconds * 1000,
      refundWindowMs: res.body.refundWindowSeconds * 1000,
    }).toEqual(DEFAULT_CHECKOUT_TIMEOUTS);
  });

  it("changes any subset, keeps the rest and leaves other merchants' settings alone", async () => {
    const m = await createMerchant(prisma, 'own');
    const mineBefore = await prisma.merchant.findUniqueOrThrow({ where: { id: merchant.id }, ...settingsColumns });
    const changes = { reservationTimeoutSeconds: 120, settlementDelaySeconds: 0, refundWindowSeconds: 0 };
    const res = await call('PATCH', '/v1/settings', { key: m.key, body: changes });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({ ...DEFAULT_SETTINGS, ...changes });
    expect((await call('GET', '/v1/settings', { key: m.key })).body).toEqual(res.body);
    expect(await prisma.merchant.findUniqueOrThrow({ where: { id: m.id }, ...settingsColumns })).toEqual(res.body);
    expect(await prisma.merchant.findUniqueOrThrow({ where: { id: merchant.id }, ...settingsColumns })).toEqual(mineBefore);

    const again = await call('PATCH', '/v1/settings', { key: m.key, body: { actionTimeoutSeconds: 30, authorizationTtlSeconds: 400 * 86_400 } });
    expect(again.body).toEqual({ ...DEFAULT_SETTINGS, ...changes, actionTimeoutSeconds: 30, authorizationTtlSeconds: 400 * 86_400 });
  });

  it('treats an empty patch, or none, as no change', async () => {
    const m = await createMerchant(prisma, 'own');
    for (const opts of [{ body: {} }, {}]) {
      const res = await call('PATCH', '/v1/settings', { key: m.key, ...opts });
      expect(res.status, res.text).toBe(200);
      expect(res.body).toEqual(DEFAULT_SETTINGS);
    }
  });

  const badPatches: Array<[string, unknown, string | undefined, string]> = [
    ['a reservation timeout of 0', { reservationTimeoutSeconds: 0 }, 'reservationTimeoutSeconds', 'parameter_invalid'],
    ['an action timeout of 0', { actionTimeoutSeconds: 0 }, 'actionTimeoutSeconds', 'parameter_invalid'],
    ['an authorization TTL of 0', { authorizationTtlSeconds: 0 }, 'authorizationTtlSeconds', 'parameter_invalid'],
    ['a negative settlement delay', { settlementDelaySeconds: -1 }, 'settlementDelaySeconds', 'parameter_invalid'],
    ['a negative refund window', { refundWindowSeconds: -1 }, 'refundWindowSeconds', 'parameter_invalid'],
    ['a fraction of a second', { reservationTimeoutSeconds: 1.5 }, 'reservationTimeoutSeconds', 'parameter_invalid'],
    ['seconds as a string', { actionTimeoutSeconds: '60' }, 'actionTimeoutSeconds', 'parameter_invalid'],
    ['null', { refundWindowSeconds: null }, 'refundWindowSeconds', 'parameter_invalid'],
    ['more than 400 days', { refundWindowSeconds: 400 * 86_400 + 1 }, 'refundWindowSeconds', 'parameter_invalid'],
    ['milliseconds by mistake', { settlementDelaySeconds: 172_800_000 }, 'settlementDelaySeconds', 'parameter_invalid'],
    ['an unknown setting', { reservationTimeoutSeconds: 60, captureMethod: 'manual' }, 'captureMethod', 'parameter_unknown'],
    ['a top-level array', [{ reservationTimeoutSeconds: 60 }], undefined, 'parameter_invalid'],
  ];
  it.each(badPatches)('rejects %s with 400 and changes nothing', async (_name, body, param, code) => {
    const m = await createMerchant(prisma, 'own');
    const res = await call('PATCH', '/v1/settings', { key: m.key, body });
    expectError(res, 400, 'invalid_request_error', code);
    expect(res.body.error.param).toBe(param);
    expect(await prisma.merchant.findUniqueOrThrow({ where: { id: m.id }, ...settingsColumns })).toEqual(DEFAULT_SETTINGS);
  });

  it('requires a key', async () => {
    expectError(await call('GET', '/v1/settings', { key: null }), 401, 'authentication_error');
    expectError(await call('PATCH', '/v1/settings', { key: null, body: { refundWindowSeconds: 0 } }), 401, 'authentication_error');
  });

  it('gives checkouts created afterwards the new timings and the requested capture method', async () => {
    const m = await createMerchant(prisma, 'own');
    const p = await createProduct({}, m.key);
    const first = await postCheckout(checkoutBody([{ sku: p.sku, quantity: 1 }]), uniqueKey(), { key: m.key });
    expect(first.status, first.text).toBe(201);
    const patch = { reservationTimeoutSeconds: 60, actionTimeoutSeconds: 30, authorizationTtlSeconds: 3600, settlementDelaySeconds: 0, refundWindowSeconds: 86_400 };
    expect((await call('PATCH', '/v1/settings', { key: m.key, body: patch })).status).toBe(200);
    const second = await postCheckout(checkoutBody([{ sku: p.sku, quantity: 1 }], { captureMethod: 'manual' }), uniqueKey(), { key: m.key });
    expect(second.status, second.text).toBe(201);

    const [before, after] = api.temporal.starts.map((c) => c.input);
    expect(before).toMatchObject({ captureMethod: 'automatic', timeouts: DEFAULT_CHECKOUT_TIMEOUTS });
    expect(after).toMatchObject({
      captureMethod: 'manual',
      timeouts: { reservationTimeoutMs: 60_000, actionTimeoutMs: 30_000, authorizationTtlMs: 3_600_000, settlementDelayMs: 0, refundWindowMs: 86_400_000 },
    });
    expect(second.body.captureMethod).toBe('manual');
    expect((await prisma.checkout.findUniqueOrThrow({ where: { id: second.body.id } })).captureMethod).toBe('manual');
  });
});

// ---------------------------------------------------------------------------------------------
// Checkout actions

const actionUrl = (id: string, action: string) => `/v1/checkouts/${encodeURIComponent(id)}/${action}`;

/** A checkout of 2 x 1500 JPY that the workflow has moved to `status`. */
async function checkoutAt(status: CheckoutStatus, captureMethod: 'automatic' | 'manual' = 'automatic'): Promise<string> {
  const p = await createProduct({ price: { amount: '1500', currency: 'JPY' } });
  const res = await postCheckout(checkoutBody([{ sku: p.sku, quantity: 2 }], { captureMethod }));
  expect(res.status, res.text).toBe(201);
  const captured = ['captured', 'settled', 'partially_refunded', 'refunded'].includes(status);
  await prisma.checkout.update({ where: { id: res.body.id }, data: { status, amountCaptured: captured ? 3000n : 0n } });
  api.temporal.starts.length = 0;
  return res.body.id as string;
}

/** The workflow's capture: takes the amount, writes the row, then answers. */
const captureAs: UpdateBehaviour = async ({ workflowId, args }) => {
  const { amount } = args[0] as { amount?: string };
  const row = await prisma.checkout.findUniqueOrThrow({ where: { id: workflowId } });
  await prisma.checkout.update({ where: { id: workflowId }, data: { status: 'captured', amountCaptured: amount === undefined ? row.amount : BigInt(amount) } });
  return snapshotOf(workflowId);
};

/** An update whose handler moves the checkout to `status` and answers with the snapshot. */
function moveTo(status: CheckoutStatus, extra: { amountCaptured?: bigint; failureCode?: string } = {}): UpdateBehaviour {
  return async ({ workflowId }) => {
    await prisma.checkout.update({ where: { id: workflowId }, data: { status, ...extra } });
    return snapshotOf(workflowId);
  };
}

/** An update that never answers, until the API gives up on it. */
const hang: UpdateBehaviour = (_call, signal) =>
  new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('13 CANCELLED: the call was cancelled'))));

describe('POST /v1/checkouts/:id/capture', () => {
  it('captures part of a manual checkout and answers 200 with the checkout as stored after the update', async () => {
    const id = await checkoutAt('requires_capture', 'manual');
    api.temporal.update = captureAs;
    const res = await call('POST', actionUrl(id, 'capture'), { body: { amount: { amount: '1200', currency: 'JPY' } } });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({
      id,
      status: 'captured',
      captureMethod: 'manual',
      amount: { amount: '3000', currency: 'JPY' },
      amountCaptured: { amount: '1200', currency: 'JPY' },
      amountRefunded: { amount: '0', currency: 'JPY' },
      settledAt: null,
      refunds: [],
    });
    expect(api.temporal.updates).toEqual([{ workflowId: id, name: 'capture', args: [{ amount: '1200' }], updateId: `${id}:capture:1200` }]);
    expect((await call('GET', `/v1/checkouts/${encodeURIComponent(id)}`)).body).toEqual(res.body);
  });

  it('captures everything authorized without an amount, and a retry joins the same update', async () => {
    const id = await checkoutAt('requires_capture', 'manual');
    api.temporal.update = captureAs;
    const first = await call('POST', actionUrl(id, 'capture'));
    expect(first.status, first.text).toBe(200);
    expect(first.body.amountCaptured).toEqual({ amount: '3000', currency: 'JPY' });
    expect((await call('POST', actionUrl(id, 'capture'), { body: {} })).status).toBe(200);
    expect(api.temporal.updates.map((u) => [u.args, u.updateId])).toEqual([
      [[{}], `${id}:capture:all`],
      [[{}], `${id}:capture:all`],
    ]);
  });

  it("answers 409 with the workflow's reason when the checkout cannot be captured, and changes nothing", async () => {
    const id = await checkoutAt('processing', 'manual');
    api.temporal.update = async () => {
      throw rejected(FailureType.InvalidCheckoutState, 'checkout is processing, not requires_capture');
    };
    const res = await call('POST', actionUrl(id, 'capture'));
    expectError(res, 409, 'conflict', 'checkout_state_invalid');
    expect(res.body.error.message).toContain('processing');
    expect(await prisma.checkout.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: 'processing', amountCaptured: 0n });
  });

  it('answers 400 amount_invalid when the workflow finds the amount out of range, and changes nothing', async () => {
    const id = await checkoutAt('requires_capture', 'manual');
    api.temporal.update = async () => {
      throw rejected(FailureType.InvalidAmount, 'capture of 3001 exceeds the capturable 3000');
    };
    const res = await call('POST', actionUrl(id, 'capture'), { body: { amount: { amount: '3001', currency: 'JPY' } } });
    expectError(res, 400, 'invalid_request_error', 'amount_invalid', 'amount');
    expect(res.body.error.message).toContain('3000');
    expect(await prisma.checkout.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: 'requires_capture', amountCaptured: 0n });
  });

  const badCaptures: Array<[string, unknown, string, string]> = [
    ['another currency', { amount: { amount: '1000', currency: 'USD' } }, 'amount.currency', 'currency_mismatch'],
    ['a zero amount', { amount: { amount: '0', currency: 'JPY' } }, 'amount.amount', 'parameter_invalid'],
    ['an amount as a JSON number', { amount: { amount: 1000, currency: 'JPY' } }, 'amount.amount', 'parameter_invalid'],
    ['an amount without currency', { amount: '1000' }, 'amount', 'parameter_invalid'],
    ['an unknown field', { amount: { amount: '1000', currency: 'JPY' }, finalCapture: true }, 'finalCapture', 'parameter_unknown'],
  ];
  it.each(badCaptures)('rejects %s with 400 before asking the workflow', async (_name, body, param, code) => {
    const id = await checkoutAt('requires_capture', 'manual');
    expectError(await call('POST', actionUrl(id, 'capture'), { body }), 400, 'invalid_request_error', code, param);
    expect(api.temporal.updates).toHaveLength(0);
  });
});

describe('POST /v1/checkouts/:id/cancel', () => {
  it('cancels a checkout and answers 200 with it, with or without an empty body', async () => {
    const id = await checkoutAt('processing');
    api.temporal.update = moveTo('canceled', { failureCode: 'canceled' });
    const res = await call('POST', actionUrl(id, 'cancel'));
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id, status: 'canceled', amountCaptured: { amount: '0', currency: 'JPY' } });
    expect((await call('POST', actionUrl(id, 'cancel'), { body: {} })).status).toBe(200);
    expect(api.temporal.updates).toEqual([
      { workflowId: id, name: 'cancel', args: [], updateId: `${id}:cancel` },
      { workflowId: id, name: 'cancel', args: [], updateId: `${id}:cancel` },
    ]);
    expect((await prisma.checkout.findUniqueOrThrow({ where: { id } })).status).toBe('canceled');
  });

  it('answers 409 checkout_already_captured when a capture won the race', async () => {
    const id = await checkoutAt('processing');
    api.temporal.update = moveTo('captured', { amountCaptured: 3000n });
    expectError(await call('POST', actionUrl(id, 'cancel')), 409, 'conflict', 'checkout_already_captured');
    expect(await prisma.checkout.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: 'captured', amountCaptured: 3000n });
  });

  it('answers 409 when the payment failed before the cancel took effect', async () => {
    const id = await checkoutAt('processing');
    api.temporal.update = moveTo('failed', { failureCode: 'card_declined' });
    const res = await call('POST', actionUrl(id, 'cancel'));
    // The code says what happened instead, and the error carries the checkout's status.
    expectError(res, 409, 'conflict', 'checkout_failed');
    expect(res.body.error.checkout).toEqual({ id, status: 'failed' });
    expect(res.body.error.message).toContain('failed');
  });

  it('answers 409 when the workflow rejects the cancel', async () => {
    const id = await checkoutAt('settled');
    api.temporal.update = async () => {
      throw rejected(FailureType.InvalidCheckoutState, 'checkout is settled; refund it instead of canceling');
    };
    const res = await call('POST', actionUrl(id, 'cancel'));
    expectError(res, 409, 'conflict', 'checkout_state_invalid');
    expect(res.body.error.message).toContain('settled');
    expect((await prisma.checkout.findUniqueOrThrow({ where: { id } })).status).toBe('settled');
  });

  it('takes no parameters', async () => {
    const id = await checkoutAt('processing');
    expectError(await call('POST', actionUrl(id, 'cancel'), { body: { reason: 'fraud' } }), 400, 'invalid_request_error', 'parameter_unknown', 'reason');
    expectError(await call('POST', actionUrl(id, 'cancel'), { body: [] }), 400, 'invalid_request_error', 'parameter_invalid');
    expect(api.temporal.updates).toHaveLength(0);
  });
});

describe('an action answers 2xx only when it took effect', () => {
  it('capture: 409 checkout_expired, with the checkout, when the authorization expired while it waited', async () => {
    const id = await checkoutAt('requires_capture', 'manual');
    // A run of the first checkout type answers the capture with the snapshot it ended in.
    api.temporal.update = moveTo('expired', { failureCode: 'expired' });
    const res = await call('POST', actionUrl(id, 'capture'), { body: {} });
    expectError(res, 409, 'conflict', 'checkout_expired');
    expect(res.body.error.checkout).toEqual({ id, status: 'expired' });
  });

  it('capture: the workflow\u2019s own code and status when it refuses, e.g. while the checkout is being canceled', async () => {
    const id = await checkoutAt('requires_capture', 'manual');
    api.temporal.update = async () => {
      throw rejected(FailureType.InvalidCheckoutState, 'checkout is canceled (canceled by the merchant); it cannot capture any more', { code: 'checkout_canceled', status: 'canceled' });
    };
    const res = await call('POST', actionUrl(id, 'capture'), { body: {} });
    expectError(res, 409, 'conflict', 'checkout_canceled');
    expect(res.body.error.checkout).toEqual({ id, status: 'canceled' });
    expect((await prisma.checkout.findUniqueOrThrow({ where: { id } })).status).toBe('requires_capture');
  });

  it('confirm: 409 checkout_expired when the stock hold ran out before the result was used', async () => {
    const id = await checkoutAt('requires_action');
    api.temporal.update = moveTo('expired', { failureCode: 'expired' });
    const res = await call('POST', actionUrl(id, 'confirm'), { body: { result: 'succeeded' } });
    expectError(res, 409, 'conflict', 'checkout_expired');
  });

  it('a refused action with an Idempotency-Key replays the same 409', async () => {
    const id = await checkoutAt('requires_capture', 'manual');
    api.temporal.update = moveTo('expired', { failureCode: 'expired' });
    const key = uniqueKey();
    const first = await call('POST', actionUrl(id, 'capture'), { body: {}, headers: { 'idempotency-key': key } });
    const again = await call('POST', actionUrl(id, 'capture'), { body: {}, headers: { 'idempotency-key': key } });
    expectError(first, 409, 'conflict', 'checkout_expired');
    expect([again.status, again.body]).toEqual([409, first.body]);
  });
});

describe('POST /v1/checkouts/:id/confirm', () => {
  it("delivers the customer's 3-D Secure result and answers 200 with the checkout", async () => {
    const id = await checkoutAt('requires_action');
    api.temporal.update = moveTo('processing');
    const res = await call('POST', actionUrl(id, 'confirm'), { body: { result: 'succeeded' } });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id, status: 'processing' });
    expect(api.temporal.updates).toEqual([{ workflowId: id, name: 'confirm', args: [{ result: 'succeeded' }], updateId: `${id}:confirm:succeeded` }]);
  });

  it('shows a failed challenge as a failed checkout', async () => {
    const id = await checkoutAt('requires_action');
    api.temporal.update = moveTo('failed', { failureCode: 'authentication_failed' });
    const res = await call('POST', actionUrl(id, 'confirm'), { body: { result: 'failed' } });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ status: 'failed', failure: { code: 'authentication_failed' } });
    expect(api.temporal.updates[0]!.updateId).toBe(`${id}:confirm:failed`);
  });

  it('answers 409 when the checkout is not waiting for 3-D Secure', async () => {
    const id = await checkoutAt('processing');
    api.temporal.update = async () => {
      throw rejected(FailureType.InvalidCheckoutState, 'checkout is processing, not requires_action');
    };
    const res = await call('POST', actionUrl(id, 'confirm'), { body: { result: 'succeeded' } });
    expectError(res, 409, 'conflict', 'checkout_state_invalid');
    expect(res.body.error.message).toContain('processing');
  });

  const badConfirms: Array<[string, { body?: unknown }, string, string]> = [
    ['no body', {}, 'result', 'parameter_missing'],
    ['no result', { body: {} }, 'result', 'parameter_missing'],
    ['an unknown result', { body: { result: 'ok' } }, 'result', 'parameter_invalid'],
    ['a result as a boolean', { body: { result: true } }, 'result', 'parameter_invalid'],
    ['an unknown field', { body: { result: 'succeeded', cres: 'x' } }, 'cres', 'parameter_unknown'],
  ];
  it.each(badConfirms)('rejects %s with 400 before asking the workflow', async (_name, opts, param, code) => {
    const id = await checkoutAt('requires_action');
    expectError(await call('POST', actionUrl(id, 'confirm'), opts), 400, 'invalid_request_error', code, param);
    expect(api.temporal.updates).toHaveLength(0);
  });
});

describe('POST /v1/checkouts/:id/refunds', () => {
  const expectedRefundId = (id: string, key: string) => `re_${createHash('sha256').update(`${id}:${key}`).digest('hex').slice(0, 32)}`;
  const refund = (id: string, opts: { body?: unknown; key?: string; base?: string } = {}) =>
    call('POST', actionUrl(id, 'refunds'), {
      ...(opts.body !== undefined ? { body: opts.body } : {}),
      ...(opts.base !== undefined ? { base: opts.base } : {}),
      headers: opts.key === undefined ? {} : { 'idempotency-key': opts.key },
    });

  /** The workflow's refund handler: the pending row first, then the network, then the outcome. */
  const startRefund = async ({ workflowId, args }: UpdateCall) => {
    const { refundId, amount } = args[0] as { refundId: string; amount?: string };
    const row = await prisma.checkout.findUniqueOrThrow({ where: { id: workflowId } });
    const value = amount === undefined ? row.amountCaptured - row.amountRefunded : BigInt(amount);
    await prisma.refund.create({ data: { id: refundId, checkoutId: row.id, merchantId: row.merchantId, amount: value, currency: row.currency, status: 'pending' } });
  };
  const finishRefund = async ({ workflowId, args }: UpdateCall, outcome: 'succeeded' | 'failed'): Promise<RefundSnapshot> => {
    const { refundId } = args[0] as { refundId: string };
    const r = await prisma.refund.update({
      where: { id: refundId },
      data: { status: outcome, failureCode: outcome === 'failed' ? 'card_network_rejected' : null },
    });
    if (outcome === 'succeeded') {
      const row = await prisma.checkout.findUniqueOrThrow({ where: { id: workflowId } });
      const refunded = row.amountRefunded + r.amount;
      await prisma.checkout.update({
        where: { id: workflowId },
        data: { amountRefunded: refunded, status: refunded >= row.amountCaptured ? 'refunded' : 'partially_refunded' },
      });
    }
    return {
      refundId,
      amount: { amount: r.amount.toString(), currency: r.currency },
      status: outcome,
      ...(outcome === 'failed' ? { failureCode: 'card_network_rejected' } : {}),
    };
  };
  const refundAs =
    (outcome: 'succeeded' | 'failed' = 'succeeded'): UpdateBehaviour =>
    async (c) => {
      await startRefund(c);
      return finishRefund(c, outcome);
    };

  it('refunds part of a captured checkout and answers 201 with the stored refund', async () => {
    const id = await checkoutAt('captured');
    api.temporal.update = refundAs();
    const res = await refund(id, { body: { amount: { amount: '1000', currency: 'JPY' } } });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^re_[0-9a-f]{32}$/),
      checkoutId: id,
      amount: { amount: '1000', currency: 'JPY' },
      status: 'succeeded',
      failureCode: null,
      createdAt: expect.stringMatching(/^\d{4}-/),
    });
    const refundId: string = res.body.id;
    expect(api.temporal.updates).toEqual([{ workflowId: id, name: 'refund', args: [{ refundId, amount: '1000' }], updateId: refundId }]);
    expect(await prisma.refund.findUniqueOrThrow({ where: { id: refundId } })).toMatchObject({ checkoutId: id, merchantId: merchant.id, amount: 1000n, status: 'succeeded' });

    const got = await call('GET', `/v1/checkouts/${encodeURIComponent(id)}`);
    expect(got.body).toMatchObject({
      status: 'partially_refunded',
      amountCaptured: { amount: '3000', currency: 'JPY' },
      amountRefunded: { amount: '1000', currency: 'JPY' },
      refunds: [{ id: refundId, amount: { amount: '1000', currency: 'JPY' }, status: 'succeeded', failureCode: null, createdAt: res.body.createdAt }],
    });
  });

  it('refunds everything still refundable when no amount is given, with a new id per request without a key', async () => {
    const id = await checkoutAt('captured');
    api.temporal.update = refundAs();
    const first = await refund(id, { body: { amount: { amount: '1000', currency: 'JPY' } } });
    const rest = await refund(id);
    expect([first.status, rest.status]).toEqual([201, 201]);
    expect(rest.body.amount).toEqual({ amount: '2000', currency: 'JPY' });
    expect(rest.body.id).not.toBe(first.body.id);
    expect(api.temporal.updates[1]!.args).toEqual([{ refundId: rest.body.id }]);
    expect(await prisma.checkout.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: 'refunded', amountRefunded: 3000n });
  });

  it('derives the refund id from the Idempotency-Key, so a retry after a timeout joins the first refund', async () => {
    const slow = await startCheckoutApi({ updateTimeoutMs: 300 });
    const id = await checkoutAt('captured');
    const key = uniqueKey();
    slow.temporal.update = async (c, signal) => {
      await startRefund(c); // accepted and under way when the API stops waiting
      return hang(c, signal);
    };
    const first = await refund(id, { key, body: { amount: { amount: '500', currency: 'JPY' } }, base: slow.url });
    expectError(first, 503, 'api_error', 'checkout_update_pending');
    expect(header(first, 'retry-after')).toBe('1');
    expect(first.body.error.message).toContain('Idempotency-Key');

    slow.temporal.update = (c) => finishRefund(c, 'succeeded');
    const retry = await refund(id, { key, body: { amount: { amount: '500', currency: 'JPY' } }, base: slow.url });
    expect(retry.status, retry.text).toBe(200); // the refund existed before this request
    const refundId = expectedRefundId(id, key);
    expect(retry.body).toMatchObject({ id: refundId, amount: { amount: '500', currency: 'JPY' }, status: 'succeeded' });
    expect(slow.temporal.updates.map((u) => [u.updateId, (u.args[0] as { refundId: string }).refundId])).toEqual([
      [refundId, refundId],
      [refundId, refundId],
    ]);
    expect(await prisma.refund.count({ where: { checkoutId: id } })).toBe(1);
  });

  it('replays a finished refund from the table and rejects its key with another amount', async () => {
    const id = await checkoutAt('captured');
    const other = await checkoutAt('captured');
    const key = uniqueKey();
    api.temporal.update = refundAs();
    const first = await refund(id, { key, body: { amount: { amount: '1000', currency: 'JPY' } } });
    expect(first.status, first.text).toBe(201);
    expect(first.body.id).toBe(expectedRefundId(id, key));

    const again = await refund(id, { key, body: { amount: { amount: '1000', currency: 'JPY' } } });
    expect(again.status, again.text).toBe(201); // the first answer, replayed
    expect(header(again, 'idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    // Leaving the amount out is another request under the key (Stripe compares parameters).
    expectError(await refund(id, { key }), 422, 'invalid_request_error', 'idempotency_key_reused', 'Idempotency-Key');
    expect(api.temporal.updates).toHaveLength(1);

    const reused = await refund(id, { key, body: { amount: { amount: '500', currency: 'JPY' } } });
    expectError(reused, 422, 'invalid_request_error', 'idempotency_key_reused', 'Idempotency-Key');
    expect(api.temporal.updates).toHaveLength(1);

    // A key belongs to one request of the merchant: another checkout's refund needs its own key.
    const elsewhere = await refund(other, { key, body: { amount: { amount: '1000', currency: 'JPY' } } });
    expectError(elsewhere, 422, 'invalid_request_error', 'idempotency_key_reused', 'Idempotency-Key');
    const ownKey = await refund(other, { key: uniqueKey(), body: { amount: { amount: '1000', currency: 'JPY' } } });
    expect(ownKey.status, ownKey.text).toBe(201);
    expect(ownKey.body.id).not.toBe(first.body.id);
    expect(await prisma.refund.count({ where: { checkoutId: id } })).toBe(1);
    expect(await prisma.refund.count({ where: { checkoutId: other } })).toBe(1);
  });

  it('rejects a concurrent request with the same key and another amount after it joined the first', async () => {
    const id = await checkoutAt('captured');
    const key = uniqueKey();
    // The workflow answers a repeated refund id with the first refund, whatever the amount.
    api.temporal.update = refundAs();
    expect((await refund(id, { key, body: { amount: { amount: '700', currency: 'JPY' } } })).status).toBe(201);
    await prisma.refund.update({ where: { id: expectedRefundId(id, key) }, data: { status: 'pending' } });
    api.temporal.update = async (c) => finishRefund(c, 'succeeded');
    expectError(await refund(id, { key, body: { amount: { amount: '900', currency: 'JPY' } } }), 422, 'invalid_request_error', 'idempotency_key_reused');
  });

  it('answers a refund the card network refused with 201, status failed and its code', async () => {
    const id = await checkoutAt('captured');
    api.temporal.update = refundAs('failed');
    const res = await refund(id, { body: { amount: { amount: '1000', currency: 'JPY' } } });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ status: 'failed', failureCode: 'card_network_rejected' });
    expect(await prisma.checkout.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: 'captured', amountRefunded: 0n });
  });

  it("falls back to the workflow's answer when there is no refund row", async () => {
    const id = await checkoutAt('captured');
    api.temporal.update = async ({ args }) => {
      const { refundId } = args[0] as { refundId: string };
      return { refundId, amount: { amount: '3000', currency: 'JPY' }, status: 'pending' } satisfies RefundSnapshot;
    };
    const res = await refund(id);
    expect(res.status, res.text).toBe(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^re_/),
      checkoutId: id,
      amount: { amount: '3000', currency: 'JPY' },
      status: 'pending',
      failureCode: null,
      createdAt: expect.stringMatching(/^\d{4}-/),
    });
  });

  it('answers 400 amount_invalid when the workflow finds too much to refund, and writes nothing', async () => {
    const id = await checkoutAt('partially_refunded');
    api.temporal.update = async () => {
      throw rejected(FailureType.InvalidAmount, 'refund of 5000 exceeds the refundable 3000');
    };
    const res = await refund(id, { key: uniqueKey(), body: { amount: { amount: '5000', currency: 'JPY' } } });
    expectError(res, 400, 'invalid_request_error', 'amount_invalid', 'amount');
    expect(await prisma.refund.count({ where: { checkoutId: id } })).toBe(0);
  });

  it('answers 409 when the checkout has not been captured, and writes nothing', async () => {
    const id = await checkoutAt('processing');
    api.temporal.update = async () => {
      throw rejected(FailureType.InvalidCheckoutState, 'checkout is processing; only a captured checkout can be refunded');
    };
    const res = await refund(id);
    expectError(res, 409, 'conflict', 'checkout_state_invalid');
    expect(res.body.error.message).toContain('processing');
    expect(await prisma.refund.count({ where: { checkoutId: id } })).toBe(0);
  });

  const badRefunds: Array<[string, { body?: unknown; key?: string }, string, string]> = [
    ['a malformed Idempotency-Key', { key: 'has space' }, 'Idempotency-Key', 'idempotency_key_invalid'],
    ['an Idempotency-Key of 256 characters', { key: 'k'.repeat(256) }, 'Idempotency-Key', 'idempotency_key_invalid'],
    ['another currency', { body: { amount: { amount: '100', currency: 'USD' } } }, 'amount.currency', 'currency_mismatch'],
    ['a zero amount', { body: { amount: { amount: '0', currency: 'JPY' } } }, 'amount.amount', 'parameter_invalid'],
    ['a negative amount', { body: { amount: { amount: '-100', currency: 'JPY' } } }, 'amount.amount', 'parameter_invalid'],
    ['an unknown field', { body: { reason: 'requested_by_customer' } }, 'reason', 'parameter_unknown'],
  ];
  it.each(badRefunds)('rejects %s with 400 before asking the workflow, and writes nothing', async (_name, opts, param, code) => {
    const id = await checkoutAt('captured');
    expectError(await refund(id, opts), 400, 'invalid_request_error', code, param);
    expect(api.temporal.updates).toHaveLength(0);
    expect(await prisma.refund.count({ where: { checkoutId: id } })).toBe(0);
  });
});

describe('checkout actions: reaching the workflow', () => {
  const actions: Array<[string, unknown]> = [
    ['capture', undefined],
    ['cancel', undefined],
    ['confirm', { result: 'succeeded' }],
    ['refunds', undefined],
  ];

  it.each(actions)("%s answers 404 for another merchant's checkout and for unknown ids, without asking the workflow", async (action, body) => {
    const id = await checkoutAt('captured');
    const opts = body === undefined ? {} : { body };
    expectError(await call('POST', actionUrl(id, action), { ...opts, key: other.key }), 404, 'not_found', 'resource_missing');
    expectError(await call('POST', actionUrl(`checkout-${merchant.id}-${uniqueKey()}`, action), opts), 404, 'not_found', 'resource_missing');
    expectError(await call('POST', actionUrl('x'.repeat(2000), action), opts), 404, 'not_found');
    expect(api.temporal.updates).toHaveLength(0);
    expect(await prisma.checkout.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: 'captured', amountRefunded: 0n });
  });

  const closedErrors: Array<[string, () => Error]> = [
    ['WorkflowNotFoundError', () => new WorkflowNotFoundError('workflow execution already completed', 'checkout-x', undefined)],
    ['a raw gRPC NOT_FOUND', () => Object.assign(new Error('5 NOT_FOUND: workflow execution already completed'), { code: 5, details: 'workflow execution already completed', metadata: {} })],
    ['an update outlived by its run', () => rejected('AcceptedUpdateCompletedWorkflow', 'Workflow Update failed because the Workflow completed before the Update completed.')],
  ];
  it.each(closedErrors)('answers 409 checkout_closed for %s', async (_name, error) => {
    const id = await checkoutAt('settled');
    api.temporal.update = async () => {
      throw error();
    };
    for (const [action, body] of actions) {
      const res = await call('POST', actionUrl(id, action), body === undefined ? {} : { body });
      expectError(res, 409, 'conflict', 'checkout_closed');
      expect(res.body.error.message).toContain('settled');
    }
    expect(await prisma.refund.count({ where: { checkoutId: id } })).toBe(0);
  });

  it('answers 503 with Retry-After when the workflow does not answer in time', async () => {
    const slow = await startCheckoutApi({ updateTimeoutMs: 200 });
    const id = await checkoutAt('requires_capture', 'manual');
    slow.temporal.update = hang;
    for (const [action, body] of actions) {
      const res = await call('POST', actionUrl(id, action), { base: slow.url, ...(body === undefined ? {} : { body }) });
      expectError(res, 503, 'api_error', 'checkout_update_pending');
      expect(header(res, 'retry-after')).toBe('1');
    }
    expect(await prisma.checkout.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: 'requires_capture', amountCaptured: 0n });
  });

  it('answers any other failure with a generic 500 and logs it', async () => {
    const id = await checkoutAt('requires_capture', 'manual');
    api.temporal.update = async () => {
      throw new WorkflowUpdateFailedError('Workflow Update failed', ApplicationFailure.create({ type: 'Surprise', message: 'internal-update-detail' }));
    };
    const res = await call('POST', actionUrl(id, 'capture'));
    expectError(res, 500, 'api_error', 'internal_error');
    expect(res.text).not.toContain('internal-update-detail');
    expect(logLines.some((l) => l.includes('internal-update-detail') && l.includes('"level":"error"'))).toBe(true);
  });
});

describe('logs', () => {
  it('carry business ids and never a key, a token or an Authorization header', () => {
    const all = logLines.join('\n');
    expect(logLines.some((l) => l.includes(`"merchantId":"${merchant.id}"`) && l.includes('"checkoutId":"co_'))).toBe(true);
    expect(all).not.toContain(merchant.key);
    expect(all).not.toContain(other.key);
    expect(all).not.toContain(CARD_TOKEN);
    expect(all.toLowerCase()).not.toContain('bearer');
  });
});
