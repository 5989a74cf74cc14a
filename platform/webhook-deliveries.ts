// Webhook deliveries, started from the event log (an outbox). Whatever writes an event (a workflow
// step, a retried step, the API's sold-out answer) only writes the row, in the transaction of the
// status change it records. The relay below, one per worker process, claims the rows of its task
// queue that were not dispatched yet and starts one delivery workflow per (event, subscribed
// endpoint), then marks them dispatched, all in one transaction: a relay that dies midway leaves
// them undispatched, and the next claim starts them again, which the delivery ids make harmless.
// So every recorded event reaches every endpoint subscribed when it is dispatched, at least once,
// and no payment step ever waits for a merchant's endpoint: a step only writes a row, and the
// deliveries run on a task queue of their own (domain webhookTaskQueue), in a worker whose slots
// are not the payment steps' (workers/payment-worker.ts createWebhookWorker).
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { Prisma } from '../generated/prisma/client.js';
import { webhookDeliveryId, webhookRedeliveryId, webhookTaskQueue, type WebhookDeliveryInput, type WebhookRetry } from '../domain/index.js';
import type { PrismaClient } from './db.js';
import type { Logger } from './logger.js';

/**
 * Starts one delivery, on the webhook task queue that goes with the payments queue `taskQueue`; a
 * delivery of that id that was started before (running or closed) stays the only one: at least
 * once, and not once per retried dispatch.
 */
export async function startDelivery(temporal: Client, taskQueue: string, input: WebhookDeliveryInput): Promise<string> {
  const workflowId = webhookDeliveryId(input.eventId, input.endpointId);
  try {
    await temporal.workflow.start('webhookDeliveryWorkflow', {
      workflowId,
      taskQueue: webhookTaskQueue(taskQueue),
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
  return workflowId;
}

/**
 * Starts a redelivery asked for through the API, unless one of this event to this endpoint is still
 * running (retries included): false then, and nothing is started. Temporal decides atomically, so
 * two requests at once start one. A closed one leaves the id free for the next.
 */
export async function startRedelivery(temporal: Client, taskQueue: string, input: WebhookDeliveryInput): Promise<boolean> {
  try {
    await temporal.workflow.start('webhookDeliveryWorkflow', {
      workflowId: webhookRedeliveryId(input.eventId, input.endpointId),
      taskQueue: webhookTaskQueue(taskQueue),
      args: [input],
      workflowIdConflictPolicy: 'FAIL',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    });
    return true;
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return false;
    throw err;
  }
}

/** The merchant's endpoints that asked for `type` (or for everything). */
export function subscribedEndpoints(prisma: PrismaClient, merchantId: string, type: string) {
  return prisma.webhookEndpoint.findMany({ where: { merchantId, events: { hasSome: [type, '*'] } }, select: { id: true } });
}

export interface OutboxRelayOptions {
  prisma: PrismaClient;
  temporal: Client;
  /** The relay dispatches the events recorded for this task queue, and runs their deliveries on its webhook queue. */
  taskQueue: string;
  logger: Logger;
  retry?: WebhookRetry;
  /** How long an idle relay waits before it looks again. Default 250 ms. */
  pollIntervalMs?: number;
  /** Events claimed per transaction. Default 200. */
  batchSize?: number;
}

export interface OutboxRelay {
  /** Dispatches one batch; resolves with how many events it claimed. */
  dispatchOnce(): Promise<number>;
  /** Stops the loop after the batch in progress. */
  stop(): Promise<void>;
}

/** Starts the relay's loop; `dispatchOnce` is also usable on its own (tests). */
export function startOutboxRelay(opts: OutboxRelayOptions): OutboxRelay {
  const { prisma, temporal, taskQueue, logger } = opts;
  const pollIntervalMs = opts.pollIntervalMs ?? 250;
  const batchSize = opts.batchSize ?? 200;
  const stopping = new AbortController();

  async function dispatchOnce(): Promise<number> {
    return prisma.$transaction(
      async (tx) => {
        // SKIP LOCKED: several workers' relays share the queue without waiting on each other.
        const events = await tx.$queryRaw<Array<{ id: string; merchant_id: string; type: string }>>`
          SELECT id, merchant_id, type FROM events
          WHERE dispatched_at IS NULL AND delivery_queue = ${taskQueue}
          ORDER BY created_at, id
          LIMIT ${batchSize}
          FOR UPDATE SKIP LOCKED`;
        if (events.length === 0) return 0;
        const endpoints = await tx.webhookEndpoint.findMany({
          where: { merchantId: { in: [...new Set(events.map((e) => e.merchant_id))] }, events: { hasSome: [...new Set(events.map((e) => e.type)), '*'] } },
          select: { id: true, merchantId: true, events: true },
        });
        for (const event of events) {
          for (const endpoint of endpoints) {
            if (endpoint.merchantId !== event.merchant_id || !(endpoint.events.includes(event.type) || endpoint.events.includes('*'))) continue;
            await startDelivery(temporal, taskQueue, { eventId: event.id, endpointId: endpoint.id, ...(opts.retry ? { retry: opts.retry } : {}) });
          }
        }
        await tx.$executeRaw`UPDATE events SET dispatched_at = now() WHERE id IN (${Prisma.join(events.map((e) => e.id))})`;
        return events.length;
      },
      { maxWait: 10_000, timeout: 60_000 },
    );
  }

  const loop = (async () => {
    let failures = 0;
    while (!stopping.signal.aborted) {
      let claimed = 0;
      try {
        claimed = await dispatchOnce();
        failures = 0;
      } catch (err) {
        // The database or Temporal is away: the events stay undispatched and are claimed again.
        failures++;
        logger.warn('webhook outbox relay failed; retrying', { taskQueue, attempt: failures, error: err instanceof Error ? err.message : String(err) });
      }
      if (claimed < batchSize) {
        const pause = failures > 0 ? Math.min(pollIntervalMs * 2 ** failures, 10_000) : pollIntervalMs;
        await sleep(pause, undefined, { signal: stopping.signal }).catch(() => undefined);
      }
    }
  })();

  return {
    dispatchOnce,
    async stop() {
      stopping.abort();
      await loop;
    },
  };
}
