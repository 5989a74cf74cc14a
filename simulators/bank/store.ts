// The bank's own books, in PostgreSQL under schema `bank`. It models a system we do not own, so
// it lives outside our Prisma schema and creates its tables itself.
//
// Every transfer request acts at most once per idempotency key and later ones replay its stored
// response, by the rules in ../shared/idempotency.ts that every simulated system keeps. A
// rejection is an answer like a payment, so it is stored and replayed too. What the bank does
// with a transfer (its accounts, its books) stays here.
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { FAULT_MODES, IdempotencyKeys, type FaultMode, type Outcome } from '../shared/idempotency.js';
import { FaultQueue, type FaultRecord as SharedFaultRecord } from '../shared/faults.js';

export { FAULT_MODES, type FaultMode, type Outcome };

/** `paid`: the money left for the account; `rejected`: the bank refused the account and nothing moved. */
export type TransferStatus = 'paid' | 'rejected';

export interface FaultSpec {
  /** The reference the transfer requests carry (our payout id). */
  reference: string;
  mode: FaultMode;
  /** How many matching requests, from now on, the fault applies to. */
  times: number;
}

export type FaultRecord = SharedFaultRecord<FaultSpec>;

export interface TransferRecord {
  id: string;
  idempotencyKey: string;
  status: TransferStatus;
  /** Integer minor units as a decimal string. */
  amount: string;
  currency: string;
  bankCode: string;
  accountNumber: string;
  /** The caller's business reference (our payout id). */
  reference: string;
  /** Set only on a rejection, e.g. `account_closed`. */
  failureCode?: string;
  createdAt: string;
}

export interface TransferRequest {
  amount: bigint;
  currency: string;
  bankCode: string;
  accountNumber: string;
  reference: string;
}

interface AccountBehaviour {
  /** The bank refuses transfers to the account with this code (stored: a replay refuses again). */
  failureCode?: string;
  /** The bank pays, but the response of the try that paid is dropped. */
  loseResponse?: boolean;
}

const ACCOUNTS = {
  '0000000': { failureCode: 'account_closed' },
  '9999999': { loseResponse: true },
} satisfies Record<string, AccountBehaviour>;

/**
 * Test account numbers with scripted behaviour, in the spirit of Stripe's test tokens. Any other
 * well-formed account (7 digits, at a 4-digit bank code) is open and accepts transfers.
 */
export const TEST_ACCOUNTS: Readonly<Record<string, AccountBehaviour>> = ACCOUNTS;

export function accountBehaviour(accountNumber: string): AccountBehaviour {
  return Object.hasOwn(TEST_ACCOUNTS, accountNumber) ? TEST_ACCOUNTS[accountNumber]! : {};
}

// Two-int advisory locks live in a key space apart from one-bigint locks (Prisma uses those), and
// the first int keeps ours apart from anyone else's two-int locks (the card network uses "CNET").
const LOCK_NAMESPACE = 0x42414e4b; // "BANK"

/** Bump with every change to SCHEMA_SQL: a store at this version skips its DDL on start. */
const SCHEMA_VERSION = 1;

const SCHEMA_SQL = `
CREATE SCHEMA IF NOT EXISTS bank;
CREATE TABLE IF NOT EXISTS bank.transfers (
  seq bigserial UNIQUE,
  id text PRIMARY KEY,
  idempotency_key text NOT NULL UNIQUE,
  status text NOT NULL CHECK (status IN ('paid', 'rejected')),
  amount bigint NOT NULL CHECK (amount > 0),
  currency text NOT NULL,
  bank_code text NOT NULL,
  account_number text NOT NULL,
  reference text NOT NULL,
  failure_code text,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  CHECK ((status = 'rejected') = (failure_code IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS transfers_reference_seq ON bank.transfers (reference, seq);
CREATE TABLE IF NOT EXISTS bank.idempotency_keys (
  key text PRIMARY KEY,
  request_hash text NOT NULL,
  status_code integer NOT NULL,
  body text NOT NULL,
  transfer_id text NOT NULL REFERENCES bank.transfers (id),
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Test faults live here, not among the transfers: they are the test's instructions, not the bank's books.
CREATE TABLE IF NOT EXISTS bank.faults (
  id bigserial PRIMARY KEY,
  reference text NOT NULL,
  mode text NOT NULL CHECK (mode IN ('lose_response', 'error_503')),
  times integer NOT NULL CHECK (times > 0),
  remaining integer NOT NULL CHECK (remaining BETWEEN 0 AND times),
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS faults_pending ON bank.faults (reference, id) WHERE remaining > 0;
`;

interface TransferRow {
  id: string;
  idempotency_key: string;
  status: TransferStatus;
  amount: string; // pg returns bigint as a string, which is what the wire wants
  currency: string;
  bank_code: string;
  account_number: string;
  reference: string;
  failure_code: string | null;
  created_at: Date;
}

