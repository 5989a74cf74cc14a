// Stripe-style error bodies: `{ error: { type, code, message, param? } }`. Every failure a client
// can cause is an ApiError with a 4xx status; anything else is our fault and becomes a generic 500
// whose details go to the log only, so no stack trace or internal message ever reaches a client.
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
  error: { type: ApiErrorType; code: string; message: string; param?: string };
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
      },
    };
  }
}

export const invalidRequest = (code: string, message: string, param?: string) =>
  new ApiError(400, 'invalid_request_error', code, message, param);

export const notFound = (message: string, code = 'resource_missing') => new ApiError(404, 'not_found', code, message);

export const conflict = (code: string, message: string, param?: string) => new ApiError(409, 'conflict', code, message, param);

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
