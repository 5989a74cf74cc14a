// Bearer API keys, and what each may do. Only the key's SHA-256 is ever compared, cached or stored,
// and neither the key nor the Authorization header is logged.
//
// Two roles. A merchant's key acts on that merchant's records only. The operator's key
// (OPERATOR_API_KEY) belongs to no merchant: it is the only one that acts platform-wide (a
// reconciliation over every merchant, every item of any run), and it is refused on every route
// about one merchant's records (403 merchant_key_required), since there is no merchant whose
// records it would mean.
import type { RequestHandler, Response } from 'express';
import type { PrismaClient } from '../platform/db.js';
import { hashApiKey, sameKeyHash } from '../platform/api-keys.js';
import { ApiError } from './errors.js';

const BEARER = /^Bearer[ \t]+(\S{1,256})[ \t]*$/i;

/**
 * hash -> merchant, so a busy client does not cost a query per request. Entries expire, so a
 * rotated or revoked key stops working within `ttlMs`; only hits are cached, so random wrong keys
 * cannot grow it, and it is bounded anyway.
 */
class MerchantCache {
  private readonly entries = new Map<string, { merchantId: string; expiresAt: number }>();
  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
  ) {}

  get(hash: string, now: number): string | undefined {
    const entry = this.entries.get(hash);
    if (!entry) return undefined;
    if (entry.expiresAt <= now) {
      this.entries.delete(hash);
      return undefined;
    }
    return entry.merchantId;
  }

  set(hash: string, merchantId: string, now: number): void {
    if (this.entries.size >= this.maxEntries) {
      // Maps iterate in insertion order: drop the oldest entry.
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(hash, { merchantId, expiresAt: now + this.ttlMs });
  }
}

function unauthorized(code: string, message: string): ApiError {
  return new ApiError(401, 'authentication_error', code, message, undefined, { 'WWW-Authenticate': 'Bearer realm="api"' });
}

/** Who sent the request: a merchant, for its own records, or the platform's operator. */
export type Caller = { role: 'merchant'; merchantId: string } | { role: 'operator' };

/** 403, as Stripe answers a key that is valid but not allowed to do what it asked. */
export const operatorKeyRequired = (message: string, param?: string) => new ApiError(403, 'invalid_request_error', 'operator_key_required', message, param);
export const merchantKeyRequired = () =>
  new ApiError(403, 'invalid_request_error', 'merchant_key_required', "The operator key belongs to no merchant: use the merchant's own key for its records.");

export interface ApiKeyOptions {
  /** How long a key -> merchant lookup is cached. Default 60 s. */
  cacheTtlMs?: number;
  /** The operator's key; absent: no request acts as the operator. */
  operatorApiKey?: string | undefined;
}

export function requireApiKey(prisma: PrismaClient, options: ApiKeyOptions = {}): RequestHandler {
  const cache = new MerchantCache(options.cacheTtlMs ?? 60_000, 10_000);
  const operatorHash = options.operatorApiKey ? hashApiKey(options.operatorApiKey) : undefined;
  return async (req, res, next) => {
    const header = req.headers.authorization;
    if (header === undefined || header === '') {
      throw unauthorized('api_key_missing', 'No API key provided. Send "Authorization: Bearer <key>".');
    }
    const key = BEARER.exec(header)?.[1];
    if (key === undefined) {
      throw unauthorized('api_key_invalid', 'Invalid Authorization header. Send "Authorization: Bearer <key>".');
    }
    const hash = hashApiKey(key);
    // Before the merchants: a merchant stored with the operator's key would otherwise shadow it.
    if (operatorHash !== undefined && sameKeyHash(hash, operatorHash)) {
      res.locals.caller = { role: 'operator' } satisfies Caller;
      next();
      return;
    }
    const now = Date.now();
    let merchantId = cache.get(hash, now);
    if (merchantId === undefined) {
      const merchant = await prisma.merchant.findUnique({ where: { apiKeyHash: hash }, select: { id: true } });
      if (!merchant) throw unauthorized('api_key_invalid', 'Invalid API key provided.');
      merchantId = merchant.id;
      cache.set(hash, merchantId, now);
    }
    res.locals.merchantId = merchantId;
    res.locals.caller = { role: 'merchant', merchantId } satisfies Caller;
    next();
  };
}

/** The authenticated caller; only reachable behind requireApiKey. */
export function callerOf(res: Response): Caller {
  const caller = res.locals.caller as Caller | undefined;
  if (caller === undefined) throw new Error('callerOf called on a route without requireApiKey');
  return caller;
}

/** In front of the routes about one merchant's records: the operator's key is refused there. */
export const requireMerchantKey: RequestHandler = (_req, res, next) => {
  next(callerOf(res).role === 'merchant' ? undefined : merchantKeyRequired());
};

/** The authenticated merchant; only reachable behind requireApiKey, and refused to the operator. */
export function merchantIdOf(res: Response): string {
  const caller = callerOf(res);
  if (caller.role !== 'merchant') throw merchantKeyRequired();
  return caller.merchantId;
}