function toRecord(row: TransferRow): TransferRecord {
  return {
    id: row.id,
    idempotencyKey: row.idempotency_key,
    status: row.status,
    amount: row.amount,
    currency: row.currency,
    bankCode: row.bank_code,
    accountNumber: row.account_number,
    reference: row.reference,
    ...(row.failure_code === null ? {} : { failureCode: row.failure_code }),
    createdAt: row.created_at.toISOString(),
  };
}

function newId(prefix: string): string {
  return `${prefix}_${randomBytes(12).toString('hex')}`;
}

export class BankStore {
  private readonly keys: IdempotencyKeys;
  private readonly faults: FaultQueue<FaultSpec>;

  constructor(private readonly pool: pg.Pool) {
    this.faults = new FaultQueue(pool, 'bank.faults', false);
    this.keys = new IdempotencyKeys({
      pool,
      lockNamespace: LOCK_NAMESPACE,
      schema: 'bank',
      recordColumn: 'transfer_id',
      unavailableMessage: 'the bank is temporarily unavailable',
    });
  }

  /** Idempotent; serialised so simulators starting together do not race on the catalog. */
  migrate(): Promise<void> {
    return this.keys.migrate(SCHEMA_SQL, SCHEMA_VERSION);
  }

  /**
   * Pays `req` once per key: 201 with a `paid` transfer, or 422 with a `rejected` one for a closed
   * account. Either is stored, so every retry under the key gets the same answer.
   */
  transfer(key: string, hash: string, req: TransferRequest): Promise<Outcome> {
    return this.keys.once(key, hash, (c) => this.faults.take(c, req.reference), async (c) => {
      const failureCode = accountBehaviour(req.accountNumber).failureCode ?? null;
      const { rows: inserted } = await c.query<TransferRow>(
        `INSERT INTO bank.transfers (id, idempotency_key, status, amount, currency, bank_code, account_number, reference, failure_code)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
        [newId('tr'), key, failureCode ? 'rejected' : 'paid', req.amount.toString(), req.currency, req.bankCode, req.accountNumber, req.reference, failureCode],
      );
      const transfer = toRecord(inserted[0]!);
      return { status: failureCode ? 422 : 201, body: transfer, recordId: transfer.id };
    });
  }

  /** Waits for a request holding the key to finish, so an in-flight transfer is not reported as absent. */
  transferByKey(key: string): Promise<TransferRecord | null> {
    return this.keys.readUnderKey(key, async (c) => {
      const { rows } = await c.query<TransferRow>(`SELECT * FROM bank.transfers WHERE idempotency_key = $1`, [key]);
      return rows[0] ? toRecord(rows[0]) : null;
    });
  }

  /** Every transfer for a reference, paid or rejected, oldest first. */
  async transfersByReference(reference: string): Promise<TransferRecord[]> {
    const { rows } = await this.pool.query<TransferRow>(`SELECT * FROM bank.transfers WHERE reference = $1 ORDER BY seq`, [reference]);
    return rows.map(toRecord);
  }

  /**
   * One page of the transfers in one status created in [createdAfter, createdBefore), oldest
   * first: the bank's statement. Keyset-paged like Stripe's lists, in the order the bank booked
   * them (seq): the page after `startingAfter` (the id of the last transfer of the previous page),
   * so transfers booked meanwhile neither shift nor repeat the pages. Null when `startingAfter`
   * names no transfer.
   */
  async transfersByStatus(q: {
    status: 'paid' | 'rejected';
    createdBefore: Date;
    createdAfter?: Date | undefined;
    startingAfter?: string | undefined;
    limit: number;
  }): Promise<{ data: TransferRecord[]; hasMore: boolean } | null> {
    let afterSeq: string | null = null;
    if (q.startingAfter !== undefined) {
      const { rows } = await this.pool.query<{ seq: string }>(`SELECT seq FROM bank.transfers WHERE id = $1`, [q.startingAfter]);
      if (!rows[0]) return null;
      afterSeq = rows[0].seq;
    }
    // One more than asked tells whether another page follows.
    const { rows } = await this.pool.query<TransferRow>(
      `SELECT * FROM bank.transfers
        WHERE status = $1 AND created_at < $2 AND ($3::timestamptz IS NULL OR created_at >= $3) AND ($4::bigint IS NULL OR seq > $4)
        ORDER BY seq LIMIT $5`,
      [q.status, q.createdBefore, q.createdAfter ?? null, afterSeq, q.limit + 1],
    );
    return { data: rows.slice(0, q.limit).map(toRecord), hasMore: rows.length > q.limit };
  }

  /** Queues a fault behind any pending ones for the same reference. */
  addFault(spec: FaultSpec): Promise<FaultRecord> {
    return this.faults.add(spec);
  }

  /** Every fault injected for a reference, oldest first, used up or not. */
  faultsByReference(reference: string): Promise<FaultRecord[]> {
    return this.faults.byReference(reference);
  }
}
