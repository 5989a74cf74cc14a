// HTTP face of the bank simulator: a stand-in for a bank we do not own that pays out to accounts,
// so the payout workflow meets the failure modes a real bank has (closed accounts, idempotent
// replays, transient 503s, responses lost after the money left). Under /v1/test/ a test can
// script those failures for one payout.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import express from 'express';
import type pg from 'pg';
import { z } from 'zod';
import { isAmountString, isCurrencyCode } from '../../domain/money.js';
import type { Logger } from '../../platform/logger.js';
import { accountBehaviour, BankStore, errorBody, FAULT_MODES, requestHash, type ErrorBody } from './store.js';

export interface BankServerOptions {
  /** Owned by the caller, who ends it after `close()`. */
  pool: pg.Pool;
  /** Delay before every transfer request acts. */
  latencyMs?: number;
  /** Fraction of transfer requests answered 503 without acting. */
  errorRate?: number;
  /** Fraction of transfer requests that act but whose response is dropped. */
  lostResponseRate?: number;
  /** Source of the rates' coin flips, in [0, 1); tests pin it. */
  random?: () => number;
  logger?: Logger;
}

export interface BankServer {
  readonly app: express.Express;
  readonly store: BankStore;
  /** Creates the schema if needed, then listens; resolves with the base URL. */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops accepting requests and waits for in-flight ones. The pool stays open. */
  close(): Promise<void>;
}

class RequestError extends Error {
  constructor(readonly status: number, readonly body: ErrorBody) {
    super(body.error.message);
  }
}

const invalid = (code: string, message: string, param?: string) =>
  new RequestError(400, errorBody('invalid_request_error', code, message, param));

// Amounts are strings on the wire: a JSON number is a double and cannot carry every bigint.
const positiveAmount = z
  .string({ error: 'must be an integer string of minor units, e.g. "1999"' })
  .refine(isAmountString, 'must be an integer string of minor units, e.g. "1999"')
  .refine((v) => v !== '0', 'must be greater than zero');

const transferBody = z.strictObject({
  amount: positiveAmount,
  currency: z.string().refine(isCurrencyCode, 'must be an ISO 4217 code such as "JPY"'),
  bankCode: z.string({ error: 'must be a string of 4 digits' }).regex(/^[0-9]{4}$/, 'must be exactly 4 digits'),
  accountNumber: z.string({ error: 'must be a string of 7 digits' }).regex(/^[0-9]{7}$/, 'must be exactly 7 digits'),
  reference: z.string().min(1).max(255),
});
const faultBody = z.strictObject({
  reference: z.string().min(1).max(255),
  mode: z.enum(FAULT_MODES),
  times: z.number().int().min(1).max(1000),
});

function parse<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const param = issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys[0] : undefined);
  if (!param) throw invalid('invalid_request', 'the request body must be a JSON object');
  return throwInvalid(param, issue.code === 'unrecognized_keys' ? 'unknown parameter' : issue.message);
}

function throwInvalid(param: string, message: string): never {
  throw invalid('invalid_parameter', `${param}: ${message}`, param);
}

function idempotencyKey(req: express.Request): string {
  const key = req.get('Idempotency-Key');
  if (!key) throw invalid('missing_idempotency_key', 'the Idempotency-Key header is required on every transfer');
  if (key.length > 255) throw invalid('invalid_idempotency_key', 'the Idempotency-Key header is longer than 255 characters');
  return key;
}

function requiredReference(req: express.Request): string {
  const reference = req.query.reference;
  if (typeof reference !== 'string' || reference === '') throwInvalid('reference', 'a reference query parameter is required');
  return reference;
}

function sendJson(res: express.Response, status: number, body: string | object): void {
  res.status(status).type('application/json').send(typeof body === 'string' ? body : JSON.stringify(body));
}

