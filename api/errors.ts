// Stripe-style error bodies: `{ error: { type, code, message, param? } }`. Every failure a client
// can cause is an ApiError with a 4xx status; anything else is our fault and becomes a generic 500
// whose details go to the log only, so no stack trace or internal message ever reaches a client.
import { isGrpcServiceError } from '@temporalio/client';
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import type { Logger } from '../platform/logger.js';

export type ApiErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'not_found'
  | 'conflict'
  | 'rate_limit_error'
  | 'api_error';

export interface ApiErrorBody {
  /**
   * `checkout`: for an action the checkout refused, its id and the status it has or ends with.
   * `reconciliation`: for a reconciliation refused because one of its scope is running, that one.
   */
  error: { type: ApiErrorType; code: string; message: string; param?: string; checkout?: { id: string; status: string }; reconciliation?: { id: string } };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: ApiErrorType,
    readonly code: string,
    message: string,
    readonly param?: string,
    /** Extra response headers (`Retry-After`, `WWW-Authenticate`). */
    readonly headers: Record<string, string> = {},
    /** The resource the error is about, as Stripe puts the payment intent into its errors. */
    readonly resource?: { checkout: { id: string; status: string } } | { reconciliation: { id: string } },
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toBody(): ApiErrorBody {
    return {
      error: {
        type: this.type,
        code: this.code,
        message: this.message,
        ...(this.param !== undefined ? { param: this.param } : {}),
        ...(this.resource ?? {}),
      },
    };
  }
}

export const invalidRequest = (code: string, message: string, param?: string) =>
  new ApiError(400, 'invalid_request_error', code, message, param);

export const notFound = (message: string, code = 'resource_missing') => new ApiError(404, 'not_found', code, message);

export const conflict = (code: string, message: string, param?: string) => new ApiError(409, 'conflict', code, message, param);

/** 409 for an action on a checkout that did not take effect: `code` says why, `status` is where it stands. */
export const checkoutConflict = (code: string, message: string, checkout: { id: string; status: string }) =>
  new ApiError(409, 'conflict', code, message, undefined, {}, { checkout });

export function sendError(res: Response, err: ApiError): void {
  for (const [name, value] of Object.entries(err.headers)) res.setHeader(name, value);
  res.status(err.status).json(err.toBody());
}

/** Unknown routes answer in the API's own shape rather than Express's HTML page. */
export const routeNotFound: RequestHandler = (req, _res, next) => {
  next(notFound(`Unrecognized request URL (${req.method} ${req.path}).`, 'route_not_found'));
};

/** body-parser's error `type`s, which are the only stable way to tell its failures apart. */
function fromBodyParser(err: { type?: unknown; status?: unknown }): ApiError | undefined {
  switch (err.type) {
    case 'entity.parse.failed':
      return invalidRequest('invalid_json', 'The request body is not a valid JSON object.');
    case 'entity.too.large':
      return new ApiError(413, 'invalid_request_error', 'body_too_large', 'The request body exceeds the 100kb limit.');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new ApiError(415, 'invalid_request_error', 'unsupported_media_type', 'Send the body as UTF-8 JSON.');
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
      return invalidRequest('invalid_body', 'The request body could not be read.');
    default:
      return undefined;
  }
}

/**
 * PostgreSQL connection failures (stopped, restarting, unreachable, pool exhausted) as Prisma and
 * node-postgres report them. They are nobody's fault in the request, and a retry with the same
 * Idempotency-Key is safe, so they answer 503 with Retry-After rather than 500.
 */
const UNAVAILABLE_CODES = new Set([
  'P1001', // can't reach the database server
  'P1002', // reached, but timed out
  'P1008', // operation timed out
  'P1017', // server closed the connection
  'P2024', // timed out waiting for a pooled connection
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  '57P01', // admin_shutdown: the server is shutting down
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: starting up or in recovery
  '08000', // connection_exception and its subclasses
  '08003',
  '08006',
]);
const UNAVAILABLE_MESSAGES = /Connection terminated|connection (?:is )?closed|Can't reach database server|server closed the connection|the database system is (?:starting up|shutting down|in recovery)/i;

