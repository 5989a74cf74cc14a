import { fileURLToPath } from 'node:url';
import type { DataConverter } from '@temporalio/common';
import { bundleWorkflowCode, NativeConnection, Worker, type BundleOptions, type WorkerOptions } from '@temporalio/worker';
import type { Activities } from '../activities/index.js';
import { DEFAULT_MAX_CONCURRENT_DELIVERIES, webhookTaskQueue } from '../domain/index.js';
import { FAILURE_CONVERTER_PATH } from '../platform/payload-codec.js';

/** workflows/index.ts is the only workflowsPath: everything the worker runs is exported there. */
export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

/**
 * Bundles the payment workflows. The failure converter goes into the bundle (a worker given a
 * bundle ignores its data converter's path): failures raised in workflow code are converted inside
 * the workflow sandbox, so without it their messages would reach Temporal unencrypted.
 */
export function bundlePaymentWorkflows(options: Omit<BundleOptions, 'workflowsPath' | 'failureConverterPath'> = {}): ReturnType<typeof bundleWorkflowCode> {
  return bundleWorkflowCode({ ...options, workflowsPath: WORKFLOWS_PATH, failureConverterPath: FAILURE_CONVERTER_PATH });
}

export interface PaymentWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  activities: Activities;
  /** Encrypts every payload the worker writes (platform/payload-codec.ts); there is no plain-text worker. */
  dataConverter: DataConverter;
  /** Pre-bundled workflow code from bundlePaymentWorkflows (tests bundle once per file); bundled here otherwise. */
  workflowBundle?: WorkerOptions['workflowBundle'];
}

export function createPaymentWorker({ connection, namespace, taskQueue, activities, dataConverter, workflowBundle }: PaymentWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection,
    namespace,
    taskQueue,
    activities,
    dataConverter,
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
  /** The payment worker's data converter: deliveries' arguments are encrypted like every payload. */
  dataConverter: DataConverter;
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
export function createWebhookWorker({ connection, namespace, taskQueue, activities, dataConverter, workflowBundle, maxConcurrentDeliveries }: WebhookWorkerOptions): Promise<Worker> {
  const slots = maxConcurrentDeliveries ?? DEFAULT_MAX_CONCURRENT_DELIVERIES;
  return Worker.create({
    connection,
    namespace,
    taskQueue: webhookTaskQueue(taskQueue),
    activities: { deliverWebhook: activities.deliverWebhook },
    dataConverter,
    ...(workflowBundle ? { workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
    maxConcurrentActivityTaskExecutions: slots,
    // A delivery workflow's tasks are short; slots beyond the activities' would only queue.
    maxConcurrentWorkflowTaskExecutions: Math.min(slots, 50),
    shutdownGraceTime: '10 seconds',
  });
}
