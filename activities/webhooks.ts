// Webhook delivery: one signed POST of an event to one endpoint per call, every attempt recorded.
// A non-2xx answer, a timeout or a refused connection throws a retryable failure: the workflow's
// retry policy (workflows/webhook-delivery.ts) decides when to try again.
//
// The endpoint's URL is the merchant's choice, so the request is made with the guards of
// platform/network-policy.ts: a host that is, or resolves to, a loopback, private, link-local,
// metadata... address is refused before any socket to it is opened (the lookup inside the connect
// refuses it, so a name re-pointed since registration, DNS rebinding, gets nowhere), and that
// failure is not retried. Redirects are not followed (a 3xx is a failed attempt), and nothing of
// the response but its status is read or recorded: an attempt holds a status, an error class and a
// duration, never what the endpoint sent back or the address it had.
import { createHmac } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { PrismaClient } from '../platform/db.js';
import { AddressNotAllowedError, classifyLiteralHost, guardedLookup, hostOf, type HostPolicy, type ResolveAll } from '../platform/network-policy.js';
import { SIGNATURE_HEADER, type WebhookDeliveryInput, type WebhookDeliveryOutcome } from '../domain/index.js';

/** A merchant's server gets this long to answer; Stripe allows about as much. */
export const WEBHOOK_REQUEST_TIMEOUT_MS = 10_000;

/** The failure type of an attempt that did not get a 2xx; retryable. */
export const WEBHOOK_DELIVERY_FAILED = 'WebhookDeliveryFailed';

/** The failure type of an attempt refused before connecting (address or URL not allowed); not retried. */
export const WEBHOOK_DELIVERY_REFUSED = 'WebhookDeliveryRefused';

/**
 * What went wrong with an attempt, as recorded and shown by `GET /v1/events/:id`: a class, never
 * the error's text (which can carry addresses, certificate details or the endpoint's words).
 */
export type DeliveryErrorClass =
  | 'address_not_allowed'
  | 'url_not_allowed'
  | 'redirect_not_followed'
  | 'timeout'
  | 'dns_error'
  | 'connection_refused'
  | 'connection_reset'
  | 'unreachable'
  | 'tls_error'
  | 'invalid_response'
  | 'network_error';

