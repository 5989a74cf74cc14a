// Delivers one event to one endpoint, at least once: the activity is retried with exponential
// backoff (x2, capped) until the endpoint answers 2xx or 3 days have passed, as Stripe does. The
// workflow id (domain webhookDeliveryId) makes the start by a retried activity a no-op.
import { ActivityFailure, log, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { DEFAULT_WEBHOOK_RETRY, webhookDeliveryInputProblem, type WebhookDeliveryInput, type WebhookDeliveryOutcome } from '../domain/index.js';
import { refuseInput } from './failures.js';

export async function webhookDeliveryWorkflow(input: WebhookDeliveryInput): Promise<WebhookDeliveryOutcome> {
  // Retry intervals the SDK refuses (zero, a maximum below the first) would fail the workflow task
  // on every retry: such an input fails the run instead.
  refuseInput(webhookDeliveryInputProblem(input));
  const retry = input.retry ?? DEFAULT_WEBHOOK_RETRY;
  const { deliverWebhook } = proxyActivities<Activities>({
    // The request's own limit is 10 s; the rest is the database writes around it.
    startToCloseTimeout: '30 seconds',
    scheduleToCloseTimeout: '3 days',
    retry: { initialInterval: retry.initialIntervalMs, backoffCoefficient: 2, maximumInterval: retry.maximumIntervalMs },
  });
  try {
    return await deliverWebhook(input);
  } catch (err) {
    // Only the 3 days running out ends the retries; the attempts table says what each one got.
    if (!(err instanceof ActivityFailure)) throw err;
    const reason = err.cause?.message ?? err.message;
    log.warn('webhook delivery gave up', { eventId: input.eventId, endpointId: input.endpointId, reason });
    return { status: 'gave_up', reason };
  }
}
