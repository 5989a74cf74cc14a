// Webhook endpoints and redeliveries over HTTP, in process (fake Temporal): URLs that would make our
// servers reach loopback, private, link-local, metadata... addresses are refused at registration,
// in every spelling, with nothing written; the per-merchant cap holds, also under concurrent
// registrations; redeliveries are rate-limited per merchant. (Delivery-time checks:
// test/webhook-delivery-guard.test.ts and test/webhooks.test.ts.)
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../platform/config.js';
import type { PrismaClient } from '../platform/db.js';
import type { ResolveAll } from '../platform/network-policy.js';
import { call, createMerchant, openPrisma, startApi, type Res, type TestApi, type TestMerchant } from './support/api-harness.js';

let prisma: PrismaClient;
const apis: TestApi[] = [];

/** Names for these tests; anything else does not resolve. */
const dns: ResolveAll = async (hostname) => {
  const table: Record<string, string[]> = {
    'hooks.shop.test': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'],
    'loopback.shop.test': ['127.0.0.1'],
    'half-private.shop.test': ['93.184.215.14', '10.0.0.7'],
    'metadata.google.internal': ['169.254.169.254'],
    'v6-loopback.shop.test': ['::1'],
    'v6-ula.shop.test': ['2606:2800:21f:cb07:6820:80da:af6b:8b2c', 'fd00::7'],
  };
  const addresses = table[hostname];
  if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
  return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
};

beforeAll(() => {
  prisma = openPrisma();
});

afterAll(async () => {
  await Promise.all(apis.map((a) => a.close()));
  await prisma?.$disconnect();
});

async function api(overrides: Parameters<typeof startApi>[1] = {}): Promise<TestApi> {
  const started = await startApi(prisma, { webhookResolveAll: dns, ...overrides });
  apis.push(started);
  return started;
}

const endpointCount = (merchantId: string) => prisma.webhookEndpoint.count({ where: { merchantId } });

function expectUrlRefused(res: Res, url: string): void {
  expect(res.status, `${url}: ${res.text}`).toBe(400);
  expect(res.body.error, url).toMatchObject({ type: 'invalid_request_error', param: 'url' });
}