/** `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: Stripe's signature scheme. */
export function signatureHeader(secret: string, body: string, unixSeconds: number): string {
  const v1 = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${v1}`;
}

export function deliveryErrorClass(err: unknown): DeliveryErrorClass {
  if (err instanceof AddressNotAllowedError) return 'address_not_allowed';
  const { name, code } = (err ?? {}) as { name?: unknown; code?: unknown };
  if (name === 'AbortError' || name === 'TimeoutError' || code === 'ABORT_ERR' || code === 'ETIMEDOUT') return 'timeout';
  if (typeof code !== 'string') return 'network_error';
  if (code === 'ERR_ADDRESS_NOT_ALLOWED') return 'address_not_allowed';
  if (['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NODATA', 'ENODATA', 'ESERVFAIL'].includes(code)) return 'dns_error';
  if (code === 'ECONNREFUSED') return 'connection_refused';
  if (['ECONNRESET', 'EPIPE', 'ECONNABORTED'].includes(code)) return 'connection_reset';
  if (['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN'].includes(code)) return 'unreachable';
  if (/^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH|ERR_OSSL)/.test(code)) return 'tls_error';
  if (code.startsWith('HPE_')) return 'invalid_response';
  return 'network_error';
}

/**
 * One POST; resolves with the status of the answer, whose body is never read (the socket is
 * dropped once the status line and headers are in). Rejects with the connection's error, an
 * AddressNotAllowedError before any connection to a refused address, or an AbortError past
 * `timeoutMs`.
 */
export function postOnce(url: URL, headers: Record<string, string>, body: string, policy: HostPolicy, timeoutMs: number): Promise<number> {
  // http.request does not call `lookup` for an IP literal: those are judged here.
  const literal = policy.allowPrivateHosts ? null : classifyLiteralHost(hostOf(url));
  if (literal) return Promise.reject(new AddressNotAllowedError(hostOf(url), literal, false));
  return new Promise<number>((resolve, reject) => {
    const request = url.protocol === 'https:' ? https.request : http.request;
    const req = request(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        lookup: guardedLookup(policy),
        // A connection of its own: none is ever reused for another endpoint, nor pooled.
        agent: false,
        signal: AbortSignal.timeout(timeoutMs),
      },
      (res) => {
        resolve(res.statusCode ?? 0);
        res.destroy();
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export interface WebhookActivityOptions {
  /** WEBHOOK_ALLOW_PRIVATE_HOSTS; default false. */
  allowPrivateHosts?: boolean;
  /** Injectable DNS (tests); default getaddrinfo. */
  resolveAll?: ResolveAll;
  /** Default WEBHOOK_REQUEST_TIMEOUT_MS. */
  requestTimeoutMs?: number;
}

export function createWebhookActivities(prisma: PrismaClient, options: WebhookActivityOptions = {}) {
  const policy: HostPolicy = { allowPrivateHosts: options.allowPrivateHosts ?? false, ...(options.resolveAll ? { resolveAll: options.resolveAll } : {}) };
  const timeoutMs = options.requestTimeoutMs ?? WEBHOOK_REQUEST_TIMEOUT_MS;
  return {
    async deliverWebhook({ eventId, endpointId }: WebhookDeliveryInput): Promise<WebhookDeliveryOutcome> {
      const { attempt } = Context.current().info;
      const [event, endpoint] = await Promise.all([
        prisma.event.findUniqueOrThrow({ where: { id: eventId } }),
        prisma.webhookEndpoint.findUnique({ where: { id: endpointId } }),
      ]);
      if (!endpoint || endpoint.merchantId !== event.merchantId) return { status: 'endpoint_gone' };

      const body = JSON.stringify({ id: event.id, type: event.type, created: Math.floor(event.createdAt.getTime() / 1000), data: event.data });
      const started = Date.now();
      let statusCode: number | undefined;
      let error: DeliveryErrorClass | undefined;
      // The API only stores http(s) URLs without credentials; a row written some other way is refused too.
      let url: URL | undefined;
      try {
        url = new URL(endpoint.url);
      } catch {
        url = undefined;
      }
      if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== '') {
        error = 'url_not_allowed';
      } else {
        try {
          statusCode = await postOnce(
            url,
            {
              'content-type': 'application/json',
              'user-agent': 'payment-orchestrator-webhooks/1',
              [SIGNATURE_HEADER]: signatureHeader(endpoint.secret, body, Math.floor(Date.now() / 1000)),
            },
            body,
            policy,
            timeoutMs,
          );
          if (statusCode >= 300 && statusCode < 400) error = 'redirect_not_followed';
        } catch (err) {
          error = deliveryErrorClass(err);
        }
      }
      const durationMs = Date.now() - started;
      await prisma.webhookAttempt.create({
        data: { eventId, endpointId, attempt, statusCode: statusCode ?? null, error: error ?? null, durationMs },
      });
      if (statusCode !== undefined && statusCode >= 200 && statusCode < 300) return { status: 'delivered', attempt, statusCode };
      // A refused address stays refused: retrying would only knock on it again, for 3 days.
      if (error === 'address_not_allowed' || error === 'url_not_allowed') {
        throw ApplicationFailure.create({ type: WEBHOOK_DELIVERY_REFUSED, message: error === 'url_not_allowed' ? `${error}: not an http(s) URL without credentials` : `${error}: the endpoint's host is not public (WEBHOOK_ALLOW_PRIVATE_HOSTS allows it)`, nonRetryable: true });
      }
      throw ApplicationFailure.create({
        type: WEBHOOK_DELIVERY_FAILED,
        message: statusCode !== undefined ? `endpoint answered ${statusCode}${error ? ` (${error})` : ''}` : `endpoint unreachable: ${error}`,
        nonRetryable: false,
      });
    },
  };
}

export type WebhookActivities = ReturnType<typeof createWebhookActivities>;
