// The card network's own books, in PostgreSQL under schema `card_network`. It models a system we
// do not own, so it lives outside our Prisma schema and creates its tables itself.
//
// Every mutating request acts at most once per idempotency key and later ones replay its stored
// response, by the rules in ../shared/idempotency.ts that every simulated system keeps.
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { errorBody, FAULT_MODES, IdempotencyKeys, type ActResult, type ErrorBody, type FaultMode, type Outcome } from '../shared/idempotency.js';
import { FaultQueue, type FaultRecord as SharedFaultRecord } from '../shared/faults.js';

export { FAULT_MODES, type FaultMode, type Outcome };

export type OperationType = 'authorization' | 'authentication' | 'capture' | 'void' | 'refund';
/** `requires_action`: the issuer wants 3-D Secure before it holds any money (Stripe's name). */
export type OperationStatus = 'succeeded' | 'declined' | 'requires_action';
export const AUTHORIZATION_STATES = ['requires_action', 'authorized', 'captured', 'voided', 'declined'] as const;
export type AuthorizationState = (typeof AUTHORIZATION_STATES)[number];

/** Requests a test fault can target; capture, void, refund and authenticate match by their authorization's reference. */
export const FAULT_OPERATIONS = ['authorize', 'capture', 'void', 'refund', 'authenticate'] as const;
export type FaultOperation = (typeof FAULT_OPERATIONS)[number];

export interface FaultSpec {
  /** The checkout id the requests carry (for capture, void, refund, authenticate: their authorization's). */
  reference: string;
  operation: FaultOperation;
  mode: FaultMode;
  /** How many matching requests, from now on, the fault applies to. */
  times: number;
}

export type FaultRecord = SharedFaultRecord<FaultSpec>;

/** An authorization as the network's report lists it; amounts are decimal strings. */
export interface AuthorizationRecord {
  id: string;
  state: AuthorizationState;
  amount: string;
  currency: string;
  capturedAmount: string;
  refundedAmount: string;
  reference: string;
  createdAt: string;
}

export interface OperationRecord {
  id: string;
  idempotencyKey: string;
  type: OperationType;
  status: OperationStatus;
  /** Equals `id` for an authorization. */
  authorizationId: string;
  /** Integer minor units as a decimal string. */
  amount: string;
  currency: string;
  /** The caller's business reference (our checkout id). */
  reference: string;
  declineCode?: string;
  createdAt: string;
}

interface TokenBehaviour {
  declineCode?: string;
  /** Answers 503 without acting on this many first tries of a key, then acts. */
  failFirstTries?: number;
  /** Acts, but the server drops the response of the try that acted. */
  loseResponse?: boolean;
  /** The issuer asks for 3-D Secure: the authorization waits in `requires_action`. */
  requiresAction?: boolean;
}

const TOKENS = {
  tok_visa: {},
  tok_chargeDeclined: { declineCode: 'card_declined' },
  tok_insufficientFunds: { declineCode: 'insufficient_funds' },
  tok_processingError: { failFirstTries: 2 },
  tok_timeout: { loseResponse: true },
  tok_threeDSecureRequired: { requiresAction: true },
} satisfies Record<string, TokenBehaviour>;

export type TestToken = keyof typeof TOKENS;

/** Test tokens, Stripe-style. Unknown tokens are rejected before anything is stored. */
export const TEST_TOKENS: Readonly<Record<TestToken, TokenBehaviour>> = TOKENS;

export function isTestToken(token: string): token is TestToken {
  return Object.hasOwn(TEST_TOKENS, token);
}

/** Which injected faults a request can hit: by reference (authorize) or by its authorization's reference. */
export type FaultTarget = { operation: FaultOperation } & ({ reference: string } | { authorizationId: string });

interface Result extends ActResult {
  body: OperationRecord | ErrorBody;
}

// Two-int advisory locks live in a key space apart from one-bigint locks (Prisma uses those),
// and the first int keeps ours apart from anyone else's two-int locks.
const LOCK_NAMESPACE = 0x434e4554; // "CNET"

/** Bump with every change to SCHEMA_SQL: a store at this version skips its DDL on start. */
const SCHEMA_VERSION = 2;

