// The delivery activity's guards, run in a mock activity context against real sockets: by default
// no connection is ever opened to a refused address, whether the endpoint's URL names it (in any
// spelling) or a name resolves to it at delivery time (DNS rebinding); such an attempt is recorded
// as `address_not_allowed` and not retried. Redirects are not followed, and an attempt records a
// status, an error class and a duration, nothing of what the endpoint answered.
import { randomUUID } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createWebhookActivities, deliveryErrorClass, WEBHOOK_DELIVERY_FAILED, WEBHOOK_DELIVERY_REFUSED, type WebhookActivityOptions } from '../activities/webhooks.js';
import type { PrismaClient } from '../platform/db.js';
import { systemResolveAll, type ResolveAll } from '../platform/network-policy.js';
import { createMerchant, openPrisma, type TestMerchant } from './support/api-harness.js';

/** A server on 127.0.0.1 that counts every connection and request, and answers with `answer`. */
interface Probe {
  port: number;
  connections: number;
  requests: Array<{ path: string; body: string }>;
  close(): Promise<void>;
}

async function probe(answer: (res: ServerResponse) => void = (res) => res.writeHead(200).end('ok')): Promise<Probe> {
  const p: Probe = { port: 0, connections: 0, requests: [], close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      p.requests.push({ path: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') });
      answer(res);
    });
  });
  server.on('connection', () => p.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  p.port = (server.address() as AddressInfo).port;
  p.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return p;
}

let prisma: PrismaClient;
let merchant: TestMerchant;
const probes: Probe[] = [];

beforeAll(async () => {
  prisma = openPrisma();
  merchant = await createMerchant(prisma, 'guard');
});

afterAll(async () => {
  await Promise.all(probes.map((p) => p.close()));
  await prisma?.$disconnect();
});

async function newProbe(answer?: (res: ServerResponse) => void): Promise<Probe> {
  const p = await probe(answer);
  probes.push(p);
  return p;
}

/** An event and an endpoint row written directly, as if registered before the rules (or by hand). */
async function eventFor(url: string): Promise<{ eventId: string; endpointId: string }> {
  const eventId = `evt_${randomUUID()}`;
  const endpointId = `we_${randomUUID()}`;
  await prisma.event.create({ data: { id: eventId, merchantId: merchant.id, type: 'checkout.captured', resourceType: 'checkout', resourceId: `co-${randomUUID()}`, data: { amount: '100' } } });
  await prisma.webhookEndpoint.create({ data: { id: endpointId, merchantId: merchant.id, url, events: ['*'], secret: 'whsec_guard' } });
  return { eventId, endpointId };
}

async function deliver(url: string, options: WebhookActivityOptions = {}) {
  const input = await eventFor(url);
  const activities = createWebhookActivities(prisma, options);
  let failure: ApplicationFailure | undefined;
  let outcome: unknown;
  try {
    outcome = await new MockActivityEnvironment({ attempt: 1 }, { logger: new DefaultLogger('ERROR') }).run(activities.deliverWebhook, input);
  } catch (err) {
    if (!(err instanceof ApplicationFailure)) throw err;
    failure = err;
  }
  const attempts = await prisma.webhookAttempt.findMany({ where: { eventId: input.eventId } });
  return { outcome, failure, attempts };
}

const rebinding: ResolveAll = async (hostname) => {
  if (hostname === 'hooks.rebind.test') return [{ address: '127.0.0.1', family: 4 }];
  if (hostname === 'mixed.rebind.test') return [{ address: '93.184.215.14', family: 4 }, { address: '127.0.0.1', family: 4 }];
  if (hostname === 'v6.rebind.test') return [{ address: '::1', family: 6 }];
  return systemResolveAll(hostname);
};