export function createBankServer(opts: BankServerOptions): BankServer {
  const store = new BankStore(opts.pool);
  const { latencyMs = 0, errorRate = 0, lostResponseRate = 0, random = Math.random, logger } = opts;
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '16kb' }));

  // Handlers still working (maybe inside a transaction), so close() can let them finish first.
  let inFlight = 0;
  let onDrained: (() => void) | undefined;
  const tracked =
    (handler: (req: express.Request, res: express.Response) => Promise<void>) =>
    async (req: express.Request, res: express.Response) => {
      inFlight++;
      try {
        await handler(req, res);
      } finally {
        if (--inFlight === 0) onDrained?.();
      }
    };

  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });

  // Validate, wait, maybe fail before acting, act once per key, maybe drop the response after
  // acting. Injected faults (/v1/test/faults) are applied by the store, inside the transaction.
  app.post(
    '/v1/transfers',
    tracked(async (req, res) => {
      const key = idempotencyKey(req);
      const b = parse(transferBody, req.body);
      const hash = requestHash(['transfer', b.amount, b.currency, b.bankCode, b.accountNumber, b.reference]);
      if (latencyMs > 0) await sleep(latencyMs);
      if (errorRate > 0 && random() < errorRate) {
        return sendJson(res, 503, errorBody('api_error', 'temporarily_unavailable', 'the bank is temporarily unavailable; retry with the same key'));
      }
      const outcome = await store.transfer(key, hash, {
        amount: BigInt(b.amount),
        currency: b.currency,
        bankCode: b.bankCode,
        accountNumber: b.accountNumber,
        reference: b.reference,
      });
      // The lost-response test account loses only the try that paid: a retry or a lookup finds the transfer.
      const dropped =
        outcome.loseResponse === true ||
        (outcome.kind === 'first' && (accountBehaviour(b.accountNumber).loseResponse === true || (lostResponseRate > 0 && random() < lostResponseRate)));
      if (dropped) {
        // The bank acted (or replayed) and committed; the caller only sees a dead connection.
        logger?.debug('dropping response', { idempotencyKey: key, reference: b.reference, kind: outcome.kind });
        req.socket.destroy();
        return;
      }
      sendJson(res, outcome.status, outcome.body);
    }),
  );

  app.get(
    '/v1/transfers/by-key/:key',
    tracked(async (req, res) => {
      const transfer = await store.transferByKey(req.params.key as string);
      if (transfer) return sendJson(res, 200, transfer);
      sendJson(res, 404, errorBody('invalid_request_error', 'transfer_not_found', 'no transfer was made under this Idempotency-Key'));
    }),
  );

  app.get(
    '/v1/transfers',
    tracked(async (req, res) => {
      sendJson(res, 200, { data: await store.transfersByReference(requiredReference(req)) });
    }),
  );

  // Test control, not part of the bank's API: faults are the test's script, so they stay out of
  // /v1/transfers, and need no Idempotency-Key (a test that retries an injection means it twice).
  app.post(
    '/v1/test/faults',
    tracked(async (req, res) => {
      const fault = await store.addFault(parse(faultBody, req.body));
      logger?.info('test fault injected', { ...fault });
      sendJson(res, 201, fault);
    }),
  );

  app.get(
    '/v1/test/faults',
    tracked(async (req, res) => {
      sendJson(res, 200, { data: await store.faultsByReference(requiredReference(req)) });
    }),
  );

  app.use((_req: express.Request, res: express.Response) => {
    sendJson(res, 404, errorBody('invalid_request_error', 'route_not_found', 'no such endpoint'));
  });

  // Express needs all four parameters to recognise an error handler.
  app.use((err: unknown, req: express.Request, res: express.Response, _next: express.NextFunction) => {
    if (err instanceof RequestError) return sendJson(res, err.status, err.body);
    const bodyError = err as { type?: string };
    if (bodyError.type === 'entity.parse.failed') return sendJson(res, 400, errorBody('invalid_request_error', 'invalid_json', 'the request body is not valid JSON'));
    if (bodyError.type === 'entity.too.large') return sendJson(res, 413, errorBody('invalid_request_error', 'body_too_large', 'the request body is too large'));
    logger?.error('bank request failed', { path: req.path, error: err instanceof Error ? err.message : String(err) });
    // A 5xx tells the caller the outcome is unknown; the transaction rolled back, so a retry is safe.
    sendJson(res, 500, errorBody('api_error', 'internal_error', 'internal error; retry with the same key'));
  });

  let server: http.Server | undefined;
  return {
    app,
    store,
    async listen(port = 0, host = '127.0.0.1') {
      await store.migrate();
      const s = http.createServer(app);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, host, () => {
          s.off('error', reject);
          resolve();
        });
      });
      server = s;
      const address = s.address() as AddressInfo;
      const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return `http://${shownHost}:${address.port}`;
    },
    async close() {
      const s = server;
      if (!s) return;
      server = undefined;
      const closed = new Promise<void>((resolve, reject) => s.close((err) => (err ? reject(err) : resolve())));
      if (inFlight > 0) await new Promise<void>((resolve) => (onDrained = resolve));
      // Every handler has answered; what is left are keep-alive sockets (some that Node still
      // counts as busy after the client gave up), which would hold close() open for seconds.
      s.closeAllConnections();
      await closed;
    },
  };
}