const SCHEMA_SQL = `
CREATE SCHEMA IF NOT EXISTS card_network;
CREATE TABLE IF NOT EXISTS card_network.authorizations (
  id text PRIMARY KEY,
  state text NOT NULL CHECK (state IN ('requires_action', 'authorized', 'captured', 'voided', 'declined')),
  amount bigint NOT NULL CHECK (amount > 0),
  currency text NOT NULL,
  captured_amount bigint NOT NULL DEFAULT 0 CHECK (captured_amount <= amount),
  refunded_amount bigint NOT NULL DEFAULT 0 CHECK (refunded_amount <= captured_amount),
  reference text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS card_network.operations (
  seq bigserial UNIQUE,
  id text PRIMARY KEY,
  idempotency_key text NOT NULL UNIQUE,
  type text NOT NULL CHECK (type IN ('authorization', 'authentication', 'capture', 'void', 'refund')),
  status text NOT NULL CHECK (status IN ('succeeded', 'declined', 'requires_action')),
  authorization_id text NOT NULL REFERENCES card_network.authorizations (id),
  amount bigint NOT NULL,
  currency text NOT NULL,
  reference text NOT NULL,
  decline_code text,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS operations_reference_seq ON card_network.operations (reference, seq);
CREATE TABLE IF NOT EXISTS card_network.idempotency_keys (
  key text PRIMARY KEY,
  request_hash text NOT NULL,
  status_code integer NOT NULL,
  body text NOT NULL,
  operation_id text REFERENCES card_network.operations (id),
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS card_network.key_attempts (
  key text PRIMARY KEY,
  attempts integer NOT NULL
);
-- Tables created before 3-D Secure carry narrower CHECKs (PostgreSQL named them <table>_<column>_check).
-- Replacing them on every start is idempotent and cheap at a simulator's size.
ALTER TABLE card_network.authorizations
  DROP CONSTRAINT IF EXISTS authorizations_state_check,
  ADD CONSTRAINT authorizations_state_check CHECK (state IN ('requires_action', 'authorized', 'captured', 'voided', 'declined'));
ALTER TABLE card_network.operations
  DROP CONSTRAINT IF EXISTS operations_type_check,
  ADD CONSTRAINT operations_type_check CHECK (type IN ('authorization', 'authentication', 'capture', 'void', 'refund')),
  DROP CONSTRAINT IF EXISTS operations_status_check,
  ADD CONSTRAINT operations_status_check CHECK (status IN ('succeeded', 'declined', 'requires_action'));
-- Test faults live here, not among the operations: they are the test's instructions, not the network's books.
CREATE TABLE IF NOT EXISTS card_network.faults (
  id bigserial PRIMARY KEY,
  reference text NOT NULL,
  operation text NOT NULL CHECK (operation IN ('authorize', 'capture', 'void', 'refund', 'authenticate')),
  mode text NOT NULL CHECK (mode IN ('lose_response', 'error_503')),
  times integer NOT NULL CHECK (times > 0),
  remaining integer NOT NULL CHECK (remaining BETWEEN 0 AND times),
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS faults_pending ON card_network.faults (reference, operation, id) WHERE remaining > 0;
`;

interface OperationRow {
  id: string;
  idempotency_key: string;
  type: OperationType;
  status: OperationStatus;
  authorization_id: string;
  amount: string; // pg returns bigint as a string, which is what the wire wants
  currency: string;
  reference: string;
  decline_code: string | null;
  created_at: Date;
}

interface AuthorizationRow {
  id: string;
  state: AuthorizationState;
  amount: string;
  currency: string;
  captured_amount: string;
  refunded_amount: string;
  reference: string;
}

function toRecord(row: OperationRow): OperationRecord {
  return {
    id: row.id,
    idempotencyKey: row.idempotency_key,
    type: row.type,
    status: row.status,
    authorizationId: row.authorization_id,
    amount: row.amount,
    currency: row.currency,
    reference: row.reference,
    ...(row.decline_code === null ? {} : { declineCode: row.decline_code }),
    createdAt: row.created_at.toISOString(),
  };
}

function newId(prefix: string): string {
  return `${prefix}_${randomBytes(12).toString('hex')}`;
}

const notFound = (id: string): Result => ({
  status: 404,
  body: errorBody('invalid_request_error', 'authorization_not_found', `no authorization ${id}`, 'id'),
});
const conflict = (code: string, message: string): Result => ({ status: 409, body: errorBody('invalid_request_error', code, message) });

export class CardNetworkStore {
  private readonly keys: IdempotencyKeys;
  private readonly faults: FaultQueue<FaultSpec>;

