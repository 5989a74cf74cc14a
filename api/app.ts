// The HTTP API as an Express app that does not listen, so tests and api/main.ts can both mount it.
import { randomUUID } from 'node:crypto';
import express, { type Express } from 'express';
import type pg from 'pg';
import type { Client } from '@temporalio/client';
import type { CustomerSearch } from '../platform/customer-search.js';
import type { PrismaClient } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import { requireApiKey, requireMerchantKey } from './auth.js';
import { createIdempotency } from './idempotency.js';
import { createStockGate, type StockGate } from './stock-gate.js';
import { createCheckoutStore } from './checkout-store.js';
import { errorHandler, notFound, routeNotFound } from './errors.js';
import { ipRateLimiter, merchantRateLimiter, type RateLimit } from './rate-limit.js';
import { createRequestStats, type RequestStats } from './request-stats.js';
import { productsRouter } from './routes/products.js';
import { checkoutsRouter, type CheckoutsDeps } from './routes/checkouts.js';
import { checkoutActionsRouter } from './routes/checkout-actions.js';
import { settingsRouter } from './routes/settings.js';
import { topupsRouter, type WalletFlowsDeps } from './routes/topups.js';
import { payoutsRouter } from './routes/payouts.js';
import { walletsRouter } from './routes/wallets.js';
import { reconciliationsRouter } from './routes/reconciliations.js';
import { eventsRouter, webhookEndpointsRouter, type WebhooksDeps } from './routes/webhooks.js';
import type { WebhookRetry } from '../domain/index.js';
import type { ResolveAll } from '../platform/network-policy.js';

export interface AppDeps {
  prisma: PrismaClient;
  /** node-postgres for the statements every flash-sale buyer runs (api/checkout-store.ts). */
  pool: pg.Pool;
  /** What this process knows of stock (claims in flight, sold-out marks); api/main.ts feeds it returned stock. */
  stockGate?: StockGate;
  temporal: Client;
  taskQueue: string;
  logger: Logger;
  /** The CustomerId search attribute new payments get: a keyed pseudonym, never the id itself. */
  customerSearch: CustomerSearch;
  /**
   * How long POST /v1/checkouts waits for the reservation, and POST /v1/topups and /v1/payouts for
   * their workflow's first answer, before answering 503. Default 15 s.
   */
  reservationTimeoutMs?: number;
  /** How long capture, cancel, confirm, refund and a payout's cancel wait for the workflow before answering 503. Default 15 s. */
  updateTimeoutMs?: number;
  /** How long an Idempotency-Key's first answer is replayed. Default 24 h. */
  idempotencyKeyTtlHours?: number;
  /**
   * How long a request waits for an earlier one with the same Idempotency-Key before a 409
   * `idempotency_request_in_progress`. Default: the longer of the two timeouts above, since that is
   * how long the earlier one may legitimately take.
   */
  idempotencyWaitMs?: number;
  /** How long a key -> merchant lookup is cached. Default 60 s. */
  authCacheTtlMs?: number;
  /** How long after the request a payout without `scheduledAt` goes to the bank. Default 0 (at once). */
  payoutDelayMs?: number;
  /** How redeliveries (POST /v1/events/:id/redeliver) are retried; default DEFAULT_WEBHOOK_RETRY. */
  webhookRetry?: WebhookRetry;
  /**
   * WEBHOOK_ALLOW_PRIVATE_HOSTS: endpoints on loopback, private, link-local... hosts are accepted.
   * Default false: refused (platform/network-policy.ts). Tests with receivers on 127.0.0.1 opt in.
   */
  webhookAllowPrivateHosts?: boolean;
  /** The DNS endpoint hosts are checked with; tests stub it. Default getaddrinfo. */
  webhookResolveAll?: ResolveAll;
  /** WEBHOOK_MAX_ENDPOINTS_PER_MERCHANT; default 16. */
  webhookMaxEndpointsPerMerchant?: number;
  /** POST /v1/events/:id/redeliver per merchant, in this process; default 60/min, bursts of 20; null: none. */
  webhookRedeliverRateLimit?: RateLimit | null;
  /**
   * The operator's key (config.operator.apiKey): platform-wide actions, refused on every route about
   * one merchant's records (api/auth.ts). Absent: nobody acts platform-wide through this API.
   */
  operatorApiKey?: string | undefined;
  /**
   * Requests per merchant (api/rate-limit.ts), in this process; undefined: none. api/main.ts passes
   * API_RATE_LIMIT_PER_SECOND / API_RATE_LIMIT_BURST.
   */
  rateLimit?: RateLimit;
  /** Requests per client address before authentication; undefined: none. */
  ipRateLimit?: RateLimit;
  /** The rate limiters' clock; tests inject one. Default Date.now. */
  now?: () => number;
  /** Where answered requests are counted; by default counters logged once a minute. */
  requestStats?: RequestStats;
}