describe('webhook endpoint URLs', () => {
  let server: TestApi;
  let m: TestMerchant;

  beforeAll(async () => {
    server = await api();
    m = await createMerchant(prisma, 'ssrf');
  });

  // Every class the policy refuses, as the merchant might write it.
  const refused: Array<[string, string]> = [
    // IPv4 literals, one per class
    ['http://127.0.0.1/hook', 'loopback'],
    ['http://127.8.9.10:8080/hook', 'loopback'],
    ['http://10.0.0.5/hook', 'private'],
    ['http://172.20.1.1/hook', 'private'],
    ['https://192.168.0.10/hook', 'private'],
    ['http://100.64.1.1/hook', 'carrier-grade NAT'],
    ['http://169.254.10.10/hook', 'link-local'],
    ['http://169.254.169.254/latest/meta-data/', 'cloud metadata'],
    ['http://100.100.100.200/latest/meta-data/', 'cloud metadata'],
    ['http://224.0.0.1/hook', 'multicast'],
    ['http://0.0.0.0/hook', 'unspecified'],
    ['http://255.255.255.255/hook', 'broadcast'],
    ['http://240.0.0.1/hook', 'reserved'],
    ['http://192.0.2.1/hook', 'reserved'],
    ['http://198.18.0.1/hook', 'reserved'],
    // numeric spellings the URL parser turns into 127.0.0.1 / 169.254.169.254
    ['http://2130706433/hook', 'loopback'],
    ['http://0177.0.0.1/hook', 'loopback'],
    ['http://0x7f.1/hook', 'loopback'],
    ['http://0x7f000001/hook', 'loopback'],
    ['http://127.1/hook', 'loopback'],
    ['http://0/hook', 'unspecified'],
    ['http://2852039166/hook', 'cloud metadata'],
    ['http://0xa9.0xfe.0xa9.0xfe/hook', 'cloud metadata'],
    // IPv6 literals, one per class
    ['http://[::1]/hook', 'loopback'],
    ['http://[::]/hook', 'unspecified'],
    ['http://[fd12:3456::1]/hook', 'private'],
    ['http://[fc00::1]/hook', 'private'],
    ['http://[fe80::1]/hook', 'link-local'],
    ['http://[fd00:ec2::254]/hook', 'cloud metadata'],
    ['http://[ff02::1]/hook', 'multicast'],
    ['http://[2001:db8::1]/hook', 'reserved'],
    // IPv4-mapped, -compatible, NAT64 and 6to4 spellings
    ['http://[::ffff:127.0.0.1]/hook', 'loopback'],
    ['http://[::ffff:7f00:1]/hook', 'loopback'],
    ['http://[::ffff:169.254.169.254]/hook', 'cloud metadata'],
    ['http://[::ffff:10.0.0.1]/hook', 'private'],
    ['http://[::127.0.0.1]/hook', 'loopback'],
    ['http://[64:ff9b::127.0.0.1]/hook', 'loopback'],
    ['http://[64:ff9b::a9fe:a9fe]/hook', 'cloud metadata'],
    ['http://[2002:7f00:1::]/hook', 'loopback'],
    // names
    ['http://localhost:3000/hook', 'loopback'],
    ['http://api.localhost/hook', 'loopback'],
    ['https://loopback.shop.test/hook', 'resolves to a loopback'],
    ['https://half-private.shop.test/hook', 'resolves to a private'],
    ['http://metadata.google.internal/computeMetadata/v1/', 'resolves to a cloud metadata'],
    ['https://v6-loopback.shop.test/hook', 'resolves to a loopback'],
    ['https://v6-ula.shop.test/hook', 'resolves to a private'],
  ];

  it.each(refused)('refuses %s (%s) with 400 param url, naming the rule and the setting, and writes nothing', async (url, cls) => {
    const before = await endpointCount(m.id);
    const res = await call(server.url, m.key, 'POST', '/v1/webhook-endpoints', { url, events: ['*'] });
    expectUrlRefused(res, url);
    expect(res.body.error.code).toBe('url_not_allowed');
    expect(res.body.error.message).toContain(cls);
    expect(res.body.error.message).toContain('must point at public hosts');
    expect(res.body.error.message).toContain('WEBHOOK_ALLOW_PRIVATE_HOSTS=1');
    expect(await endpointCount(m.id)).toBe(before);
  });

  it('refuses other schemes and credentials in the URL, writing nothing', async () => {
    const before = await endpointCount(m.id);
    for (const url of [
      'ftp://hooks.shop.test/x',
      'file:///etc/passwd',
      'gopher://hooks.shop.test:70/_x',
      'javascript:alert(1)',
      'data:text/plain,hi',
      'ws://hooks.shop.test/x',
      'https://user:pw@hooks.shop.test/',
      'https://user@hooks.shop.test/',
      'https://:pw@hooks.shop.test/',
      'http://user@127.0.0.1/',
      '//hooks.shop.test/x',
    ]) {
      const res = await call(server.url, m.key, 'POST', '/v1/webhook-endpoints', { url, events: ['*'] });
      expectUrlRefused(res, url);
      expect(res.body.error.message, url).toMatch(/http or https URL .* without credentials/);
    }
    expect(await endpointCount(m.id)).toBe(before);
  });

  it('accepts public hosts: a public literal, a name whose addresses are all public, a name that does not resolve yet', async () => {
    const other = await createMerchant(prisma, 'ssrf_ok');
    for (const url of ['https://8.8.8.8/hook', 'https://[2606:4700:4700::1111]/hook', 'https://hooks.shop.test/hook', 'https://not-yet.shop.test/hook', 'http://[::ffff:8.8.8.8]/hook']) {
      const res = await call(server.url, other.key, 'POST', '/v1/webhook-endpoints', { url, events: ['*'] });
      expect(res.status, `${url}: ${res.text}`).toBe(201);
    }
    expect(await endpointCount(other.id)).toBe(5);
  });

  it('resolves names with the system resolver by default: localhost is refused without a stub', async () => {
    const plain = await startApi(prisma);
    apis.push(plain);
    const res = await call(plain.url, m.key, 'POST', '/v1/webhook-endpoints', { url: 'http://localhost./hook', events: ['*'] });
    expectUrlRefused(res, 'http://localhost./hook');
  });

  it('accepts loopback and private hosts only when WEBHOOK_ALLOW_PRIVATE_HOSTS is set', async () => {
    const dev = await api({ webhookAllowPrivateHosts: true });
    const other = await createMerchant(prisma, 'ssrf_dev');
    for (const url of ['http://127.0.0.1:4000/hook', 'http://localhost:4000/hook', 'http://[::1]:4000/hook', 'https://loopback.shop.test/hook']) {
      const res = await call(dev.url, other.key, 'POST', '/v1/webhook-endpoints', { url, events: ['*'] });
      expect(res.status, `${url}: ${res.text}`).toBe(201);
    }
    expect(loadConfig({}).webhooks.allowPrivateHosts).toBe(false);
    expect(loadConfig({ WEBHOOK_ALLOW_PRIVATE_HOSTS: '1' }).webhooks.allowPrivateHosts).toBe(true);
    expect(loadConfig({ WEBHOOK_ALLOW_PRIVATE_HOSTS: 'true' }).webhooks.allowPrivateHosts).toBe(true);
    expect(loadConfig({ WEBHOOK_ALLOW_PRIVATE_HOSTS: '0' }).webhooks.allowPrivateHosts).toBe(false);
    expect(() => loadConfig({ WEBHOOK_ALLOW_PRIVATE_HOSTS: 'yes please' })).toThrow(/WEBHOOK_ALLOW_PRIVATE_HOSTS/);
  });
});

