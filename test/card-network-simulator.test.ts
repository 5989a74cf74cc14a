// The card-network simulator over real HTTP and real PostgreSQL, driven through our typed client.
// The database comes from the test harness (DATABASE_URL); each test uses its own keys and
// checkout references, so tests share one database without seeing each other.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CardNetworkRejectedError,
  CardNetworkUnavailableError,
  createCardNetworkClient,
  type CardNetworkClient,
  type CardOperation,
} from '../platform/card-network-client.js';
import { loadConfig } from '../platform/config.js';
import { createCardNetworkServer, type CardNetworkServer, type CardNetworkServerOptions } from '../simulators/card-network/server.js';
import { injectCardFault, listCardFaults, type CardFaultOperation } from '../simulators/card-network/test-faults.js';
import { rawPost as post, untilInFlight } from './support/simulator-http.js';

const databaseUrl = process.env.DATABASE_URL;
const unique = (prefix: string) => `${prefix}_${randomUUID()}`;

let pool: pg.Pool;
const started: CardNetworkServer[] = [];

async function startSimulator(opts: Omit<CardNetworkServerOptions, 'pool'> = {}, db = pool) {
  const server = createCardNetworkServer({ pool: db, ...opts });
  started.push(server);
  const url = await server.listen(0, '127.0.0.1');
  return { server, url, client: createCardNetworkClient({ baseUrl: url, timeoutMs: 5_000 }) };
}

