// HTTP face of the card-network simulator: a stand-in for a card network we do not own, close
// enough to Stripe's API that the workflows meet the same failure modes a real network has
// (declines, 3-D Secure, idempotent replays, transient 503s, responses lost after the network
// acted). Under /v1/test/ a test can script those failures for one checkout.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import express from 'express';
import type pg from 'pg';
import { z } from 'zod';
import { isAmountString, isCurrencyCode } from '../../domain/money.js';
import type { Logger } from '../../platform/logger.js';
import {
  CardNetworkStore,
  errorBody,
  FAULT_MODES,
  FAULT_OPERATIONS,
  isTestToken,
  requestHash,
  TEST_TOKENS,
  type ErrorBody,
  type Outcome,
  type TestToken,
} from './store.js';

export interface CardNetworkServerOptions {
  /** Owned by the caller, who ends it after `close()`. */
  pool: pg.Pool;
  /** Delay before every mutating request acts. */
  latencyMs?: number;
  /** Up to this much more delay, drawn uniformly per request, so concurrent calls finish out of order. */
  latencyJitterMs?: number;
  /** Fraction of mutating requests answered 503 without acting. */
  errorRate?: number;
  /** Fraction of mutating requests that act but whose response is dropped. */
  lostResponseRate?: number;
  /** Source of the jitter and of the rates' coin flips, in [0, 1); tests pin it. */
  random?: () => number;
  logger?: Logger;
}

export interface CardNetworkServer {
  readonly app: express.Express;
  readonly store: CardNetworkStore;
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
const authorizationId = z.string().min(1).max(255);

const authorizationBody = z.strictObject({
  amount: positiveAmount,
  currency: z.string().refine(isCurrencyCode, 'must be an ISO 4217 code such as "JPY"'),
  token: z.string().refine(isTestToken, `must be one of ${Object.keys(TEST_TOKENS).join(', ')}`),
  reference: z.string().min(1).max(255),
});
const captureBody = z.strictObject({ amount: positiveAmount.optional() });
const voidBody = z.strictObject({});
const refundBody = z.strictObject({ authorizationId, amount: positiveAmount });
const authenticationBody = z.strictObject({ result: z.enum(['succeeded', 'failed']) });
const faultBody = z.strictObject({
  reference: z.string().min(1).max(255),
  operation: z.enum(FAULT_OPERATIONS),
  mode: z.enum(FAULT_MODES),
  times: z.number().int().min(1).max(1000),
});

function parse<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const param = issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys[0] : undefined);
  if (param === 'token' && issue.code === 'custom') throw invalid('invalid_token', `token: ${issue.message}`, 'token');
  if (!param) throw invalid('invalid_request', 'the request body must be a JSON object');
  return throwInvalid(param, issue.code === 'unrecognized_keys' ? 'unknown parameter' : issue.message);
}

function throwInvalid(param: string, message: string): never {
  throw invalid('invalid_parameter', `${param}: ${message}`, param);
}

function idempotencyKey(req: express.Request): string {
  const key = req.get('Idempotency-Key');
  if (!key) throw invalid('missing_idempotency_key', 'the Idempotency-Key header is required on every mutating request');
  if (key.length > 255) throw invalid('invalid_idempotency_key', 'the Idempotency-Key header is longer than 255 characters');
  return key;
}

function sendJson(res: express.Response, status: number, body: string | object): void {
  res.status(status).type('application/json').send(typeof body === 'string' ? body : JSON.stringify(body));
}