describe('delivery to a refused address (the default)', () => {
  it.each([
    ['http://127.0.0.1:PORT/hook'],
    ['http://2130706433:PORT/hook'],
    ['http://0x7f.1:PORT/hook'],
    ['http://0177.0.0.1:PORT/hook'],
    ['http://127.1:PORT/hook'],
    ['http://[::ffff:127.0.0.1]:PORT/hook'],
    ['http://[::1]:PORT/hook'],
    ['http://localhost:PORT/hook'],
    ['http://hooks.rebind.test:PORT/hook'],
    ['http://mixed.rebind.test:PORT/hook'],
    ['http://v6.rebind.test:PORT/hook'],
  ])('%s: never connects, records address_not_allowed, fails without retry', async (template) => {
    const receiver = await newProbe();
    const { outcome, failure, attempts } = await deliver(template.replace('PORT', String(receiver.port)), { resolveAll: rebinding });
    expect(outcome).toBeUndefined();
    expect(failure).toMatchObject({ type: WEBHOOK_DELIVERY_REFUSED, nonRetryable: true });
    expect(attempts).toEqual([expect.objectContaining({ attempt: 1, statusCode: null, error: 'address_not_allowed', durationMs: expect.any(Number) })]);
    expect(receiver.connections).toBe(0);
    expect(receiver.requests).toEqual([]);
  });

  it('uses the system resolver by default: localhost through getaddrinfo is refused too', async () => {
    const receiver = await newProbe();
    const { failure, attempts } = await deliver(`http://localhost.:${receiver.port}/hook`);
    expect(failure).toMatchObject({ nonRetryable: true });
    expect(attempts.map((a) => a.error)).toEqual(['address_not_allowed']);
    expect(receiver.connections).toBe(0);
  });

  it('refuses a row with another scheme or credentials, without retry', async () => {
    for (const url of ['ftp://127.0.0.1/x', 'https://user:pw@hooks.shop.test/x', 'not a url']) {
      const { failure, attempts } = await deliver(url);
      expect(failure, url).toMatchObject({ type: WEBHOOK_DELIVERY_REFUSED, nonRetryable: true });
      expect(attempts.map((a) => a.error)).toEqual(['url_not_allowed']);
    }
  });

  it('delivers to the same receivers with WEBHOOK_ALLOW_PRIVATE_HOSTS', async () => {
    const receiver = await newProbe();
    for (const template of ['http://127.0.0.1:PORT/a', 'http://hooks.rebind.test:PORT/b', 'http://localhost:PORT/c']) {
      const { outcome, attempts } = await deliver(template.replace('PORT', String(receiver.port)), { allowPrivateHosts: true, resolveAll: rebinding });
      expect(outcome).toEqual({ status: 'delivered', attempt: 1, statusCode: 200 });
      expect(attempts).toEqual([expect.objectContaining({ statusCode: 200, error: null })]);
    }
    expect(receiver.requests.map((r) => r.path)).toEqual(['/a', '/b', '/c']);
  });
});

describe('what an attempt follows and records', () => {
  it('does not follow a redirect: a 3xx is a failed (retryable) attempt, and its target is never asked', async () => {
    const target = await newProbe();
    const redirecting = await newProbe((res) => res.writeHead(307, { location: `http://127.0.0.1:${target.port}/stolen` }).end('moved'));
    const { failure, attempts } = await deliver(`http://127.0.0.1:${redirecting.port}/hook`, { allowPrivateHosts: true });
    expect(failure).toMatchObject({ type: WEBHOOK_DELIVERY_FAILED, nonRetryable: false });
    expect(attempts).toEqual([expect.objectContaining({ statusCode: 307, error: 'redirect_not_followed' })]);
    expect(redirecting.requests).toHaveLength(1);
    expect(target.connections).toBe(0);
  });

  it('records the status and nothing of the body the endpoint answered', async () => {
    const chatty = await newProbe((res) => res.writeHead(500, { 'content-type': 'text/plain' }).end('internal secret: db password hunter2'));
    const { failure, attempts } = await deliver(`http://127.0.0.1:${chatty.port}/hook`, { allowPrivateHosts: true });
    expect(failure).toMatchObject({ type: WEBHOOK_DELIVERY_FAILED, nonRetryable: false });
    expect(attempts).toEqual([expect.objectContaining({ statusCode: 500, error: null })]);
    expect(JSON.stringify(attempts, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))).not.toContain('hunter2');
    expect(failure?.message).not.toContain('hunter2');
  });

  it('records error classes, not error text: a timeout and a refused connection', async () => {
    const hanging = await newProbe(() => undefined);
    const slow = await deliver(`http://127.0.0.1:${hanging.port}/hook`, { allowPrivateHosts: true, requestTimeoutMs: 200 });
    expect(slow.failure).toMatchObject({ nonRetryable: false });
    expect(slow.attempts.map((a) => [a.statusCode, a.error])).toEqual([[null, 'timeout']]);

    const closed = await newProbe();
    await closed.close();
    const refused = await deliver(`http://127.0.0.1:${closed.port}/hook`, { allowPrivateHosts: true });
    expect(refused.attempts.map((a) => [a.statusCode, a.error])).toEqual([[null, 'connection_refused']]);
    // No address or port in what is kept.
    expect(refused.failure?.message).not.toContain(String(closed.port));
  });

  it('classifies errors by code', () => {
    expect(deliveryErrorClass(Object.assign(new Error('x'), { code: 'ENOTFOUND' }))).toBe('dns_error');
    expect(deliveryErrorClass(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe('connection_reset');
    expect(deliveryErrorClass(Object.assign(new Error('x'), { code: 'CERT_HAS_EXPIRED' }))).toBe('tls_error');
    expect(deliveryErrorClass(Object.assign(new Error('x'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }))).toBe('tls_error');
    expect(deliveryErrorClass(Object.assign(new Error('x'), { code: 'HPE_INVALID_CONSTANT' }))).toBe('invalid_response');
    expect(deliveryErrorClass(Object.assign(new Error('x'), { code: 'EHOSTUNREACH' }))).toBe('unreachable');
    expect(deliveryErrorClass(new Error('x'))).toBe('network_error');
  });
});
