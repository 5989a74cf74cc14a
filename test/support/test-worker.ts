// A payment worker for one workflow test: the file's test environment, its own task queue, the
// real activities against the test database, the outside systems the test chose (fakes, usually)
// and any activity the test replaces to inject a failure.
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { expect } from 'vitest';
import type { Worker } from '@temporalio/worker';
import { createActivities, type Activities } from '../../activities/index.js';
import { createPrisma, type PrismaClient } from '../../platform/db.js';
import type { BankClient } from '../../platform/bank-client.js';
import type { CardNetworkClient } from '../../platform/card-network-client.js';
import { bundlePaymentWorkflows, createPaymentWorker } from '../../workers/payment-worker.js';
import { FakeBank } from './fake-bank.js';
import { testDataConverter } from './payload-keys.js';
import { createTimeSkippingEnv } from './time-skipping.js';

export interface TestWorker {
  env: TestWorkflowEnvironment;
  prisma: PrismaClient;
  workflowBundle: Awaited<ReturnType<typeof bundlePaymentWorkflows>>;
  taskQueue: string;
  cardNetwork: CardNetworkClient;
  /** A fake bank of its own when not given. */
  bank?: BankClient;
  override?: Partial<Activities>;
}

export function createTestWorker(w: TestWorker): Promise<Worker> {
  return createPaymentWorker({
    connection: w.env.nativeConnection,
    namespace: w.env.namespace ?? 'default',
    taskQueue: w.taskQueue,
    activities: { ...createActivities({ prisma: w.prisma, cardNetwork: w.cardNetwork, bank: w.bank ?? new FakeBank() }), ...w.override },
    workflowBundle: w.workflowBundle,
    dataConverter: testDataConverter(),
  });
}

/**
 * What a time-skipping workflow file opens in its beforeAll: a test server of its own, the bundled
 * workflows and a database client. Close with `prisma.$disconnect()` and `env.teardown()`.
 */
export async function openTimeSkipping(): Promise<Pick<TestWorker, 'env' | 'prisma' | 'workflowBundle'>> {
  const [env, workflowBundle] = await Promise.all([createTimeSkippingEnv(), bundlePaymentWorkflows()]);
  return { env, workflowBundle, prisma: createPrisma(process.env.DATABASE_URL!) };
}

/** The refusal of an update (its validator's or its handler's): its failure type, and the code and status the API answers with. */
export async function updateRefusal(promise: Promise<unknown>): Promise<{ type: string | undefined; code?: string; status?: string }> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  const cause = (err as WorkflowUpdateFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  const failure = cause as ApplicationFailure;
  return { type: failure.type ?? undefined, ...(failure.details?.[0] as { code?: string; status?: string } | undefined) };
}
