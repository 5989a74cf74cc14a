// The API's body handling (api/json.ts) and request fingerprint (api/idempotency.ts), without a
// server: Express middleware called with request objects built here.
import { Readable } from 'node:stream';
import type { Request, Response } from 'express';
import { describe, expect, it } from 'vitest';
import { canonicalJson, requestHash } from '../../api/idempotency.js';
import { ApiError } from '../../api/errors.js';
import { BODY_LIMIT, bodyOf, requireJson } from '../../api/json.js';

/**
 * What the first middleware of requireJson passes on: nothing (go on) or an error. `is` is what
 * req.is('application/json') answers (Express: the type, false for another, null for no body).
 */
function rejectNonJson(headers: Record<string, string>, is: string | false | null): unknown {
  const req = { headers, is: (type: string) => (type === 'application/json' ? is : 'asked for another type') } as unknown as Request;
  let passed: unknown = 'not called';
  requireJson[0]!(req, {} as Response, (err?: unknown) => {
    passed = err;
  });
  return passed;
}

/** Runs the body parser of requireJson over `body`, sent as a stream the way Node gives it. */
function parse(body: string, contentType = 'application/json'): Promise<{ err: unknown; body: unknown }> {
  const headers = { 'content-type': contentType, 'content-length': String(Buffer.byteLength(body)) };
  const req = Object.assign(Readable.from([Buffer.from(body)]), { headers }) as unknown as Request;
  return new Promise((resolve) => {
    requireJson[1]!(req, {} as Response, (err?: unknown) => resolve({ err, body: (req as { body?: unknown }).body }));
  });
}

describe('JSON bodies', () => {
  it('parses JSON up to 100kb', () => {
    expect(BODY_LIMIT).toBe('100kb');
    expect(requireJson).toHaveLength(2);
  });

  it('lets JSON through, and a request without a body, whatever its headers say', () => {
    expect(rejectNonJson({ 'content-type': 'application/json', 'content-length': '2' }, 'application/json')).toBeUndefined();
    // No body at all: req.is() is null; validation answers 400 for it.
    expect(rejectNonJson({}, null)).toBeUndefined();
    // A bodiless POST with Content-Length: 0 and some other type is not a 415.
    expect(rejectNonJson({ 'content-length': '0', 'content-type': 'text/plain' }, false)).toBeUndefined();
  });

  it('answers 415 for a body that is not JSON, including a chunked one that claims no length', () => {
    for (const headers of <Array<Record<string, string>>>[
      { 'content-type': 'text/plain', 'content-length': '5' },
      { 'content-type': 'text/plain', 'content-length': '0', 'transfer-encoding': 'chunked' },
    ]) {
      const err = rejectNonJson(headers, false);
      expect(err).toBeInstanceOf(ApiError);
      expect(err).toMatchObject({ status: 415, type: 'invalid_request_error', code: 'unsupported_media_type', message: 'Send the body as JSON with "Content-Type: application/json".' });
    }
  });

  it('parses a JSON object or array of up to 100kb, and nothing else', async () => {
    expect(await parse('{"a":1}')).toEqual({ err: undefined, body: { a: 1 } });
    expect(await parse('[1]')).toEqual({ err: undefined, body: [1] });
    // Strict: a bare JSON string is not a body.
    expect((await parse('"x"')).err).toMatchObject({ status: 400, type: 'entity.parse.failed' });
    // Only application/json is parsed (the 415 above refuses the rest before this runs).
    expect(await parse('{"a":1}', 'application/vnd.api+json')).toEqual({ err: undefined, body: undefined });
    const body = (length: number) => JSON.stringify({ a: 'x'.repeat(length - 8) });
    expect((await parse(body(100 * 1024))).body).toEqual({ a: 'x'.repeat(100 * 1024 - 8) });
    expect((await parse(body(100 * 1024 + 1))).err).toMatchObject({ status: 413, type: 'entity.too.large' });
  });

  it('no body means {} on the routes whose body is optional', () => {
    expect(bodyOf({ body: undefined } as Request)).toEqual({});
    expect(bodyOf({ body: { amount: 1 } } as Request)).toEqual({ amount: 1 });
    expect(bodyOf({ body: null } as Request)).toBeNull();
  });
});

describe('request fingerprints for Idempotency-Key', () => {
  it('canonical JSON sorts keys at every level and keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}');
    expect(canonicalJson([2, 1])).toBe('[2,1]');
    expect(canonicalJson('x')).toBe('"x"');
    expect(canonicalJson(null)).toBe('null');
  });

  it('the same request hashes the same whatever its key order; another method, path or body does not', () => {
    const hash = requestHash('POST', '/v1/topups', { a: 1, b: { c: 2, d: 3 } });
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(requestHash('POST', '/v1/topups', { b: { d: 3, c: 2 }, a: 1 })).toBe(hash);
    expect(requestHash('PUT', '/v1/topups', { a: 1, b: { c: 2, d: 3 } })).not.toBe(hash);
    expect(requestHash('POST', '/v1/payouts', { a: 1, b: { c: 2, d: 3 } })).not.toBe(hash);
    expect(requestHash('POST', '/v1/topups', { a: 1, b: { c: 2, d: 4 } })).not.toBe(hash);
  });
});
