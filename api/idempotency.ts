// Request idempotency with Stripe's semantics, in front of every POST that creates or changes money.
//
// The first request with an Idempotency-Key claims (merchant, key) in `idempotency_requests` with
// one INSERT ... ON CONFLICT DO NOTHING, so of N concurrent identical requests exactly one runs the
// handler. Its answer (status and JSON body) is stored before it is sent, and every later request
// with the same key gets it back:
//
// - same key, same parameters, answer stored -> that answer, byte for byte the first one's status
//   and body, with `Idempotent-Replayed: true`;
// - same key, same parameters, first request still running -> wait for it (polling the row) up to
//   the handler's own timeout, then replay; still running at the deadline -> 409
//   `idempotency_request_in_progress` with `Retry-After`;
// - same key, other parameters or another route -> 422 `idempotency_key_reused`.
//
// A route checks the same rule once more against the resource its key created (`keyReused` below),
// because the key's record may have expired while the resource lives on. That refusal is about the
// key's owner, not an answer of this request: it is never stored, or the owner's own retry would be
// replayed the refusal instead of its resource.
//
// Every answer below 500 is stored, business refusals included (a 409 insufficient_funds stays a 409
// for that key). A 5xx is not: the row is deleted so that a retry runs again, which is safe because
// the resources keep their own second line of defence (workflow ids and update ids derived from the
// key, rows unique per key). A body that fails the route's schema never claims the key, as at
// Stripe, so a client can fix a malformed request and resend it under the same key.
//
// A request that dies while holding a key must not block it forever: the claim carries a lease
// (`locked_until` = claim time + the handler timeout + 30 s), and a retry with the same parameters
// takes over a row whose lease has run out, atomically (UPDATE ... WHERE lease past ... RETURNING).
//
// Keys live `ttlHours` (at least 24 h). Nothing sweeps them: an expired row is treated as absent and
// replaced atomically by the next request with its key. Purging old rows in bulk is the periodic
// reconciliation job's business, not this module's.
//
// All times are the database's (now()), so API processes with drifting clocks agree on leases.
import { createHash } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import type { z } from 'zod';
import type pg from 'pg';
import type { Logger } from '../platform/logger.js';
import { merchantIdOf } from './auth.js';
import { ApiError } from './errors.js';
import { bodyOf } from './json.js';
import { idempotencyKeyOf } from './validation.js';

export const REPLAYED_HEADER = 'Idempotent-Replayed';
const KEY_REUSED = 'idempotency_key_reused';
/** How often a request waiting for another one with its key looks at the row again. */
const POLL_INTERVAL_MS = 50;
/** Past the handler's own timeout, a request still holding its key is presumed dead after this long. */
const ABANDON_GRACE_MS = 30_000;

export interface IdempotencySettings {
  /** node-postgres: every money-moving POST runs these statements (plain SQL, no query interpreter). */
  pool: pg.Pool;
  logger: Logger;
  /** How long a key is remembered. */
  ttlHours: number;
  /** How long a request waits for an earlier one with its key: the handlers' own timeout. */
  waitMs: number;
  /** Lease of a claim; past it the claim is abandoned. Default: waitMs + 30 s. */
  leaseMs?: number;
}

export interface IdempotentRoute {
  /** Whether a request without the header is a 400 (`POST /v1/checkouts`, topups, payouts). */
  required: boolean;
  /**
   * The route's body schema. Parameters are compared after parsing, so `{}` and no body, or a
   * default spelt out, are the same request; a body it rejects bypasses the layer (nothing stored).
   */
  schema: z.ZodType;
}

/** The `idempotency_requests` row as this module reads it. */
interface Row {
  method: string;
  path: string;
  request_hash: string;
  status: 'in_progress' | 'completed';
  response_status: number | null;
  response_body: unknown;
  locked_until: Date | null;
}

/** Hands out the middleware for each route; one per app. */
export type Idempotency = (route: IdempotentRoute) => RequestHandler;

