// Events and webhook deliveries on the real Temporal dev server with an in-process worker: events
// are recorded once per status change even when the recording activity is retried, deliveries are
// signed, and an endpoint that fails is retried until it answers 2xx, with the same event id. Then
// the API's events and webhook-endpoint routes: shapes, the secret shown once, merchant scoping.
// The receivers listen on 127.0.0.1, so the tests that deliver to them opt in to
// WEBHOOK_ALLOW_PRIVATE_HOSTS explicitly; the default refuses them (tested here end to end, and in
// test/webhook-delivery-guard.test.ts in detail). Deliveries run on a task queue and worker of
// their own: a checkout completes while every delivery slot is held by endpoints that hang.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Context } from '@temporalio/activity';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { createApp } from '../api/app.js';
import { createActivities, type Activities } from '../activities/index.js';
import type { WebhookActivityOptions } from '../activities/webhooks.js';
import {
  DEFAULT_CHECKOUT_TIMEOUTS,
  DEFAULT_MAX_WEBHOOK_ENDPOINTS,
  checkoutId,
  topupId,
  webhookDeliveryId,
  webhookRedeliveryId,
  webhookTaskQueue,
  type CheckoutInput,
  type TopupInput,
} from '../domain/index.js';
import { hashApiKey } from '../platform/api-keys.js';
import { createPrisma, type PrismaClient } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import { systemResolveAll } from '../platform/network-policy.js';
import { startOutboxRelay } from '../platform/webhook-deliveries.js';
import { bundlePaymentWorkflows, createPaymentWorker, createWebhookWorker } from '../workers/payment-worker.js';
import { captureUpdate, statusQuery } from '../workflows/checkout-messages.js';
import { checkoutWorkflowV2, topupWorkflowV2 } from '../workflows/index.js';
import { connectDevServer } from './support/dev-server.js';
import { call, startApi } from './support/api-harness.js';
import { FakeBank } from './support/fake-bank.js';
import { FakeCardNetwork } from './support/fake-card-network.js';
import { recordHistory } from './support/histories.js';
import { startWebhookReceiver, waitFor, type WebhookReceiver } from './support/webhook-receiver.js';
import { testCustomerSearch, testDataConverter } from './support/payload-keys.js';

const RETRY = { initialIntervalMs: 500, maximumIntervalMs: 1000 };
let prisma: PrismaClient;
let connection: Connection;
let nativeConnection: NativeConnection;
let client: Client;
let workflowBundle: Awaited<ReturnType<typeof bundlePaymentWorkflows>>;
const receivers: WebhookReceiver[] = [];

beforeAll(async () => {
  prisma = createPrisma(process.env.DATABASE_URL!);
  ({ connection, nativeConnection, client, workflowBundle } = await connectDevServer());
});

afterAll(async () => {
  await Promise.all(receivers.map((r) => r.close()));
  await prisma?.$disconnect();
  await nativeConnection?.close();
  await connection?.close();
});

/** A merchant of its own per test, so no other test's endpoints or events get in the way. */
async function newMerchant(): Promise<{ merchantId: string; apiKey: string }> {
  const merchantId = `wh_${randomUUID().slice(0, 8)}`;
  const apiKey = `sk_test_${randomUUID()}`;
  await prisma.merchant.create({ data: { id: merchantId, name: 'Webhook test shop', apiKeyHash: hashApiKey(apiKey) } });
  return { merchantId, apiKey };
}

async function endpointFor(merchantId: string, receiver: WebhookReceiver, events: string[]) {
  receiver.secret = `whsec_${randomUUID().replaceAll('-', '')}`;
  return prisma.webhookEndpoint.create({ data: { id: `we_${randomUUID()}`, merchantId, url: receiver.url, events, secret: receiver.secret } });
}

const quiet = () => undefined;
const quietLogger: Logger = { debug: quiet, info: quiet, warn: quiet, error: quiet, child: () => quietLogger };

