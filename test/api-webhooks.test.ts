// Webhook endpoints over HTTP, in process (fake Temporal): URLs that would make our servers reach
// loopback, private, link-local, metadata... addresses are refused at registration, in every
// spelling, with nothing written. (Delivery-time checks: test/webhook-delivery-guard.test.ts and
// test/webhooks.test.ts.)
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
