// Temporal's time-skipping test server for one test file: timers of days pass in milliseconds
// while the test awaits a workflow result or `env.sleep()`.
//
// test/global-setup.ts prepares the server once per run (scripts/time-skipping-server.ts) and
// passes its path in TEMPORAL_TEST_SERVER_PATH; each call here starts a fresh server (a JVM,
// ~0.4-1 s) that `env.teardown()` kills. Use it as:
//
//   const env = await createTimeSkippingEnv();
//   const worker = await Worker.create({ connection: env.nativeConnection, namespace: env.namespace ?? 'default', taskQueue, workflowBundle, dataConverter: testDataConverter() });
//   await worker.runUntil(env.client.workflow.execute(myWorkflow, { taskQueue, workflowId, args }));
//   await env.teardown();
import type { SearchAttributeType } from '@temporalio/common';
import type { SearchAttributeKey } from '@temporalio/common/lib/search-attributes.js';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes.js';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { SEARCH_ATTRIBUTES } from '../../domain/search-attributes.js';
import { testDataConverter } from './payload-keys.js';

export interface TimeSkippingEnvOptions {
  /**
   * Custom search attributes to register (default: all of ours, domain/search-attributes.ts). The
   * test server rejects starting or upserting with an attribute it does not know ("search
   * attribute X is not defined"); it knows only CustomKeywordField & co. until told otherwise.
   */
  searchAttributes?: readonly SearchAttributeKey<SearchAttributeType>[];
}

/** Attempts at starting the server: the SDK gives a JVM only ~5 s to answer (not configurable). */
const START_ATTEMPTS = 2;

/** A time-skipping TestWorkflowEnvironment on a server of its own; call `env.teardown()` when done. */
export async function createTimeSkippingEnv(options: TimeSkippingEnvOptions = {}): Promise<TestWorkflowEnvironment> {
  // Set by test/global-setup.ts when it could not prepare the server (no Java, no Maven, ...).
  const setupError = process.env.TEMPORAL_TEST_SERVER_ERROR;
  if (setupError) throw new Error(setupError);
  const serverPath = process.env.TEMPORAL_TEST_SERVER_PATH;
  if (!serverPath) {
    throw new Error(
      'TEMPORAL_TEST_SERVER_PATH is not set: run the tests through vitest (test/global-setup.ts prepares the ' +
          'time-skipping test server), or point it at a time-skipping test server executable ' +
          '(`npx tsx scripts/time-skipping-server.ts` prepares one and prints its path).',
    );
  }
  const env = await startWithRetry(serverPath);
  try {
    await registerSearchAttributes(env, options.searchAttributes ?? SEARCH_ATTRIBUTES);
  } catch (err) {
    await env.teardown();
    throw err;
  }
  return env;
}

async function startWithRetry(serverPath: string): Promise<TestWorkflowEnvironment> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await TestWorkflowEnvironment.createTimeSkipping({
        server: { executable: { type: 'existing-path', path: serverPath } },
        // env.client encrypts like every other client; workers on env.nativeConnection pass their own.
        client: { dataConverter: testDataConverter() },
      });
    } catch (err) {
      // A JVM that lost the race against a busy CPU: the SDK has killed it already; try once more.
      if (attempt >= START_ATTEMPTS || !/did not start within/.test(String(err))) throw err;
      console.warn(`time-skipping test server did not answer in time (attempt ${attempt}); retrying: ${String(err)}`);
    }
  }
}

/**
 * The Java test server implements OperatorService.AddSearchAttributes and RemoveSearchAttributes
 * but not ListSearchAttributes (UNIMPLEMENTED), so scripts/temporal.ts's ensureSearchAttributes
 * cannot be used here. Each env is a new server: ours are never registered yet.
 */
async function registerSearchAttributes(
  env: TestWorkflowEnvironment,
  keys: readonly SearchAttributeKey<SearchAttributeType>[],
): Promise<void> {
  if (keys.length === 0) return;
  const searchAttributes: Record<string, NonNullable<ReturnType<typeof encodeSearchAttributeIndexedValueType>>> = {};
  for (const key of keys) {
    const type = encodeSearchAttributeIndexedValueType(key.type);
    if (type === undefined) throw new Error(`unknown search attribute type ${key.type} for ${key.name}`);
    searchAttributes[key.name] = type;
  }
  await env.connection.operatorService.addSearchAttributes({ namespace: env.namespace ?? 'default', searchAttributes });
}