interface WorkerSetup {
  /** WEBHOOK_ALLOW_PRIVATE_HOSTS for the deliveries; every caller says which (the receivers are on 127.0.0.1). */
  allowPrivateHosts: boolean;
  override?: Partial<Activities>;
  /** DNS and request timeout of the deliveries. */
  webhooks?: Omit<WebhookActivityOptions, 'allowPrivateHosts'>;
  /** The webhook worker's slots (WEBHOOK_MAX_CONCURRENT_DELIVERIES). */
  maxConcurrentDeliveries?: number;
}

/** A payment worker and a webhook worker on a fresh task queue, and the outbox relay: a worker process (workers/main.ts). */
async function withWorker<T>(setup: WorkerSetup, body: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = `webhooks-${randomUUID()}`;
  const activities = {
    ...createActivities({ prisma, cardNetwork: new FakeCardNetwork(), bank: new FakeBank(), temporal: client, webhooks: { allowPrivateHosts: setup.allowPrivateHosts, ...setup.webhooks } }),
    ...setup.override,
  };
  // Without deliverWebhook: a delivery scheduled on the payments queue would fail here, not pass unnoticed.
  const { deliverWebhook, ...paymentActivities } = activities;
  const [worker, webhookWorker]: Worker[] = await Promise.all([
    createPaymentWorker({ connection: nativeConnection, namespace: process.env.TEMPORAL_NAMESPACE ?? 'default', taskQueue, activities: paymentActivities as Activities, workflowBundle, dataConverter: testDataConverter() }),
    createWebhookWorker({
      connection: nativeConnection,
      namespace: process.env.TEMPORAL_NAMESPACE ?? 'default',
      taskQueue,
      activities: { deliverWebhook },
      workflowBundle,
      dataConverter: testDataConverter(),
      ...(setup.maxConcurrentDeliveries !== undefined ? { maxConcurrentDeliveries: setup.maxConcurrentDeliveries } : {}),
    }),
  ]);
  // Deliveries start from the outbox, as in a worker process (workers/main.ts).
  const relay = startOutboxRelay({ prisma, temporal: client, taskQueue, logger: quietLogger, retry: RETRY, pollIntervalMs: 50 });
  try {
    const running = body(taskQueue);
    const [result] = await Promise.all([worker!.runUntil(running), webhookWorker!.runUntil(running)]);
    return result;
  } finally {
    await relay.stop();
  }
}

/** A card checkout of one unit that settles at once and closes its refund window at once. */
function checkoutInput(merchantId: string, sku: string, captureMethod: CheckoutInput['captureMethod']): CheckoutInput {
  const key = randomUUID();
  return {
    checkoutId: checkoutId(merchantId, key),
    merchantId,
    customerId: 'cus_wh',
    idempotencyKey: key,
    items: [{ sku, quantity: 1 }],
    payment: { method: 'card', token: 'tok_visa' },
    captureMethod,
    timeouts: { ...DEFAULT_CHECKOUT_TIMEOUTS, settlementDelayMs: 0, refundWindowMs: 0 },
  };
}

function topupInput(merchantId: string): TopupInput {
  const key = randomUUID();
  return { topupId: topupId(merchantId, key), merchantId, customerId: 'cus_wh', idempotencyKey: key, amount: { amount: '5000', currency: 'JPY' }, payment: { method: 'card', token: 'tok_visa' } };
}

