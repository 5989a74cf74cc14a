// Property-based fuzzing of every endpoint's body, headers, query and path parameters, in process
// (the real Express app and PostgreSQL, Temporal faked by test/support/api-harness.ts). For every
// generated request:
//
// - never a 5xx;
// - every error is the API's JSON shape `{ error: { type, code, message } }`, with no stack trace
//   and no internal message (Prisma's, PostgreSQL's, a parser's);
// - a rejected request (any 4xx) writes nothing: no row of any table is inserted, updated or
//   deleted (a digest of every row of every table), apart from the one idempotency record that
//   stores the rejection's answer, and no workflow is started.
//
// fast-check runs with a new seed every run, printed at the start (FUZZ_SEED replays it), and
// reports a failure with its shrunk request. Bugs the fuzzing found are kept below as plain
// regression examples.
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkoutId, payoutId, topupId } from '../domain/index.js';
import type { PrismaClient } from '../platform/db.js';
import { createMerchant, openPrisma, send, startApi, type Req, type Res, type TestApi, type TestMerchant } from './support/api-harness.js';

let prisma: PrismaClient;
let api: TestApi;
let merchant: TestMerchant;
/** Ids of this merchant's rows, so that generated paths also hit things that exist. */
const known = { sku: '', checkout: '', topup: '', payout: '', event: '', endpoint: '', reconciliation: '' };

beforeAll(async () => {
  prisma = openPrisma();
  merchant = await createMerchant(prisma, 'fuzz');
  api = await startApi(prisma);
  const m = merchant.id;
  known.sku = `fz-${randomUUID().slice(0, 8)}`;
  await prisma.product.create({ data: { merchantId: m, sku: known.sku, name: 'Fuzz ticket', priceAmount: 100n, currency: 'JPY', available: 1000 } });
  known.checkout = checkoutId(m, 'known');
  await prisma.checkout.create({
    data: {
      id: known.checkout,
      merchantId: m,
      customerId: 'cus_fz',
      idempotencyKey: 'known',
      status: 'captured',
      amount: 100n,
      amountCaptured: 100n,
      currency: 'JPY',
      paymentMethod: 'card',
      captureMethod: 'automatic',
      items: { create: [{ sku: known.sku, quantity: 1, unitAmount: 100n }] },
    },
  });
  known.topup = topupId(m, 'known');
  await prisma.topup.create({ data: { id: known.topup, merchantId: m, customerId: 'cus_fz', idempotencyKey: 'known', amount: 100n, currency: 'JPY', status: 'succeeded' } });
  known.payout = payoutId(m, 'known');
  await prisma.payout.create({
    data: {
      id: known.payout,
      merchantId: m,
      customerId: 'cus_fz',
      idempotencyKey: 'known',
      amount: 100n,
      currency: 'JPY',
      bankCode: '0001',
      accountNumber: '1234567',
      scheduledAt: new Date(),
      status: 'paid',
    },
  });
  known.event = `evt_${randomUUID()}`;
  await prisma.event.create({ data: { id: known.event, merchantId: m, type: 'checkout.captured', resourceType: 'checkout', resourceId: known.checkout, data: {} } });
  known.endpoint = `we_${randomUUID()}`;
  await prisma.webhookEndpoint.create({ data: { id: known.endpoint, merchantId: m, url: 'https://example.com/hook', events: ['*'], secret: 'whsec_fuzz' } });
  known.reconciliation = `reconciliation-${randomUUID()}`;
  await prisma.reconciliation.create({ data: { id: known.reconciliation, status: 'completed', until: new Date() } });
  const rows = await prisma.$queryRaw<Array<{ name: string }>>`
    SELECT table_name AS name FROM information_schema.tables
     WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
       AND table_name NOT IN ('idempotency_requests', '_prisma_migrations')
     ORDER BY table_name`;
  tables = rows.map((r) => r.name);
  // The tables a request writes must be among them, or the digest would prove nothing.
  expect(tables).toEqual(expect.arrayContaining(['checkouts', 'products', 'merchants', 'ledger_transfers', 'ledger_balances', 'payouts', 'webhook_endpoints', 'events']));
  // And it sees an update of a row that exists, not only rows added or removed.
  const before = await worldState();
  await prisma.product.update({ where: { merchantId_sku: { merchantId: m, sku: known.sku } }, data: { available: 999 } });
  expect(await worldState()).not.toBe(before);
  await prisma.product.update({ where: { merchantId_sku: { merchantId: m, sku: known.sku } }, data: { available: 1000 } });
}, 60_000);