async function rejection(promise: Promise<unknown>) {
  const err = await promise.then(
    () => expect.fail('expected the card network to refuse'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CardNetworkRejectedError);
  const { code, status } = err as CardNetworkRejectedError;
  return { code, status };
}

async function storedRowsFor(reference: string) {
  const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM card_network.operations WHERE reference = $1', [reference]);
  return Number(rows[0]!.n);
}

/** The network's own view of an authorization, read straight from its books. */
async function stateOf(authorizationId: string) {
  const { rows } = await pool.query<{ state: string }>('SELECT state FROM card_network.authorizations WHERE id = $1', [authorizationId]);
  return rows[0]?.state;
}

/** Resolves with the unavailable error a call failed with (a lost response has no status; a 503 has). */
async function unavailable(promise: Promise<unknown>) {
  const err = await promise.then(
    () => expect.fail('expected the card network to be unavailable'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CardNetworkUnavailableError);
  return err as CardNetworkUnavailableError;
}

let base: string;
let client: CardNetworkClient;

beforeAll(async () => {
  if (!databaseUrl) throw new Error('DATABASE_URL must point at a PostgreSQL database (the test harness provides one)');
  pool = new pg.Pool({ connectionString: databaseUrl, max: 20 });
  ({ url: base, client } = await startSimulator());
});

afterAll(async () => {
  for (const server of started) await server.close();
  await pool?.end();
});

function authorize(token: string, reference = unique('chk'), amount = 1999n, idempotencyKey = unique('auth')) {
  return client.authorize({ idempotencyKey, amount, currency: 'JPY', token, reference });
}

describe('authorizations', () => {
  it('approves tok_visa with a 201 and records it for the checkout', async () => {
    const reference = unique('chk');
    const res = await post(`${base}/v1/authorizations`, { amount: '1999', currency: 'JPY', token: 'tok_visa', reference });
    expect(res.status).toBe(201);
    const op = JSON.parse(res.text);
    expect(op).toMatchObject({ type: 'authorization', status: 'succeeded', amount: '1999', currency: 'JPY', reference });
    expect(op.authorizationId).toBe(op.id);
    expect(op).not.toHaveProperty('declineCode');
    expect(await client.listOperations(reference)).toEqual([op]);
  });

  it.each([
    ['tok_chargeDeclined', 'card_declined'],
    ['tok_insufficientFunds', 'insufficient_funds'],
  ])('declines %s with 402 and %s, stores the decline and replays it', async (token, declineCode) => {
    const reference = unique('chk');
    const key = unique('auth');
    const first = await post(`${base}/v1/authorizations`, { amount: '500', currency: 'USD', token, reference }, key);
    expect(first.status).toBe(402);
    expect(JSON.parse(first.text)).toMatchObject({ status: 'declined', declineCode });

    const viaClient = await client.authorize({ idempotencyKey: key, amount: 500n, currency: 'USD', token, reference });
    expect(viaClient).toEqual(JSON.parse(first.text));
    expect(await storedRowsFor(reference)).toBe(1);
  });

  it('refuses an unknown token with invalid_token and stores nothing', async () => {
    const reference = unique('chk');
    expect(await rejection(authorize('tok_nonsense', reference))).toEqual({ code: 'invalid_token', status: 400 });
    expect(await storedRowsFor(reference)).toBe(0);
  });

  it('rejects requests without an Idempotency-Key, with bad JSON or with a malformed field, naming the field', async () => {
    const url = `${base}/v1/authorizations`;
    const good = { amount: '100', currency: 'JPY', token: 'tok_visa', reference: unique('chk') };

    const noKey = await post(url, good, null);
    expect(noKey.status).toBe(400);
    expect(JSON.parse(noKey.text).error.code).toBe('missing_idempotency_key');

    const badJson = await post(url, '{"amount": ');
    expect(badJson.status).toBe(400);
    expect(JSON.parse(badJson.text).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_json' });
    expect(badJson.text).not.toMatch(/at .*\.(ts|js):\d+/);

    for (const [field, value] of [['amount', 1999], ['amount', '19.99'], ['amount', '0'], ['currency', 'yen'], ['reference', '']] as const) {
      const res = await post(url, { ...good, [field]: value });
      expect(res.status, `${field}=${JSON.stringify(value)}`).toBe(400);
      expect(JSON.parse(res.text).error).toMatchObject({ code: 'invalid_parameter', param: field });
      expect(JSON.parse(res.text).error.message).toContain(field);
    }
    expect(await storedRowsFor(good.reference)).toBe(0);
  });
});

describe('idempotency', () => {
  it('replays the first response byte for byte without acting again', async () => {
    const reference = unique('chk');
    const key = unique('auth');
    const body = { amount: '1999', currency: 'JPY', token: 'tok_visa', reference };
    const first = await post(`${base}/v1/authorizations`, body, key);
    const second = await post(`${base}/v1/authorizations`, body, key);
    expect(second).toEqual(first);
    expect(await storedRowsFor(reference)).toBe(1);
  });

  it('acts exactly once for 20 concurrent identical requests', async () => {
    const reference = unique('chk');
    const key = unique('auth');
    const results = await Promise.all(Array.from({ length: 20 }, () => authorize('tok_visa', reference, 1999n, key)));
    expect(new Set(results.map((op) => op.id)).size).toBe(1);
    expect(await storedRowsFor(reference)).toBe(1);
  });

  it('refuses a key reused with different parameters with 422 idempotency_key_reused', async () => {
    const reference = unique('chk');
    const key = unique('auth');
    await authorize('tok_visa', reference, 1999n, key);
    expect(await rejection(authorize('tok_visa', reference, 2000n, key))).toEqual({ code: 'idempotency_key_reused', status: 422 });
    expect(await storedRowsFor(reference)).toBe(1);
  });

  it('finds an operation by its key, and answers null for a key never acted on', async () => {
    const auth = await authorize('tok_visa');
    expect(await client.lookup(auth.idempotencyKey)).toEqual(auth);
    expect(await client.lookup(unique('never'))).toBeNull();
  });
});

describe('capture, void and refund', () => {
  it('captures the full authorized amount by default, once, and refuses a second capture under another key', async () => {
    const auth = await authorize('tok_visa');
    const key = unique('cap');
    const capture = await client.capture({ idempotencyKey: key, authorizationId: auth.id });
    expect(capture).toMatchObject({ type: 'capture', status: 'succeeded', authorizationId: auth.id, amount: '1999', reference: auth.reference });
    expect(await client.capture({ idempotencyKey: key, authorizationId: auth.id })).toEqual(capture);
    expect(await rejection(client.capture({ idempotencyKey: unique('cap'), authorizationId: auth.id }))).toEqual({ code: 'already_captured', status: 409 });
    expect((await client.listOperations(auth.reference)).map((op) => op.type)).toEqual(['authorization', 'capture']);
  });

  it('captures exactly once when two captures with different keys race', async () => {
    const auth = await authorize('tok_visa');
    const results = await Promise.allSettled([1, 2].map(() => client.capture({ idempotencyKey: unique('cap'), authorizationId: auth.id })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const captures = (await client.listOperations(auth.reference)).filter((op) => op.type === 'capture');
    expect(captures).toHaveLength(1);
  });

  it('captures part of an authorization but never more than authorized, and 404s for an unknown authorization', async () => {
    const auth = await authorize('tok_visa', unique('chk'), 1000n);
    expect(await rejection(client.capture({ idempotencyKey: unique('cap'), authorizationId: auth.id, amount: 1001n }))).toEqual({ code: 'amount_exceeds_authorized', status: 409 });
    expect(await client.capture({ idempotencyKey: unique('cap'), authorizationId: auth.id, amount: 600n })).toMatchObject({ amount: '600' });
    expect(await rejection(client.capture({ idempotencyKey: unique('cap'), authorizationId: 'auth_missing' }))).toEqual({ code: 'authorization_not_found', status: 404 });
  });

  it('cannot capture a declined authorization', async () => {
    const declined = await authorize('tok_chargeDeclined');
    expect(await rejection(client.capture({ idempotencyKey: unique('cap'), authorizationId: declined.id }))).toEqual({ code: 'authorization_declined', status: 409 });
  });

  it('voids an uncaptured authorization once; a void under a new key returns that same void; capture is then refused', async () => {
    const auth = await authorize('tok_visa');
    const voided = await client.void({ idempotencyKey: unique('void'), authorizationId: auth.id });
    expect(voided).toMatchObject({ type: 'void', status: 'succeeded', authorizationId: auth.id, amount: '1999' });
    expect(await client.void({ idempotencyKey: unique('void'), authorizationId: auth.id })).toEqual(voided);
    expect(await rejection(client.capture({ idempotencyKey: unique('cap'), authorizationId: auth.id }))).toEqual({ code: 'authorization_voided', status: 409 });
    expect((await client.listOperations(auth.reference)).map((op) => op.type)).toEqual(['authorization', 'void']);
  });

  it('does not void a captured authorization', async () => {
    const auth = await authorize('tok_visa');
    await client.capture({ idempotencyKey: unique('cap'), authorizationId: auth.id });
    expect(await rejection(client.void({ idempotencyKey: unique('void'), authorizationId: auth.id }))).toEqual({ code: 'already_captured', status: 409 });
  });

  it('refunds only captured money, in parts, never more than was captured', async () => {
    const auth = await authorize('tok_visa', unique('chk'), 1000n);
    expect(await rejection(client.refund({ idempotencyKey: unique('re'), authorizationId: auth.id, amount: 100n }))).toEqual({ code: 'not_captured', status: 409 });
    await client.capture({ idempotencyKey: unique('cap'), authorizationId: auth.id, amount: 800n });

    const key = unique('re');
    const first = await client.refund({ idempotencyKey: key, authorizationId: auth.id, amount: 500n });
    expect(first).toMatchObject({ type: 'refund', amount: '500', currency: 'JPY', reference: auth.reference });
    expect(await client.refund({ idempotencyKey: key, authorizationId: auth.id, amount: 500n })).toEqual(first);
    expect(await rejection(client.refund({ idempotencyKey: unique('re'), authorizationId: auth.id, amount: 301n }))).toEqual({ code: 'refund_exceeds_captured', status: 409 });
    await client.refund({ idempotencyKey: unique('re'), authorizationId: auth.id, amount: 300n });

    const refunds = (await client.listOperations(auth.reference)).filter((op) => op.type === 'refund');
    expect(refunds.map((op) => op.amount)).toEqual(['500', '300']);
  });
});

describe('3-D Secure', () => {
  const authenticate = (authorizationId: string, result: 'succeeded' | 'failed', idempotencyKey = unique('authn')) =>
    client.authenticate({ idempotencyKey, authorizationId, result });

  it('holds nothing for tok_threeDSecureRequired until the customer authenticates; then the money is held and can be captured', async () => {
    const reference = unique('chk');
    const authorizeKey = unique('auth');
    const body = { amount: '1999', currency: 'JPY', token: 'tok_threeDSecureRequired', reference };
    const first = await post(`${base}/v1/authorizations`, body, authorizeKey);
    expect(first.status).toBe(201);
    const auth = JSON.parse(first.text) as CardOperation;
    expect(auth).toMatchObject({ type: 'authorization', status: 'requires_action', amount: '1999', reference });
    expect(auth).not.toHaveProperty('declineCode');
    expect(await stateOf(auth.id)).toBe('requires_action');
    expect(await rejection(client.capture({ idempotencyKey: unique('cap'), authorizationId: auth.id }))).toEqual({ code: 'authorization_requires_action', status: 409 });
    expect(await stateOf(auth.id)).toBe('requires_action');

    const key = unique('authn');
    const authentication = await authenticate(auth.id, 'succeeded', key);
    expect(authentication).toMatchObject({ type: 'authentication', status: 'succeeded', authorizationId: auth.id, amount: '1999', currency: 'JPY', reference });
    expect(authentication).not.toHaveProperty('declineCode');
    expect(await stateOf(auth.id)).toBe('authorized');
    expect(await authenticate(auth.id, 'succeeded', key)).toEqual(authentication);
    expect(await rejection(authenticate(auth.id, 'succeeded'))).toEqual({ code: 'authentication_not_required', status: 409 });
    // The authorization's answer stays what it was when given: a replay is byte for byte.
    expect(await post(`${base}/v1/authorizations`, body, authorizeKey)).toEqual(first);

    await client.capture({ idempotencyKey: unique('cap'), authorizationId: auth.id });
    expect(await stateOf(auth.id)).toBe('captured');
    expect((await client.listOperations(reference)).map((op) => [op.type, op.status])).toEqual([
      ['authorization', 'requires_action'],
      ['authentication', 'succeeded'],
      ['capture', 'succeeded'],
    ]);
  });

  it('declines with 402 authentication_failed when 3-D Secure fails; nothing can then be captured, voided or authenticated', async () => {
    const auth = await authorize('tok_threeDSecureRequired');
    expect(auth.status).toBe('requires_action');
    const key = unique('authn');
    const raw = await post(`${base}/v1/authorizations/${auth.id}/authenticate`, { result: 'failed' }, key);
    expect(raw.status).toBe(402);
    const declined = JSON.parse(raw.text) as CardOperation;
    expect(declined).toMatchObject({ type: 'authentication', status: 'declined', declineCode: 'authentication_failed', authorizationId: auth.id });
    // Through the client a decline is an answer, as for authorize.
    expect(await authenticate(auth.id, 'failed', key)).toEqual(declined);
    expect(await stateOf(auth.id)).toBe('declined');

    expect(await rejection(client.capture({ idempotencyKey: unique('cap'), authorizationId: auth.id }))).toEqual({ code: 'authorization_declined', status: 409 });
    expect(await rejection(client.void({ idempotencyKey: unique('void'), authorizationId: auth.id }))).toEqual({ code: 'authorization_declined', status: 409 });
    expect(await rejection(authenticate(auth.id, 'succeeded'))).toEqual({ code: 'authorization_declined', status: 409 });
    expect((await client.listOperations(auth.reference)).map((op) => [op.type, op.status, op.declineCode])).toEqual([
      ['authorization', 'requires_action', undefined],
      ['authentication', 'declined', 'authentication_failed'],
    ]);
  });

  it('voids an authorization the customer abandoned in requires_action; it can no longer be authenticated', async () => {
    const auth = await authorize('tok_threeDSecureRequired');
    const voided = await client.void({ idempotencyKey: unique('void'), authorizationId: auth.id });
    expect(voided).toMatchObject({ type: 'void', status: 'succeeded', authorizationId: auth.id });
    expect(await stateOf(auth.id)).toBe('voided');
    expect(await rejection(authenticate(auth.id, 'succeeded'))).toEqual({ code: 'authorization_voided', status: 409 });
    expect(await stateOf(auth.id)).toBe('voided');
    expect((await client.listOperations(auth.reference)).map((op) => op.type)).toEqual(['authorization', 'void']);
  });

  it('refuses to authenticate what never required it or does not exist, and validates the request, storing nothing', async () => {
    const auth = await authorize('tok_visa');
    expect(await rejection(authenticate(auth.id, 'succeeded'))).toEqual({ code: 'authentication_not_required', status: 409 });
    expect(await rejection(authenticate('auth_missing', 'succeeded'))).toEqual({ code: 'authorization_not_found', status: 404 });
    expect(await stateOf(auth.id)).toBe('authorized');

    const pending = await authorize('tok_threeDSecureRequired');
    const url = `${base}/v1/authorizations/${pending.id}/authenticate`;
    const noKey = await post(url, { result: 'succeeded' }, null);
    expect(noKey.status).toBe(400);
    expect(JSON.parse(noKey.text).error.code).toBe('missing_idempotency_key');
    for (const body of [{ result: 'maybe' }, {}, { result: 'succeeded', extra: 1 }]) {
      const res = await post(url, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(JSON.parse(res.text).error.code).toBe('invalid_parameter');
    }
    const key = unique('authn');
    await authenticate(pending.id, 'succeeded', key);
    expect(await rejection(authenticate(pending.id, 'failed', key))).toEqual({ code: 'idempotency_key_reused', status: 422 });
    expect(await stateOf(pending.id)).toBe('authorized');
    expect((await client.listOperations(auth.reference)).map((op) => op.type)).toEqual(['authorization']);
    expect((await client.listOperations(pending.reference)).map((op) => op.type)).toEqual(['authorization', 'authentication']);
  });

  it('records exactly one authentication when concurrent ones race, same key or not', async () => {
    const auth = await authorize('tok_threeDSecureRequired');
    const key = unique('authn');
    const sameKey = await Promise.all(Array.from({ length: 10 }, () => authenticate(auth.id, 'succeeded', key)));
    expect(new Set(sameKey.map((op) => op.id)).size).toBe(1);

    const other = await authorize('tok_threeDSecureRequired');
    const raced = await Promise.allSettled([authenticate(other.id, 'succeeded'), authenticate(other.id, 'failed')]);
    const winners = raced.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    expect(winners).toHaveLength(1);
    expect(await stateOf(other.id)).toBe(winners[0]!.status === 'succeeded' ? 'authorized' : 'declined');
    for (const reference of [auth.reference, other.reference]) {
      expect((await client.listOperations(reference)).filter((op) => op.type === 'authentication')).toHaveLength(1);
    }
  });
});

/**
 * For each operation a fault can target: a fresh checkout set up so the operation can act, and a
 * call of it under a given key.
 */
async function prepare(operation: CardFaultOperation): Promise<{ reference: string; type: CardOperation['type']; call: (key: string) => Promise<CardOperation> }> {
  const reference = unique('chk');
  if (operation === 'authorize') {
    return { reference, type: 'authorization', call: (key) => authorize('tok_visa', reference, 1000n, key) };
  }
  const auth = await authorize(operation === 'authenticate' ? 'tok_threeDSecureRequired' : 'tok_visa', reference, 1000n);
  const authorizationId = auth.id;
  switch (operation) {
    case 'authenticate':
      return { reference, type: 'authentication', call: (key) => client.authenticate({ idempotencyKey: key, authorizationId, result: 'succeeded' }) };
    case 'capture':
      return { reference, type: 'capture', call: (key) => client.capture({ idempotencyKey: key, authorizationId }) };
    case 'void':
      return { reference, type: 'void', call: (key) => client.void({ idempotencyKey: key, authorizationId }) };
    case 'refund':
      await client.capture({ idempotencyKey: unique('cap'), authorizationId });
      return { reference, type: 'refund', call: (key) => client.refund({ idempotencyKey: key, authorizationId, amount: 400n }) };
  }
}

const ALL_OPERATIONS: CardFaultOperation[] = ['authorize', 'authenticate', 'capture', 'void', 'refund'];

describe('injected faults (/v1/test/faults)', () => {
  const countOf = async (reference: string, type: CardOperation['type']) =>
    (await client.listOperations(reference)).filter((op) => op.type === type).length;

  it.each(ALL_OPERATIONS)('lose_response on %s: the network acts, the answer is lost, and the key reveals the one operation', async (operation) => {
    const { reference, type, call } = await prepare(operation);
    const fault = await injectCardFault(base, { reference, operation, mode: 'lose_response', times: 1 });
    expect(fault).toMatchObject({ reference, operation, mode: 'lose_response', times: 1, remaining: 1 });

    const key = unique(operation);
    expect((await unavailable(call(key))).status).toBeUndefined();
    const found = await client.lookup(key);
    expect(found).toMatchObject({ type, status: 'succeeded', reference });
    expect(await call(key)).toEqual(found);
    expect(await countOf(reference, type)).toBe(1);
    expect(await listCardFaults(base, reference)).toEqual([{ ...fault, remaining: 0 }]);
  });

  it.each(ALL_OPERATIONS)('error_503 on %s: answers 503 without acting as many times as asked, then acts', async (operation) => {
    const { reference, type, call } = await prepare(operation);
    const before = await client.listOperations(reference);
    await injectCardFault(base, { reference, operation, mode: 'error_503', times: 2 });

    const key = unique(operation);
    for (const attempt of [1, 2]) {
      expect((await unavailable(call(key))).status, `attempt ${attempt}`).toBe(503);
      expect(await client.lookup(key)).toBeNull();
      expect(await client.listOperations(reference)).toEqual(before);
    }
    expect(await call(key)).toMatchObject({ type, status: 'succeeded' });
    expect(await countOf(reference, type)).toBe(1);
    expect((await listCardFaults(base, reference)).map((f) => f.remaining)).toEqual([0]);
  });

  it('loses the responses of retries too: times 2 loses the acting try and the replay', async () => {
    const { reference, call } = await prepare('capture');
    await injectCardFault(base, { reference, operation: 'capture', mode: 'lose_response', times: 2 });
    const key = unique('cap');
    await unavailable(call(key));
    await unavailable(call(key));
    expect(await call(key)).toEqual(await client.lookup(key));
    expect(await countOf(reference, 'capture')).toBe(1);
  });

  it('queues faults for a reference and operation oldest first, and leaves other operations and checkouts alone', async () => {
    const { reference, call } = await prepare('capture');
    const other = await prepare('capture');
    await injectCardFault(base, { reference, operation: 'capture', mode: 'error_503', times: 1 });
    await injectCardFault(base, { reference, operation: 'capture', mode: 'lose_response', times: 1 });
    // Same checkout, another operation; another checkout, same operation: untouched.
    await injectCardFault(base, { reference, operation: 'refund', mode: 'error_503', times: 1 });
    expect(await other.call(unique('cap'))).toMatchObject({ type: 'capture', status: 'succeeded' });

    const key = unique('cap');
    expect((await unavailable(call(key))).status).toBe(503);
    expect(await countOf(reference, 'capture')).toBe(0);
    expect((await unavailable(call(key))).status).toBeUndefined();
    expect(await countOf(reference, 'capture')).toBe(1);
    expect(await call(key)).toEqual(await client.lookup(key));

    expect((await listCardFaults(base, reference)).map((f) => [f.operation, f.mode, f.remaining])).toEqual([
      ['capture', 'error_503', 0],
      ['capture', 'lose_response', 0],
      ['refund', 'error_503', 1],
    ]);
    // Faults are the test's script, not the network's books.
    expect((await client.listOperations(reference)).map((op) => op.type)).toEqual(['authorization', 'capture']);
    expect(await listCardFaults(base, other.reference)).toEqual([]);
  });

  it('keeps injected faults across a restart', async () => {
    const firstPool = new pg.Pool({ connectionString: databaseUrl });
    const before = await startSimulator({}, firstPool);
    const reference = unique('chk');
    await injectCardFault(before.url, { reference, operation: 'authorize', mode: 'error_503', times: 1 });
    await before.server.close();
    await firstPool.end();

    const restartedPool = new pg.Pool({ connectionString: databaseUrl });
    const after = await startSimulator({}, restartedPool);
    try {
      const key = unique('auth');
      const req = { idempotencyKey: key, amount: 1n, currency: 'JPY', token: 'tok_visa', reference };
      expect((await unavailable(after.client.authorize(req))).status).toBe(503);
      expect(await storedRowsFor(reference)).toBe(0);
      expect(await after.client.authorize(req)).toMatchObject({ status: 'succeeded', reference });
    } finally {
      await after.server.close();
      await restartedPool.end();
    }
  });

  it('rejects a malformed fault, naming the field, and stores nothing', async () => {
    const reference = unique('chk');
    const good = { reference, operation: 'capture', mode: 'error_503', times: 1 };
    for (const [field, value] of [['operation', 'settle'], ['mode', 'explode'], ['times', 0], ['times', '1'], ['times', 1.5], ['reference', '']] as const) {
      const res = await post(`${base}/v1/test/faults`, { ...good, [field]: value }, null);
      expect(res.status, `${field}=${JSON.stringify(value)}`).toBe(400);
      expect(JSON.parse(res.text).error).toMatchObject({ code: 'invalid_parameter', param: field });
    }
    expect(await listCardFaults(base, reference)).toEqual([]);
    const noReference = await fetch(`${base}/v1/test/faults`);
    expect(noReference.status).toBe(400);
  });
});

describe('failures a real network has', () => {
  it('tok_processingError answers 503 twice without acting, then approves on the third try', async () => {
    const reference = unique('chk');
    const key = unique('auth');
    for (const attempt of [1, 2]) {
      const err = await authorize('tok_processingError', reference, 1999n, key).catch((e: unknown) => e);
      expect(err, `attempt ${attempt}`).toBeInstanceOf(CardNetworkUnavailableError);
      expect((err as CardNetworkUnavailableError).status).toBe(503);
      expect(await storedRowsFor(reference)).toBe(0);
    }
    expect(await authorize('tok_processingError', reference, 1999n, key)).toMatchObject({ status: 'succeeded' });
    expect(await storedRowsFor(reference)).toBe(1);
  });

  it('tok_timeout acts but loses the response; lookup and a retry with the same key reveal the one authorization', async () => {
    const reference = unique('chk');
    const key = unique('auth');
    await expect(authorize('tok_timeout', reference, 1999n, key)).rejects.toBeInstanceOf(CardNetworkUnavailableError);
    const found = await client.lookup(key);
    expect(found).toMatchObject({ type: 'authorization', status: 'succeeded', reference });
    expect(await authorize('tok_timeout', reference, 1999n, key)).toEqual(found);
    expect(await storedRowsFor(reference)).toBe(1);
  });

  it('treats a request that outlives the client timeout as unavailable', async () => {
    const { url } = await startSimulator({ latencyMs: 500 });
    const impatient = createCardNetworkClient({ baseUrl: url, timeoutMs: 100 });
    const reference = unique('chk');
    const err = await impatient.authorize({ idempotencyKey: unique('auth'), amount: 1n, currency: 'JPY', token: 'tok_visa', reference }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CardNetworkUnavailableError);
    expect((err as Error).name).toBe('CardNetworkUnavailableError');
  });

  it('answers a lookup of a key still being processed as in progress, not as "nothing happened"', async () => {
    const { url } = await startSimulator({ latencyMs: 600 });
    const caller = createCardNetworkClient({ baseUrl: url, timeoutMs: 100 });
    const reference = unique('chk');
    const key = unique('auth');
    // The caller gives up at 100 ms; the network still acts at 600 ms.
    await expect(caller.authorize({ idempotencyKey: key, amount: 1n, currency: 'JPY', token: 'tok_visa', reference })).rejects.toBeInstanceOf(CardNetworkUnavailableError);
    const during = await caller.lookup(key).catch((e: unknown) => e);
    expect(during).toBeInstanceOf(CardNetworkUnavailableError);
    expect(during).toMatchObject({ status: 409, message: expect.stringContaining('still being processed') });
    // Once the network has acted, the lookup finds the authorization.
    let found: unknown;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
      found = await caller.lookup(key).catch((e: unknown) => e);
      if (!(found instanceof CardNetworkUnavailableError)) break;
    }
    expect(found).toMatchObject({ type: 'authorization', status: 'succeeded', reference });
  });

  it('never acts on a request it could not process within its maximum processing time', async () => {
    const { url } = await startSimulator({ latencyMs: 400, maxProcessingMs: 200 });
    const caller = createCardNetworkClient({ baseUrl: url, timeoutMs: 5_000, maxProcessingMs: 200 });
    expect(caller.maxProcessingMs).toBe(200);
    const reference = unique('chk');
    const key = unique('auth');
    const err = await caller.authorize({ idempotencyKey: key, amount: 1n, currency: 'JPY', token: 'tok_visa', reference }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CardNetworkUnavailableError);
    expect(err).toMatchObject({ status: 504 });
    expect(await caller.lookup(key)).toBeNull();
    expect(await storedRowsFor(reference)).toBe(0);
    expect(loadConfig({}).cardNetwork.maxProcessingMs).toBe(30_000);
    expect(loadConfig({ CARD_NETWORK_MAX_PROCESSING_MS: '5000' }).cardNetwork.maxProcessingMs).toBe(5000);
  });

  it('stops a call its caller aborts; the outcome is then unknown', async () => {
    const { client: slow } = await startSimulator({ latencyMs: 500 });
    const abort = new AbortController();
    const call = slow.authorize({ idempotencyKey: unique('auth'), amount: 1n, currency: 'JPY', token: 'tok_visa', reference: unique('chk'), signal: abort.signal });
    setTimeout(() => abort.abort(), 50);
    const startedAt = performance.now();
    await expect(call).rejects.toThrow(/aborted by the caller/);
    expect(performance.now() - startedAt).toBeLessThan(400);
  });

  it('with CARD_NETWORK_ERROR_RATE=1 answers 503 and never acts', async () => {
    const { client: flaky } = await startSimulator({ errorRate: 1 });
    const reference = unique('chk');
    const key = unique('auth');
    await expect(flaky.authorize({ idempotencyKey: key, amount: 1n, currency: 'JPY', token: 'tok_visa', reference })).rejects.toBeInstanceOf(CardNetworkUnavailableError);
    expect(await client.lookup(key)).toBeNull();
    expect(await storedRowsFor(reference)).toBe(0);
  });

  it('with CARD_NETWORK_LOST_RESPONSE_RATE=1 acts, loses the response, and the key reveals the result', async () => {
    const { client: lossy } = await startSimulator({ lostResponseRate: 1 });
    const reference = unique('chk');
    const key = unique('auth');
    await expect(lossy.authorize({ idempotencyKey: key, amount: 1n, currency: 'JPY', token: 'tok_visa', reference })).rejects.toBeInstanceOf(CardNetworkUnavailableError);
    expect(await client.lookup(key)).toMatchObject({ status: 'succeeded', reference });
  });

  it('delays mutating requests by latencyMs', async () => {
    const { client: slow } = await startSimulator({ latencyMs: 300 });
    const startedAt = performance.now();
    await slow.authorize({ idempotencyKey: unique('auth'), amount: 1n, currency: 'JPY', token: 'tok_visa', reference: unique('chk') });
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(290);
  });

  it('adds a uniform jitter of 0..latencyJitterMs on top of latencyMs', async () => {
    const timed = async (random: () => number) => {
      const { client: jittery } = await startSimulator({ latencyMs: 0, latencyJitterMs: 1000, random });
      const startedAt = performance.now();
      await jittery.authorize({ idempotencyKey: unique('auth'), amount: 1n, currency: 'JPY', token: 'tok_visa', reference: unique('chk') });
      return performance.now() - startedAt;
    };
    expect(await timed(() => 0.9999)).toBeGreaterThanOrEqual(990);
    expect(await timed(() => 0)).toBeLessThan(500);
  });

  it('reads the jitter from CARD_NETWORK_LATENCY_JITTER_MS, none by default', () => {
    expect(loadConfig({}).cardNetwork.latencyJitterMs).toBe(0);
    expect(loadConfig({ CARD_NETWORK_LATENCY_JITTER_MS: '250' }).cardNetwork.latencyJitterMs).toBe(250);
    expect(() => loadConfig({ CARD_NETWORK_LATENCY_JITTER_MS: '-1' })).toThrow(/CARD_NETWORK_LATENCY_JITTER_MS/);
  });

  it('lets a request in flight finish when the server stops', async () => {
    const { server, url, client: slow } = await startSimulator({ latencyMs: 300 });
    const reference = unique('chk');
    const key = unique('auth');
    const pending = slow.authorize({ idempotencyKey: key, amount: 1n, currency: 'JPY', token: 'tok_visa', reference });
    await untilInFlight(`${url}/v1/operations/by-key/${key}`);
    await server.close();
    expect(await pending).toMatchObject({ status: 'succeeded', reference });
  });

  it('widens the CHECKs of tables created before 3-D Secure when it starts', async () => {
    // The constraints as the first version created them (with no schema version recorded, as
    // then); NOT VALID leaves rows of earlier tests be.
    await pool.query(`
      DROP TABLE IF EXISTS card_network.schema_version;
      ALTER TABLE card_network.authorizations DROP CONSTRAINT authorizations_state_check,
        ADD CONSTRAINT authorizations_state_check CHECK (state IN ('authorized', 'captured', 'voided', 'declined')) NOT VALID;
      ALTER TABLE card_network.operations DROP CONSTRAINT operations_type_check, DROP CONSTRAINT operations_status_check,
        ADD CONSTRAINT operations_type_check CHECK (type IN ('authorization', 'capture', 'void', 'refund')) NOT VALID,
        ADD CONSTRAINT operations_status_check CHECK (status IN ('succeeded', 'declined')) NOT VALID;
    `);
    const { client: upgraded } = await startSimulator();
    const auth = await upgraded.authorize({ idempotencyKey: unique('auth'), amount: 1n, currency: 'JPY', token: 'tok_threeDSecureRequired', reference: unique('chk') });
    expect(auth.status).toBe('requires_action');
    expect(await upgraded.authenticate({ idempotencyKey: unique('authn'), authorizationId: auth.id, result: 'succeeded' })).toMatchObject({ type: 'authentication' });
    expect(await stateOf(auth.id)).toBe('authorized');
    expect((await pool.query('SELECT version FROM card_network.schema_version')).rows).toEqual([{ version: 2 }]);
  });

  it('restarts under traffic without taking DDL locks', async () => {
    await startSimulator(); // the schema is current
    // A request in flight holds a row lock on operations; a restart that re-ran its ALTER TABLEs
    // would queue behind it (and deadlock with the next request) instead of starting.
    const inFlight = await pool.connect();
    try {
      await inFlight.query('BEGIN');
      await inFlight.query('LOCK TABLE card_network.operations IN ROW EXCLUSIVE MODE');
      const restarted = startSimulator();
      const outcome = await Promise.race([restarted.then(() => 'started'), new Promise((r) => setTimeout(() => r('blocked'), 3_000))]);
      expect(outcome).toBe('started');
    } finally {
      await inFlight.query('ROLLBACK');
      inFlight.release();
    }
  });

  it('keeps every authorization, key and balance across a restart', async () => {
    const ownPool = new pg.Pool({ connectionString: databaseUrl });
    const before = await startSimulator({}, ownPool);
    const auth = await before.client.authorize({ idempotencyKey: unique('auth'), amount: 1000n, currency: 'JPY', token: 'tok_visa', reference: unique('chk') });
    const captureKey = unique('cap');
    const capture = await before.client.capture({ idempotencyKey: captureKey, authorizationId: auth.id, amount: 700n });
    await before.server.close();
    await ownPool.end();

    const restartedPool = new pg.Pool({ connectionString: databaseUrl });
    const after = await startSimulator({}, restartedPool);
    try {
      expect(await after.client.lookup(auth.idempotencyKey)).toEqual(auth);
      expect(await after.client.capture({ idempotencyKey: captureKey, authorizationId: auth.id, amount: 700n })).toEqual(capture);
      expect(await rejection(after.client.refund({ idempotencyKey: unique('re'), authorizationId: auth.id, amount: 701n }))).toEqual({ code: 'refund_exceeds_captured', status: 409 });
    } finally {
      await after.server.close();
      await restartedPool.end();
    }
  });
});

it('answers /health', async () => {
  const res = await fetch(`${base}/health`);
  expect(res.status).toBe(200);
});
