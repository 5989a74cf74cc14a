// Events and webhook endpoints. Events are written in the transaction of each status change (by the
// workers' activities/events.ts, and by the sold-out answer) and delivered from there by the outbox
// relay (platform/webhook-deliveries.ts); here they are read, and redelivered on request. An endpoint's
// secret is shown once, in the answer that creates it, and never again (nor logged): it signs every
// delivery, so it is stored as issued.
//
// Abuse bounds: an endpoint's URL must name a public host (platform/network-policy.ts; the delivery
// checks again on the addresses it connects to), a merchant has at most WEBHOOK_MAX_ENDPOINTS_PER_MERCHANT
// endpoints (counted under a per-merchant advisory lock, so concurrent registrations cannot pass it
// together), and redeliveries are rate-limited per merchant, with at most one running per event
// and endpoint.
import { randomBytes, randomUUID } from 'node:crypto';
import { Router, type RequestHandler } from 'express';
import type { Client } from '@temporalio/client';
import type { PrismaClient } from '../../platform/db.js';
import type { Logger } from '../../platform/logger.js';
import type { Event, WebhookAttempt, WebhookEndpoint } from '../../generated/prisma/client.js';
import { DEFAULT_MAX_WEBHOOK_ENDPOINTS, DEFAULT_REDELIVER_RATE_LIMIT, type WebhookRetry } from '../../domain/index.js';
import { ALLOW_PRIVATE_HOSTS_SETTING, checkHost, hostOf, PUBLIC_HOST_RULE, type HostPolicy, type ResolveAll } from '../../platform/network-policy.js';
import { startRedelivery, subscribedEndpoints } from '../../platform/webhook-deliveries.js';
import { merchantIdOf } from '../auth.js';
import { ApiError, conflict, invalidRequest, notFound } from '../errors.js';
import { bodyOf, requireJson } from '../json.js';
import { rateLimiter, type RateLimit } from '../rate-limit.js';
import { cancelBody, createWebhookEndpointBody, isEventId, isWebhookEndpointId, listEventsQuery, parseBody } from '../validation.js';

export interface WebhooksDeps {
  prisma: PrismaClient;
  temporal: Client;
  taskQueue: string;
  logger: Logger;
  webhookRetry?: WebhookRetry;
  /** WEBHOOK_ALLOW_PRIVATE_HOSTS: accept endpoints on loopback, private... hosts. Default false. */
  allowPrivateHosts?: boolean;
  /** The DNS endpoint hosts are checked with; tests stub it. Default getaddrinfo. */
  resolveAll?: ResolveAll;
  /** WEBHOOK_MAX_ENDPOINTS_PER_MERCHANT; default DEFAULT_MAX_WEBHOOK_ENDPOINTS. */
  maxEndpointsPerMerchant?: number;
  /** Redeliveries per merchant; default DEFAULT_REDELIVER_LIMIT, null: unlimited. */
  redeliverRateLimit?: RateLimit | null;
  /** The redelivery limiter's clock (tests). */
  now?: () => number;
}

/** The default redelivery limit as a token bucket. */
export const DEFAULT_REDELIVER_LIMIT: RateLimit = { perSecond: DEFAULT_REDELIVER_RATE_LIMIT.perMinute / 60, burst: DEFAULT_REDELIVER_RATE_LIMIT.burst };

// The first int of two-int advisory locks keeps ours apart from the simulators' (BANK, CNET).
const ENDPOINT_LOCK_NAMESPACE = 0x57484550; // WHEP

export interface EventResource {
  id: string;
  type: string;
  resourceType: string;
  resourceId: string;
  /** Unix seconds, as in the delivered payload. */
  created: number;
  data: unknown;
}

export interface DeliveryAttemptResource {
  endpointId: string;
  attempt: number;
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  createdAt: string;
}

export interface WebhookEndpointResource {
  id: string;
  url: string;
  events: string[];
  createdAt: string;
}

function eventResource(e: Event): EventResource {
  return { id: e.id, type: e.type, resourceType: e.resourceType, resourceId: e.resourceId, created: Math.floor(e.createdAt.getTime() / 1000), data: e.data };
}

