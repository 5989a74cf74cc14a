import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { Activities } from '../activities/index.js';
import { DEFAULT_MAX_CONCURRENT_DELIVERIES, webhookTaskQueue } from '../domain/index.js';

/** workflows/index.ts is the only workflowsPath: everything the worker runs is exported there. */
export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface PaymentWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  activities: Activities;
  /** Pre-bundled workflow code (tests bundle once per file); bundled from WORKFLOWS_PATH otherwise. */
  workflowBundle?: WorkerOptions['workflowBundle'];
}

export function createPaymentWorker({ connection, namespace, taskQueue, activities, workflowBundle }: PaymentWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection,
    namespace,
    taskQueue,
    activities,
    ...(workflowBundle ? { workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
    // Checkouts spend most of their time waiting on the card network, so many fit in flight.
    maxConcurrentActivityTaskExecutions: 200,
    maxConcurrentWorkflowTaskExecutions: 100,
    // Every new checkout's first workflow task (the buyer waits on it) comes from the normal queue,
    // which by default gets 2 of 10 pollers (the rest poll this worker's sticky queue). In a flash
    // sale that queue is where the backlog is: poll it as much as the sticky one.
    maxConcurrentWorkflowTaskPolls: 20,
    nonStickyToStickyPollRatio: 1,
    // A deploy or Ctrl-C lets in-flight activities finish; anything left is retried elsewhere.
    shutdownGraceTime: '10 seconds',
  });
}

export interface WebhookWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  /** The payments task queue; this worker polls its webhook queue (domain webhookTaskQueue). */
  taskQueue: string;
  activities: Pick<Activities, 'deliverWebhook'>;
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Deliveries in flight at once (WEBHOOK_MAX_CONCURRENT_DELIVERIES). */
  maxConcurrentDeliveries?: number;
}

/**
 * The worker of webhook deliveries, next to the payment worker in every worker process. Its task
 * queue, slots and pollers are its own: however many endpoints a merchant has and however long
 * they take to answer (10 s each at most), they fill this worker's slots and queue behind them,
 * and no payment step ever waits for a slot a delivery holds.
 */
export function createWebhookWorker({ connection, namespace, taskQueue, activities, workflowBundle, maxConcurrentDeliveries }: WebhookWorkerOptions): Promise<Worker> {
  const slots = maxConcurrentDeliveries ?? DEFAULT_MAX_CONCURRENT_DELIVERIES;
  return Worker.create({
    connection,
    namespace,
    taskQueue: webhookTaskQueue(taskQueue),
    activities: { deliverWebhook: activities.deliverWebhook },
    ...(workflowBundle ? { workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
    maxConcurrentActivityTaskExecutions: slots,
    // A delivery workflow's tasks are short; slots beyond the activities' would only queue.
    maxConcurrentWorkflowTaskExecutions: Math.min(slots, 50),
    shutdownGraceTime: '10 seconds',
  });
}
