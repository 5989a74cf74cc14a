// API keys have roles (api/auth.ts), in process against the real PostgreSQL with Temporal faked
// (test/support/api-harness.ts). A merchant's key acts on its own merchant only; the operator's key
// (OPERATOR_API_KEY) is the only one that runs the platform-wide reconciliation and sees every item,
// and it is refused on every route about one merchant's records. One reconciliation runs per scope
// (the platform, or one merchant) at a time. Every refusal is checked for what it did not do: no
// workflow started, no scope claimed, no row written.
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { checkoutId, reconciliationId, type ReconciliationInput } from '../domain/index.js';
import type { PrismaClient } from '../platform/db.js';
import { STARTING_GRACE_MS } from '../platform/reconciliation-leases.js';
import { newOperatorApiKey } from '../scripts/dev-secrets.js';
import { call, createMerchant, openPrisma, startApi, type Res, type TestApi, type TestMerchant } from './support/api-harness.js';

let prisma: PrismaClient;
let api: TestApi;
let a: TestMerchant;
let b: TestMerchant;
const operatorKey = newOperatorApiKey();
/** Every reconciliation this file started or made, so its claims are given back after each test. */
const runs: string[] = [];

beforeAll(async () => {
  prisma = openPrisma();
  [a, b] = await Promise.all([createMerchant(prisma, 'role_a'), createMerchant(prisma, 'role_b')]);
  api = await startApi(prisma, { operatorApiKey: operatorKey });
});

afterEach(async () => {
  // The fake Temporal never runs a workflow, so nothing would give these scopes back; the platform
  // scope must be free for the test files after this one.
  await prisma.reconciliationLease.deleteMany({ where: { reconciliationId: { in: runs } } });
});

afterAll(async () => {
  await api?.close();
  await prisma?.$disconnect();
});

const reconciliationStarts = () => api.temporal.starts.filter((s) => s.workflowType === 'reconciliationWorkflowV2');

async function startReconciliation(key: string, body: unknown): Promise<Res> {
  const res = await call(api.url, key, 'POST', '/v1/reconciliations', body);
  if (typeof res.body?.id === 'string') runs.push(res.body.id);
  return res;
}

