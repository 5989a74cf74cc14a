// The whole application as real processes, for end-to-end tests, the flash-sale benchmark and the
// chaos suite: the card-network and bank simulators, one or more workers, the API and the codec
// server, each spawned
// the way `npm start` spawns them, against a PostgreSQL and a Temporal server that already run
// (test/global-setup.ts's, or scripts/infrastructure.ts's). Each stack has its own task queue and
// ports, so a stack never picks up another stack's (or another test file's) workflows.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { loadConfig } from '../platform/config.js';
import { createLogger } from '../platform/logger.js';
import { getFreePort, nodeEntry, startProcess, waitUntil, type ManagedProcess } from './processes.js';
import { formatPayloadKeys, newPayloadKey } from '../platform/payload-keys.js';
import { newOperatorApiKey } from './dev-secrets.js';
import { writeWorkflowBundle } from './workflow-bundle.js';

export interface StackOptions {
  /** Extra environment for all the processes (e.g. CARD_NETWORK_LATENCY_MS, BANK_LATENCY_MS). */
  env?: Record<string, string>;
  /** Print the processes' output as it comes (also on with STACK_LOGS=1); otherwise only on failure. */
  logs?: boolean;
  /** How long each process may take to become ready (default 90 s: the worker bundles workflows). */
  readyTimeoutMs?: number;
  /** Worker processes polling the stack's task queue (default 1). */
  workers?: number;
  /** Default: DATABASE_URL and TEMPORAL_ADDRESS of this process (set by test/global-setup.ts). */
  databaseUrl?: string;
  temporalAddress?: string;
}

export interface Stack {
  apiUrl: string;
  cardNetworkUrl: string;
  bankUrl: string;
  /** The codec server (`Authorization: Bearer <env.OPERATOR_API_KEY>`). */
  codecUrl: string;
  /** The environment the processes run with (DATABASE_URL, TEMPORAL_ADDRESS, TEMPORAL_TASK_QUEUE, ...). */
  env: Record<string, string>;
  /** How many worker processes the stack has; they are numbered from 0. */
  workerCount: number;
  /**
   * SIGKILL a worker (all of them when `index` is undefined), like a crash: no graceful shutdown,
   * in-flight activities are abandoned.
   */
  killWorker(index?: number): Promise<void>;
  /** Starts a killed worker (all of them when undefined) again; resolves once it polls the task queue. */
  startWorker(index?: number): Promise<void>;
  /** SIGKILL the API, like a crash: requests in flight get no answer, transactions in flight roll back. */
  killApi(): Promise<void>;
  /** Starts a killed API again; resolves once it answers /health. */
  startApi(): Promise<void>;
  /** Process ids of the services, for profiling (`worker-0`, `worker-1`, `api`, `card-network`, `bank`). */
  pids(): Record<string, number | undefined>;
  stop(): Promise<void>;
}

const log = createLogger('test-stack', 'warn');

/**
 * Watches `proc` while we wait for it: when it dies unasked, `reason()` says why, with what it
 * printed last, so a readiness wait fails at once with the cause instead of timing out.
 */
function watchForDeath(proc: ManagedProcess): { reason: () => string | undefined; dispose: () => void } {
  let notice: string | undefined;
  const dispose = proc.onExit((info, expected) => {
    if (!expected) notice = `${proc.name} exited (code ${info.code}, signal ${info.signal}). Last output:\n${proc.recentOutput(30)}`;
  });
  return { reason: () => notice, dispose };
}

/** Polls until `proc` is ready, failing early if it dies. */
async function waitForReady(proc: ManagedProcess, what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const death = watchForDeath(proc);
  try {
    await waitUntil(what, probe, { timeoutMs, intervalMs: 250, abortIf: death.reason });
  } finally {
    death.dispose();
  }
}

