// The HTTP machinery every simulated external system shares: Stripe-style error bodies, request
// validation, the Idempotency-Key header, the path of a mutating request (latency, transient 503s,
// acting once per key, responses lost after acting), draining on close. Each system's routes and
// what they do stay in its own server.ts.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import express from 'express';
import { z } from 'zod';
import { isAmountString } from '../../domain/money.js';
import { DEFAULT_MAX_PROCESSING_MS } from '../../platform/http-json-client.js';
import type { Logger } from '../../platform/logger.js';
import { errorBody, FAULT_MODES, type ErrorBody, type Outcome } from './idempotency.js';

export class RequestError extends Error {
  constructor(readonly status: number, readonly body: ErrorBody) {
    super(body.error.message);
  }
}

export const invalid = (code: string, message: string, param?: string) =>
  new RequestError(400, errorBody('invalid_request_error', code, message, param));

export function throwInvalid(param: string, message: string): never {
  throw invalid('invalid_parameter', `${param}: ${message}`, param);
}

// Amounts are strings on the wire: a JSON number is a double and cannot carry every bigint.
export const positiveAmount = z
  .string({ error: 'must be an integer string of minor units, e.g. "1999"' })
  .refine(isAmountString, 'must be an integer string of minor units, e.g. "1999"')
  .refine((v) => v !== '0', 'must be greater than zero');

/**
 * Validates a JSON body; the first problem becomes a 400 naming the parameter. `customCodes` gives
 * a parameter's failed custom check its own error code (e.g. `token` → `invalid_token`).
 */
export function parse<T extends z.ZodType>(schema: T, value: unknown, customCodes: Record<string, string> = {}): z.output<T> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const param = issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys[0] : undefined);
  const customCode = param === undefined ? undefined : customCodes[param];
  if (param !== undefined && customCode !== undefined && issue.code === 'custom') throw invalid(customCode, `${param}: ${issue.message}`, param);
  if (!param) throw invalid('invalid_request', 'the request body must be a JSON object');
  return throwInvalid(param, issue.code === 'unrecognized_keys' ? 'unknown parameter' : issue.message);
}

/** The `reference` query parameter that listings require. */
/**
 * The paging of a report (the network's authorizations, the bank's statement): records created in
 * [createdAfter, createdBefore), oldest first, `limit` at a time after the record `starting_after`.
 */
export const reportPaging = {
  createdBefore: z.iso.datetime({ offset: true }).optional(),
  createdAfter: z.iso.datetime({ offset: true }).optional(),
  starting_after: z.string().min(1).max(255).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(1000),
};

/** What every test fault names (simulators/shared/faults.ts); a system adds its own fields. */
export const faultFields = {
  reference: z.string().min(1).max(255),
  mode: z.enum(FAULT_MODES),
  times: z.number().int().min(1).max(1000),
};

export function requiredReference(req: express.Request): string {
  const reference = req.query.reference;
  if (typeof reference !== 'string' || reference === '') throwInvalid('reference', 'a reference query parameter is required');
  return reference;
}

export function sendJson(res: express.Response, status: number, body: string | object): void {
  res.status(status).type('application/json').send(typeof body === 'string' ? body : JSON.stringify(body));
}

export interface SimulatorFaultOptions {
  /** Delay before every mutating request acts. */
  latencyMs?: number;
  /** Up to this much more delay, drawn uniformly per request, so concurrent calls finish out of order. */
  latencyJitterMs?: number;
  /** Fraction of mutating requests answered 503 without acting. */
  errorRate?: number;
  /** Fraction of mutating requests that act but whose response is dropped. */
  lostResponseRate?: number;
  /**
   * The longest the system takes to act on a request after receiving it. A request it could not act
   * on in that time is answered 504 and never acted on later, so a caller that has heard nothing for
   * this long after its last request ended knows that a lookup by key is final. Default
   * DEFAULT_MAX_PROCESSING_MS.
   */
  maxProcessingMs?: number;
  /** Source of the jitter and of the rates' coin flips, in [0, 1); tests pin it. */
  random?: () => number;
  logger?: Logger;
}

export interface SimulatorHttpOptions extends SimulatorFaultOptions {
  /** The system's name in logs, e.g. "bank". */
  name: string;
  /** Start of a 503's message, e.g. "the bank is temporarily unavailable". */
  unavailableMessage: string;
  /** Which requests need an Idempotency-Key, for the 400 when it is missing, e.g. "every transfer". */
  keyRequiredOn: string;
  /** Creates the system's schema if needed; run by listen(). */
  migrate: () => Promise<void>;
}

type Handler = (req: express.Request, res: express.Response) => Promise<void>;

/** What a mutating route hands over once it has validated its request. */
export interface MutatingRequest {
  /** Acts once under the key (the store applies injected faults inside its transaction). */
  run: (key: string) => Promise<Outcome>;
  /** The request itself asks for its response to be lost when it acts (a test token or account). */
  loseResponse?: boolean;
  /** Fields logged when the response is dropped; the request path by default. */
  logFields?: Record<string, unknown>;
}

export interface RouteKit {
  app: express.Express;
  /** Counts the handler as in flight, so close() lets it finish. */
  tracked: (handler: Handler) => Handler;
  /**
   * Shared path of every mutating request: validate, wait, maybe fail before acting, act once per
   * key, maybe drop the response after acting.
   */
  mutating: (prepare: (req: express.Request) => MutatingRequest) => Handler;
  /**
   * Whether a request with this key has been received and not answered yet. A lookup by key checks
   * this *before* it reads the system's books: "not in flight, and not in the books" then means
   * nothing under the key was received before the lookup started.
   */
  inFlight: (key: string) => boolean;
  /**
   * The test-control endpoints, `POST` and `GET /v1/test/faults`: not part of the system's API.
   * Faults are the test's script, so they stay out of the system's own records, and need no
   * Idempotency-Key (a test that retries an injection means it twice).
   */
  testFaults: <Spec, Fault extends object>(schema: z.ZodType<Spec>, faults: { add(spec: Spec): Promise<Fault>; byReference(reference: string): Promise<Fault[]> }) => void;
}