const RESOURCES = new Set(['products', 'checkouts', 'settings', 'topups', 'payouts', 'wallets', 'events', 'webhook-endpoints', 'reconciliations']);

/** `POST /v1/checkouts/co_1/capture` -> `POST /v1/checkouts/:id/capture`: few routes, whatever the ids. */
export function routeOf(method: string, path: string): string {
  const parts = path.split('/');
  if (parts[1] !== 'v1' || !RESOURCES.has(parts[2] ?? '')) return `${method} other`;
  if (parts.length > 3) parts[3] = ':id';
  return `${method} ${parts.slice(0, 5).join('/')}`;
}

export function createApp(deps: AppDeps): Express {
  const { prisma, logger } = deps;
  const app = express();
  app.disable('x-powered-by');
  // Responses describe live state (stock, checkout status); a 304 from a weak ETag would hide it.
  app.set('etag', false);

  // Counters per route, logged once a minute; one line per request at debug, carrying the business
  // ids the routes learn. Only method, path and status are logged: never headers (Authorization)
  // or bodies (card tokens). A 5xx is always logged, as a warning.
  const stats = deps.requestStats ?? createRequestStats(logger);
  app.use((req, res, next) => {
    const started = process.hrtime.bigint();
    const requestId = `req_${randomUUID()}`;
    res.locals.requestId = requestId;
    res.locals.logger = logger.child({ requestId });
    res.setHeader('Request-Id', requestId);
    res.on('finish', () => {
      const fields = {
        requestId,
        method: req.method,
        // originalUrl: req.path is relative to whichever router was handling the request last.
        path: req.originalUrl.split('?', 1)[0],
        status: res.statusCode,
        durationMs: Number((process.hrtime.bigint() - started) / 1000n) / 1000,
        merchantId: res.locals.merchantId as string | undefined,
        role: (res.locals.caller as { role: string } | undefined)?.role,
        checkoutId: res.locals.checkoutId as string | undefined,
        topupId: res.locals.topupId as string | undefined,
        payoutId: res.locals.payoutId as string | undefined,
      };
      stats.observe(routeOf(req.method, fields.path ?? ''), res.statusCode, fields.durationMs);
      if (res.statusCode >= 500) logger.warn('request', fields);
      else logger.debug('request', fields);
    });
    next();
  });

  app.get('/health', (_req, res) => {
    res.json({ ok: true });
  });

  const v1 = express.Router();
  // Before the key is looked up: a flood of random keys is refused here, not in the database.
  if (deps.ipRateLimit) v1.use(ipRateLimiter(deps.ipRateLimit, deps.now));
  v1.use(requireApiKey(prisma, { operatorApiKey: deps.operatorApiKey, ...(deps.authCacheTtlMs !== undefined ? { cacheTtlMs: deps.authCacheTtlMs } : {}) }));
  // Before any body is read or any route runs, so a refused request costs nothing and writes nothing.
  if (deps.rateLimit) v1.use(merchantRateLimiter(deps.rateLimit, deps.now));
  // PostgreSQL text cannot hold NUL, so no id or sku with one exists; a path naming one is answered
  // like any unknown object instead of reaching a query that would fail with a 500 (found by
  // test/api-fuzz.test.ts: GET /v1/topups/a%00b). A NUL can only arrive %-escaped in a path.
  v1.use((req, _res, next) => {
    next(/%00/.test(req.path) ? notFound('No such object.') : undefined);
  });
  // Every resource but reconciliations is one merchant's: the operator's key has no merchant.
  v1.use('/products', requireMerchantKey, productsRouter(prisma));
  const reservationTimeoutMs = deps.reservationTimeoutMs ?? 15_000;
  const updateTimeoutMs = deps.updateTimeoutMs ?? 15_000;
  const idempotency = createIdempotency({
    pool: deps.pool,
    logger,
    ttlHours: deps.idempotencyKeyTtlHours ?? 24,
    waitMs: deps.idempotencyWaitMs ?? Math.max(reservationTimeoutMs, updateTimeoutMs),
  });
  const checkouts: CheckoutsDeps = {
    prisma,
    temporal: deps.temporal,
    taskQueue: deps.taskQueue,
    logger,
    customerSearch: deps.customerSearch,
    reservationTimeoutMs,
    updateTimeoutMs,
    idempotency,
    stockGate: deps.stockGate ?? createStockGate(),
    store: createCheckoutStore(deps.pool),
    // Long enough for the reservations in flight to answer under load; past it the workflow decides.
    admissionWaitMs: Math.max(1, Math.floor(reservationTimeoutMs / 3)),
  };
  v1.use('/checkouts', requireMerchantKey, checkoutsRouter(checkouts), checkoutActionsRouter(checkouts));
  v1.use('/settings', requireMerchantKey, settingsRouter(prisma, logger));
  const walletFlows: WalletFlowsDeps = {
    prisma,
    temporal: deps.temporal,
    taskQueue: deps.taskQueue,
    logger,
    customerSearch: deps.customerSearch,
    // The top-up and payout answer as soon as their row is written (and the payout's money held),
    // like a checkout's reservation.
    answerTimeoutMs: reservationTimeoutMs,
    updateTimeoutMs,
    payoutDelayMs: deps.payoutDelayMs ?? 0,
    idempotency,
  };
  v1.use('/topups', requireMerchantKey, topupsRouter(walletFlows));
  v1.use('/payouts', requireMerchantKey, payoutsRouter(walletFlows));
  v1.use('/wallets', requireMerchantKey, walletsRouter(prisma));
  const webhooks: WebhooksDeps = {
    prisma,
    temporal: deps.temporal,
    taskQueue: deps.taskQueue,
    logger,
    ...(deps.webhookRetry ? { webhookRetry: deps.webhookRetry } : {}),
    allowPrivateHosts: deps.webhookAllowPrivateHosts ?? false,
    ...(deps.webhookResolveAll ? { resolveAll: deps.webhookResolveAll } : {}),
    ...(deps.webhookMaxEndpointsPerMerchant !== undefined ? { maxEndpointsPerMerchant: deps.webhookMaxEndpointsPerMerchant } : {}),
    ...(deps.webhookRedeliverRateLimit !== undefined ? { redeliverRateLimit: deps.webhookRedeliverRateLimit } : {}),
    ...(deps.now ? { now: deps.now } : {}),
  };
  v1.use('/events', requireMerchantKey, eventsRouter(webhooks));
  v1.use('/webhook-endpoints', requireMerchantKey, webhookEndpointsRouter(webhooks));
  // A merchant's key runs and reads its own reconciliations; the operator's, the platform's.
  v1.use('/reconciliations', reconciliationsRouter({ prisma, temporal: deps.temporal, taskQueue: deps.taskQueue, logger }));
  app.use('/v1', v1);

  app.use(routeNotFound);
  app.use(errorHandler(logger));
  return app;
}