describe('endpoints per merchant', () => {
  it('answers the 17th endpoint 400 naming the limit, writes nothing, and takes one again after a delete', async () => {
    const server = await api();
    const m = await createMerchant(prisma, 'cap');
    const ids: string[] = [];
    for (let i = 0; i < 16; i++) {
      const res = await call(server.url, m.key, 'POST', '/v1/webhook-endpoints', { url: `https://hooks.shop.test/${i}`, events: ['*'] });
      expect(res.status, res.text).toBe(201);
      ids.push(res.body.id);
    }
    const refused = await call(server.url, m.key, 'POST', '/v1/webhook-endpoints', { url: 'https://hooks.shop.test/16', events: ['*'] });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatchObject({ type: 'invalid_request_error', code: 'webhook_endpoint_limit_reached' });
    expect(refused.body.error.message).toContain('16');
    expect(refused.body.error.message).toContain('WEBHOOK_MAX_ENDPOINTS_PER_MERCHANT');
    expect(await endpointCount(m.id)).toBe(16);

    // Another merchant has a cap of its own.
    const other = await createMerchant(prisma, 'cap_other');
    expect((await call(server.url, other.key, 'POST', '/v1/webhook-endpoints', { url: 'https://hooks.shop.test/x', events: ['*'] })).status).toBe(201);

    expect((await call(server.url, m.key, 'DELETE', `/v1/webhook-endpoints/${ids[0]}`)).status).toBe(200);
    expect((await call(server.url, m.key, 'POST', '/v1/webhook-endpoints', { url: 'https://hooks.shop.test/16', events: ['*'] })).status).toBe(201);
    expect((await call(server.url, m.key, 'POST', '/v1/webhook-endpoints', { url: 'https://hooks.shop.test/17', events: ['*'] })).status).toBe(400);
    expect(await endpointCount(m.id)).toBe(16);
  });

  it('holds under concurrent registrations', async () => {
    const server = await api();
    const m = await createMerchant(prisma, 'cap_race');
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => call(server.url, m.key, 'POST', '/v1/webhook-endpoints', { url: `https://hooks.shop.test/race/${i}`, events: ['*'] })),
    );
    const statuses = answers.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(16);
    expect(statuses.filter((s) => s === 400)).toHaveLength(14);
    expect(answers.filter((r) => r.status === 400).every((r) => r.body.error.code === 'webhook_endpoint_limit_reached')).toBe(true);
    expect(await endpointCount(m.id)).toBe(16);
  });

  it('takes its limit from WEBHOOK_MAX_ENDPOINTS_PER_MERCHANT, under concurrency too', async () => {
    expect(loadConfig({}).webhooks.maxEndpointsPerMerchant).toBe(16);
    expect(loadConfig({ WEBHOOK_MAX_ENDPOINTS_PER_MERCHANT: '3' }).webhooks.maxEndpointsPerMerchant).toBe(3);
    expect(() => loadConfig({ WEBHOOK_MAX_ENDPOINTS_PER_MERCHANT: '0' })).toThrow(/WEBHOOK_MAX_ENDPOINTS_PER_MERCHANT/);
    const server = await api({ webhookMaxEndpointsPerMerchant: 3 });
    const m = await createMerchant(prisma, 'cap3');
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => call(server.url, m.key, 'POST', '/v1/webhook-endpoints', { url: `https://hooks.shop.test/three/${i}`, events: ['*'] })),
    );
    expect(answers.filter((r) => r.status === 201)).toHaveLength(3);
    expect(answers.find((r) => r.status === 400)?.body.error.message).toContain('(3, WEBHOOK_MAX_ENDPOINTS_PER_MERCHANT)');
    expect(await endpointCount(m.id)).toBe(3);
  });
});

