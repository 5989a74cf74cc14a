import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { Activities } from '../activities/index.js';

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