  constructor(private readonly pool: pg.Pool) {
    this.faults = new FaultQueue(pool, 'card_network.faults', true);
    this.keys = new IdempotencyKeys({
      pool,
      lockNamespace: LOCK_NAMESPACE,
      schema: 'card_network',
      recordColumn: 'operation_id',
      unavailableMessage: 'the network is temporarily unavailable',
    });
  }

  /** Idempotent; serialised so simulators starting together do not race on the catalog. */
  migrate(): Promise<void> {
    return this.keys.migrate(SCHEMA_SQL, SCHEMA_VERSION);
  }

  authorize(key: string, hash: string, req: { amount: bigint; currency: string; token: TestToken; reference: string }): Promise<Outcome> {
    return this.once(key, hash, { operation: 'authorize', reference: req.reference }, async (c) => {
      const behaviour = TEST_TOKENS[req.token];
      if (behaviour.failFirstTries) {
        // Counted in the same transaction, so the count survives restarts and concurrent tries.
        const { rows } = await c.query<{ attempts: number }>(
          `INSERT INTO card_network.key_attempts (key, attempts) VALUES ($1, 1)
           ON CONFLICT (key) DO UPDATE SET attempts = key_attempts.attempts + 1 RETURNING attempts`,
          [key],
        );
        if (rows[0]!.attempts <= behaviour.failFirstTries) {
          return { status: 503, transient: true, body: errorBody('api_error', 'processing_error', 'the issuer could not be reached; retry with the same key') };
        }
      }
      const id = newId('auth');
      const declineCode = behaviour.declineCode ?? null;
      // A 3-D Secure authorization holds no money yet: it waits for the customer to authenticate.
      const [state, status]: [AuthorizationState, OperationStatus] = declineCode
        ? ['declined', 'declined']
        : behaviour.requiresAction
          ? ['requires_action', 'requires_action']
          : ['authorized', 'succeeded'];
      await c.query(
        `INSERT INTO card_network.authorizations (id, state, amount, currency, reference) VALUES ($1, $2, $3, $4, $5)`,
        [id, state, req.amount.toString(), req.currency, req.reference],
      );
      const op = await this.insertOperation(c, {
        id, key, type: 'authorization', status, authorizationId: id,
        amount: req.amount, currency: req.currency, reference: req.reference, declineCode,
      });
      return { status: declineCode ? 402 : 201, body: op, recordId: id };
    });
  }

  /**
   * Completes 3-D Secure: `succeeded` holds the money (the authorization becomes `authorized`),
   * `failed` declines it with `authentication_failed`. Either is recorded as an `authentication`
   * operation; the authorization's own operation keeps its `requires_action` answer, as it was given.
   */
  authenticate(key: string, hash: string, req: { authorizationId: string; result: 'succeeded' | 'failed' }): Promise<Outcome> {
    return this.once(key, hash, { operation: 'authenticate', authorizationId: req.authorizationId }, async (c) => {
      const auth = await this.lockAuthorization(c, req.authorizationId);
      if (!auth) return notFound(req.authorizationId);
      if (auth.state === 'voided') return conflict('authorization_voided', 'the authorization was voided before the customer authenticated');
      if (auth.state === 'declined') return conflict('authorization_declined', 'the authorization was declined');
      // Also what a second authentication under another key meets: the first one decided.
      if (auth.state !== 'requires_action') {
        return conflict('authentication_not_required', `only an authorization in requires_action can be authenticated (it is ${auth.state})`);
      }
      const succeeded = req.result === 'succeeded';
      await c.query(`UPDATE card_network.authorizations SET state = $2, updated_at = clock_timestamp() WHERE id = $1`, [auth.id, succeeded ? 'authorized' : 'declined']);
      const op = await this.insertOperation(c, {
        id: newId('authn'), key, type: 'authentication', status: succeeded ? 'succeeded' : 'declined', authorizationId: auth.id,
        amount: BigInt(auth.amount), currency: auth.currency, reference: auth.reference, declineCode: succeeded ? null : 'authentication_failed',
      });
      return { status: succeeded ? 200 : 402, body: op, recordId: op.id };
    });
  }