export function createIdempotency(settings: IdempotencySettings): Idempotency {
  const { pool } = settings;
  const leaseMs = settings.leaseMs ?? settings.waitMs + ABANDON_GRACE_MS;
  const ttlMs = settings.ttlHours * 60 * 60 * 1000;

  /**
   * A new row, or null when the key is taken. The lease it returns identifies this claim; it travels
   * as text (with its offset) so that comparing it later is exact to the stored microsecond.
   */
  const insert = async (c: Claim): Promise<string | null> => {
    const { rows } = await pool.query<{ lease: string }>({
      name: 'idempotency-insert',
      text: `
        INSERT INTO "idempotency_requests" ("merchant_id", "key", "method", "path", "request_hash", "status", "locked_until", "expires_at")
        VALUES ($1, $2, $3, $4, $5, 'in_progress', now() + $6::float8 * interval '1 millisecond', now() + $7::float8 * interval '1 millisecond')
        ON CONFLICT ("merchant_id", "key") DO NOTHING
        RETURNING "locked_until"::text AS lease`,
      values: [c.merchantId, c.key, c.method, c.path, c.hash, leaseMs, ttlMs],
    });
    return rows[0]?.lease ?? null;
  };

  /**
   * Takes the key over when its row no longer counts: expired (any parameters: the key is new
   * again), or claimed by a request with these parameters whose lease ran out (it crashed or hung).
   * One UPDATE, so of several retries racing for it exactly one wins.
   */
  const takeOver = async (c: Claim): Promise<string | null> => {
    const { rows } = await pool.query<{ lease: string }>({
      name: 'idempotency-take-over',
      text: `
        UPDATE "idempotency_requests"
        SET "method" = $3, "path" = $4, "request_hash" = $5, "status" = 'in_progress',
            "response_status" = NULL, "response_body" = NULL, "created_at" = now(),
            "locked_until" = now() + $6::float8 * interval '1 millisecond',
            "expires_at" = now() + $7::float8 * interval '1 millisecond'
        WHERE "merchant_id" = $1 AND "key" = $2
          AND ("expires_at" <= now()
               OR ("status" = 'in_progress' AND "locked_until" <= now()
                   AND "method" = $3 AND "path" = $4 AND "request_hash" = $5))
        RETURNING "locked_until"::text AS lease`,
      values: [c.merchantId, c.key, c.method, c.path, c.hash, leaseMs, ttlMs],
    });
    return rows[0]?.lease ?? null;
  };

  const read = async (c: Claim): Promise<Row | null> => {
    const { rows } = await pool.query<Row>({
      name: 'idempotency-read',
      text: `
        SELECT "method", "path", "request_hash", "status", "response_status", "response_body", "locked_until"
        FROM "idempotency_requests"
        WHERE "merchant_id" = $1 AND "key" = $2 AND "expires_at" > now()`,
      values: [c.merchantId, c.key],
    });
    return rows[0] ?? null;
  };

  /** Stores the answer, if this request still holds the key (a takeover would have moved the lease). */
  const complete = async (c: Claim, lease: string, status: number, body: unknown): Promise<boolean> => {
    const { rowCount } = await pool.query({
      name: 'idempotency-complete',
      text: `
        UPDATE "idempotency_requests"
        SET "status" = 'completed', "response_status" = $4, "response_body" = $5::jsonb, "locked_until" = NULL
        WHERE "merchant_id" = $1 AND "key" = $2 AND "status" = 'in_progress' AND "locked_until" = $3::timestamptz`,
      values: [c.merchantId, c.key, lease, status, JSON.stringify(body ?? null)],
    });
    return rowCount === 1;
  };

  /** Frees the key after a 5xx or a request that ended without an answer, so a retry runs again. */
  const release = async (c: Claim, lease: string): Promise<number> => {
    const { rowCount } = await pool.query({
      name: 'idempotency-release',
      text: `
        DELETE FROM "idempotency_requests"
        WHERE "merchant_id" = $1 AND "key" = $2 AND "status" = 'in_progress' AND "locked_until" = $3::timestamptz`,
      values: [c.merchantId, c.key, lease],
    });
    return rowCount ?? 0;
  };

  return (route) => async (req, res, next) => {
    const key = route.required
      ? idempotencyKeyOf(req.get('Idempotency-Key'), true)
      : idempotencyKeyOf(req.get('Idempotency-Key'), false);
    if (key === undefined) {
      next();
      return;
    }
    const parsed = route.schema.safeParse(bodyOf(req));
    if (!parsed.success) {
      // The handler answers the 400; a request that never started is not remembered.
      next();
      return;
    }
    const method = req.method;
    const path = req.originalUrl.split('?', 1)[0]!;
    const c: Claim = { merchantId: merchantIdOf(res), key, method, path, hash: requestHash(method, path, parsed.data) };
    const log = ((res.locals.logger as Logger | undefined) ?? settings.logger).child({ merchantId: c.merchantId, idempotencyKey: key });

    const deadline = Date.now() + settings.waitMs;
    for (;;) {
      const lease = (await insert(c)) ?? (await takeOver(c));
      if (lease) {
        own(res, c, lease, log);
        next();
        return;
      }
      const row = await read(c);
      if (!row) {
        // Gone between the statements (a 5xx released it, or it just expired): claim it again.
        if (Date.now() >= deadline) throw inProgress();
        continue;
      }
      if (row.method !== method || row.path !== path || row.request_hash !== c.hash) throw keyReused(`a different request (${row.method} ${row.path} with other parameters)`, 'request');
      if (row.status === 'completed') {
        log.debug('idempotent replay', { path, status: row.response_status });
        res.setHeader(REPLAYED_HEADER, 'true');
        res.status(row.response_status!).json(row.response_body);
        return;
      }
      // Another request with this key is running. Its lease may run out while we wait: the loop
      // then takes over (an abandoned claim).
      if (Date.now() >= deadline) {
        log.info('idempotent request still in progress', { path });
        throw inProgress();
      }
      await sleep(Math.min(POLL_INTERVAL_MS, Math.max(0, deadline - Date.now())));
    }
  };

  /**
   * Makes this response the key's answer: res.json is wrapped so the answer is stored (or, for a
   * 5xx, the key released) before it is sent. Storing first means a client that got an answer can
   * only ever be replayed that answer.
   */
  function own(res: Response, c: Claim, lease: string, log: Logger): void {
    let settled = false;
    const send = res.json.bind(res);
    res.json = (body: unknown) => {
      if (settled) return send(body);
      settled = true;
      const status = res.statusCode;
      const done = status >= 500 || refusesTheKey(status, body) ? release(c, lease).then(() => true) : complete(c, lease, status, body);
      void done
        .then((held) => {
          if (!held) log.warn('idempotency key was taken over before the answer was stored', { path: c.path, status });
        })
        .catch((err: unknown) => {
          log.error('could not store the idempotent answer', { path: c.path, status, error: err instanceof Error ? err.message : String(err) });
          return release(c, lease).catch(() => 0);
        })
        .finally(() => send(body));
      return res;
    };
    // A request that ends without a JSON answer (the connection dropped, a non-JSON reply) leaves
    // nothing to replay: free the key rather than make retries wait for the lease.
    res.on('close', () => {
      if (settled) return;
      settled = true;
      release(c, lease).catch((err: unknown) => {
        log.warn('could not release an unanswered idempotency key', { path: c.path, error: err instanceof Error ? err.message : String(err) });
      });
    });
  }
}