function attemptResource(a: WebhookAttempt): DeliveryAttemptResource {
  return { endpointId: a.endpointId, attempt: a.attempt, statusCode: a.statusCode, error: a.error, durationMs: a.durationMs, createdAt: a.createdAt.toISOString() };
}

function endpointResource(e: WebhookEndpoint): WebhookEndpointResource {
  return { id: e.id, url: e.url, events: e.events, createdAt: e.createdAt.toISOString() };
}

export function eventsRouter(deps: WebhooksDeps): Router {
  const { prisma } = deps;
  const router = Router();
  // Another merchant's event answers exactly like an unknown one.
  const findEvent = (id: string, merchantId: string) => (isEventId(id) ? prisma.event.findFirst({ where: { id, merchantId } }) : Promise.resolve(null));

  router.get('/', async (req, res) => {
    const merchantId = merchantIdOf(res);
    const query = parseBody(listEventsQuery, req.query);
    let before: { createdAt: Date; id: string } | undefined;
    if (query.starting_after !== undefined) {
      const cursor = await findEvent(query.starting_after, merchantId);
      if (!cursor) throw notFound('No such event (starting_after).');
      before = { createdAt: cursor.createdAt, id: cursor.id };
    }
    // Newest first; ids break ties between events of the same millisecond.
    const rows = await prisma.event.findMany({
      where: {
        merchantId,
        ...(query.type !== undefined ? { type: query.type } : {}),
        ...(before ? { OR: [{ createdAt: { lt: before.createdAt } }, { createdAt: before.createdAt, id: { lt: before.id } }] } : {}),
      },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: query.limit + 1,
    });
    res.json({ data: rows.slice(0, query.limit).map(eventResource), hasMore: rows.length > query.limit });
  });

  router.get('/:id', async (req, res) => {
    const event = await findEvent(req.params.id, merchantIdOf(res));
    if (!event) throw notFound('No such event.');
    const attempts = await prisma.webhookAttempt.findMany({ where: { eventId: event.id }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] });
    res.json({ ...eventResource(event), deliveryAttempts: attempts.map(attemptResource) });
  });

  // Each redelivery fans out to every subscribed endpoint: limited per merchant, before anything is read.
  const limit = deps.redeliverRateLimit === undefined ? DEFAULT_REDELIVER_LIMIT : deps.redeliverRateLimit;
  const redeliverLimit: RequestHandler[] = limit
    ? [
        rateLimiter({
          limit,
          who: "this API key's merchant",
          rule: `${Math.round(limit.perSecond * 60 * 100) / 100} redeliveries per minute (bursts of up to ${limit.burst}; WEBHOOK_REDELIVER_RATE_LIMIT_PER_MINUTE, WEBHOOK_REDELIVER_RATE_LIMIT_BURST)`,
          keyOf: (_req, res) => (typeof res.locals.merchantId === 'string' ? res.locals.merchantId : undefined),
          ...(deps.now ? { now: deps.now } : {}),
        }),
      ]
    : [];

  /**
   * A fresh delivery to every endpoint subscribed now, whatever became of the earlier ones, except
   * where a redelivery of this event to that endpoint is still running (`inProgress`); 409 when
   * that is every subscribed endpoint.
   */
  router.post('/:id/redeliver', ...redeliverLimit, ...requireJson, async (req, res) => {
    const merchantId = merchantIdOf(res);
    // A named `:id` is always one string; the union is only for wildcard parameters.
    const id = req.params.id;
    const event = typeof id === 'string' ? await findEvent(id, merchantId) : null;
    if (!event) throw notFound('No such event.');
    // Takes no parameters, like a cancel: `{}` or no body at all.
    parseBody(cancelBody, bodyOf(req));
    const endpoints = await subscribedEndpoints(prisma, merchantId, event.type);
    const started: string[] = [];
    const inProgress: string[] = [];
    for (const endpoint of endpoints) {
      const input = { eventId: event.id, endpointId: endpoint.id, ...(deps.webhookRetry ? { retry: deps.webhookRetry } : {}) };
      ((await startRedelivery(deps.temporal, deps.taskQueue, input)) ? started : inProgress).push(endpoint.id);
    }
    deps.logger.info('event redelivery started', { requestId: res.locals.requestId, merchantId, eventId: event.id, endpoints: started.length, inProgress: inProgress.length });
    if (started.length === 0 && inProgress.length > 0) {
      throw conflict(
        'redelivery_in_progress',
        `A redelivery of this event is still running to every subscribed endpoint (${inProgress.join(', ')}); it retries until the endpoint answers 2xx or 3 days pass. GET /v1/events/${event.id} shows its attempts.`,
      );
    }
    res.status(202).json({ id: event.id, endpoints: started, inProgress });
  });

  return router;
}

