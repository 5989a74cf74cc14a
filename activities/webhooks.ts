// Webhook delivery: one signed POST of an event to one endpoint per call, every attempt recorded.
// A non-2xx answer, a timeout or a refused connection throws a retryable failure: the workflow's
// retry policy (workflows/webhook-delivery.ts) decides when to try again.
import { createHmac } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { PrismaClient } from '../platform/db.js';
import { SIGNATURE_HEADER, type WebhookDeliveryInput, type WebhookDeliveryOutcome } from '../domain/index.js';

/** A merchant's server gets this long to answer; Stripe allows about as much. */
export const WEBHOOK_REQUEST_TIMEOUT_MS = 10_000;

/** The failure type of an attempt that did not get a 2xx; retryable. */
export const WEBHOOK_DELIVERY_FAILED = 'WebhookDeliveryFailed';

/** `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: Stripe's signature scheme. */
export function signatureHeader(secret: string, body: string, unixSeconds: number): string {
  const v1 = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${v1}`;
}

export function createWebhookActivities(prisma: PrismaClient) {
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
      let error: string | undefined;
      try {
        const res = await fetch(endpoint.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'payment-orchestrator-webhooks/1',
            [SIGNATURE_HEADER]: signatureHeader(endpoint.secret, body, Math.floor(Date.now() / 1000)),
          },
          body,
          redirect: 'manual',
          signal: AbortSignal.timeout(WEBHOOK_REQUEST_TIMEOUT_MS),
        });
        statusCode = res.status;
        await res.body?.cancel();
      } catch (err) {
        error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      }
      const durationMs = Date.now() - started;
      await prisma.webhookAttempt.create({
        data: { eventId, endpointId, attempt, statusCode: statusCode ?? null, error: error ?? null, durationMs },
      });
      if (statusCode !== undefined && statusCode >= 200 && statusCode < 300) return { status: 'delivered', attempt, statusCode };
      throw ApplicationFailure.create({
        type: WEBHOOK_DELIVERY_FAILED,
        message: statusCode !== undefined ? `endpoint answered ${statusCode}` : `endpoint unreachable: ${error}`,
        nonRetryable: false,
      });
    },
  };
}

export type WebhookActivities = ReturnType<typeof createWebhookActivities>;