/** The route found the key's resource made by other parameters: the answer belongs to no request. */
function refusesTheKey(status: number, body: unknown): boolean {
  return status === 422 && (body as { error?: { code?: unknown } } | null)?.error?.code === KEY_REUSED;
}

interface Claim {
  merchantId: string;
  key: string;
  method: string;
  path: string;
  hash: string;
}

/** sha256 of the request as parsed: method, path and body in canonical JSON (keys sorted). */
export function requestHash(method: string, path: string, body: unknown): string {
  return createHash('sha256').update(canonicalJson({ method, path, body })).digest('hex');
}

/** JSON with object keys sorted at every level, so the order a client wrote them in is irrelevant. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const obj = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(obj).sort().map((k) => [k, obj[k]]));
  });
}

/**
 * 422 `idempotency_key_reused`: the key already belongs to `usedFor` (e.g. "a different payout").
 * The layer answers it for a stored request, and routes for a resource created under the key.
 */
export function keyReused(usedFor: string, resource: string): ApiError {
  return new ApiError(
    422,
    'invalid_request_error',
    KEY_REUSED,
    `This Idempotency-Key was already used for ${usedFor}. Use a new key for a new ${resource}.`,
    'Idempotency-Key',
  );
}

function inProgress(): ApiError {
  return new ApiError(
    409,
    'conflict',
    'idempotency_request_in_progress',
    'A request with this Idempotency-Key is still being processed. Retry the same request later to get its answer.',
    'Idempotency-Key',
    { 'Retry-After': '1' },
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