describe('events and deliveries', () => {
  it('records each status change once and delivers it once when the recording activity is retried', async () => {
    const { merchantId } = await newMerchant();
    const receiver = await startWebhookReceiver();
    receivers.push(receiver);
    const endpoint = await endpointFor(merchantId, receiver, ['*']);
    const real = createActivities({ prisma, cardNetwork: new FakeCardNetwork(), bank: new FakeBank(), temporal: client });
    // The first attempt commits (event included) and then "crashes" before reporting back.
    const crashAfterCommit: Partial<Activities> = {
      async setTopupStatus(args) {
        await real.setTopupStatus(args);
        if (Context.current().info.attempt === 1) throw new Error('worker lost after commit (test)');
      },
    };
    const input = topupInput(merchantId);
    await withWorker({ allowPrivateHosts: true, override: crashAfterCommit }, async (taskQueue) => {
      const result = await client.workflow.execute(topupWorkflowV2, { workflowId: input.topupId, taskQueue, args: [input] });
      expect(result.status).toBe('succeeded');
      await waitFor('both deliveries', () => (receiver.deliveries.length >= 2 ? true : undefined));
      // Every event handed to its delivery workflow (one per event and endpoint, ids never reused),
      // and each of those finished: no further delivery can arrive after this.
      await waitFor('every delivery workflow to finish', async () => {
        const events = await prisma.event.findMany({ where: { resourceId: input.topupId } });
        if (events.length < 2 || events.some((e) => e.dispatchedAt === null)) return undefined;
        const done = await Promise.all(events.map(async (e) => (await client.workflow.getHandle(webhookDeliveryId(e.id, endpoint.id)).describe()).status.name));
        return done.every((status) => status === 'COMPLETED') ? true : undefined;
      });
    });

    const events = await prisma.event.findMany({ where: { resourceId: input.topupId }, orderBy: { createdAt: 'asc' } });
    expect(events.map((e) => e.type)).toEqual(['topup.processing', 'topup.succeeded']);
    expect(events[1]).toMatchObject({ merchantId, resourceType: 'topup', data: { id: input.topupId, status: 'succeeded', amount: '5000', currency: 'JPY' } });
    expect(receiver.deliveries.map((d) => [d.type, d.id, d.verified]).sort()).toEqual(
      events.map((e) => [e.type, e.id, true]).sort(),
    );
  });

  it('delivers the event of an order step whose first attempt committed and crashed', async () => {
    const { merchantId } = await newMerchant();
    const receiver = await startWebhookReceiver();
    receivers.push(receiver);
    await endpointFor(merchantId, receiver, ['checkout.processing']);
    const sku = `wh-${randomUUID().slice(0, 8)}`;
    await prisma.product.create({ data: { merchantId, sku, name: 'Poster', priceAmount: 1200n, currency: 'JPY', available: 3 } });
    const real = createActivities({ prisma, cardNetwork: new FakeCardNetwork(), bank: new FakeBank(), temporal: client });
    // The order and its `checkout.processing` event commit, then the worker is lost: the retry
    // finds the order already written and answers from it, without writing the event again.
    const crashAfterCommit: Partial<Activities> = {
      async placeOrder(input) {
        const placed = await real.placeOrder(input);
        if (Context.current().info.attempt === 1) throw new Error('worker lost after commit (test)');
        return placed;
      },
    };
    const input = checkoutInput(merchantId, sku, 'automatic');
    await withWorker({ allowPrivateHosts: true, override: crashAfterCommit }, async (taskQueue) => {
      const result = await client.workflow.execute(checkoutWorkflowV2, { workflowId: input.checkoutId, taskQueue, args: [input] });
      expect(result.status).toBe('settled');
      await waitFor('the processing event', () => (receiver.deliveries.length >= 1 ? true : undefined));
    });

    const event = await prisma.event.findUniqueOrThrow({ where: { resourceId_type: { resourceId: input.checkoutId, type: 'checkout.processing' } } });
    expect(receiver.deliveries.map((d) => [d.id, d.type, d.verified])).toEqual([[event.id, 'checkout.processing', true]]);
    expect(event.dispatchedAt).not.toBeNull();
  });

  it('retries an endpoint that answers 500 until it answers 200, with the same event id', async () => {
    const { merchantId } = await newMerchant();
    const receiver = await startWebhookReceiver((n) => (n <= 3 ? 500 : 200));
    receivers.push(receiver);
    const endpoint = await endpointFor(merchantId, receiver, ['topup.succeeded']);
    const input = topupInput(merchantId);
    await withWorker({ allowPrivateHosts: true }, async (taskQueue) => {
      await client.workflow.execute(topupWorkflowV2, { workflowId: input.topupId, taskQueue, args: [input] });
      await waitFor('a 200', () => (receiver.deliveries.some((d) => d.answered === 200) ? true : undefined));
      // The delivery's run has closed, so no later attempt can add to what the receiver saw.
      const sent = await prisma.event.findUniqueOrThrow({ where: { resourceId_type: { resourceId: input.topupId, type: 'topup.succeeded' } } });
      await client.workflow.getHandle(webhookDeliveryId(sent.id, endpoint.id)).result();
    });

    const event = await prisma.event.findUniqueOrThrow({ where: { resourceId_type: { resourceId: input.topupId, type: 'topup.succeeded' } } });
    expect(receiver.deliveries.map((d) => [d.id, d.type, d.verified, d.answered])).toEqual([
      [event.id, 'topup.succeeded', true, 500],
      [event.id, 'topup.succeeded', true, 500],
      [event.id, 'topup.succeeded', true, 500],
      [event.id, 'topup.succeeded', true, 200],
    ]);
    const attempts = await prisma.webhookAttempt.findMany({ where: { eventId: event.id, endpointId: endpoint.id }, orderBy: { attempt: 'asc' } });
    expect(attempts.map((a) => [a.attempt, a.statusCode, a.error])).toEqual([
      [1, 500, null],
      [2, 500, null],
      [3, 500, null],
      [4, 200, null],
    ]);
    const delivery = client.workflow.getHandle(webhookDeliveryId(event.id, endpoint.id));
    expect(await delivery.result()).toEqual({ status: 'delivered', attempt: 4, statusCode: 200 });
    await recordHistory('delivered-after-three-500s', delivery);
  });
});

