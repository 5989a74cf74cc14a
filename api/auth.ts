// Bearer API keys. Only the key's SHA-256 is ever compared, cached or stored, and neither the key nor
// the Authorization header is logged.
import type { RequestHandler, Response } from 'express';
import type { PrismaClient } from '../platform/db.js';
import { hashApiKey } from '../platform/api-keys.js';
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

export function requireApiKey(prisma: PrismaClient, options: { cacheTtlMs?: number } = {}): RequestHandler {
  const cache = new MerchantCache(options.cacheTtlMs ?? 60_000, 10_000);
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
    const now = Date.now();
    let merchantId = cache.get(hash, now);
    if (merchantId === undefined) {
      const merchant = await prisma.merchant.findUnique({ where: { apiKeyHash: hash }, select: { id: true } });
      if (!merchant) throw unauthorized('api_key_invalid', 'Invalid API key provided.');
      merchantId = merchant.id;
      cache.set(hash, merchantId, now);
    }
    res.locals.merchantId = merchantId;
    next();
  };
}

/** The authenticated merchant; only reachable behind requireApiKey. */
export function merchantIdOf(res: Response): string {
  const id: unknown = res.locals.merchantId;
  if (typeof id !== 'string') throw new Error('merchantIdOf called on a route without requireApiKey');
  return id;
}