async function answers200(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await res.body?.cancel();
  return res.status === 200;
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const databaseUrl = options.databaseUrl ?? process.env.DATABASE_URL;
  const temporalAddress = options.temporalAddress ?? process.env.TEMPORAL_ADDRESS;
  if (!databaseUrl || !temporalAddress) {
    throw new Error('DATABASE_URL and TEMPORAL_ADDRESS must be set: run the tests with vitest (test/global-setup.ts)');
  }
  const workerCount = options.workers ?? 1;
  if (!Number.isInteger(workerCount) || workerCount < 1) throw new Error(`workers must be a positive integer, not ${workerCount}`);
  const config = loadConfig();
  const readyTimeoutMs = options.readyTimeoutMs ?? 90_000;
  const showLogs = options.logs ?? process.env.STACK_LOGS === '1';
  const [apiPort, cardNetworkPort, bankPort, codecPort] = await Promise.all([getFreePort(), getFreePort(), getFreePort(), getFreePort()]);
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const cardNetworkUrl = `http://127.0.0.1:${cardNetworkPort}`;
  const bankUrl = `http://127.0.0.1:${bankPort}`;
  const codecUrl = `http://127.0.0.1:${codecPort}`;
  const namespace = process.env.TEMPORAL_NAMESPACE ?? config.temporal.namespace;
  const taskQueue = `e2e-${randomUUID().slice(0, 8)}`;

  const env: Record<string, string> = {
    DATABASE_URL: databaseUrl,
    TEMPORAL_ADDRESS: temporalAddress,
    TEMPORAL_NAMESPACE: namespace,
    TEMPORAL_TASK_QUEUE: taskQueue,
    API_HOST: '127.0.0.1',
    API_PORT: String(apiPort),
    CARD_NETWORK_HOST: '127.0.0.1',
    CARD_NETWORK_PORT: String(cardNetworkPort),
    CARD_NETWORK_URL: cardNetworkUrl,
    BANK_HOST: '127.0.0.1',
    BANK_PORT: String(bankPort),
    BANK_URL: bankUrl,
    CODEC_HOST: '127.0.0.1',
    CODEC_PORT: String(codecPort),
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    // Each stack its own: tests read it from `env` when they act as the operator.
    OPERATOR_API_KEY: newOperatorApiKey(),
    // The test run's key (test/global-setup.ts) when there is one, so the tests' own clients read
    // what the stack writes; otherwise (benchmark, chaos) one of the stack's own, in `env`.
    PAYLOAD_ENCRYPTION_KEYS: process.env.PAYLOAD_ENCRYPTION_KEYS || formatPayloadKeys([newPayloadKey('stack')]),
    ...options.env,
  };
  const processEnv = { ...process.env, ...env };

  const spawnService = (name: string, entry: string): ManagedProcess => {
    const { command, args } = nodeEntry(entry, config.rootDir);
    return startProcess({
      name,
      command,
      args,
      env: processEnv,
      cwd: config.rootDir,
      // The test decides when a process comes back (killWorker / startWorker): no supervisor.
      restartDelayMs: undefined,
      onLine: showLogs ? undefined : () => undefined,
      log,
    });
  };

  const connection = await Connection.connect({ address: temporalAddress });
  const processes: ManagedProcess[] = [];
  const workers: ManagedProcess[] = [];
  let api: ManagedProcess | undefined;

  /** Resolves once the worker spawned last has an open workflow-task poll. */
  const waitForWorker = async (proc: ManagedProcess): Promise<void> => {
    const since = proc.spawnedAt;
    await waitForReady(
      proc,
      `worker on task queue ${taskQueue}`,
      async () => {
        const { pollers } = await connection.workflowService.describeTaskQueue({
          namespace,
          taskQueue: { name: taskQueue },
          taskQueueType: 1, // TASK_QUEUE_TYPE_WORKFLOW
        });
        // A killed worker's pollers stay listed for minutes; only a poll begun since this spawn, by
        // this process (the SDK's default identity is `<pid>@<host>`), counts.
        const identity = `${proc.pid}@`;
        return pollers.some((p) => {
          if (!p.identity?.startsWith(identity)) return false;
          const at = p.lastAccessTime;
          return at != null && Number(at.seconds ?? 0) * 1000 + Math.floor((at.nanos ?? 0) / 1e6) >= since;
        });
      },
      readyTimeoutMs,
    );
  };

  const bundleFile = path.join(os.tmpdir(), `payment-orchestrator-workflows-${taskQueue}.js`);
  const stop = async () => {
    await Promise.all(processes.map((p) => p.stop()));
    await connection.close();
    await fs.rm(bundleFile, { force: true });
  };

  try {
    const cardNetwork = spawnService('card-network', 'simulators/card-network/main.ts');
    const bank = spawnService('bank', 'simulators/bank/main.ts');
    processes.push(cardNetwork, bank);
    // Bundled once here while the simulators start: each worker (and each restart of one after
    // killWorker) then starts polling in a few seconds instead of bundling for itself.
    const [workflowBundle] = await Promise.all([
      writeWorkflowBundle(bundleFile),
      waitForReady(cardNetwork, `card-network simulator at ${cardNetworkUrl}`, () => answers200(`${cardNetworkUrl}/health`), readyTimeoutMs),
      waitForReady(bank, `bank simulator at ${bankUrl}`, () => answers200(`${bankUrl}/health`), readyTimeoutMs),
    ]);
    processEnv.WORKFLOW_BUNDLE_PATH = workflowBundle;
    for (let i = 0; i < workerCount; i++) workers.push(spawnService(workerCount === 1 ? 'worker' : `worker-${i}`, 'workers/main.ts'));
    api = spawnService('api', 'api/main.ts');
    const codec = spawnService('codec', 'codec-server/main.ts');
    processes.push(...workers, api, codec);
    await Promise.all([
      waitForReady(api, `api at ${apiUrl}`, () => answers200(`${apiUrl}/health`), readyTimeoutMs),
      waitForReady(codec, `codec server at ${codecUrl}`, () => answers200(`${codecUrl}/health`), readyTimeoutMs),
      ...workers.map(waitForWorker),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }

  const pick = (index: number | undefined): ManagedProcess[] => {
    if (index === undefined) return workers;
    const w = workers[index];
    if (!w) throw new Error(`no worker ${index}: the stack has ${workerCount}`);
    return [w];
  };

  return {
    apiUrl,
    cardNetworkUrl,
    bankUrl,
    codecUrl,
    env,
    workerCount,
    killWorker: async (index) => {
      await Promise.all(pick(index).map((w) => w.kill()));
    },
    startWorker: async (index) => {
      await Promise.all(
        pick(index).map(async (w) => {
          w.start();
          await waitForWorker(w);
        }),
      );
    },
    killApi: async () => {
      await api?.kill();
    },
    startApi: async () => {
      if (!api) throw new Error('the stack has no API');
      api.start();
      await waitForReady(api, `api at ${apiUrl}`, () => answers200(`${apiUrl}/health`), readyTimeoutMs);
    },
    pids: () => Object.fromEntries(processes.map((p) => [p.name, p.pid])),
    stop,
  };
}
