// The codec server: Temporal's remote codec protocol (`POST <endpoint>/encode` and `/decode`, body
// `{ "payloads": [...] }` in protobuf JSON, data and metadata base64) over the same codec the
// workers use (platform/payload-codec.ts), so the Temporal CLI and Web UI can show payloads that
// Temporal itself only ever stores encrypted.
//
// Two doors, one codec:
// - `/encode`, `/decode` (also under any prefix, e.g. `/default/decode` for the CLI's `{namespace}`
//   templating): `Authorization: Bearer <operator key>`, for the CLI and scripts.
// - `/ui/<token>/encode`, `/ui/<token>/decode`: for the Web UI, which has no login in the development
//   setup and so cannot send the operator key. Its secret is the unguessable path segment, and the
//   request must come from a browser page on the Web UI's origin (Origin header; CORS answers that
//   origin only). Off unless a token is configured.
// Every request that carries an Origin other than the Web UI's is refused, and so is its preflight.
// Neither bodies nor headers are logged: they hold the very payloads this server protects.
import { createHash, timingSafeEqual } from 'node:crypto';
import express, { type ErrorRequestHandler, type Express, type Request, type RequestHandler, type Response } from 'express';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { JSONToPayload, payloadToJSON } from '@temporalio/common/lib/proto-utils.js';
import type { Logger } from '../platform/logger.js';
import { PayloadDecryptionError } from '../platform/payload-codec.js';

/**
 * A request's body at most. Temporal refuses payloads over 2 MB by default, 2.7 MB in base64; the
 * Web UI sends an event's payloads in one request. More is not a codec request.
 */
export const MAX_BODY_BYTES = 8 * 1024 * 1024;

export interface CodecAppDeps {
  codec: PayloadCodec;
  /** The operator key (OPERATOR_API_KEY) the CLI and scripts authenticate with. */
  operatorKey: string;
  /** The Web UI's endpoint is `/ui/<uiToken>`; undefined: there is none. */
  uiToken: string | undefined;
  /** Browser origins allowed (CORS): the Web UI's. */
  uiOrigins: readonly string[];
  logger: Logger;
  maxBodyBytes?: number;
}

type Operation = 'encode' | 'decode';
type Door = 'operator' | 'ui';

const BEARER = /^Bearer[ \t]+(\S{1,512})[ \t]*$/i;
const sha256 = (value: string): Buffer => createHash('sha256').update(value).digest();

/** Hashes first: equal lengths for timingSafeEqual, and no timing that depends on the secret. */
function sameSecret(given: string, expectedHash: Buffer): boolean {
  return timingSafeEqual(sha256(given), expectedHash);
}

class CodecError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

function parseBody(body: unknown): Payload[] {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || !Array.isArray((body as { payloads?: unknown }).payloads)) {
    throw new CodecError(400, 'the body must be a JSON object { "payloads": [...] }');
  }
  return ((body as { payloads: unknown[] }).payloads).map((json, i) => {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new CodecError(400, `payloads[${i}] must be an object { metadata, data }`);
    try {
      return JSONToPayload(json);
    } catch {
      throw new CodecError(400, `payloads[${i}] is not a payload: metadata values and data must be base64`);
    }
  });
}