describe('redelivery rate limit', () => {
  async function eventWithEndpoints(m: TestMerchant, endpoints: number): Promise<string> {
    const id = `evt_${randomUUID()}`;
    await prisma.event.create({ data: { id, merchantId: m.id, type: 'checkout.captured', resourceType: 'checkout', resourceId: `co-${randomUUID()}`, data: {} } });
    for (let i = 0; i < endpoints; i++) {
      await prisma.webhookEndpoint.create({ data: { id: `we_${randomUUID()}`, merchantId: m.id, url: `https://hooks.shop.test/${i}`, events: ['*'], secret: 'whsec_x' } });
    }
    return id;
  }

  it('answers past the burst 429 with Retry-After, starts nothing, leaves other merchants alone, and refills per minute', async () => {
    let now = 1_000_000;
    const server = await api({ webhookRedeliverRateLimit: { perSecond: 2 / 60, burst: 3 }, now: () => now });
    const m = await createMerchant(prisma, 'redeliver');
    const other = await createMerchant(prisma, 'redeliver_b');
    const event = await eventWithEndpoints(m, 2);
    const otherEvent = await eventWithEndpoints(other, 1);

    for (let i = 0; i < 3; i++) {
      const res = await call(server.url, m.key, 'POST', `/v1/events/${event}/redeliver`);
      expect(res.status, res.text).toBe(202);
      expect(res.body.endpoints).toHaveLength(2);
      expect(res.body.inProgress).toEqual([]);
    }
    const starts = server.temporal.starts.length;
    expect(starts).toBe(6);
    const refused = await call(server.url, m.key, 'POST', `/v1/events/${event}/redeliver`);
    expect(refused.status).toBe(429);
    expect(refused.body.error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded' });
    expect(refused.headers['retry-after']).toBe('30');
    expect(refused.body.error.message).toMatch(/2 redeliveries per minute \(bursts of up to 3; WEBHOOK_REDELIVER_RATE_LIMIT_PER_MINUTE/);
    expect(server.temporal.starts).toHaveLength(starts);

    // Another merchant's bucket is its own; other routes are not touched by this limit.
    expect((await call(server.url, other.key, 'POST', `/v1/events/${otherEvent}/redeliver`)).status).toBe(202);
    expect((await call(server.url, m.key, 'GET', `/v1/events/${event}`)).status).toBe(200);

    now += 30_000;
    expect((await call(server.url, m.key, 'POST', `/v1/events/${event}/redeliver`)).status).toBe(202);
    expect((await call(server.url, m.key, 'POST', `/v1/events/${event}/redeliver`)).status).toBe(429);
  });

  it('is on by default (60 a minute, bursts of 20) and configurable', async () => {
    const config = loadConfig({});
    expect(config.webhooks.redeliverRateLimit).toEqual({ perSecond: 1, burst: 20 });
    expect(loadConfig({ WEBHOOK_REDELIVER_RATE_LIMIT_PER_MINUTE: '6', WEBHOOK_REDELIVER_RATE_LIMIT_BURST: '2' }).webhooks.redeliverRateLimit).toEqual({ perSecond: 0.1, burst: 2 });
    expect(loadConfig({ WEBHOOK_REDELIVER_RATE_LIMIT_PER_MINUTE: '0' }).webhooks.redeliverRateLimit).toBeUndefined();
    expect(() => loadConfig({ WEBHOOK_REDELIVER_RATE_LIMIT_BURST: '0' })).toThrow(/WEBHOOK_REDELIVER_RATE_LIMIT_BURST/);

    const now = 2_000_000;
    const server = await api({ now: () => now });
    const m = await createMerchant(prisma, 'redeliver_default');
    const event = await eventWithEndpoints(m, 0);
    const answers = [];
    for (let i = 0; i < 21; i++) answers.push((await call(server.url, m.key, 'POST', `/v1/events/${event}/redeliver`)).status);
    expect(answers.slice(0, 20).every((s) => s === 202)).toBe(true);
    expect(answers[20]).toBe(429);
  });
});
