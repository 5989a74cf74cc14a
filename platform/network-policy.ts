// Which hosts a webhook may reach: the guard against server-side request forgery through endpoint
// URLs. A merchant chooses the URL and our workers POST to it from inside our network, so a URL
// naming (or resolving to) loopback, a private network, link-local (the cloud metadata service at
// 169.254.169.254) and the like would let a merchant make our servers talk to things only they
// should reach. Two checks use the one table below:
//   - at registration (api/routes/webhooks.ts): the host as the WHATWG URL parser normalized it
//     (`2130706433`, `0177.0.0.1`, `0x7f.1` and `127.1` all become `127.0.0.1`; `[::ffff:127.0.0.1]`
//     becomes `[::ffff:7f00:1]`), and every address its name resolves to;
//   - at delivery (activities/webhooks.ts): the addresses the connection would actually use, from
//     inside the connect's own lookup, so a name that resolves differently by then (DNS rebinding)
//     is refused before any socket to it is opened.
// WEBHOOK_ALLOW_PRIVATE_HOSTS=1 turns both off, for local development and tests with receivers on
// 127.0.0.1.
import dns from 'node:dns';
import { isIP, isIPv4, isIPv6, type LookupFunction } from 'node:net';

/** The setting that allows private hosts, named in refusals so the reader knows where it is. */
export const ALLOW_PRIVATE_HOSTS_SETTING = 'WEBHOOK_ALLOW_PRIVATE_HOSTS';

/** Why an address is refused. Every public unicast address is allowed (null). */
export type AddressClass = 'unspecified' | 'loopback' | 'private' | 'shared' | 'link-local' | 'metadata' | 'multicast' | 'broadcast' | 'reserved';

/** For messages: "<host> is a loopback address". */
export const ADDRESS_CLASS_DESCRIPTION: Record<AddressClass, string> = {
  unspecified: 'an unspecified ("this network") address',
  loopback: 'a loopback address',
  private: 'a private-network address',
  shared: 'a carrier-grade NAT (shared, 100.64.0.0/10) address',
  'link-local': 'a link-local address',
  metadata: 'a cloud metadata service address',
  multicast: 'a multicast address',
  broadcast: 'the broadcast address',
  reserved: 'a reserved or special-purpose address',
};

/** The rule as a client reads it in a refusal. */
export const PUBLIC_HOST_RULE =
  'webhook URLs must point at public hosts: loopback, private (RFC 1918, RFC 4193), carrier-grade NAT, link-local, ' +
  'cloud metadata, multicast, broadcast, unspecified and reserved addresses are refused, in any spelling ' +
  '(numeric forms, IPv4-mapped, IPv4-compatible, 6to4 and NAT64 IPv6) and whatever a host name resolves to';

interface Range<T> {
  net: T;
  bits: number;
  cls: AddressClass;
}

// IANA's special-purpose registries, most specific first; the first match decides.
const V4: Array<Range<number>> = [
  ['0.0.0.0/8', 'unspecified'],
  ['10.0.0.0/8', 'private'],
  ['100.100.100.200/32', 'metadata'], // Alibaba Cloud
  ['100.64.0.0/10', 'shared'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.169.254/32', 'metadata'], // AWS, GCP, Azure, DigitalOcean, OpenStack...
  ['169.254.170.2/32', 'metadata'], // AWS ECS task metadata
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.192/32', 'metadata'], // Oracle Cloud
  ['192.0.0.0/24', 'reserved'], // IETF protocol assignments
  ['192.0.2.0/24', 'reserved'], // TEST-NET-1
  ['192.88.99.0/24', 'reserved'], // 6to4 relay anycast (deprecated)
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'reserved'], // benchmarking
  ['198.51.100.0/24', 'reserved'], // TEST-NET-2
  ['203.0.113.0/24', 'reserved'], // TEST-NET-3
  ['224.0.0.0/4', 'multicast'],
  ['255.255.255.255/32', 'broadcast'],
  ['240.0.0.0/4', 'reserved'],
].map(([cidr, cls]) => {
  const [net, bits] = cidr!.split('/') as [string, string];
  return { net: ipv4ToNumber(net)!, bits: Number(bits), cls: cls as AddressClass };
});

