// The whole application as real processes, for end-to-end tests: the card-network and bank
// simulators, the worker and the API, each spawned the way `npm start` spawns them, against the
// PostgreSQL and Temporal server of test/global-setup.ts. Each stack has its own task queue and
// ports, so a stack never picks up another stack's (or another test file's) workflows.
import { randomUUID } from 'node:crypto';
import { Connection } from '@temporalio/client';
import { loadConfig } from '../../platform/config.js';
import { createLogger } from '../../platform/logger.js';
import { getFreePort, nodeEntry, startProcess, waitUntil, type ManagedProcess } from '../../scripts/processes.js';

export interface StackOptions {
  /** Extra environment for all the processes (e.g. CARD_NETWORK_LATENCY_MS, BANK_LATENCY_MS). */
  env?: Record<string, string>;
  /** Print the processes' output as it comes (also on with STACK_LOGS=1); otherwise only on failure. */
  logs?: boolean;
  /** How long each process may take to become ready (default 90 s: the worker bundles workflows). */
  readyTimeoutMs?: number;
}

export interface Stack {
  apiUrl: string;
  cardNetworkUrl: string;
  bankUrl: string;
  /** The environment the processes run with (DATABASE_URL, TEMPORAL_ADDRESS, TEMPORAL_TASK_QUEUE, ...). */
  env: Record<string, string>;
  /** SIGKILL the worker, like a crash: no graceful shutdown, in-flight activities are abandoned. */
  killWorker(): Promise<void>;
  /** Starts the worker again and resolves once it polls the task queue. */
  startWorker(): Promise<void>;
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
  const databaseUrl = process.env.DATABASE_URL;
  const temporalAddress = process.env.TEMPORAL_ADDRESS;
  if (!databaseUrl || !temporalAddress) {
    throw new Error('DATABASE_URL and TEMPORAL_ADDRESS must be set: run the tests with vitest (test/global-setup.ts)');
  }
  const config = loadConfig();
  const readyTimeoutMs = options.readyTimeoutMs ?? 90_000;
  const showLogs = options.logs ?? process.env.STACK_LOGS === '1';
  const [apiPort, cardNetworkPort, bankPort] = await Promise.all([getFreePort(), getFreePort(), getFreePort()]);
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const cardNetworkUrl = `http://127.0.0.1:${cardNetworkPort}`;
  const bankUrl = `http://127.0.0.1:${bankPort}`;
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
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
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
  let worker: ManagedProcess | undefined;

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
        // A killed worker's pollers stay listed for minutes; only a poll begun since this spawn counts.
        return pollers.some((p) => {
          const at = p.lastAccessTime;
          return at != null && Number(at.seconds ?? 0) * 1000 + Math.floor((at.nanos ?? 0) / 1e6) >= since;
        });
      },
      readyTimeoutMs,
    );
  };

  const stop = async () => {
    await Promise.all(processes.map((p) => p.stop()));
    await connection.close();
  };

  try {
    const cardNetwork = spawnService('card-network', 'simulators/card-network/main.ts');
    const bank = spawnService('bank', 'simulators/bank/main.ts');
    processes.push(cardNetwork, bank);
    await Promise.all([
      waitForReady(cardNetwork, `card-network simulator at ${cardNetworkUrl}`, () => answers200(`${cardNetworkUrl}/health`), readyTimeoutMs),
      waitForReady(bank, `bank simulator at ${bankUrl}`, () => answers200(`${bankUrl}/health`), readyTimeoutMs),
    ]);
    // The worker and the API start together: the worker's workflow bundling is the slow part.
    worker = spawnService('worker', 'workers/main.ts');
    const api = spawnService('api', 'api/main.ts');
    processes.push(worker, api);
    await Promise.all([
      waitForReady(api, `api at ${apiUrl}`, () => answers200(`${apiUrl}/health`), readyTimeoutMs),
      waitForWorker(worker),
    ]);
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    apiUrl,
    cardNetworkUrl,
    bankUrl,
    env,
    killWorker: async () => {
      await worker?.kill();
    },
    startWorker: async () => {
      if (!worker) throw new Error('stack was not started');
      worker.start();
      await waitForWorker(worker);
    },
    stop,
  };
}
