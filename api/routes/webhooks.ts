// Events and webhook endpoints. Events are written in the transaction of each status change (by the
// workers' activities/events.ts, and by the sold-out answer) and delivered from there by the outbox
// relay (platform/webhook-deliveries.ts); here they are read, and redelivered on request. An endpoint's
// secret is shown once, in the answer that creates it, and never again (nor logged): it signs every
// delivery, so it is stored as issued. An endpoint's URL must name a public host
// (platform/network-policy.ts); the delivery checks again on the addresses it connects to.
import { randomBytes, randomUUID } from 'node:crypto';
import { Router } from 'express';
import type { Client } from '@temporalio/client';
import type { PrismaClient } from '../../platform/db.js';
import type { Logger } from '../../platform/logger.js';
import type { Event, WebhookAttempt, WebhookEndpoint } from '../../generated/prisma/client.js';
import type { WebhookRetry } from '../../domain/index.js';
import { ALLOW_PRIVATE_HOSTS_SETTING, checkHost, hostOf, PUBLIC_HOST_RULE, type HostPolicy, type ResolveAll } from '../../platform/network-policy.js';
import { startDelivery, subscribedEndpoints } from '../../platform/webhook-deliveries.js';
import { merchantIdOf } from '../auth.js';
import { invalidRequest, notFound } from '../errors.js';
import { bodyOf, requireJson } from '../json.js';
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
}

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

  /** A fresh delivery to every endpoint subscribed now, whatever became of the earlier ones. */
  router.post('/:id/redeliver', ...requireJson, async (req, res) => {
    const merchantId = merchantIdOf(res);
    // A named `:id` is always one string; the union is only for wildcard parameters.
    const id = req.params.id;
    const event = typeof id === 'string' ? await findEvent(id, merchantId) : null;
    if (!event) throw notFound('No such event.');
    // Takes no parameters, like a cancel: `{}` or no body at all.
    parseBody(cancelBody, bodyOf(req));
    const endpoints = await subscribedEndpoints(prisma, merchantId, event.type);
    const suffix = `redeliver-${randomUUID()}`;
    for (const endpoint of endpoints) {
      await startDelivery(
        deps.temporal,
        deps.taskQueue,
        { eventId: event.id, endpointId: endpoint.id, ...(deps.webhookRetry ? { retry: deps.webhookRetry } : {}) },
        suffix,
      );
    }
    deps.logger.info('event redelivery started', { requestId: res.locals.requestId, merchantId, eventId: event.id, endpoints: endpoints.length });
    res.status(202).json({ id: event.id, endpoints: endpoints.map((e) => e.id) });
  });

  return router;
}

export function webhookEndpointsRouter(deps: WebhooksDeps): Router {
  const { prisma } = deps;
  const router = Router();

  const policy: HostPolicy = { allowPrivateHosts: deps.allowPrivateHosts ?? false, ...(deps.resolveAll ? { resolveAll: deps.resolveAll } : {}) };

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
    const endpoint = await prisma.webhookEndpoint.create({
      data: {
        id: `we_${randomUUID()}`,
        merchantId,
        url: body.url,
        // "*" alone means everything; listed next to types it would only hide them.
        events: body.events.includes('*') ? ['*'] : [...new Set(body.events)],
        secret: `whsec_${randomBytes(32).toString('hex')}`,
      },
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