export function webhookEndpointsRouter(deps: WebhooksDeps): Router {
  const { prisma } = deps;
  const router = Router();

  const policy: HostPolicy = { allowPrivateHosts: deps.allowPrivateHosts ?? false, ...(deps.resolveAll ? { resolveAll: deps.resolveAll } : {}) };
  const maxEndpoints = deps.maxEndpointsPerMerchant ?? DEFAULT_MAX_WEBHOOK_ENDPOINTS;

  router.post('/', ...requireJson, async (req, res) => {
    const merchantId = merchantIdOf(res);
    const body = parseBody(createWebhookEndpointBody, req.body);
    // The host as the URL parser normalized it (numeric IPv4 spellings included), then its addresses.
    const check = await checkHost(hostOf(new URL(body.url)), policy);
    if (!check.allowed) {
      throw invalidRequest(
        'url_not_allowed',
        `Invalid url: ${check.error.message}; ${PUBLIC_HOST_RULE}. ${ALLOW_PRIVATE_HOSTS_SETTING}=1 (API and workers) allows private hosts, for local development only.`,
        'url',
      );
    }
    const endpoint = await prisma.$transaction(async (tx) => {
      // One registration per merchant at a time: the count below is then still true at the insert.
      await tx.$executeRaw`SELECT pg_advisory_xact_lock(${ENDPOINT_LOCK_NAMESPACE}::int, hashtext(${merchantId}))`;
      const count = await tx.webhookEndpoint.count({ where: { merchantId } });
      if (count >= maxEndpoints) {
        throw new ApiError(
          400,
          'invalid_request_error',
          'webhook_endpoint_limit_reached',
          `This merchant already has ${count} webhook endpoints, the most allowed (${maxEndpoints}, WEBHOOK_MAX_ENDPOINTS_PER_MERCHANT). Delete one (DELETE /v1/webhook-endpoints/:id) before adding another.`,
        );
      }
      return tx.webhookEndpoint.create({
        data: {
          id: `we_${randomUUID()}`,
          merchantId,
          url: body.url,
          // "*" alone means everything; listed next to types it would only hide them.
          events: body.events.includes('*') ? ['*'] : [...new Set(body.events)],
          secret: `whsec_${randomBytes(32).toString('hex')}`,
        },
      });
    });
    deps.logger.info('webhook endpoint created', { requestId: res.locals.requestId, merchantId, endpointId: endpoint.id });
    res.status(201).json({ ...endpointResource(endpoint), secret: endpoint.secret });
  });

  router.get('/', async (_req, res) => {
    const rows = await prisma.webhookEndpoint.findMany({ where: { merchantId: merchantIdOf(res) }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] });
    res.json({ data: rows.map(endpointResource) });
  });

  router.delete('/:id', async (req, res) => {
    const merchantId = merchantIdOf(res);
    const id = req.params.id;
    // Deliveries in flight find the endpoint gone and stop (activities/webhooks.ts).
    const { count } = isWebhookEndpointId(id) ? await prisma.webhookEndpoint.deleteMany({ where: { id, merchantId } }) : { count: 0 };
    if (count === 0) throw notFound('No such webhook endpoint.');
    deps.logger.info('webhook endpoint deleted', { requestId: res.locals.requestId, merchantId, endpointId: id });
    res.json({ id, deleted: true });
  });

  return router;
}