  capture(key: string, hash: string, req: { authorizationId: string; amount: bigint | undefined }): Promise<Outcome> {
    return this.once(key, hash, { operation: 'capture', authorizationId: req.authorizationId }, async (c) => {
      const auth = await this.lockAuthorization(c, req.authorizationId);
      if (!auth) return notFound(req.authorizationId);
      if (auth.state === 'declined') return conflict('authorization_declined', 'a declined authorization cannot be captured');
      if (auth.state === 'requires_action') return conflict('authorization_requires_action', 'the customer has not completed 3-D Secure; nothing is held to capture');
      if (auth.state === 'voided') return conflict('authorization_voided', 'the authorization was voided');
      // One capture per authorization (any remainder is released), so a second one can only be a duplicate.
      if (auth.state === 'captured') return conflict('already_captured', 'the authorization was already captured');
      const amount = req.amount ?? BigInt(auth.amount);
      if (amount > BigInt(auth.amount)) {
        return conflict('amount_exceeds_authorized', `capture amount ${amount} exceeds the authorized ${auth.amount}`);
      }
      await c.query(
        `UPDATE card_network.authorizations SET state = 'captured', captured_amount = $2, updated_at = clock_timestamp() WHERE id = $1`,
        [auth.id, amount.toString()],
      );
      const op = await this.insertOperation(c, { id: newId('cap'), key, type: 'capture', status: 'succeeded', authorizationId: auth.id, amount, currency: auth.currency, reference: auth.reference, declineCode: null });
      return { status: 200, body: op, recordId: op.id };
    });
  }

  /** Also ends an authorization still waiting for 3-D Secure: the customer abandoned it. */
  void(key: string, hash: string, req: { authorizationId: string }): Promise<Outcome> {
    return this.once(key, hash, { operation: 'void', authorizationId: req.authorizationId }, async (c) => {
      const auth = await this.lockAuthorization(c, req.authorizationId);
      if (!auth) return notFound(req.authorizationId);
      if (auth.state === 'declined') return conflict('authorization_declined', 'a declined authorization holds no funds to release');
      if (auth.state === 'captured') return conflict('already_captured', 'a captured authorization cannot be voided; refund it');
      if (auth.state === 'voided') {
        // The caller's goal (funds released) already holds, so answer with the existing void rather
        // than an error: two compensations racing with different keys both succeed, one void exists.
        const { rows } = await c.query<OperationRow>(
          `SELECT * FROM card_network.operations WHERE authorization_id = $1 AND type = 'void'`,
          [auth.id],
        );
        return { status: 200, body: toRecord(rows[0]!), recordId: rows[0]!.id };
      }
      await c.query(`UPDATE card_network.authorizations SET state = 'voided', updated_at = clock_timestamp() WHERE id = $1`, [auth.id]);
      const op = await this.insertOperation(c, { id: newId('void'), key, type: 'void', status: 'succeeded', authorizationId: auth.id, amount: BigInt(auth.amount), currency: auth.currency, reference: auth.reference, declineCode: null });
      return { status: 200, body: op, recordId: op.id };
    });
  }

  refund(key: string, hash: string, req: { authorizationId: string; amount: bigint }): Promise<Outcome> {
    return this.once(key, hash, { operation: 'refund', authorizationId: req.authorizationId }, async (c) => {
      const auth = await this.lockAuthorization(c, req.authorizationId);
      if (!auth) return notFound(req.authorizationId);
      if (auth.state !== 'captured') return conflict('not_captured', `only a captured authorization can be refunded (it is ${auth.state})`);
      const refundable = BigInt(auth.captured_amount) - BigInt(auth.refunded_amount);
      if (req.amount > refundable) {
        return conflict('refund_exceeds_captured', `refund ${req.amount} exceeds the ${refundable} still refundable`);
      }
      await c.query(
        `UPDATE card_network.authorizations SET refunded_amount = refunded_amount + $2, updated_at = clock_timestamp() WHERE id = $1`,
        [auth.id, req.amount.toString()],
      );
      const op = await this.insertOperation(c, { id: newId('re'), key, type: 'refund', status: 'succeeded', authorizationId: auth.id, amount: req.amount, currency: auth.currency, reference: auth.reference, declineCode: null });
      return { status: 201, body: op, recordId: op.id };
    });
  }

  /** Waits for a request holding the key to finish, so an in-flight act is not reported as absent. */
  operationByKey(key: string): Promise<OperationRecord | null> {
    return this.keys.readUnderKey(key, async (c) => {
      const { rows } = await c.query<OperationRow>(
        `SELECT o.* FROM card_network.idempotency_keys k JOIN card_network.operations o ON o.id = k.operation_id WHERE k.key = $1`,
        [key],
      );
      return rows[0] ? toRecord(rows[0]) : null;
    });
  }