describe('webhook hosts at delivery time (WEBHOOK_ALLOW_PRIVATE_HOSTS unset)', () => {
  it('never connects to loopback, whether the row names it or the name resolves to it by then, and records one refused attempt each', async () => {
    const { merchantId, apiKey } = await newMerchant();
    const direct = await startWebhookReceiver();
    const rebound = await startWebhookReceiver();
    receivers.push(direct, rebound);
    // A row written directly, as before these rules or by hand: no registration ever judged it.
    const literal = await endpointFor(merchantId, direct, ['topup.succeeded']);
    // Registered through the API while its name resolved to a public address; by the delivery it
    // resolves to 127.0.0.1 (DNS rebinding).
    const api = await startApi(prisma, { webhookResolveAll: async () => [{ address: '93.184.215.14', family: 4 }] });
    const registered = await call(api.url, apiKey, 'POST', '/v1/webhook-endpoints', { url: `http://hooks.rebind.test:${new URL(rebound.url).port}/webhooks`, events: ['topup.succeeded'] });
    expect(registered.status, registered.text).toBe(201);
    rebound.secret = registered.body.secret;
    const resolveAll = async (host: string) => (host === 'hooks.rebind.test' ? [{ address: '127.0.0.1', family: 4 }] : systemResolveAll(host));

    const input = topupInput(merchantId);
    try {
      await withWorker({ allowPrivateHosts: false, webhooks: { resolveAll } }, async (taskQueue) => {
        await client.workflow.execute(topupWorkflowV2, { workflowId: input.topupId, taskQueue, args: [input] });
        const event = await prisma.event.findUniqueOrThrow({ where: { resourceId_type: { resourceId: input.topupId, type: 'topup.succeeded' } } });
        await waitFor('both attempts', async () => ((await prisma.webhookAttempt.count({ where: { eventId: event.id } })) >= 2 ? true : undefined));
        // Not retried: each delivery gave up after its one attempt, though RETRY would try again in 500 ms.
        for (const endpointId of [literal.id, registered.body.id as string]) {
          const outcome = await client.workflow.getHandle(webhookDeliveryId(event.id, endpointId)).result();
          expect(outcome).toEqual({ status: 'gave_up', reason: expect.stringContaining('address_not_allowed') });
        }
        await recordHistory('address-refused-gave-up', client.workflow.getHandle(webhookDeliveryId(event.id, literal.id)));
        const shown = await call(api.url, apiKey, 'GET', `/v1/events/${event.id}`);
        expect(shown.body.deliveryAttempts.map((a: { endpointId: string }) => a).sort((x: { endpointId: string }, y: { endpointId: string }) => x.endpointId.localeCompare(y.endpointId))).toEqual(
          [literal.id, registered.body.id as string].sort().map((endpointId) => ({ endpointId, attempt: 1, statusCode: null, error: 'address_not_allowed', durationMs: expect.any(Number), createdAt: expect.any(String) })),
        );
      });
    } finally {
      await api.close();
    }
    expect(direct.deliveries).toEqual([]);
    expect(rebound.deliveries).toEqual([]);
  });
});