export interface SimulatorHttp {
  readonly app: express.Express;
  /** Creates the schema if needed, then listens; resolves with the base URL. */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops accepting requests and waits for in-flight ones. The pool stays open. */
  close(): Promise<void>;
}

/** Builds the app: `routes` adds the system's own endpoints between /health and the 404 and error handlers. */
export function createSimulatorHttp(opts: SimulatorHttpOptions, routes: (kit: RouteKit) => void): SimulatorHttp {
  const { latencyMs = 0, latencyJitterMs = 0, errorRate = 0, lostResponseRate = 0, random = Math.random, logger } = opts;
  const maxProcessingMs = opts.maxProcessingMs ?? DEFAULT_MAX_PROCESSING_MS;
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '16kb' }));

  // Handlers still working (maybe inside a transaction), so close() can let them finish first.
  let inFlight = 0;
  let onDrained: (() => void) | undefined;
  const tracked =
    (handler: Handler): Handler =>
    async (req, res) => {
      inFlight++;
      try {
        await handler(req, res);
      } finally {
        if (--inFlight === 0) onDrained?.();
      }
    };

  const idempotencyKey = (req: express.Request): string => {
    const key = req.get('Idempotency-Key');
    if (!key) throw invalid('missing_idempotency_key', `the Idempotency-Key header is required on ${opts.keyRequiredOn}`);
    if (key.length > 255) throw invalid('invalid_idempotency_key', 'the Idempotency-Key header is longer than 255 characters');
    return key;
  };

  // Requests received and not yet answered, per key (a retry may overlap the request it retries).
  const received = new Map<string, number>();
  const mutating = (prepare: (req: express.Request) => MutatingRequest): Handler =>
    tracked(async (req, res) => {
      const key = idempotencyKey(req);
      const { run, loseResponse = false, logFields } = prepare(req);
      const receivedAt = Date.now();
      received.set(key, (received.get(key) ?? 0) + 1);
      let outcome: Outcome;
      try {
        const delayMs = latencyMs + (latencyJitterMs > 0 ? Math.floor(random() * (latencyJitterMs + 1)) : 0);
        if (delayMs > 0) await sleep(delayMs);
        if (Date.now() - receivedAt > maxProcessingMs) {
          return sendJson(res, 504, errorBody('api_error', 'processing_timeout', `not processed within ${maxProcessingMs} ms; nothing was done, retry with the same key`));
        }
        if (errorRate > 0 && random() < errorRate) {
          return sendJson(res, 503, errorBody('api_error', 'temporarily_unavailable', `${opts.unavailableMessage}; retry with the same key`));
        }
        outcome = await run(key);
      } finally {
        const left = (received.get(key) ?? 1) - 1;
        if (left > 0) received.set(key, left);
        else received.delete(key);
      }
      // A test token or account loses only the try that acted: a retry or a lookup finds the result.
      const dropped =
        outcome.loseResponse === true ||
        (outcome.kind === 'first' && (loseResponse || (lostResponseRate > 0 && random() < lostResponseRate)));
      if (dropped) {
        // The system acted (or replayed) and committed; the caller only sees a dead connection.
        logger?.debug('dropping response', { idempotencyKey: key, ...(logFields ?? { path: req.path }), kind: outcome.kind });
        req.socket.destroy();
        return;
      }
      sendJson(res, outcome.status, outcome.body);
    });

  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });

  const testFaults: RouteKit['testFaults'] = (schema, faults) => {
    app.post(
      '/v1/test/faults',
      tracked(async (req, res) => {
        const fault = await faults.add(parse(schema, req.body));
        logger?.info('test fault injected', { ...(fault as Record<string, unknown>) });
        sendJson(res, 201, fault);
      }),
    );
    app.get(
      '/v1/test/faults',
      tracked(async (req, res) => {
        sendJson(res, 200, { data: await faults.byReference(requiredReference(req)) });
      }),
    );
  };

  routes({ app, tracked, mutating, inFlight: (key) => received.has(key), testFaults });

  app.use((_req: express.Request, res: express.Response) => {
    sendJson(res, 404, errorBody('invalid_request_error', 'route_not_found', 'no such endpoint'));
  });

  // Express needs all four parameters to recognise an error handler.
  app.use((err: unknown, req: express.Request, res: express.Response, _next: express.NextFunction) => {
    if (err instanceof RequestError) return sendJson(res, err.status, err.body);
    const bodyError = err as { type?: string };
    if (bodyError.type === 'entity.parse.failed') return sendJson(res, 400, errorBody('invalid_request_error', 'invalid_json', 'the request body is not valid JSON'));
    if (bodyError.type === 'entity.too.large') return sendJson(res, 413, errorBody('invalid_request_error', 'body_too_large', 'the request body is too large'));
    logger?.error(`${opts.name} request failed`, { path: req.path, error: err instanceof Error ? err.message : String(err) });
    // A 5xx tells the caller the outcome is unknown; the transaction rolled back, so a retry is safe.
    sendJson(res, 500, errorBody('api_error', 'internal_error', 'internal error; retry with the same key'));
  });

  let server: http.Server | undefined;
  return {
    app,
    async listen(port = 0, host = '127.0.0.1') {
      await opts.migrate();
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