  async operationsByReference(reference: string): Promise<OperationRecord[]> {
    const { rows } = await this.pool.query<OperationRow>(
      `SELECT * FROM card_network.operations WHERE reference = $1 ORDER BY seq`,
      [reference],
    );
    return rows.map(toRecord);
  }

  /**
   * One page of the authorizations in one state created in [createdAfter, createdBefore), oldest
   * first: what a reconciliation compares with the merchant's records (a real network offers this
   * as a report). Keyset-paged like Stripe's lists: the page after `startingAfter` (the id of the
   * last authorization of the previous page) in (created_at, id) order, so records inserted or
   * changing state meanwhile neither shift nor repeat the pages. Null when `startingAfter` names no
   * authorization.
   */
  async authorizationsByState(q: {
    state: AuthorizationState;
    createdBefore: Date;
    createdAfter?: Date | undefined;
    startingAfter?: string | undefined;
    limit: number;
  }): Promise<{ data: AuthorizationRecord[]; hasMore: boolean } | null> {
    if (q.startingAfter !== undefined) {
      const { rowCount } = await this.pool.query(`SELECT 1 FROM card_network.authorizations WHERE id = $1`, [q.startingAfter]);
      if (!rowCount) return null;
    }
    // One more than asked tells whether another page follows.
    const { rows } = await this.pool.query<AuthorizationRow & { created_at: Date }>(
      `SELECT * FROM card_network.authorizations
        WHERE state = $1 AND created_at < $2 AND ($3::timestamptz IS NULL OR created_at >= $3)
          AND ($4::text IS NULL OR (created_at, id) > (SELECT created_at, id FROM card_network.authorizations WHERE id = $4))
        ORDER BY created_at, id LIMIT $5`,
      [q.state, q.createdBefore, q.createdAfter ?? null, q.startingAfter ?? null, q.limit + 1],
    );
    const data = rows.slice(0, q.limit).map((row) => ({
      id: row.id,
      state: row.state,
      amount: row.amount,
      currency: row.currency,
      capturedAmount: row.captured_amount,
      refundedAmount: row.refunded_amount,
      reference: row.reference,
      createdAt: row.created_at.toISOString(),
    }));
    return { data, hasMore: rows.length > q.limit };
  }

  /** Queues a fault behind any pending ones for the same reference and operation. */
  addFault(spec: FaultSpec): Promise<FaultRecord> {
    return this.faults.add(spec);
  }

  /** Every fault injected for a reference, oldest first, used up or not. */
  faultsByReference(reference: string): Promise<FaultRecord[]> {
    return this.faults.byReference(reference);
  }

  private async takeFault(c: pg.PoolClient, target: FaultTarget): Promise<FaultMode | undefined> {
    let reference: string | undefined;
    if ('reference' in target) reference = target.reference;
    else {
      const { rows } = await c.query<{ reference: string }>(`SELECT reference FROM card_network.authorizations WHERE id = $1`, [target.authorizationId]);
      reference = rows[0]?.reference;
    }
    if (reference === undefined) return undefined; // unknown authorization: the request 404s, no fault can match
    return this.faults.take(c, reference, target.operation);
  }

  private once(key: string, hash: string, target: FaultTarget, act: (c: pg.PoolClient) => Promise<Result>): Promise<Outcome> {
    return this.keys.once(key, hash, (c) => this.takeFault(c, target), act);
  }

  private async lockAuthorization(c: pg.PoolClient, id: string): Promise<AuthorizationRow | undefined> {
    const { rows } = await c.query<AuthorizationRow>(`SELECT * FROM card_network.authorizations WHERE id = $1 FOR UPDATE`, [id]);
    return rows[0];
  }

  private async insertOperation(
    c: pg.PoolClient,
    op: { id: string; key: string; type: OperationType; status: OperationStatus; authorizationId: string; amount: bigint; currency: string; reference: string; declineCode: string | null },
  ): Promise<OperationRecord> {
    const { rows } = await c.query<OperationRow>(
      `INSERT INTO card_network.operations (id, idempotency_key, type, status, authorization_id, amount, currency, reference, decline_code)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
      [op.id, op.key, op.type, op.status, op.authorizationId, op.amount.toString(), op.currency, op.reference, op.declineCode],
    );
    return toRecord(rows[0]!);
  }
}