/** Row counts of everything a request could write, and the scopes held. */
async function written(): Promise<string> {
  const [row] = await prisma.$queryRaw<Array<Record<string, bigint>>>`
    SELECT (SELECT count(*) FROM products) p, (SELECT count(*) FROM checkouts) c, (SELECT count(*) FROM topups) t, (SELECT count(*) FROM payouts) po,
           (SELECT count(*) FROM webhook_endpoints) w, (SELECT count(*) FROM idempotency_requests) i, (SELECT count(*) FROM refunds) r,
           (SELECT count(*) FROM reconciliations) rc, (SELECT count(*) FROM reconciliation_leases) l`;
  return JSON.stringify({ ...row, starts: api.temporal.starts.length, updates: api.temporal.updates.length }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

function expectRefused(res: Res, status: number, code: string, param?: string): void {
  expect(res.status, res.text).toBe(status);
  expect(res.body.error).toMatchObject({ code, message: expect.any(String), ...(param !== undefined ? { param } : {}) });
}

describe('the operator key', () => {
  it("is refused on every route about one merchant's records: 403 merchant_key_required, nothing written or started", async () => {
    const sku = `role-${randomUUID().slice(0, 8)}`;
    expect((await call(api.url, a.key, 'POST', '/v1/products', { sku, name: 'Ticket', price: { amount: '100', currency: 'JPY' }, stock: 5 })).status).toBe(201);
    const co = checkoutId(a.id, 'role-order');
    const routes: Array<[string, string, unknown?]> = [
      ['GET', `/v1/products/${sku}`],
      ['POST', '/v1/products', { sku: `${sku}-op`, name: 'Ticket', price: { amount: '100', currency: 'JPY' }, stock: 5 }],
      ['POST', '/v1/checkouts', { customerId: 'cus_op', items: [{ sku, quantity: 1 }], payment: { method: 'card', token: 'tok_visa' } }],
      ['GET', `/v1/checkouts/${co}`],
      ['POST', `/v1/checkouts/${co}/capture`, {}],
      ['POST', `/v1/checkouts/${co}/cancel`, {}],
      ['POST', `/v1/checkouts/${co}/refunds`, {}],
      ['GET', '/v1/settings'],
      ['PATCH', '/v1/settings', { reservationTimeoutSeconds: 60 }],
      ['POST', '/v1/topups', { customerId: 'cus_op', amount: { amount: '500', currency: 'JPY' }, payment: { method: 'card', token: 'tok_visa' } }],
      ['POST', '/v1/payouts', { customerId: 'cus_op', amount: { amount: '500', currency: 'JPY' }, bankAccount: { bankCode: '0001', accountNumber: '1234567' } }],
      ['GET', '/v1/wallets/cus_op'],
      ['GET', '/v1/events'],
      ['POST', '/v1/webhook-endpoints', { url: 'https://example.com/hook', events: ['*'] }],
      ['GET', '/v1/webhook-endpoints'],
    ];
    const before = await written();
    for (const [method, path, body] of routes) {
      const res = await call(api.url, operatorKey, method, path, body, { 'idempotency-key': `op-${randomUUID()}` });
      expectRefused(res, 403, 'merchant_key_required');
      expect(res.body.error.type).toBe('invalid_request_error');
    }
    expect(await written()).toBe(before);
  });

  it('is told apart from a wrong key of the same shape: 401, nothing started', async () => {
    const before = await written();
    const near = `${operatorKey.slice(0, -1)}${operatorKey.endsWith('0') ? '1' : '0'}`;
    expectRefused(await call(api.url, near, 'POST', '/v1/reconciliations', {}), 401, 'api_key_invalid');
    expect(await written()).toBe(before);
  });

  it('means nothing to an API started without one', async () => {
    const bare = await startApi(prisma);
    try {
      expectRefused(await call(bare.url, operatorKey, 'POST', '/v1/reconciliations', {}), 401, 'api_key_invalid');
      expect(bare.temporal.starts).toHaveLength(0);
    } finally {
      await bare.close();
    }
  });
});

describe('starting a reconciliation', () => {
  it('refuses a merchant key the platform-wide run or another merchant\'s: 403 operator_key_required naming the field; nothing started or claimed', async () => {
    const before = await written();
    expectRefused(await startReconciliation(a.key, { scope: 'platform' }), 403, 'operator_key_required', 'scope');
    expectRefused(await startReconciliation(a.key, { scope: 'platform', olderThanMs: 0 }), 403, 'operator_key_required', 'scope');
    expectRefused(await startReconciliation(a.key, { merchantId: b.id }), 403, 'operator_key_required', 'merchantId');
    expectRefused(await startReconciliation(a.key, { scope: 'merchant', merchantId: b.id }), 403, 'operator_key_required', 'merchantId');
    expect(await written()).toBe(before);
    expect(reconciliationStarts()).toHaveLength(0);
  });

  it("runs a merchant key's reconciliation over its own records; a second while it runs answers 409 with its id and starts nothing; another merchant's runs alongside", async () => {
    const first = await startReconciliation(a.key, { olderThanMs: 0 });
    expect(first.status, first.text).toBe(202);
    expect(first.body).toEqual({ id: expect.stringMatching(/^reconciliation-/), scope: 'merchant', merchantId: a.id });
    const started = reconciliationStarts().find((s) => s.workflowId === first.body.id);
    expect(started?.input).toEqual({ olderThanMs: 0, merchantId: a.id } satisfies ReconciliationInput);
    // Naming itself is the same as leaving it out.
    const before = await written();
    const second = await startReconciliation(a.key, { merchantId: a.id, scope: 'merchant' });
    expectRefused(second, 409, 'reconciliation_already_running');
    expect(second.body.error.reconciliation).toEqual({ id: first.body.id });
    expect(await written()).toBe(before);

    const other = await startReconciliation(b.key, {});
    expect(other.status, other.text).toBe(202);
    expect(other.body.merchantId).toBe(b.id);
    expect(reconciliationStarts().find((s) => s.workflowId === other.body.id)?.input).toEqual({ merchantId: b.id });
    // Until the first run gives its scope back.
    expect((await startReconciliation(a.key, {})).status).toBe(409);
    await prisma.reconciliationLease.deleteMany({ where: { reconciliationId: first.body.id } });
    expect((await startReconciliation(a.key, {})).status).toBe(202);
  });

  it('runs the platform-wide reconciliation for the operator key, one at a time, alongside merchants\' runs', async () => {
    expect(await prisma.reconciliationLease.findUnique({ where: { scope: 'platform' } })).toBeNull();
    const merchantRun = await startReconciliation(a.key, {});
    expect(merchantRun.status, merchantRun.text).toBe(202);

    const platform = await startReconciliation(operatorKey, { olderThanMs: 60_000 });
    expect(platform.status, platform.text).toBe(202);
    expect(platform.body).toEqual({ id: expect.stringMatching(/^reconciliation-/), scope: 'platform', merchantId: null });
    expect(reconciliationStarts().find((s) => s.workflowId === platform.body.id)?.input).toEqual({ olderThanMs: 60_000 });

    const before = await written();
    for (const body of [{}, { scope: 'platform' }, { since: '2026-01-01T00:00:00Z' }]) {
      const again = await startReconciliation(operatorKey, body);
      expectRefused(again, 409, 'reconciliation_already_running');
      expect(again.body.error.reconciliation).toEqual({ id: platform.body.id });
    }
    expect(await written()).toBe(before);

    // One merchant's run, by the operator: the merchant's scope, which a run already holds.
    const named = await startReconciliation(operatorKey, { merchantId: a.id });
    expectRefused(named, 409, 'reconciliation_already_running');
    expect(named.body.error.reconciliation).toEqual({ id: merchantRun.body.id });
    const forB = await startReconciliation(operatorKey, { scope: 'merchant', merchantId: b.id });
    expect(forB.status, forB.text).toBe(202);
    expect(forB.body).toMatchObject({ scope: 'merchant', merchantId: b.id });
  });

  it('answers 400 naming the field for an input the workflow could not run, and starts nothing', async () => {
    const cases: Array<[string, unknown, string, string]> = [
      [a.key, { olderThanMs: 1e20 }, 'olderThanMs', 'parameter_invalid'],
      [a.key, { olderThanMs: 366 * 86_400_000 + 1 }, 'olderThanMs', 'parameter_invalid'],
      [a.key, { olderThanMs: -1 }, 'olderThanMs', 'parameter_invalid'],
      [a.key, { olderThanMs: 1.5 }, 'olderThanMs', 'parameter_invalid'],
      [a.key, { olderThanMs: '1000' }, 'olderThanMs', 'parameter_invalid'],
      [a.key, { since: 'yesterday' }, 'since', 'parameter_invalid'],
      [a.key, { since: '2026-02-30T00:00:00Z' }, 'since', 'parameter_invalid'],
      [a.key, { since: '2026-11-29T10:00:00' }, 'since', 'parameter_invalid'],
      [a.key, { until: '+275760-09-13T00:00:00Z' }, 'until', 'parameter_invalid'],
      [a.key, { since: '2026-11-29T00:00:00Z', until: '2026-11-28T00:00:00Z' }, 'until', 'parameter_invalid'],
      [a.key, { since: '2026-11-29T09:00:00+09:00', until: '2026-11-29T00:00:00Z' }, 'until', 'parameter_invalid'],
      [a.key, { pageSize: 10 }, 'pageSize', 'parameter_unknown'],
      [a.key, { scope: 'everything' }, 'scope', 'parameter_invalid'],
      [operatorKey, { olderThanMs: 1e20 }, 'olderThanMs', 'parameter_invalid'],
      [operatorKey, { scope: 'merchant' }, 'merchantId', 'parameter_missing'],
      [operatorKey, { merchantId: 'no such merchant' }, 'merchantId', 'parameter_invalid'],
      [operatorKey, { merchantId: `nobody_${randomUUID().slice(0, 8)}` }, 'merchantId', 'parameter_invalid'],
      [operatorKey, { scope: 'platform', merchantId: a.id }, 'merchantId', 'parameter_invalid'],
    ];
    const before = await written();
    for (const [key, body, param, code] of cases) {
      const res = await startReconciliation(key, body);
      expectRefused(res, 400, code, param);
      expect(res.body.error.type).toBe('invalid_request_error');
    }
    expect(await written()).toBe(before);
    expect(reconciliationStarts().filter((s) => !runs.includes(s.workflowId))).toHaveLength(0);
  });

  it('takes over a scope whose run is gone, and marks that run failed', async () => {
    // A run that claimed the platform scope and wrote its row, then vanished: its workflow is not
    // found (the fake knows none) and its claim is older than a start takes.
    const gone = reconciliationId(randomUUID());
    runs.push(gone);
    await prisma.reconciliation.create({ data: { id: gone, status: 'running', until: new Date(), items: { create: [{ kind: 'reservation_not_released', resourceId: 'co_x', merchantId: a.id, action: 'repaired', details: {} }] } } });
    await prisma.reconciliationLease.create({ data: { scope: 'platform', reconciliationId: gone, claimedAt: new Date(Date.now() - STARTING_GRACE_MS - 1_000) } });

    const taken = await startReconciliation(operatorKey, {});
    expect(taken.status, taken.text).toBe(202);
    expect(await prisma.reconciliationLease.findUnique({ where: { scope: 'platform' } })).toMatchObject({ reconciliationId: taken.body.id });
    expect(await prisma.reconciliation.findUniqueOrThrow({ where: { id: gone } })).toMatchObject({
      status: 'failed',
      finishedAt: expect.any(Date),
      counts: { repaired: 1, reported: 0, byKind: { reservation_not_released: 1 } },
    });
  });

  it('gives the scope back when the workflow could not be started', async () => {
    const start = api.temporal.client.workflow.start;
    api.temporal.client.workflow.start = (async () => {
      throw new Error('Temporal unavailable');
    }) as typeof start;
    try {
      expect((await startReconciliation(b.key, {})).status).toBe(500);
    } finally {
      api.temporal.client.workflow.start = start;
    }
    expect(await prisma.reconciliationLease.findUnique({ where: { scope: `merchant:${b.id}` } })).toBeNull();
    expect((await startReconciliation(b.key, {})).status).toBe(202);
  });
});

describe('reading a reconciliation', () => {
  it("shows a merchant's run to that merchant and the operator only, and a platform run to a merchant as its own items", async () => {
    const mine = reconciliationId(randomUUID());
    const platform = reconciliationId(randomUUID());
    const item = (merchantId: string | null, resourceId: string) => ({ kind: 'reservation_not_released', resourceId, merchantId, action: 'repaired', details: {} });
    await prisma.reconciliation.create({ data: { id: mine, status: 'completed', until: new Date(), merchantId: a.id, items: { create: [item(a.id, 'co_a1')] } } });
    await prisma.reconciliation.create({
      data: { id: platform, status: 'completed', until: new Date(), counts: { repaired: 2, reported: 1, byKind: {} }, items: { create: [item(a.id, 'co_a2'), item(b.id, 'co_b2'), { ...item(null, 'ledger'), kind: 'ledger_check_failed', action: 'reported' }] } },
    });

    const asA = await call(api.url, a.key, 'GET', `/v1/reconciliations/${mine}`);
    expect(asA.status).toBe(200);
    expect(asA.body).toMatchObject({ scope: 'merchant', merchantId: a.id, items: [{ resourceId: 'co_a1' }] });
    const unknown = await call(api.url, b.key, 'GET', `/v1/reconciliations/${reconciliationId(randomUUID())}`);
    const asB = await call(api.url, b.key, 'GET', `/v1/reconciliations/${mine}`);
    expect(asB.status).toBe(404);
    expect(asB.body.error.code).toBe(unknown.body.error.code);
    expect((await call(api.url, operatorKey, 'GET', `/v1/reconciliations/${mine}`)).body.items).toHaveLength(1);

    const platformAsB = await call(api.url, b.key, 'GET', `/v1/reconciliations/${platform}`);
    expect(platformAsB.body).toMatchObject({ scope: 'platform', merchantId: null, counts: { repaired: 1, reported: 0 } });
    expect(platformAsB.body.items.map((i: { resourceId: string }) => i.resourceId)).toEqual(['co_b2']);
    const platformAsOperator = await call(api.url, operatorKey, 'GET', `/v1/reconciliations/${platform}`);
    expect(platformAsOperator.body.items.map((i: { resourceId: string }) => i.resourceId).sort()).toEqual(['co_a2', 'co_b2', 'ledger']);
    expect(platformAsOperator.body.counts).toEqual({ repaired: 2, reported: 1, byKind: {} });
  });

  it("shows a run started through the API as running before its workflow writes it, to whom it is visible", async () => {
    const started = await startReconciliation(a.key, {});
    expect(started.status).toBe(202);
    const asA = await call(api.url, a.key, 'GET', `/v1/reconciliations/${started.body.id}`);
    expect(asA.body).toMatchObject({ id: started.body.id, status: 'running', scope: 'merchant', merchantId: a.id, items: [] });
    expect((await call(api.url, operatorKey, 'GET', `/v1/reconciliations/${started.body.id}`)).body.status).toBe('running');
    expect((await call(api.url, b.key, 'GET', `/v1/reconciliations/${started.body.id}`)).status).toBe(404);
  });
});