export function createCodecApp(deps: CodecAppDeps): Express {
  const { codec, uiOrigins, logger } = deps;
  const operatorKeyHash = sha256(deps.operatorKey);
  const uiTokenHash = deps.uiToken === undefined ? undefined : sha256(deps.uiToken);
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // Browsers: the Web UI's origin only. Requests without Origin (the CLI, curl) are not browsers'.
  const cors: RequestHandler = (req, res, next) => {
    const origin = req.headers.origin;
    if (origin === undefined) {
      next();
      return;
    }
    if (!uiOrigins.includes(origin)) {
      logger.warn('request from a browser origin that is not the Web UI refused', { method: req.method, origin: origin.slice(0, 200) });
      res.status(403).json({ error: 'this origin may not use the codec server' });
      return;
    }
    res.setHeader('Access-Control-Allow-Origin', origin);
    res.setHeader('Vary', 'Origin');
    next();
  };
  app.use(cors);

  app.options('/{*path}', (req, res) => {
    if (req.headers.origin !== undefined) {
      res.setHeader('Access-Control-Allow-Methods', 'POST');
      // What the Web UI sends (X-Namespace, Content-Type), and Authorization for a UI that passes a token.
      res.setHeader('Access-Control-Allow-Headers', 'Content-Type, X-Namespace, Authorization');
      res.setHeader('Access-Control-Max-Age', '600');
    }
    res.setHeader('Allow', 'POST, OPTIONS');
    res.status(204).end();
  });

  app.get('/health', (_req, res) => {
    res.json({ ok: true });
  });

  /** Which door and operation the path names; undefined for anything else (404). */
  const routeOf = (path: string): { door: Door; operation: Operation } | undefined => {
    const parts = path.split('/');
    const operation = parts.at(-1);
    if (operation !== 'encode' && operation !== 'decode') return undefined;
    if (parts[1] === 'ui') {
      // Exactly /ui/<token>/<operation>, with the right token; a wrong one is just an unknown path.
      if (parts.length !== 4 || uiTokenHash === undefined || !sameSecret(parts[2] ?? '', uiTokenHash)) return undefined;
      return { door: 'ui', operation };
    }
    return { door: 'operator', operation };
  };

  const authorize = (req: Request, door: Door): void => {
    if (door === 'ui') {
      // The token is the UI's secret; the Origin proves a browser page on the UI's origin sent it
      // (the middleware above has refused every other origin).
      if (req.headers.origin === undefined) throw new CodecError(403, "the Web UI's endpoint answers the Web UI only; use /decode with the operator key");
      return;
    }
    const header = req.headers.authorization;
    if (header === undefined || header === '') {
      throw new CodecError(401, 'send "Authorization: Bearer <operator key>"', { 'WWW-Authenticate': 'Bearer realm="codec"' });
    }
    const key = BEARER.exec(header)?.[1];
    if (key === undefined || !sameSecret(key, operatorKeyHash)) throw new CodecError(403, 'the key is not the operator key');
  };

  const json = express.json({ limit: deps.maxBodyBytes ?? MAX_BODY_BYTES, type: () => true });

  app.post('/{*path}', (req, res, next) => {
    const route = routeOf(req.path);
    if (!route) throw new CodecError(404, 'no such endpoint: POST <endpoint>/encode or <endpoint>/decode');
    // Authenticated before the body is read: an unauthenticated caller costs no parsing.
    authorize(req, route.door);
    if (!req.is('application/json')) throw new CodecError(415, 'send Content-Type: application/json');
    res.locals.route = route;
    json(req, res, next);
  });

  app.post('/{*path}', async (req, res) => {
    const { door, operation } = res.locals.route as { door: Door; operation: Operation };
    const payloads = parseBody(req.body);
    let out: Payload[];
    try {
      out = operation === 'encode' ? await codec.encode(payloads) : await codec.decode(payloads);
    } catch (err) {
      if (err instanceof PayloadDecryptionError) throw new CodecError(400, err.message);
      throw err;
    }
    logger.debug('codec request', { door, operation, payloads: payloads.length });
    res.json({ payloads: out.map(payloadToJSON) });
  });

  app.all('/{*path}', (req, res) => {
    if (req.path === '/health') {
      res.setHeader('Allow', 'GET').status(405).json({ error: 'GET /health' });
      return;
    }
    res.setHeader('Allow', 'POST, OPTIONS').status(routeOf(req.path) ? 405 : 404).json({ error: 'POST <endpoint>/encode or <endpoint>/decode' });
  });

  const errors: ErrorRequestHandler = (err: unknown, req, res: Response, _next) => {
    if (err instanceof CodecError) {
      for (const [name, value] of Object.entries(err.headers)) res.setHeader(name, value);
      res.status(err.status).json({ error: err.message });
      return;
    }
    // body-parser's own refusals carry a status and a type.
    const { status, type } = err as { status?: number; type?: string };
    if (type === 'entity.too.large') {
      res.status(413).json({ error: `the body is over ${deps.maxBodyBytes ?? MAX_BODY_BYTES} bytes` });
      return;
    }
    if (type === 'entity.parse.failed') {
      res.status(400).json({ error: 'the body is not JSON' });
      return;
    }
    if (typeof status === 'number' && status >= 400 && status < 500) {
      res.status(status).json({ error: 'the body cannot be read' });
      return;
    }
    logger.error('codec request failed', { method: req.method, error: err instanceof Error ? err.message : String(err) });
    res.status(500).json({ error: 'internal error' });
  };
  app.use(errors);
  return app;
}
