// The idempotency rules every simulated external system keeps, Stripe-style, in one copy so the
// card network and the bank cannot drift apart on them:
//
// Every mutating request runs in one transaction holding an advisory lock on its idempotency key:
// the first request with a key acts and stores its response; later ones (including concurrent
// ones, which wait on the lock) replay that response byte for byte. A key reused with other
// parameters is refused (422). An injected test fault is taken inside the same transaction.
//
// What each system does when it acts, its tables and its faults' shape stay in its own store.
import { createHash } from 'node:crypto';
import type pg from 'pg';

export interface ErrorBody {
  error: { type: 'invalid_request_error' | 'idempotency_error' | 'api_error'; code: string; message: string; param?: string };
}

export function errorBody(type: ErrorBody['error']['type'], code: string, message: string, param?: string): ErrorBody {
  return { error: param === undefined ? { type, code, message } : { type, code, message, param } };
}

/** Fingerprint of what a request asks for; a key reused with another fingerprint is refused. */
export function requestHash(parts: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

/** `lose_response`: act (or replay) as usual, then drop the connection; `error_503`: answer 503 without acting. */
export const FAULT_MODES = ['lose_response', 'error_503'] as const;
export type FaultMode = (typeof FAULT_MODES)[number];

/**
 * `first`: this request acted (or was refused for good) and its response is now stored under the
 * key; `replay`: the stored response of an earlier request; `unstored`: a transient or
 * key-misuse answer that a retry may change.
 */
export interface Outcome {
  kind: 'first' | 'replay' | 'unstored';
  status: number;
  /** JSON text, so a replay is byte-identical to the first response. */
  body: string;
  /** An injected `lose_response` fault hit this request: the server must drop the response. */
  loseResponse?: boolean;
}

/** What a system's own act answered, before it is stored under the key. */
export interface ActResult {
  status: number;
  body: object;
  /** The record the act made, stored beside the response so a lookup by key can find it. */
  recordId?: string;
  /** Not stored under the key: the request did not act and a retry may succeed. */
  transient?: boolean;
}

export async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((e: Error) => (broken = e));
    throw err;
  } finally {
    client.release(broken);
  }
}

export interface IdempotencyKeysOptions {
  pool: pg.Pool;
  /**
   * First int of the system's two-int advisory locks. Two-int locks live in a key space apart from
   * one-bigint locks (Prisma uses those); the first int keeps each system's apart from the others'.
   */
  lockNamespace: number;
  /** The system's schema; it holds `idempotency_keys (key, request_hash, status_code, body, <recordColumn>)`. */
  schema: string;
  /** The column of `idempotency_keys` that names the record the first request made. */
  recordColumn: string;
  /** Start of the 503 answer to an injected fault, e.g. "the bank is temporarily unavailable". */
  unavailableMessage: string;
}

/** One system's idempotency keys: its migration lock, its per-key locks and its stored responses. */
export class IdempotencyKeys {
  constructor(private readonly opts: IdempotencyKeysOptions) {}

  /**
   * Brings the schema to `version` by running `sql` (idempotent DDL), serialised so simulators
   * starting together do not race on the catalog. A schema already at that version is left alone:
   * a restart under traffic must not take DDL locks (ALTER TABLE, CREATE INDEX) that deadlock with
   * requests still in flight.
   */
  async migrate(sql: string, version: number): Promise<void> {
    const { pool, lockNamespace, schema } = this.opts;
    const versionOf = async (c: pg.PoolClient | pg.Pool): Promise<number> => {
      const table = await c.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [`${schema}.schema_version`]);
      if (!table.rows[0]?.t) return 0;
      const row = await c.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${schema}.schema_version`);
      return row.rows[0]?.v ?? 0;
    };
    if ((await versionOf(pool)) >= version) return;
    await inTransaction(pool, async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1, 0)', [lockNamespace]);
      if ((await versionOf(c)) >= version) return;
      await c.query(sql);
      await c.query(`CREATE TABLE IF NOT EXISTS ${schema}.schema_version (version integer NOT NULL)`);
      await c.query(`DELETE FROM ${schema}.schema_version`);
      await c.query(`INSERT INTO ${schema}.schema_version (version) VALUES ($1)`, [version]);
    });
  }

  /** Waits for a request holding the key to finish, so an in-flight act is not reported as absent. */
  readUnderKey<T>(key: string, read: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.opts.pool, async (c) => {
      await c.query('SELECT pg_advisory_xact_lock_shared($1, hashtext($2))', [this.opts.lockNamespace, key]);
      return read(c);
    });
  }

  /**
   * Acts at most once per key. `takeFault` spends one hit of the injected fault the request
   * matches, if any; `act` does the system's work and its answer is stored under the key.
   */
  once(
    key: string,
    hash: string,
    takeFault: (c: pg.PoolClient) => Promise<FaultMode | undefined>,
    act: (c: pg.PoolClient) => Promise<ActResult>,
  ): Promise<Outcome> {
    const { pool, lockNamespace, schema, recordColumn, unavailableMessage } = this.opts;
    return inTransaction(pool, async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [lockNamespace, key]);
      // Before the replay check: an injected fault hits every matching request, replays included,
      // so `times: n` means n failed tries in a row whatever the caller retries with.
      const fault = await takeFault(c);
      if (fault === 'error_503') {
        const body = errorBody('api_error', 'temporarily_unavailable', `${unavailableMessage} (injected fault); retry with the same key`);
        return { kind: 'unstored', status: 503, body: JSON.stringify(body) };
      }
      const loseResponse = fault === 'lose_response' ? { loseResponse: true } : {};
      const { rows } = await c.query<{ request_hash: string; status_code: number; body: string }>(
        `SELECT request_hash, status_code, body FROM ${schema}.idempotency_keys WHERE key = $1`,
        [key],
      );
      const prior = rows[0];
      if (prior && prior.request_hash !== hash) {
        const body = errorBody('idempotency_error', 'idempotency_key_reused', 'this Idempotency-Key was used with different parameters');
        return { kind: 'unstored', status: 422, body: JSON.stringify(body), ...loseResponse };
      }
      if (prior) return { kind: 'replay', status: prior.status_code, body: prior.body, ...loseResponse };
      const result = await act(c);
      const body = JSON.stringify(result.body);
      if (result.transient) return { kind: 'unstored', status: result.status, body, ...loseResponse };
      await c.query(
        `INSERT INTO ${schema}.idempotency_keys (key, request_hash, status_code, body, ${recordColumn}) VALUES ($1, $2, $3, $4, $5)`,
        [key, hash, result.status, body, result.recordId ?? null],
      );
      return { kind: 'first', status: result.status, body, ...loseResponse };
    });
  }
}
