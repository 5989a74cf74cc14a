// A merchant's webhook endpoint, written with nothing but Node's http and crypto, as a merchant
// would: it checks the Payment-Signature of every delivery over the raw body (HMAC-SHA256 with the
// endpoint's secret, compared in constant time) and refuses timestamps more than 5 minutes old.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

const TOLERANCE_SECONDS = 5 * 60;

export interface ReceivedDelivery {
  id: string;
  type: string;
  created: number;
  data: Record<string, unknown>;
  /** Whether the signature checked out; deliveries that did not are answered 400. */
  verified: boolean;
  /** The status this receiver answered. */
  answered: number;
}

export interface WebhookReceiver {
  url: string;
  deliveries: ReceivedDelivery[];
  /** Set once the endpoint exists (its secret is only known then). */
  secret: string;
  close(): Promise<void>;
}

/** `t=<unix seconds>,v1=<hex>` checked against the raw body, Stripe's way. */
export function verifySignature(header: string | undefined, rawBody: string, secret: string, nowSeconds = Math.floor(Date.now() / 1000)): boolean {
  if (!header) return false;
  const parts = new Map(header.split(',').map((kv) => kv.split('=', 2) as [string, string]));
  const t = Number(parts.get('t'));
  const v1 = parts.get('v1');
  if (!Number.isInteger(t) || !v1 || !/^[0-9a-f]{64}$/.test(v1)) return false;
  if (Math.abs(nowSeconds - t) > TOLERANCE_SECONDS) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${rawBody}`).digest();
  return timingSafeEqual(expected, Buffer.from(v1, 'hex'));
}

/**
 * `answer(n)` gives the status for the n-th (1-based) correctly signed delivery; default 200.
 */
export async function startWebhookReceiver(answer: (n: number, delivery: ReceivedDelivery) => number = () => 200): Promise<WebhookReceiver> {
  const receiver: WebhookReceiver = { url: '', deliveries: [], secret: '', close: async () => undefined };
  let verifiedCount = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const verified = req.method === 'POST' && verifySignature(req.headers['payment-signature'] as string | undefined, raw, receiver.secret);
      const body = JSON.parse(raw) as Omit<ReceivedDelivery, 'verified' | 'answered'>;
      const delivery: ReceivedDelivery = { id: body.id, type: body.type, created: body.created, data: body.data, verified, answered: 400 };
      if (verified) delivery.answered = answer(++verifiedCount, delivery);
      receiver.deliveries.push(delivery);
      res.writeHead(delivery.answered, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks`;
  receiver.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return receiver;
}

export async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
