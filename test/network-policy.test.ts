// The webhook host policy on its own (platform/network-policy.ts): every refused class in IPv4 and
// IPv6, the IPv6 spellings of IPv4 addresses, the numeric host spellings the WHATWG URL parser
// normalizes, name resolution (all addresses), and the connect-time lookup.
import { describe, expect, it } from 'vitest';
import { AddressNotAllowedError, checkHost, classifyAddress, classifyLiteralHost, guardedLookup, hostOf, type ResolveAll } from '../platform/network-policy.js';

describe('classifyAddress', () => {
  const cases: Array<[string, string | null]> = [
    // IPv4, one or more per class
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'shared'],
    ['100.127.255.255', 'shared'],
    ['169.254.0.1', 'link-local'],
    ['169.254.169.254', 'metadata'],
    ['169.254.170.2', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['192.0.0.192', 'metadata'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['192.0.0.8', 'reserved'],
    ['192.0.2.1', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['198.51.100.7', 'reserved'],
    ['203.0.113.9', 'reserved'],
    ['192.88.99.1', 'reserved'],
    // IPv4 public, including the neighbours of refused ranges
    ['8.8.8.8', null],
    ['93.184.215.14', null],
    ['172.15.255.255', null],
    ['172.32.0.0', null],
    ['100.63.255.255', null],
    ['100.128.0.0', null],
    ['169.253.255.255', null],
    ['11.0.0.0', null],
    ['223.255.255.255', null],
    // IPv6, one or more per class
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['fc00::1', 'private'],
    ['fd12:3456:789a::1', 'private'],
    ['fec0::1', 'private'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf:ffff::1', 'link-local'],
    ['fd00:ec2::254', 'metadata'],
    ['ff02::1', 'multicast'],
    ['ff0e::1', 'multicast'],
    ['2001:db8::1', 'reserved'],
    ['2001::1', 'reserved'], // Teredo
    ['100::1', 'reserved'],
    ['64:ff9b:1::1', 'reserved'],
    ['3fff::1', 'reserved'],
    ['4000::1', 'reserved'], // outside 2000::/3
    // IPv4 in IPv6: mapped, compatible, NAT64, 6to4
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['0:0:0:0:0:ffff:7f00:0001', 'loopback'],
    ['::ffff:10.1.2.3', 'private'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:a9fe:a9fe', 'metadata'],
    ['::ffff:100.64.0.1', 'shared'],
    ['::ffff:0.0.0.0', 'unspecified'],
    ['::ffff:255.255.255.255', 'broadcast'],
    ['::127.0.0.1', 'loopback'],
    ['::7f00:1', 'loopback'],
    ['::8.8.8.8', 'reserved'],
    ['64:ff9b::127.0.0.1', 'loopback'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['64:ff9b::a9fe:a9fe', 'metadata'],
    ['64:ff9b::192.168.0.1', 'private'],
    ['2002:7f00:1::', 'loopback'],
    ['2002:a9fe:a9fe::1', 'metadata'],
    ['2002:c0a8:101::', 'private'],
    // IPv6 public
    ['2606:4700:4700::1111', null],
    ['2a00:1450:4001:80b::200e', null],
    ['::ffff:8.8.8.8', null],
    ['64:ff9b::808:808', null],
    ['2002:808:808::1', null],
  ];

  it.each(cases)('%s -> %s', (address, expected) => {
    expect(classifyAddress(address)).toBe(expected);
  });

  it('throws on something that is not an address', () => {
    expect(() => classifyAddress('example.com')).toThrow(TypeError);
    expect(() => classifyAddress('127.1')).toThrow(TypeError);
  });
});

describe('URL hosts', () => {
  // The WHATWG URL parser turns every numeric spelling into the dotted or compressed form; the
  // policy judges what it produced.
  const spellings: Array<[string, string, string | null]> = [
    ['http://2130706433/', '127.0.0.1', 'loopback'],
    ['http://0177.0.0.1/', '127.0.0.1', 'loopback'],
    ['http://0x7f.1/', '127.0.0.1', 'loopback'],
    ['http://0x7f000001/', '127.0.0.1', 'loopback'],
    ['http://127.1/', '127.0.0.1', 'loopback'],
    ['http://127.0.1/', '127.0.0.1', 'loopback'],
    ['http://017700000001/', '127.0.0.1', 'loopback'],
    ['http://0/', '0.0.0.0', 'unspecified'],
    ['http://2852039166/', '169.254.169.254', 'metadata'],
    ['http://0xa9.0xfe.0xa9.0xfe/', '169.254.169.254', 'metadata'],
    ['http://0251.0376.0251.0376/', '169.254.169.254', 'metadata'],
    ['http://10.1/', '10.0.0.1', 'private'],
    ['http://127.0.0.1./', '127.0.0.1', 'loopback'],
    ['http://[::1]/', '::1', 'loopback'],
    ['http://[0:0:0:0:0:0:0:1]/', '::1', 'loopback'],
    ['http://[::ffff:127.0.0.1]/', '::ffff:7f00:1', 'loopback'],
    ['http://[::ffff:169.254.169.254]/', '::ffff:a9fe:a9fe', 'metadata'],
    ['http://[64:ff9b::10.0.0.1]/', '64:ff9b::a00:1', 'private'],
    ['http://[fd00:ec2::254]/', 'fd00:ec2::254', 'metadata'],
    ['http://LOCALHOST/', 'localhost', 'loopback'],
    ['http://localhost./', 'localhost', 'loopback'],
    ['http://api.localhost/', 'api.localhost', 'loopback'],
    ['https://8.8.8.8/', '8.8.8.8', null],
    ['https://[2606:4700:4700::1111]/', '2606:4700:4700::1111', null],
  ];

  it.each(spellings)('%s is host %s (%s)', (url, host, expected) => {
    expect(hostOf(new URL(url))).toBe(host);
    expect(classifyLiteralHost(hostOf(new URL(url)))).toBe(expected);
  });

  it('leaves names to resolution', () => {
    expect(classifyLiteralHost('example.com')).toBeUndefined();
    expect(classifyLiteralHost('metadata.google.internal')).toBeUndefined();
  });
});

/** A resolver that answers from a table; other names do not exist. */
function stubResolver(table: Record<string, string[]>): ResolveAll {
  return async (hostname) => {
    const addresses = table[hostname];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
}

const dns = stubResolver({
  'public.test': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'],
  'rebind.test': ['93.184.215.14', '127.0.0.1'],
  'metadata.google.internal': ['169.254.169.254'],
  'v6-private.test': ['fd00::5'],
  'mapped.test': ['::ffff:10.0.0.1'],
});

describe('checkHost (registration)', () => {
  it('refuses a name whose addresses include any refused one, and says which class', async () => {
    for (const [host, cls] of [
      ['rebind.test', 'loopback'],
      ['metadata.google.internal', 'metadata'],
      ['v6-private.test', 'private'],
      ['mapped.test', 'private'],
    ] as const) {
      const check = await checkHost(host, { allowPrivateHosts: false, resolveAll: dns });
      expect(check.allowed, host).toBe(false);
      if (check.allowed) continue;
      expect(check.error).toBeInstanceOf(AddressNotAllowedError);
      expect(check.error.addressClass).toBe(cls);
      expect(check.error.message).toContain(`${host} resolves to`);
    }
  });

  it('allows a name whose addresses are all public, and one that does not resolve (the delivery checks again)', async () => {
    expect(await checkHost('public.test', { allowPrivateHosts: false, resolveAll: dns })).toMatchObject({ allowed: true });
    expect(await checkHost('nowhere.test', { allowPrivateHosts: false, resolveAll: dns })).toEqual({ allowed: true, addresses: undefined });
    const never: ResolveAll = () => new Promise(() => undefined);
    expect(await checkHost('slow.test', { allowPrivateHosts: false, resolveAll: never }, 20)).toEqual({ allowed: true, addresses: undefined });
  });

  it('judges literals without asking DNS', async () => {
    const asked: string[] = [];
    const spy: ResolveAll = async (h) => {
      asked.push(h);
      return [];
    };
    expect(await checkHost('127.0.0.1', { allowPrivateHosts: false, resolveAll: spy })).toMatchObject({ allowed: false });
    expect(await checkHost('localhost', { allowPrivateHosts: false, resolveAll: spy })).toMatchObject({ allowed: false });
    expect(await checkHost('8.8.8.8', { allowPrivateHosts: false, resolveAll: spy })).toMatchObject({ allowed: true });
    expect(asked).toEqual([]);
  });

  it('resolves localhost through the system resolver to a refused address', async () => {
    // No stub: the machine's own getaddrinfo (hosts file) says where localhost is.
    const check = await checkHost('localhost', { allowPrivateHosts: false });
    expect(check).toMatchObject({ allowed: false });
  });

  it('allows everything with WEBHOOK_ALLOW_PRIVATE_HOSTS', async () => {
    for (const host of ['127.0.0.1', '::1', 'localhost', 'rebind.test', '169.254.169.254']) {
      expect(await checkHost(host, { allowPrivateHosts: true, resolveAll: dns })).toMatchObject({ allowed: true });
    }
  });
});

describe('guardedLookup (delivery)', () => {
  function lookup(hostname: string, all: boolean, allowPrivateHosts = false, family = 0) {
    return new Promise<{ err: NodeJS.ErrnoException | null; address: unknown; family?: number }>((resolve) => {
      guardedLookup({ allowPrivateHosts, resolveAll: dns })(hostname, { all, family }, (err, address, fam) => resolve({ err, address, family: fam }));
    });
  }

  it('refuses when any address is refused, with a code of its own', async () => {
    for (const host of ['rebind.test', 'metadata.google.internal', 'v6-private.test', 'mapped.test', 'localhost']) {
      const { err } = await lookup(host, true);
      expect(err, host).toBeInstanceOf(AddressNotAllowedError);
      expect(err?.code).toBe('ERR_ADDRESS_NOT_ALLOWED');
    }
  });

  it('answers like dns.lookup otherwise, in both its forms', async () => {
    expect(await lookup('public.test', true)).toEqual({
      err: null,
      address: [
        { address: '93.184.215.14', family: 4 },
        { address: '2606:2800:21f:cb07:6820:80da:af6b:8b2c', family: 6 },
      ],
      family: undefined,
    });
    expect(await lookup('public.test', false)).toEqual({ err: null, address: '93.184.215.14', family: 4 });
    expect(await lookup('public.test', false, false, 6)).toEqual({ err: null, address: '2606:2800:21f:cb07:6820:80da:af6b:8b2c', family: 6 });
    expect((await lookup('nowhere.test', true)).err?.code).toBe('ENOTFOUND');
  });

  it('lets private addresses through with WEBHOOK_ALLOW_PRIVATE_HOSTS', async () => {
    expect(await lookup('rebind.test', false, true)).toEqual({ err: null, address: '93.184.215.14', family: 4 });
  });
});
