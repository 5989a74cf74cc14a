// Body parsing for the routes that take one. Parsing happens after authentication, so an anonymous
// client cannot make us buffer and parse bodies.
import express, { type Request, type RequestHandler } from 'express';
import { ApiError } from './errors.js';

export const BODY_LIMIT = '100kb';

// Stryker disable next-line ObjectLiteral,StringLiteral: these are body-parser's defaults too, written out for the reader: dropping them changes nothing
const parseJson = express.json({ limit: BODY_LIMIT, strict: true, type: 'application/json' });

/**
 * An empty body is no body, whatever its headers: HTTP clients send `Content-Length: 0` (and often
 * no Content-Type) for a bodiless POST such as a cancel, and that must not be a 415.
 */
function isEmpty(req: Parameters<RequestHandler>[0]): boolean {
  return req.headers['transfer-encoding'] === undefined && req.headers['content-length'] === '0';
}

const rejectNonJson: RequestHandler = (req, _res, next) => {
  // req.is() is null when there is no body at all: that reaches validation as a missing body (400).
  if (!isEmpty(req) && req.is('application/json') === false) {
    next(new ApiError(415, 'invalid_request_error', 'unsupported_media_type', 'Send the body as JSON with "Content-Type: application/json".'));
    return;
  }
  next();
};

export const requireJson: RequestHandler[] = [rejectNonJson, parseJson];

/** No body at all means the same as `{}` on the routes whose body is optional (cancel, capture...). */
export function bodyOf(req: Request): unknown {
  return req.body === undefined ? {} : req.body;
}