export function createCardNetworkServer(opts: CardNetworkServerOptions): CardNetworkServer {
  const store = new CardNetworkStore(opts.pool);
  const { latencyMs = 0, latencyJitterMs = 0, errorRate = 0, lostResponseRate = 0, random = Math.random, logger } = opts;
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

  /**
   * Shared path of every mutating request: validate, wait, maybe fail before acting, act once
   * per key, maybe drop the response after acting. Injected faults (/v1/test/faults) are applied
   * by the store, inside the request's transaction.
   */
  const mutating = (prepare: (req: express.Request) => { run: (key: string) => Promise<Outcome>; loseResponse?: boolean }) =>
    tracked(async (req, res) => {
      const key = idempotencyKey(req);
      const { run, loseResponse = false } = prepare(req);
      const delayMs = latencyMs + (latencyJitterMs > 0 ? Math.floor(random() * (latencyJitterMs + 1)) : 0);
      if (delayMs > 0) await sleep(delayMs);
      if (errorRate > 0 && random() < errorRate) {
        return sendJson(res, 503, errorBody('api_error', 'temporarily_unavailable', 'the network is temporarily unavailable; retry with the same key'));
      }
      const outcome = await run(key);
      const dropped =
        outcome.loseResponse === true ||
        (outcome.kind === 'first' && (loseResponse || (lostResponseRate > 0 && random() < lostResponseRate)));
      if (dropped) {
        // The network acted (or replayed) and committed; the caller only sees a dead connection.
        logger?.debug('dropping response', { idempotencyKey: key, path: req.path, kind: outcome.kind });
        req.socket.destroy();
        return;
      }
      sendJson(res, outcome.status, outcome.body);
    });

  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.post(
    '/v1/authorizations',
    mutating((req) => {
      const b = parse(authorizationBody, req.body);
      const hash = requestHash(['authorization', b.amount, b.currency, b.token, b.reference]);
      const token = b.token as TestToken;
      return {
        run: (key) => store.authorize(key, hash, { amount: BigInt(b.amount), currency: b.currency, token, reference: b.reference }),
        loseResponse: TEST_TOKENS[token].loseResponse === true,
      };
    }),
  );

  app.post(
    '/v1/authorizations/:id/authenticate',
    mutating((req) => {
      const authorizationId = req.params.id as string;
      const b = parse(authenticationBody, req.body);
      const hash = requestHash(['authentication', authorizationId, b.result]);
      return { run: (key) => store.authenticate(key, hash, { authorizationId, result: b.result }) };
    }),
  );

  app.post(
    '/v1/authorizations/:id/capture',
    mutating((req) => {
      const authorizationId = req.params.id as string;
      const b = parse(captureBody, req.body);
      const hash = requestHash(['capture', authorizationId, b.amount ?? null]);
      return { run: (key) => store.capture(key, hash, { authorizationId, amount: b.amount === undefined ? undefined : BigInt(b.amount) }) };
    }),
  );

  app.post(
    '/v1/authorizations/:id/void',
    mutating((req) => {
      const authorizationId = req.params.id as string;
      parse(voidBody, req.body);
      const hash = requestHash(['void', authorizationId]);
      return { run: (key) => store.void(key, hash, { authorizationId }) };
    }),
  );

  app.post(
    '/v1/refunds',
    mutating((req) => {
      const b = parse(refundBody, req.body);
      const hash = requestHash(['refund', b.authorizationId, b.amount]);
      return { run: (key) => store.refund(key, hash, { authorizationId: b.authorizationId, amount: BigInt(b.amount) }) };
    }),
  );

  app.get(
    '/v1/operations/by-key/:key',
    tracked(async (req, res) => {
      const op = await store.operationByKey(req.params.key as string);
      if (op) return sendJson(res, 200, op);
      sendJson(res, 404, errorBody('invalid_request_error', 'operation_not_found', 'no operation was performed under this Idempotency-Key'));
    }),
  );

  app.get(
    '/v1/operations',
    tracked(async (req, res) => {
      const reference = req.query.reference;
      if (typeof reference !== 'string' || reference === '') throwInvalid('reference', 'a reference query parameter is required');
      sendJson(res, 200, { data: await store.operationsByReference(reference) });
    }),
  );

  // Test control, not part of the network's API: faults are the test's script, so they stay out of
  // /v1/operations, and need no Idempotency-Key (a test that retries an injection means it twice).
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
      const reference = req.query.reference;
      if (typeof reference !== 'string' || reference === '') throwInvalid('reference', 'a reference query parameter is required');
      sendJson(res, 200, { data: await store.faultsByReference(reference) });
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
    logger?.error('card network request failed', { path: req.path, error: err instanceof Error ? err.message : String(err) });
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