const V6: Array<Range<bigint>> = [
  ['fd00:ec2::254/128', 'metadata'], // AWS IMDS over IPv6
  ['fc00::/7', 'private'], // unique local (RFC 4193)
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'private'], // site-local (deprecated)
  ['ff00::/8', 'multicast'],
  ['64:ff9b:1::/48', 'reserved'], // local-use NAT64 (RFC 8215): what it translates to is site-specific
  ['100::/64', 'reserved'], // discard-only
  ['2001:db8::/32', 'reserved'], // documentation
  ['2001::/23', 'reserved'], // IETF protocol assignments, Teredo included
  ['3fff::/20', 'reserved'], // documentation (RFC 9637)
  ['5f00::/16', 'reserved'], // SRv6 SIDs
].map(([cidr, cls]) => {
  const [net, bits] = cidr!.split('/') as [string, string];
  return { net: ipv6ToBigInt(net)!, bits: Number(bits), cls: cls as AddressClass };
});

function ipv4ToNumber(address: string): number | undefined {
  if (!isIPv4(address)) return undefined;
  return address.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

function ipv6ToBigInt(address: string): bigint | undefined {
  let text = address.split('%', 1)[0]!; // a zone (fe80::1%eth0) says nothing about the address
  if (!isIPv6(text)) return undefined;
  // A dotted IPv4 tail (::ffff:1.2.3.4) becomes the last two groups.
  if (text.includes('.')) {
    const cut = text.lastIndexOf(':') + 1;
    const v4 = ipv4ToNumber(text.slice(cut));
    if (v4 === undefined) return undefined;
    text = `${text.slice(0, cut)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  if (groups.length !== 8) return undefined;
  return groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n);
}

const inV4 = (ip: number, r: Range<number>) => r.bits === 0 || ip >>> (32 - r.bits) === r.net >>> (32 - r.bits);
const inV6 = (ip: bigint, net: bigint, bits: number) => ip >> BigInt(128 - bits) === net >> BigInt(128 - bits);

function classifyV4(ip: number): AddressClass | null {
  return V4.find((r) => inV4(ip, r))?.cls ?? null;
}

const V4_MAPPED = ipv6ToBigInt('::ffff:0:0')!;
const NAT64 = ipv6ToBigInt('64:ff9b::')!;
const SIX_TO_FOUR = ipv6ToBigInt('2002::')!;
const GLOBAL_UNICAST = ipv6ToBigInt('2000::')!;
const LOW_32 = 0xffffffffn;

function classifyV6(ip: bigint): AddressClass | null {
  if (ip === 0n) return 'unspecified';
  if (ip === 1n) return 'loopback';
  const embedded = Number(ip & LOW_32);
  // ::ffff:a.b.c.d reaches a.b.c.d on a dual-stack socket; 64:ff9b::a.b.c.d through NAT64.
  if (inV6(ip, V4_MAPPED, 96) || inV6(ip, NAT64, 96)) return classifyV4(embedded);
  // ::a.b.c.d, IPv4-compatible (deprecated): refused whatever it embeds.
  if (inV6(ip, 0n, 96)) return classifyV4(embedded) ?? 'reserved';
  // 2002:AABB:CCDD::/48 is 6to4 for AA.BB.CC.DD.
  if (inV6(ip, SIX_TO_FOUR, 16)) {
    const v4 = classifyV4(Number((ip >> 80n) & LOW_32));
    if (v4) return v4;
  }
  const listed = V6.find((r) => inV6(ip, r.net, r.bits));
  if (listed) return listed.cls;
  // Everything outside 2000::/3 is unassigned or special.
  return inV6(ip, GLOBAL_UNICAST, 3) ? null : 'reserved';
}

/**
 * Why `address` (an IPv4 or IPv6 literal, without brackets) may not be reached, or null when it is
 * a public unicast address. Throws on anything that is not an IP address.
 */
export function classifyAddress(address: string): AddressClass | null {
  const v4 = ipv4ToNumber(address);
  if (v4 !== undefined) return classifyV4(v4);
  const v6 = ipv6ToBigInt(address);
  if (v6 !== undefined) return classifyV6(v6);
  throw new TypeError(`not an IP address: ${JSON.stringify(address)}`);
}

/** `[::1]` -> `::1`; a trailing dot (`example.com.`) dropped; lower case. */
export function hostOf(url: URL): string {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return host.replace(/\.$/, '').toLowerCase();
}

/** What a host is without asking DNS: an IP literal's class, and `localhost` names (RFC 6761) as loopback. */
export function classifyLiteralHost(host: string): AddressClass | null | undefined {
  if (isIP(host)) return classifyAddress(host);
  if (host === 'localhost' || host.endsWith('.localhost')) return 'loopback';
  return undefined; // a name: only its addresses can tell
}

export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Every address of a name, as the connection would look it up (getaddrinfo). */
export type ResolveAll = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolveAll: ResolveAll = (hostname) => dns.promises.lookup(hostname, { all: true, verbatim: true });

export interface HostPolicy {
  /** WEBHOOK_ALLOW_PRIVATE_HOSTS: anything goes (local development, tests). */
  allowPrivateHosts: boolean;
  /** Injectable for tests; default getaddrinfo. */
  resolveAll?: ResolveAll;
}

/** A host or address the policy refuses. `code` lets a socket error be told apart from a network failure. */
export class AddressNotAllowedError extends Error {
  readonly code = 'ERR_ADDRESS_NOT_ALLOWED';
  constructor(
    readonly host: string,
    readonly addressClass: AddressClass,
    /** Whether the class is that of an address the name resolved to (rather than of the host as written). */
    readonly resolved: boolean,
  ) {
    super(`${host} ${resolved ? 'resolves to' : 'is'} ${ADDRESS_CLASS_DESCRIPTION[addressClass]}`);
    this.name = 'AddressNotAllowedError';
  }
}

/** The first refused address of `addresses`, if any. */
function firstRefused(addresses: readonly ResolvedAddress[]): AddressClass | null {
  for (const a of addresses) {
    const cls = classifyAddress(a.address);
    if (cls) return cls;
  }
  return null;
}

export type HostCheck =
  | { allowed: true; addresses: ResolvedAddress[] | undefined }
  | { allowed: false; error: AddressNotAllowedError };

/**
 * The registration check: the host as written, then every address it resolves to (all of them: a
 * name with one public and one private address is refused). A name that does not resolve now is
 * allowed, as is one whose lookup takes longer than `timeoutMs`: DNS may not be set up yet, and
 * the delivery checks again, on the addresses it connects to.
 */
export async function checkHost(host: string, policy: HostPolicy, timeoutMs = 3_000): Promise<HostCheck> {
  if (policy.allowPrivateHosts) return { allowed: true, addresses: undefined };
  const literal = classifyLiteralHost(host);
  if (literal) return { allowed: false, error: new AddressNotAllowedError(host, literal, false) };
  if (literal === null) return { allowed: true, addresses: [{ address: host, family: isIP(host) }] };
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)));
  try {
    const addresses = await Promise.race([(policy.resolveAll ?? systemResolveAll)(host).catch(() => undefined), timedOut]);
    if (addresses === undefined) return { allowed: true, addresses: undefined };
    const refused = firstRefused(addresses);
    return refused ? { allowed: false, error: new AddressNotAllowedError(host, refused, true) } : { allowed: true, addresses };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A `lookup` for net/tls connect (http.request's `lookup` option) that resolves like the system
 * one and fails with AddressNotAllowedError when any address is refused, so the socket never
 * connects to it. Node does not call `lookup` for an IP literal: check those with
 * classifyLiteralHost first.
 */
export function guardedLookup(policy: HostPolicy): LookupFunction {
  const resolveAll = policy.resolveAll ?? systemResolveAll;
  return (hostname, options, callback) => {
    const named = policy.allowPrivateHosts ? null : classifyLiteralHost(hostname.replace(/\.$/, '').toLowerCase());
    if (named) {
      process.nextTick(() => callback(new AddressNotAllowedError(hostname, named, false), '', 0));
      return;
    }
    resolveAll(hostname).then(
      (all) => {
        const refused = policy.allowPrivateHosts ? null : firstRefused(all);
        if (refused) {
          callback(new AddressNotAllowedError(hostname, refused, true), '', 0);
          return;
        }
        const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family;
        const addresses = family === 4 || family === 6 ? all.filter((a) => a.family === family) : all;
        const first = addresses[0];
        if (!first) {
          callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname }), '', 0);
          return;
        }
        // With autoSelectFamily (the default) net asks for all of them and tries each in turn.
        if (options.all) callback(null, addresses);
        else callback(null, first.address, first.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, '', 0),
    );
  };
}