describe('deliveries off the money path', () => {
  /** Endpoints on one server: `/hang/...` never answers (until closed), anything else answers 200. */
  async function endpointServer() {
    const hanging: Array<{ path: string; res: ServerResponse }> = [];
    const answered: string[] = [];
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      req.on('end', () => {
        if (req.url?.startsWith('/hang/')) hanging.push({ path: req.url, res });
        else {
          answered.push(req.url ?? '');
          res.writeHead(200).end();
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const close = () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    return { base, hanging, answered, close };
  }

  it('completes a checkout with the most endpoints a merchant may have while every delivery slot hangs', async () => {
    const { merchantId } = await newMerchant();
    const endpoints = await endpointServer();
    // The cap's worth of endpoints: 12 that hang, 4 that answer.
    const hangingIds: string[] = [];
    for (let i = 0; i < DEFAULT_MAX_WEBHOOK_ENDPOINTS; i++) {
      const hangs = i < 12;
      const row = await prisma.webhookEndpoint.create({
        data: { id: `we_${randomUUID()}`, merchantId, url: `${endpoints.base}/${hangs ? 'hang' : 'ok'}/${i}`, events: ['*'], secret: `whsec_${i}` },
      });
      if (hangs) hangingIds.push(row.id);
    }
    const sku = `wh-${randomUUID().slice(0, 8)}`;
    await prisma.product.create({ data: { merchantId, sku, name: 'Poster', priceAmount: 1200n, currency: 'JPY', available: 3 } });
    const input = checkoutInput(merchantId, sku, 'manual');
    const SLOTS = 4;
    try {
      // The hanging requests never time out on their own (past the activity's 30 s limit Temporal
      // schedules a retry, which finds no free slot): they end when the test closes the server, so
      // nothing here races a clock.
      await withWorker({ allowPrivateHosts: true, webhooks: { requestTimeoutMs: 3_600_000 }, maxConcurrentDeliveries: SLOTS }, async (taskQueue) => {
        const handle = await client.workflow.start(checkoutWorkflowV2, { workflowId: input.checkoutId, taskQueue, args: [input] });
        await waitFor('requires_capture', async () => ((await handle.query(statusQuery)).status === 'requires_capture' ? true : undefined));
        // Every slot of the webhook worker is now held by an endpoint that does not answer.
        await waitFor('all delivery slots hanging', () => (endpoints.hanging.length >= SLOTS ? true : undefined));

        const captured = await handle.executeUpdate(captureUpdate, { args: [{}] });
        expect(captured.status).toBe('captured');
        const result = await handle.result();
        expect(result.status).toBe('settled');

        // The checkout reached its final status while those deliveries were still waiting: none was
        // answered, none finished (an attempt is recorded when its request ends), no slot came free.
        expect(endpoints.hanging).toHaveLength(SLOTS);
        expect(await prisma.webhookAttempt.count({ where: { endpointId: { in: hangingIds } } })).toBe(0);
        const row = await prisma.checkout.findUniqueOrThrow({ where: { id: input.checkoutId } });
        expect(row.status).toBe('settled');
        // Every status change was recorded as an event, to be delivered once slots free up.
        const events = await prisma.event.findMany({ where: { resourceId: input.checkoutId } });
        expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['checkout.processing', 'checkout.requires_capture', 'checkout.captured', 'checkout.settled']));
        // The deliveries run on the webhook queue, not the payments one.
        const processing = events.find((e) => e.type === 'checkout.processing')!;
        const delivery = await client.workflow.getHandle(webhookDeliveryId(processing.id, hangingIds[0]!)).describe();
        expect(delivery.taskQueue).toBe(webhookTaskQueue(taskQueue));
        await endpoints.close();
      });
    } finally {
      await endpoints.close();
    }
  });
});

describe('events and webhook-endpoints API', () => {
  let server: Server;
  let apiPool: pg.Pool;
  let baseUrl: string;
  const logLines: string[] = [];

  beforeAll(async () => {
    // Everything the API logs, so the test can check no secret is ever in it.
    const line = (msg: string, fields?: Record<string, unknown>) => void logLines.push(JSON.stringify({ msg, fields }));
    const recording: Logger = { debug: line, info: line, warn: line, error: line, child: () => recording };
    apiPool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 2 });
    const app = createApp({ prisma, pool: apiPool, temporal: client, taskQueue: `webhooks-api-${randomUUID()}`, logger: recording, webhookRetry: RETRY, customerSearch: testCustomerSearch });
    server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    await apiPool?.end();
  });

  // Loose on purpose: the assertions check the shapes.
  type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  async function api(key: string, method: string, path: string, body?: unknown) {
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Json };
  }

  it('shows an endpoint secret once, never lists it, and keeps endpoints to their merchant', async () => {
    const a = await newMerchant();
    const b = await newMerchant();
    const created = await api(a.apiKey, 'POST', '/v1/webhook-endpoints', { url: 'https://example.com/hooks', events: ['checkout.captured', 'refund.succeeded'] });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ id: expect.stringMatching(/^we_/), url: 'https://example.com/hooks', events: ['checkout.captured', 'refund.succeeded'], secret: expect.stringMatching(/^whsec_[0-9a-f]{64}$/), createdAt: expect.any(String) });

    const listed = await api(a.apiKey, 'GET', '/v1/webhook-endpoints');
    expect(listed.body.data).toEqual([{ id: created.body.id, url: 'https://example.com/hooks', events: ['checkout.captured', 'refund.succeeded'], createdAt: created.body.createdAt }]);
    expect(JSON.stringify(listed.body)).not.toContain(created.body.secret);
    expect(logLines.join('\n')).not.toContain(created.body.secret);

    expect((await api(b.apiKey, 'GET', '/v1/webhook-endpoints')).body.data).toEqual([]);
    expect((await api(b.apiKey, 'DELETE', `/v1/webhook-endpoints/${created.body.id}`)).status).toBe(404);
    expect(await api(a.apiKey, 'DELETE', `/v1/webhook-endpoints/${created.body.id}`)).toEqual({ status: 200, body: { id: created.body.id, deleted: true } });
    expect((await api(a.apiKey, 'DELETE', `/v1/webhook-endpoints/${created.body.id}`)).status).toBe(404);

    const all = await api(a.apiKey, 'POST', '/v1/webhook-endpoints', { url: 'https://hooks.example/x', events: ['*', 'checkout.captured'] });
    expect(all.body.events).toEqual(['*']);
  });

  it('rejects endpoints that are not http(s) URLs or name unknown event types', async () => {
    const { apiKey } = await newMerchant();
    for (const url of ['ftp://example.com/x', 'javascript:alert(1)', 'not a url', 'https://user:pw@example.com/']) {
      const res = await api(apiKey, 'POST', '/v1/webhook-endpoints', { url, events: ['*'] });
      expect(res.status, url).toBe(400);
      expect(res.body.error).toMatchObject({ type: 'invalid_request_error', param: 'url' });
    }
    const badType = await api(apiKey, 'POST', '/v1/webhook-endpoints', { url: 'https://example.com', events: ['checkout.exploded'] });
    expect(badType.status).toBe(400);
    expect((await api(apiKey, 'POST', '/v1/webhook-endpoints', { url: 'https://example.com', events: [] })).status).toBe(400);
  });

  it('lists events newest first, filters by type, pages with starting_after, and hides other merchants\u2019 events', async () => {
    const a = await newMerchant();
    const b = await newMerchant();
    const base = Date.now() - 60_000;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const id = `evt_${randomUUID()}`;
      ids.push(id);
      await prisma.event.create({
        data: { id, merchantId: a.merchantId, type: i % 2 === 0 ? 'checkout.captured' : 'checkout.failed', resourceType: 'checkout', resourceId: `co-${randomUUID()}`, data: { amount: '100' }, createdAt: new Date(base + i * 1000) },
      });
    }
    const page1 = await api(a.apiKey, 'GET', '/v1/events?limit=2');
    expect(page1.body.data.map((e: Json) => e.id)).toEqual([ids[4], ids[3]]);
    expect(page1.body.hasMore).toBe(true);
    expect(page1.body.data[0]).toEqual({ id: ids[4], type: 'checkout.captured', resourceType: 'checkout', resourceId: expect.any(String), created: Math.floor((base + 4000) / 1000), data: { amount: '100' } });
    const page2 = await api(a.apiKey, 'GET', `/v1/events?limit=2&starting_after=${ids[3]}`);
    expect(page2.body.data.map((e: Json) => e.id)).toEqual([ids[2], ids[1]]);
    const captured = await api(a.apiKey, 'GET', '/v1/events?type=checkout.captured');
    expect(captured.body.data.map((e: Json) => e.id)).toEqual([ids[4], ids[2], ids[0]]);
    expect((await api(a.apiKey, 'GET', '/v1/events?type=nope')).status).toBe(400);
    expect((await api(a.apiKey, 'GET', '/v1/events?limit=0')).status).toBe(400);

    const one = await api(a.apiKey, 'GET', `/v1/events/${ids[0]}`);
    expect(one.body).toMatchObject({ id: ids[0], type: 'checkout.captured', deliveryAttempts: [] });
    expect((await api(b.apiKey, 'GET', `/v1/events/${ids[0]}`)).status).toBe(404);
    expect((await api(b.apiKey, 'POST', `/v1/events/${ids[0]}/redeliver`)).status).toBe(404);
    expect((await api(b.apiKey, 'GET', '/v1/events')).body.data).toEqual([]);
    expect((await api(b.apiKey, 'GET', `/v1/events?starting_after=${ids[3]}`)).status).toBe(404);
  });

  it('refuses a redelivery of an event to an endpoint while the last one is still running', async () => {
    // Nothing polls this app's task queue: every delivery it starts stays running.
    const { merchantId, apiKey } = await newMerchant();
    const event = await prisma.event.create({
      data: { id: `evt_${randomUUID()}`, merchantId, type: 'checkout.captured', resourceType: 'checkout', resourceId: `co-${randomUUID()}`, data: {} },
    });
    const endpoint = () => prisma.webhookEndpoint.create({ data: { id: `we_${randomUUID()}`, merchantId, url: 'https://hooks.example/x', events: ['*'], secret: 'whsec_x' } });
    const [e1, e2] = [await endpoint(), await endpoint()];
    const sorted = (ids: string[]) => [...ids].sort();

    const first = await api(apiKey, 'POST', `/v1/events/${event.id}/redeliver`);
    expect(first.status).toBe(202);
    expect(sorted(first.body.endpoints)).toEqual(sorted([e1!.id, e2!.id]));
    expect(first.body.inProgress).toEqual([]);

    // Both still running: nothing to start.
    const again = await api(apiKey, 'POST', `/v1/events/${event.id}/redeliver`);
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({ type: 'conflict', code: 'redelivery_in_progress' });

    // A new endpoint gets one; the running ones are reported, not doubled.
    const e3 = await endpoint();
    const partial = await api(apiKey, 'POST', `/v1/events/${event.id}/redeliver`);
    expect(partial.status).toBe(202);
    expect(partial.body.endpoints).toEqual([e3.id]);
    expect(sorted(partial.body.inProgress)).toEqual(sorted([e1!.id, e2!.id]));

    // Once one has closed, its endpoint can be redelivered to again.
    await client.workflow.getHandle(webhookRedeliveryId(event.id, e1!.id)).terminate('test: delivery finished');
    const after = await api(apiKey, 'POST', `/v1/events/${event.id}/redeliver`);
    expect(after.status).toBe(202);
    expect(after.body.endpoints).toEqual([e1!.id]);
    expect(sorted(after.body.inProgress)).toEqual(sorted([e2!.id, e3.id]));

    for (const e of [e1!, e2!, e3]) await client.workflow.getHandle(webhookRedeliveryId(event.id, e.id)).terminate('test finished');
  });
});
