// Events: written by the activity that changes a status, inside its own transaction, so an event
// exists exactly when its change committed. (resource_id, type) is unique and inserts skip
// duplicates, so a retried activity records nothing twice. Nothing here starts a delivery: each
// event names the task queue whose outbox relay delivers it (platform/webhook-deliveries.ts), so
// an event is delivered whichever attempt of whichever step wrote it, and no payment step waits
// for a merchant's endpoint.
import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import type { Prisma } from '../generated/prisma/client.js';
import type { PrismaClient } from '../platform/db.js';
import { eventType, type EventResourceType } from '../domain/index.js';

export type Tx = Parameters<Parameters<PrismaClient['$transaction']>[0]>[0];

export interface EventDraft {
  merchantId: string;
  resourceType: EventResourceType;
  resourceId: string;
  status: string;
  /** The resource's key fields; amounts as decimal strings. */
  data: Prisma.InputJsonObject;
}

export type Emit = (event: EventDraft) => Promise<void>;

export interface EventRecorder {
  /** Runs `body` in one transaction, recording the events it emits there. */
  transaction<T>(body: (tx: Tx, emit: Emit) => Promise<T>): Promise<T>;
}

/**
 * `deliveryQueue`: the task queue whose relay delivers the events; by default the queue of the
 * activity recording them (the worker's own).
 */
export function createEventRecorder(prisma: PrismaClient, deliveryQueue?: string): EventRecorder {
  return {
    transaction(body) {
      const queue = deliveryQueue ?? Context.current().info.taskQueue;
      // Generous waits: a burst queues for pool connections, not for locks (as the ledger's writes).
      return prisma.$transaction(async (tx) =>
        body(tx, async (event) => {
          await tx.event.createMany({
            data: [
              {
                id: `evt_${randomUUID()}`,
                merchantId: event.merchantId,
                type: eventType(event.resourceType, event.status),
                resourceType: event.resourceType,
                resourceId: event.resourceId,
                data: event.data,
                deliveryQueue: queue,
              },
            ],
            skipDuplicates: true,
          });
        }),
      { maxWait: 10_000, timeout: 15_000 },
      );
    },
  };
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