export function isDatabaseUnavailable(err: unknown, depth = 0): boolean {
  if (typeof err !== 'object' || err === null || depth > 5) return false;
  const { code, message, cause, originalCode } = err as { code?: unknown; message?: unknown; cause?: unknown; originalCode?: unknown };
  if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) return true;
  if (typeof originalCode === 'string' && UNAVAILABLE_CODES.has(originalCode)) return true;
  if (typeof message === 'string' && UNAVAILABLE_MESSAGES.test(message)) return true;
  return isDatabaseUnavailable(cause, depth + 1);
}

/** gRPC status codes; @grpc/grpc-js is not a direct dependency, so its enum is not imported. */
const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_UNAVAILABLE = 14;

/**
 * The Temporal server did not answer (crashed, restarting, unreachable): the client gives up after
 * its own retries with a ServiceError whose cause carries the gRPC status. Like PostgreSQL going
 * away, nothing the request asked for happened that a retry with the same Idempotency-Key would
 * repeat, so it is a 503 too.
 */
export function isTemporalUnavailable(err: unknown): boolean {
  return causes(err).some((e) => isGrpcServiceError(e) && (e.code === GRPC_UNAVAILABLE || e.code === GRPC_DEADLINE_EXCEEDED));
}

/** An error and its causes, outermost first: Temporal's client errors keep what happened in `cause`. */
export function causes(err: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) chain.push(e);
  return chain;
}

/**
 * An error for the log, with its causes: Temporal's client errors say only "Workflow Update failed"
 * and keep what happened (and an ApplicationFailure's `type`) in `cause`.
 */
function describeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) return String(err);
  const type = (err as { type?: unknown }).type;
  return {
    name: err.name,
    message: err.message,
    ...(typeof type === 'string' ? { type } : {}),
    stack: err.stack,
    ...(err.cause !== undefined && depth < 4 ? { cause: describeError(err.cause, depth + 1) } : {}),
  };
}

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    if (err instanceof ApiError) {
      sendError(res, err);
      return;
    }
    const known = typeof err === 'object' && err !== null ? fromBodyParser(err) : undefined;
    if (known) {
      sendError(res, known);
      return;
    }
    // Express itself raises 4xx errors with a `status` (e.g. a malformed %-escape in a path); they
    // are the client's fault, and their messages are not meant for clients.
    const status = typeof err === 'object' && err !== null ? (err as { status?: unknown }).status : undefined;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      sendError(res, new ApiError(status, 'invalid_request_error', 'invalid_request', 'The request could not be understood.'));
      return;
    }
    const log = (res.locals.logger as Logger | undefined) ?? logger;
    const unavailable = isDatabaseUnavailable(err) ? 'database' : isTemporalUnavailable(err) ? 'temporal' : undefined;
    if (unavailable) {
      log.warn(`${unavailable} unavailable`, { method: req.method, path: req.path, error: describeError(err) });
      sendError(
        res,
        new ApiError(503, 'api_error', 'service_unavailable', 'The service is temporarily unavailable. Retry the request; with the same Idempotency-Key it is safe.', undefined, {
          'Retry-After': '1',
        }),
      );
      return;
    }
    log.error('unhandled error', {
      method: req.method,
      path: req.path,
      merchantId: res.locals.merchantId as string | undefined,
      checkoutId: res.locals.checkoutId as string | undefined,
      topupId: res.locals.topupId as string | undefined,
      payoutId: res.locals.payoutId as string | undefined,
      error: describeError(err),
    });
    sendError(res, new ApiError(500, 'api_error', 'internal_error', 'An internal error occurred. Retry the request later.'));
  };
}
