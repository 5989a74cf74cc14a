// Proof that time-skipping workflow tests work on this machine and stay fast: the Java test server
// (prepared by test/global-setup.ts) skips a 7-day timer in well under a second of wall time, a
// worker on `env.nativeConnection` runs the workflow, and our custom search attributes are
// accepted. TEST_LOG_LEVEL=info prints the timings.
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { PaymentStatus } from '../domain/search-attributes.js';
import { testDataConverter } from './support/payload-keys.js';
import { createTimeSkippingEnv } from './support/time-skipping.js';
import { timerProbe } from './workflows/timer-probe.js';

const DAY = 24 * 60 * 60 * 1000;
const PROBE_WORKFLOWS_PATH = fileURLToPath(new URL('./workflows/timer-probe.ts', import.meta.url));
const verbose = process.env.TEST_LOG_LEVEL === 'info' || process.env.TEST_LOG_LEVEL === 'debug';

let env: TestWorkflowEnvironment;
let workflowBundle: Awaited<ReturnType<typeof bundleWorkflowCode>>;
const timings: Record<string, number> = {};

beforeAll(async () => {
  const started = performance.now();
  const timed = async <T>(name: string, work: Promise<T>): Promise<T> => {
    const value = await work;
    timings[name] = Math.round(performance.now() - started);
    return value;
  };
  // In parallel, as real test files do: the JVM starts while webpack bundles.
  [env, workflowBundle] = await Promise.all([
    timed('envReadyMs', createTimeSkippingEnv()),
    timed('bundleReadyMs', bundleWorkflowCode({ workflowsPath: PROBE_WORKFLOWS_PATH })),
  ]);
});

afterAll(async () => {
  await env?.teardown();
  if (verbose) console.info('time-skipping smoke timings', timings);
});

describe('time-skipping test server', () => {
  it('skips a 7-day timer in well under 10 s of wall time and keeps our search attributes', async () => {
    const taskQueue = `timer-probe-${randomUUID()}`;
    const worker = await Worker.create({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      taskQueue,
      workflowBundle,
      dataConverter: testDataConverter(),
    });
    const serverTimeBefore = await env.currentTimeMs();
    const wallStart = performance.now();

    const { result, status } = await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(timerProbe, {
        workflowId: `timer-probe-${randomUUID()}`,
        taskQueue,
        args: [7 * DAY, 'captured'],
        typedSearchAttributes: [{ key: PaymentStatus, value: 'pending' }],
      });
      const result = await handle.result();
      const description = await handle.describe();
      return { result, status: description.typedSearchAttributes.get(PaymentStatus) };
    });

    const wallMs = performance.now() - wallStart;
    timings.workflowWallMs = Math.round(wallMs);
    expect(wallMs).toBeLessThan(10_000);
    expect(result.wokeAtMs - result.startedAtMs).toBeGreaterThanOrEqual(7 * DAY);
    expect((await env.currentTimeMs()) - serverTimeBefore).toBeGreaterThanOrEqual(7 * DAY);
    expect(status).toBe('captured');
  });
});
