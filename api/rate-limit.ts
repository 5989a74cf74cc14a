// Token-bucket rate limits: one bucket per client IP in front of authentication, so a flood of
// requests with random keys cannot turn into a flood of key lookups in the database, and one per
// merchant behind it, so one merchant's runaway client cannot starve the others. A refused request
// answers 429 with Stripe's error shape, `Retry-After` (seconds) and `RateLimit-Limit` /
// `RateLimit-Remaining`, before its body is read or anything is written.
//
// The buckets live in this API process's memory: the limits are per API process. A deployment that
// runs several API processes behind a load balancer multiplies them by the number of processes;
// limits that must hold across processes belong in a shared store (Redis) or in the gateway in
// front, which this module does not try to be.
//
// The defaults are sized for a flash sale driven by one merchant's server (the benchmark sends
// ~10,000 checkouts from one key as fast as the API answers, hundreds per second): a legitimate
// burst must never be throttled here, only a client that is plainly out of control.
import type { Request, RequestHandler, Response } from 'express';
import type { Caller } from './auth.js';
import { ApiError } from './errors.js';

export interface RateLimit {
  /** Tokens added per second: the sustained rate. */
  perSecond: number;
  /** Bucket size: how many requests may arrive at once after a quiet spell. */
  burst: number;
}

interface Bucket {
  tokens: number;
  /** ms timestamp of the last refill. */
  at: number;
}

export interface Take {
  allowed: boolean;
  /** Whole tokens left after this request. */
  remaining: number;
  /** Seconds until one token is back; only meaningful when refused. */
  retryAfterSeconds: number;
}

/**
 * Buckets by key. Bounded: a bucket that has refilled completely is indistinguishable from a new
 * one, so when the map is full those are dropped first, then the oldest.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly limit: RateLimit,
    private readonly maxKeys = 100_000,
  ) {
    if (!(limit.perSecond > 0) || !(limit.burst >= 1)) throw new Error('a rate limit needs perSecond > 0 and burst >= 1');
  }

  take(key: string, now: number): Take {
    const { perSecond, burst } = this.limit;
    let bucket = this.buckets.get(key);
    if (bucket) {
      bucket.tokens = Math.min(burst, bucket.tokens + (Math.max(0, now - bucket.at) * perSecond) / 1000);
      bucket.at = now;
    } else {
      this.evictIfFull(now);
      bucket = { tokens: burst, at: now };
      this.buckets.set(key, bucket);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true, remaining: Math.floor(bucket.tokens), retryAfterSeconds: 0 };
    }
    return { allowed: false, remaining: 0, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond)) };
  }

  private evictIfFull(now: number): void {
    if (this.buckets.size < this.maxKeys) return;
    const { perSecond, burst } = this.limit;
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.at) * perSecond) / 1000 >= burst) this.buckets.delete(key);
    }
    // Everyone is mid-burst: forget the oldest (it gets a full bucket back, the lenient mistake).
    if (this.buckets.size >= this.maxKeys) {
      const oldest = this.buckets.keys().next();
      if (!oldest.done) this.buckets.delete(oldest.value);
    }
  }
}

export interface RateLimiterOptions {
  limit: RateLimit;
  /** Whom the limit applies to, for the message: "this API key", "this client address". */
  who: string;
  /** The limit as the refusal states it; default "<perSecond> requests per second (bursts of up to <burst>)". */
  rule?: string;
  /** The bucket's key; undefined lets the request through (nothing to count it against). */
  keyOf: (req: Request, res: Response) => string | undefined;
  /** Injectable clock for tests. */
  now?: () => number;
}

export function rateLimiter(options: RateLimiterOptions): RequestHandler {
  const buckets = new TokenBuckets(options.limit);
  const now = options.now ?? Date.now;
  const { perSecond, burst } = options.limit;
  const rule = options.rule ?? `${perSecond} requests per second (bursts of up to ${burst})`;
  return (req, res, next) => {
    const key = options.keyOf(req, res);
    if (key === undefined) {
      next();
      return;
    }
    const taken = buckets.take(key, now());
    res.setHeader('RateLimit-Limit', String(burst));
    res.setHeader('RateLimit-Remaining', String(taken.remaining));
    if (taken.allowed) {
      next();
      return;
    }
    next(
      new ApiError(
        429,
        'rate_limit_error',
        'rate_limit_exceeded',
        `Too many requests: ${options.who} is limited to ${rule}. Retry after ${taken.retryAfterSeconds} s.`,
        undefined,
        { 'Retry-After': String(taken.retryAfterSeconds) },
      ),
    );
  };
}

/**
 * Per merchant, behind requireApiKey (which put the caller in res.locals); the operator's key has a
 * bucket of its own, under a name no merchant id can have.
 */
export function merchantRateLimiter(limit: RateLimit, now?: () => number): RequestHandler {
  return rateLimiter({
    limit,
    who: 'this API key',
    keyOf: (_req, res) => {
      const caller = res.locals.caller as Caller | undefined;
      return caller === undefined ? undefined : caller.role === 'operator' ? ':operator' : caller.merchantId;
    },
    ...(now ? { now } : {}),
  });
}

/**
 * Per client address, in front of authentication. The socket's address, not X-Forwarded-For: a
 * client-chosen header would let a flood pick a fresh bucket per request. Behind a proxy every
 * client shares the proxy's bucket, which is why this limit is the coarser one.
 */
export function ipRateLimiter(limit: RateLimit, now?: () => number): RequestHandler {
  return rateLimiter({
    limit,
    who: 'this client address',
    keyOf: (req) => req.socket.remoteAddress ?? 'unknown',
    ...(now ? { now } : {}),
  });
}