afterAll(async () => {
  await api?.close();
  await prisma?.$disconnect();
});

// ---------------------------------------------------------------------------------------------
// What a rejected request must not change

/**
 * Every table a request could write, except the idempotency records (a rejected request may store
 * its answer there; probe checks that row itself) and the migrations' bookkeeping. Read from the
 * schema, so a table added later is covered without editing this list.
 */
let tables: string[] = [];

/**
 * A digest of every row of every such table, so a rejected request that inserted, deleted or
 * updated anything (a stock counter, a setting, a status, a timestamp) changes it; and the count of
 * workflows started through the faked Temporal.
 */
async function worldState(): Promise<string> {
  const digests = tables.map((t) => `(SELECT md5(coalesce(string_agg(md5(x::text), ',' ORDER BY md5(x::text)), '')) FROM "${t}" x) AS "${t}"`);
  const [row] = await prisma.$queryRawUnsafe<Array<Record<string, string>>>(`SELECT ${digests.join(', ')}`);
  return JSON.stringify({ ...row, starts: api.temporal.starts.length });
}

const ERROR_TYPES = ['invalid_request_error', 'authentication_error', 'not_found', 'conflict', 'rate_limit_error'];
/** What only an internal error would put in a response. */
const INTERNALS = [/\bat .+\.(ts|js):\d+/, /node_modules/, /Invalid `prisma/, /PrismaClient/, /\/work\//, /invalid byte sequence/, /Unexpected token/];

function checkResponse(req: Req, res: Res): void {
  const what = `${req.method} ${req.path.slice(0, 200)} -> ${res.status} ${res.text.slice(0, 300)}`;
  expect(res.status, what).toBeLessThan(500);
  if (res.headers['request-id'] === undefined) {
    // Refused by Node's HTTP parser before the app saw it (a raw non-ASCII byte in the path,
    // oversized headers): a bodiless 400 or 431, which is Node's to give.
    expect([400, 431], what).toContain(res.status);
    expect(res.text, what).toBe('');
    return;
  }
  for (const pattern of INTERNALS) expect(res.text, what).not.toMatch(pattern);
  if (res.status >= 400) {
    expect(res.headers['content-type'], what).toMatch(/^application\/json/);
    expect(ERROR_TYPES, what).toContain(res.body?.error?.type);
    expect(typeof res.body.error.code, what).toBe('string');
    expect(typeof res.body.error.message, what).toBe('string');
  } else {
    expect(res.headers['content-type'], what).toMatch(/^application\/json/);
  }
}

/** Codes of requests refused before their route ran: these must never claim an Idempotency-Key. */
const PRE_HANDLER_CODES = new Set([
  'parameter_invalid', 'parameter_missing', 'parameter_unknown', 'invalid_json', 'invalid_body', 'invalid_request', 'body_too_large',
  'unsupported_media_type', 'idempotency_key_missing', 'idempotency_key_invalid', 'idempotency_key_reused', 'api_key_missing', 'api_key_invalid',
  'rate_limit_exceeded', 'route_not_found',
]);

/**
 * Sends the request and checks the response and, for a rejection, that nothing was written. The one
 * row a rejection may leave is its own stored answer under its Idempotency-Key (Stripe's semantics,
 * api/idempotency.ts: a well-formed request that the route refused, e.g. a 409 for a checkout that
 * cannot be captured, replays that refusal), and only when the request was well formed.
 */
async function probe(req: Req): Promise<Res> {
  const before = await worldState();
  const idempotencyBefore = await prisma.idempotencyRequest.count();
  const res = await send(api.url, req);
  checkResponse(req, res);
  if (res.status >= 400) {
    const what = `${req.method} ${req.path.slice(0, 200)} -> ${res.status} ${res.text.slice(0, 200)}`;
    const stored = (await prisma.idempotencyRequest.count()) - idempotencyBefore;
    if (stored !== 0) {
      expect(stored, what).toBe(1);
      expect(PRE_HANDLER_CODES.has(res.body.error.code), `${what} claimed its key`).toBe(false);
      const key = req.headers?.['idempotency-key'];
      const row = await prisma.idempotencyRequest.findUniqueOrThrow({ where: { merchantId_key: { merchantId: merchant.id, key: key ?? '' } } });
      expect({ status: row.responseStatus, body: row.responseBody }, what).toEqual({ status: res.status, body: res.body });
    }
    expect(await worldState(), `${what} wrote something`).toBe(before);
  }
  return res;
}

// ---------------------------------------------------------------------------------------------
// Routes and their valid bodies

interface Route {
  method: string;
  /** `:p` is the path parameter. */
  path: string;
  /** A valid body, for near-valid mutations; undefined for routes that take none. */
  body?: () => unknown;
  /** Which known id `:p` names when the parameter is left valid. */
  param?: keyof typeof known;
  idempotencyKey?: boolean;
}

const money = () => ({ amount: '100', currency: 'JPY' });
const ROUTES: Route[] = [
  { method: 'POST', path: '/v1/products', body: () => ({ sku: `fz-${randomUUID().slice(0, 12)}`, name: 'Fuzz', price: money(), stock: 5 }) },
  { method: 'GET', path: '/v1/products/:p', param: 'sku' },
  {
    method: 'POST',
    path: '/v1/checkouts',
    idempotencyKey: true,
    body: () => ({ customerId: 'cus_fz', items: [{ sku: known.sku, quantity: 1 }], payment: { method: 'card', token: 'tok_visa' }, captureMethod: 'manual' }),
  },
  { method: 'GET', path: '/v1/checkouts/:p', param: 'checkout' },
  { method: 'POST', path: '/v1/checkouts/:p/capture', param: 'checkout', body: () => ({ amount: money() }) },
  { method: 'POST', path: '/v1/checkouts/:p/cancel', param: 'checkout', body: () => ({}) },
  { method: 'POST', path: '/v1/checkouts/:p/confirm', param: 'checkout', body: () => ({ result: 'succeeded' }) },
  { method: 'POST', path: '/v1/checkouts/:p/refunds', param: 'checkout', idempotencyKey: true, body: () => ({ amount: money() }) },
  { method: 'GET', path: '/v1/settings' },
  { method: 'PATCH', path: '/v1/settings', body: () => ({ reservationTimeoutSeconds: 600, refundWindowSeconds: 15552000 }) },
  {
    method: 'POST',
    path: '/v1/topups',
    idempotencyKey: true,
    body: () => ({ customerId: 'cus_fz', amount: money(), payment: { method: 'card', token: 'tok_visa' } }),
  },
  { method: 'GET', path: '/v1/topups/:p', param: 'topup' },
  {
    method: 'POST',
    path: '/v1/payouts',
    idempotencyKey: true,
    body: () => ({ customerId: 'cus_fz', amount: money(), bankAccount: { bankCode: '0001', accountNumber: '1234567' } }),
  },
  { method: 'GET', path: '/v1/payouts/:p', param: 'payout' },
  { method: 'POST', path: '/v1/payouts/:p/cancel', param: 'payout', body: () => ({}) },
  { method: 'GET', path: '/v1/wallets/:p' },
  { method: 'GET', path: '/v1/wallets/:p/transactions' },
  { method: 'GET', path: '/v1/events' },
  { method: 'GET', path: '/v1/events/:p', param: 'event' },
  { method: 'POST', path: '/v1/events/:p/redeliver', param: 'event', body: () => ({}) },
  { method: 'POST', path: '/v1/webhook-endpoints', body: () => ({ url: 'https://example.com/hook', events: ['checkout.captured'] }) },
  { method: 'GET', path: '/v1/webhook-endpoints' },
  { method: 'DELETE', path: '/v1/webhook-endpoints/:p', param: 'endpoint' },
  { method: 'POST', path: '/v1/reconciliations', body: () => ({ olderThanMs: 1000 }) },
  { method: 'GET', path: '/v1/reconciliations/:p', param: 'reconciliation' },
];
const BODY_ROUTES = ROUTES.filter((r) => r.body);

function pathOf(route: Route, param: string | undefined): string {
  if (!route.path.includes(':p')) return route.path;
  const value = param ?? (route.param ? encodeURIComponent(known[route.param]) : 'cus_fz');
  return route.path.replace(':p', value);
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

/** An own, enumerable key even for `__proto__`, so JSON.stringify sends it. */
function withKey(obj: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  const out = { ...obj };
  Object.defineProperty(out, key, { value, enumerable: true, configurable: true, writable: true });
  return out;
}

const hostileScalar = fc.constantFrom<unknown>(
  1e3, -1, 0, -0, 1.5, 2 ** 53 + 2, 2 ** 63, 1e308, -1e308, Number.MAX_SAFE_INTEGER,
  '1e3', '-1', '01', '0', '1.0', ' 1', '1 ', '0x10', '+1', '9223372036854775807', '9223372036854775808', '18446744073709551616', '1'.repeat(40),
  '', ' ', '\u0000', 'a\u0000b', '\u0007', '\u202e', '💳', '\ud800', 'a\udfffb', 'x'.repeat(5000), 'JPY', 'jpy', 'XXX',
  null, true, false, [], {}, [[[[[]]]]], { amount: '1', currency: 'JPY' }, ['1', 'JPY'],
  'automatic', 'manual', 'succeeded', 'wallet', 'card', '*', 'checkout.captured', 'http://127.0.0.1/x', 'javascript:alert(1)', 'http://u:p@h/',
  '2025-02-30T00:00:00Z', '2025-04-01T09:00:00+09:00', '9999-12-31T23:59:59Z', '0000-01-01T00:00:00Z', '2025-04-01T09:00:00',
);
const hostileKey = fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '', '\u0000', 'amount', 'currency', 'sku', 'items', 'extra');
const hostileValue = fc.oneof(
  { weight: 3, arbitrary: hostileScalar },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.double(), fc.bigInt().map(String)) },
);

type Path = Array<string | number>;
function paths(value: unknown, prefix: Path = []): Path[] {
  const out: Path[] = [prefix];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...prefix, i])));
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, k]));
  return out;
}

function setAt(value: unknown, path: Path, f: (old: unknown) => unknown): unknown {
  if (path.length === 0) return f(value);
  const [head, ...rest] = path;
  if (Array.isArray(value)) return value.map((v, i) => (i === head ? setAt(v, rest, f) : v));
  const obj = value as Record<string, unknown>;
  return withKey(obj, String(head), setAt(obj[String(head)], rest, f));
}

function deleteAt(value: unknown, path: Path): unknown {
  if (path.length === 0) return undefined;
  const parent = path.slice(0, -1);
  const last = path[path.length - 1]!;
  return setAt(value, parent, (p) => {
    if (Array.isArray(p)) return p.filter((_v, i) => i !== last);
    const { [String(last)]: _gone, ...rest } = p as Record<string, unknown>;
    return rest;
  });
}

type Mutation = { kind: 'replace' | 'addKey' | 'delete'; pick: number; key: string; value: unknown };
const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('replace', 'replace', 'addKey', 'delete'),
  pick: fc.nat(),
  key: hostileKey,
  value: hostileValue,
});

function mutate(body: unknown, mutations: Mutation[]): unknown {
  let out = body;
  for (const m of mutations) {
    const all = paths(out);
    const at = all[m.pick % all.length]!;
    if (m.kind === 'replace') out = setAt(out, at, () => m.value);
    else if (m.kind === 'delete') out = deleteAt(out, at);
    else out = setAt(out, at, (o) => (o && typeof o === 'object' && !Array.isArray(o) ? withKey(o as Record<string, unknown>, m.key, m.value) : o));
  }
  return out;
}

const idempotencyKey = fc.oneof(
  { weight: 4, arbitrary: fc.uuid().map((u) => `fz-${u}`) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', 'a'.repeat(200), 'a'.repeat(201), 'k'.repeat(6000), 'ключ', '💳', 'a b', 'a/b', '../x', 'known') },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 50 }) },
);

/** Header values a client can put on the wire: no control characters but tab. */
// eslint-disable-next-line no-control-regex -- removing control characters is the point
const headerText = (s: string) => s.replace(/[\u0000-\u0008\u000a-\u001f\u007f]/g, '');

/** A body: near-valid for the route most of the time, anything JSON (or not JSON) otherwise. */
function bodyFor(route: Route): fc.Arbitrary<{ raw: string | undefined }> {
  const valid = route.body ?? (() => ({}));
  return fc.oneof(
    { weight: 6, arbitrary: fc.array(mutation, { minLength: 0, maxLength: 3 }).map((ms) => ({ raw: JSON.stringify(mutate(valid(), ms)) ?? '' })) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => ({ raw: JSON.stringify(v) })) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '', '{', '{"a":', 'null', '"x"', '[]', '{"__proto__":{"polluted":true}}', '{"constructor":{"prototype":{"polluted":true}}}',
        `${'['.repeat(3000)}${']'.repeat(3000)}`, '{"a":1,"a":2}', '\ufeff{}', '{}garbage', 'NaN', '1e999999',
      ).map((raw) => ({ raw })),
    },
    { weight: 1, arbitrary: fc.constant({ raw: undefined }) },
  );
}

/**
 * A new seed every run, so each run tries new requests; FUZZ_SEED=<n> replays one. fast-check
 * reports a failure with its seed and shrunk path too.
 */
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
if (!Number.isSafeInteger(SEED)) throw new Error(`FUZZ_SEED must be an integer, not ${process.env.FUZZ_SEED}`);
console.info(`api-fuzz: seed ${SEED} (FUZZ_SEED=${SEED} npx vitest run test/api-fuzz.test.ts replays it)`);

// ---------------------------------------------------------------------------------------------

describe('fuzzing every endpoint', () => {
  it('bodies: near-valid and arbitrary JSON never cause a 5xx, a leak or a partial write', async () => {
    const arb = fc
      .constantFrom(...BODY_ROUTES)
      .chain((route) => fc.record({ route: fc.constant(route), body: bodyFor(route), key: idempotencyKey }));
    await fc.assert(
      fc.asyncProperty(arb, async ({ route, body, key }) => {
        await probe({
          method: route.method,
          path: pathOf(route, undefined),
          headers: {
            authorization: `Bearer ${merchant.key}`,
            ...(body.raw === undefined ? {} : { 'content-type': 'application/json' }),
            ...(route.idempotencyKey ? { 'idempotency-key': headerText(key) } : {}),
          },
          ...(body.raw === undefined ? {} : { body: body.raw }),
        });
      }),
      { seed: SEED, numRuns: 700, endOnFailure: true },
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('headers: Authorization, Content-Type, Content-Encoding and Idempotency-Key variants never cause a 5xx or a partial write', async () => {
    const authorization = fc.oneof(
      { weight: 4, arbitrary: fc.constant(`Bearer ${'{key}'}`) },
      {
        weight: 2,
        arbitrary: fc.constantFrom(
          '', 'Bearer', 'Bearer ', 'bearer {key}', 'BEARER   {key}   ', 'Bearer {key} extra', 'Basic ZGVtbzp4', 'Bearer sk_test_wrong', `Bearer ${'k'.repeat(257)}`,
          `Bearer ${'k'.repeat(6000)}`, 'Bearer ключ', 'Bearer {key}\t', 'Token {key}', 'Bearer\t{key}', 'Bearer "{key}"',
        ),
      },
      { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 60 }).map((s) => `Bearer ${s}`) },
    );
    const contentType = fc.constantFrom(
      undefined, 'application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'application/json; charset=latin1', 'application/json; charset=utf-16',
      'application/json;', 'application/json; charset=', 'text/plain', 'text/json', 'application/vnd.api+json', 'application/merge-patch+json',
      'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', '*/*', '', 'application/json, text/plain', 'ключ/json',
    );
    const contentEncoding = fc.constantFrom(undefined, undefined, undefined, 'identity', 'gzip', 'deflate', 'br', 'x-unknown', 'gzip, gzip');
    const arb = fc.record({
      route: fc.constantFrom(...ROUTES),
      authorization,
      contentType,
      contentEncoding,
      key: fc.option(idempotencyKey, { nil: undefined }),
      accept: fc.constantFrom(undefined, 'text/html', 'application/xml', '*/*'),
      body: fc.constantFrom<string | undefined>(undefined, '{}', '{"result":"succeeded"}', 'not json', '\u0000'),
    });
    await fc.assert(
      fc.asyncProperty(arb, async (a) => {
        const headers: Record<string, string> = { authorization: headerText(a.authorization.replaceAll('{key}', merchant.key)) };
        if (a.contentType !== undefined) headers['content-type'] = headerText(a.contentType);
        if (a.contentEncoding !== undefined) headers['content-encoding'] = a.contentEncoding;
        if (a.key !== undefined) headers['idempotency-key'] = headerText(a.key);
        if (a.accept !== undefined) headers.accept = a.accept;
        const res = await probe({ method: a.route.method, path: pathOf(a.route, undefined), headers, ...(a.body === undefined ? {} : { body: a.body }) });
        // A request without a working key learns nothing about routes or ids.
        if (!headers.authorization!.includes(merchant.key)) expect(res.status).toBe(401);
      }),
      { seed: SEED + 1, numRuns: 350, endOnFailure: true },
    );
  });

  it('path parameters and query strings: long, %-escaped, unicode, "..", NUL never cause a 5xx or a partial write', async () => {
    const rawParam = fc.oneof(
      {
        weight: 3,
        arbitrary: fc.constantFrom(
          '..', '.', '%2e%2e', '..%2f..%2fsettings', '%2F', '%00', 'a%00b', '%', '%zz', '%E0%A4%A', '%ED%A0%80', '%C0%AF', '%FF', '%20', '%0A', '%0D%0A', '%7F',
          'x'.repeat(5000), `evt_${'0'.repeat(36)}`, `we_${'0'.repeat(36)}`, 'reconciliation-x', `reconciliation-${'x'.repeat(3000)}`, 'checkout-x', 'topup-x',
          'payout-x', ';', ':', 'cus:', '::', 'a::b', '%3A', '*', '$', '\u00e9', '%E2%80%AE', 'null', 'undefined', '__proto__', 'constructor',
        ),
      },
      { weight: 2, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 80 }).map(encodeURIComponent) },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }).map(encodeURIComponent) },
      { weight: 1, arbitrary: fc.constantFrom(...Object.keys(known)).map((k) => encodeURIComponent(known[k as keyof typeof known])) },
    );
    const queryValue = fc.oneof(
      fc.constantFrom('1', '0', '100', '101', '-1', '1e2', '01', 'JPY', 'jpy', '', 'checkout.captured', `evt_${randomUUID()}`, '%00', '%zz', 'x'.repeat(600)),
      fc.string({ unit: 'grapheme', maxLength: 30 }).map(encodeURIComponent),
    );
    const query = fc.array(fc.tuple(fc.constantFrom('limit', 'starting_after', 'currency', 'type', 'x', '__proto__', 'limit[]', 'limit[a]'), queryValue), { maxLength: 3 });
    const arb = fc.record({ route: fc.constantFrom(...ROUTES), param: rawParam, query, body: fc.boolean() });
    await fc.assert(
      fc.asyncProperty(arb, async ({ route, param, query: q, body }) => {
        const qs = q.length === 0 ? '' : `?${q.map(([k, v]) => `${k}=${v}`).join('&')}`;
        await probe({
          method: route.method,
          path: `${pathOf(route, param)}${qs}`,
          headers: { authorization: `Bearer ${merchant.key}`, ...(body && route.body ? { 'content-type': 'application/json' } : {}) },
          ...(body && route.body ? { body: JSON.stringify(route.body()) } : {}),
        });
      }),
      { seed: SEED + 2, numRuns: 450, endOnFailure: true },
    );
  });
});

describe('regressions found by fuzzing', () => {
  const auth = () => ({ authorization: `Bearer ${merchant.key}`, 'content-type': 'application/json' });

  it('rejects a lone UTF-16 surrogate in a customer id before anything is created', async () => {
    // It was stored as U+FFFD: the checkout was created and its workflow started, and then its own
    // request was answered 422 idempotency_key_reused because the stored id differed from the sent one.
    const key = `fz-surrogate-${randomUUID()}`;
    const body = `{"customerId":"a\\udfffb","items":[{"sku":"${known.sku}","quantity":1}],"payment":{"method":"card","token":"tok_visa"}}`;
    const res = await probe({ method: 'POST', path: '/v1/checkouts', headers: { ...auth(), 'idempotency-key': key }, body });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'parameter_invalid', param: 'customerId' });
    expect(await prisma.checkout.count({ where: { merchantId: merchant.id, idempotencyKey: key } })).toBe(0);
    expect(api.temporal.starts.some((s) => s.workflowId === checkoutId(merchant.id, key))).toBe(false);
    // A well-formed pair (an emoji) is an ordinary character.
    const ok = await probe({ method: 'POST', path: '/v1/checkouts', headers: { ...auth(), 'idempotency-key': key }, body: body.replace('a\\udfffb', '\\ud83d\\udcb3') });
    expect(ok.status, ok.text).toBe(201);
    expect(ok.body.customerId).toBe('💳');
    for (const [path, raw] of [
      ['/v1/topups', '{"customerId":"\\ud800","amount":{"amount":"1","currency":"JPY"},"payment":{"method":"card","token":"tok_visa"}}'],
      ['/v1/products', '{"sku":"fz-surrogate","name":"\\udc00","price":{"amount":"1","currency":"JPY"},"stock":1}'],
      ['/v1/webhook-endpoints', '{"url":"https://example.com/\\ud800","events":["*"]}'],
    ] as const) {
      const r = await probe({ method: 'POST', path, headers: { ...auth(), 'idempotency-key': `fz-${randomUUID()}` }, body: raw });
      expect(r.status, `${path}: ${r.text}`).toBe(400);
    }
  });

  it('answers 404, not 500, for a NUL in any path parameter', async () => {
    // GET /v1/topups/a%00b reached PostgreSQL, which cannot hold NUL in text, and answered 500.
    for (const route of ROUTES.filter((r) => r.path.includes(':p'))) {
      const res = await probe({ method: route.method, path: route.path.replace(':p', 'a%00b'), headers: auth(), ...(route.body ? { body: '{}' } : {}) });
      expect(res.status, `${route.method} ${route.path}: ${res.text}`).toBe(404);
      expect(res.body.error.type).toBe('not_found');
    }
  });

  it('refuses a webhook URL with a NUL, which the URL parser accepts but PostgreSQL cannot store', async () => {
    const res = await probe({ method: 'POST', path: '/v1/webhook-endpoints', headers: auth(), body: '{"url":"https://example.com/a\\u0000b","events":["*"]}' });
    expect(res.status, res.text).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'parameter_invalid', param: 'url' });
  });

  it('answers 404 for a reconciliation id longer than any, without asking Temporal', async () => {
    const res = await probe({ method: 'GET', path: `/v1/reconciliations/reconciliation-${'x'.repeat(3000)}`, headers: auth() });
    expect(res.status, res.text).toBe(404);
  });
});
