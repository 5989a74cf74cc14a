// Events: written by the activity that changes a status, inside its own transaction, so an event
// exists exactly when its change committed. (resource_id, type) is unique and inserts skip
// duplicates, so a retried activity records nothing twice. After the commit the activity starts
// one delivery workflow per subscribed endpoint; the workflow id is derived from the event and the
// endpoint, so the retry of an activity that had already started them starts nothing new.
import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import type { Prisma } from '../generated/prisma/client.js';
import type { PrismaClient } from '../platform/db.js';
import { eventType, webhookDeliveryId, type EventResourceType, type WebhookDeliveryInput, type WebhookRetry } from '../domain/index.js';

export type Tx = Parameters<Parameters<PrismaClient['$transaction']>[0]>[0];

export interface EventDraft {
  merchantId: string;
  resourceType: EventResourceType;
  resourceId: string;
  status: string;
  /** The resource's key fields; amounts as decimal strings. */
  data: Prisma.InputJsonObject;
}

/** What the activities need to start deliveries; without it events are recorded but not delivered. */
export interface WebhookDispatch {
  temporal: Client;
  /** Absent: the task queue of the activity that recorded the event (the worker's own). */
  taskQueue?: string;
  retry?: WebhookRetry;
}

export type Emit = (event: EventDraft) => Promise<void>;

export interface EventRecorder {
  /**
   * Runs `body` in one transaction, recording the events it emits there; once it has committed,
   * starts the deliveries of those events.
   */
  transaction<T>(body: (tx: Tx, emit: Emit) => Promise<T>): Promise<T>;
}

export function createEventRecorder(prisma: PrismaClient, dispatch?: WebhookDispatch): EventRecorder {
  return {
    async transaction(body) {
      const emitted: Array<{ merchantId: string; resourceId: string; type: string }> = [];
      const result = await prisma.$transaction(async (tx) =>
        body(tx, async (event) => {
          const type = eventType(event.resourceType, event.status);
          await tx.event.createMany({
            data: [
              {
                id: `evt_${randomUUID()}`,
                merchantId: event.merchantId,
                type,
                resourceType: event.resourceType,
                resourceId: event.resourceId,
                data: event.data,
              },
            ],
            skipDuplicates: true,
          });
          emitted.push({ merchantId: event.merchantId, resourceId: event.resourceId, type });
        }),
      );
      // A retry re-sends the events it emitted, whether this attempt or an earlier one inserted them.
      if (dispatch && emitted.length > 0) await startDeliveries(prisma, dispatch, emitted);
      return result;
    },
  };
}

async function startDeliveries(prisma: PrismaClient, dispatch: WebhookDispatch, keys: Array<{ merchantId: string; resourceId: string; type: string }>): Promise<void> {
  // Endpoints first: a merchant without a subscriber for these types (the common case in a flash
  // sale) costs one query, not two.
  const merchantIds = [...new Set(keys.map((k) => k.merchantId))];
  const types = [...new Set(keys.map((k) => k.type))];
  const endpoints = await prisma.webhookEndpoint.findMany({
    where: { merchantId: { in: merchantIds }, events: { hasSome: [...types, '*'] } },
    select: { id: true, merchantId: true, events: true },
  });
  if (endpoints.length === 0) return;
  const events = await prisma.event.findMany({ where: { OR: keys.map((k) => ({ resourceId: k.resourceId, type: k.type })) } });
  const taskQueue = dispatch.taskQueue ?? Context.current().info.taskQueue;
  for (const event of events) {
    for (const endpoint of endpoints) {
      if (endpoint.merchantId !== event.merchantId || !(endpoint.events.includes(event.type) || endpoint.events.includes('*'))) continue;
      await startDelivery(dispatch.temporal, taskQueue, { eventId: event.id, endpointId: endpoint.id, ...(dispatch.retry ? { retry: dispatch.retry } : {}) });
    }
  }
}

/** The merchant's endpoints that asked for `type` (or for everything). */
export function subscribedEndpoints(prisma: PrismaClient, merchantId: string, type: string) {
  return prisma.webhookEndpoint.findMany({ where: { merchantId, events: { hasSome: [type, '*'] } }, select: { id: true } });
}

/**
 * Starts one delivery; a delivery of that id that was started before (running or closed) stays the
 * only one: at least once, and not once per retried activity.
 */
export async function startDelivery(temporal: Client, taskQueue: string, input: WebhookDeliveryInput, suffix?: string): Promise<string> {
  const workflowId = webhookDeliveryId(input.eventId, input.endpointId, suffix);
  try {
    await temporal.workflow.start('webhookDeliveryWorkflow', {
      workflowId,
      taskQueue,
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
  return workflowId;
}

/** The JSON snapshot of an amount-bearing row: bigints as decimal strings. */
export function snapshotOf(fields: Record<string, string | number | boolean | bigint | Date | null | undefined>): Prisma.InputJsonObject {
  const out: Record<string, string | number | boolean | null> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    out[key] = typeof value === 'bigint' ? value.toString() : value instanceof Date ? value.toISOString() : value;
  }
  return out;
}
