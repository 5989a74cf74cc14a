// `npm start`: the whole stack in the foreground on a fresh machine. PostgreSQL (embedded unless
// DATABASE_URL is set), migrations, the demo merchant, Temporal (a dev server unless
// TEMPORAL_ADDRESS is set), then the card-network and bank simulators, the worker and the API as
// supervised child processes. Ctrl-C stops them in reverse order: services, Temporal, PostgreSQL.
import fs from 'node:fs/promises';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { loadConfig } from '../platform/config.js';
import { createLogger } from '../platform/logger.js';
import { applyMigrations } from './migrate.js';
import { startEmbeddedPostgres } from './postgres.js';
import { isPortInUse, nodeEntry, startProcess, stopAll, waitUntil, type ManagedProcess } from './processes.js';
import { seedDemoMerchant } from './seed.js';
import { writeWorkflowBundle } from './workflow-bundle.js';
import { ensureReconciliationSchedule } from './reconciliation-schedule.js';
import { ensureSearchAttributes, resolveTemporalCli, startTemporalDevServer } from './temporal.js';

const config = loadConfig();
const log = createLogger('launcher', config.logLevel);

const SERVICES = [
  // The simulators first: the worker's activities call them.
  { name: 'card-network', entry: 'simulators/card-network/main.ts' },
  { name: 'bank', entry: 'simulators/bank/main.ts' },
  { name: 'worker', entry: 'workers/main.ts' },
  { name: 'api', entry: 'api/main.ts' },
] as const;

/** What is running, in start order; stopped in reverse. */
const infrastructure: Array<{ name: string; stop: () => Promise<void> }> = [];
const services: ManagedProcess[] = [];
let stopRequested = false;
/** Set once everything is up: from then on a signal stops at once. */
let started = false;
let stopping: Promise<void> | undefined;

function shutdown(exitCode: number): Promise<void> {
  stopping ??= (async () => {
    stopRequested = true;
    log.info('stopping', { services: services.map((s) => s.name), infrastructure: infrastructure.map((i) => i.name) });
    await stopAll(services);
    for (const item of [...infrastructure].reverse()) {
      try {
        await item.stop();
      } catch (err) {
        log.error('failed to stop', { what: item.name, error: (err as Error).message });
        exitCode = exitCode || 1;
      }
    }
    log.info('stopped');
    process.exit(exitCode);
  })();
  return stopping;
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    // A Ctrl-C may arrive twice (terminal and npm/tsx both forward it): one shutdown is enough.
    if (stopRequested) return;
    log.info('received signal', { signal });
    stopRequested = true;
    // During start-up the current step finishes first (seconds; a terminal's Ctrl-C also reaches a
    // `go install` in progress), then main() stops what is running. Once up, stop right away.
    if (started) void shutdown(0);
  });
}

/** PostgreSQL or Temporal dying under the services is not something restarting the services fixes. */
function stopIfItDies(name: string, proc: ManagedProcess): void {
  proc.onExit((info, expected) => {
    if (expected) return;
    log.error(`${name} exited unexpectedly; stopping everything`, { ...info, lastOutput: proc.recentOutput(10) });
    void shutdown(1);
  });
}

function dataDirForHumans(): string {
  const relative = path.relative(config.rootDir, config.dataDir);
  return relative && !relative.startsWith('..') ? `${relative}/` : config.dataDir;
}

function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || 'postgres';
}

function portOf(address: string): number {
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  if (!Number.isInteger(port) || port <= 0) throw new Error(`cannot read a port from address "${address}"`);
  return port;
}

async function assertPortsFree(ports: Array<{ port: number; what: string; env: string }>): Promise<void> {
  for (const { port, what, env } of ports) {
    if (await isPortInUse(port)) {
      throw new Error(`port ${port} (${what}) is already in use: is the stack already running? Otherwise set ${env}.`);
    }
  }
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const timings: Record<string, number> = {};
  await fs.mkdir(config.dataDir, { recursive: true });

  const ports = [
    { port: config.api.port, what: 'API', env: 'API_PORT' },
    { port: config.cardNetwork.port, what: 'card-network simulator', env: 'CARD_NETWORK_PORT' },
    { port: config.bank.port, what: 'bank simulator', env: 'BANK_PORT' },
  ];
  if (!config.temporal.external) {
    ports.push(
      { port: portOf(config.temporal.address), what: 'Temporal', env: 'TEMPORAL_PORT or TEMPORAL_ADDRESS' },
      { port: config.temporal.uiPort, what: 'Temporal Web UI', env: 'TEMPORAL_UI_PORT' },
    );
  }
  await assertPortsFree(ports);
  // Before anything starts: this may build the CLI (minutes, once), and fails fast without Go.
  const cliPath = config.temporal.external ? undefined : await resolveTemporalCli(config, log);
  if (stopRequested) return;

  // PostgreSQL
  let databaseUrl = config.databaseUrl;
  if (config.embeddedPostgres) {
    const postgres = await startEmbeddedPostgres({
      dataDir: path.join(config.dataDir, 'postgres'),
      port: config.postgresPort,
      database: databaseName(config.databaseUrl),
      log,
    });
    infrastructure.push({ name: 'postgres', stop: postgres.stop });
    stopIfItDies('PostgreSQL', postgres.process);
    databaseUrl = postgres.url;
    timings.postgresMs = postgres.initMs + postgres.startupMs;
  } else {
    log.info('using PostgreSQL from DATABASE_URL');
  }
  if (stopRequested) return;

  let t = Date.now();
  await applyMigrations(databaseUrl, undefined, log);
  await seedDemoMerchant(databaseUrl, config.demo);
  timings.migrateAndSeedMs = Date.now() - t;
  if (stopRequested) return;

  // Temporal
  let temporalAddress = config.temporal.address;
  let webUi: string | undefined;
  if (config.temporal.external) {
    log.info('using the Temporal server at TEMPORAL_ADDRESS', { address: temporalAddress });
    const connection = await Connection.connect({ address: temporalAddress });
    try {
      await ensureSearchAttributes(connection, config.temporal.namespace, log);
    } finally {
      await connection.close();
    }
  } else if (cliPath) {
    t = Date.now();
    const temporal = await startTemporalDevServer({
      cliPath,
      port: portOf(config.temporal.address),
      uiPort: config.temporal.uiPort,
      // On disk, so workflows in flight survive a restart of `npm start`.
      dbFile: path.join(config.dataDir, 'temporal.db'),
      namespace: config.temporal.namespace,
      log,
    });
    infrastructure.push({ name: 'temporal', stop: temporal.stop });
    stopIfItDies('the Temporal dev server', temporal.process);
    temporalAddress = temporal.address;
    webUi = temporal.uiUrl;
    timings.temporalMs = Date.now() - t;
  }
  if (stopRequested) return;

  // Reconciliation runs on a Temporal Schedule; the worker started below picks its runs up.
  const scheduleConnection = await Connection.connect({ address: temporalAddress });
  try {
    const client = new Client({ connection: scheduleConnection, namespace: config.temporal.namespace });
    const every = config.reconciliation.interval as Duration;
    const outcome = await ensureReconciliationSchedule(client, { taskQueue: config.temporal.taskQueue, every, olderThanMs: config.reconciliation.olderThanMs });
    log.info(`reconciliation schedule ${outcome}`, { every });
  } finally {
    await scheduleConnection.close();
  }
  if (stopRequested) return;

  // Once for all workers, so a crashed worker is back polling in seconds.
  t = Date.now();
  const workflowBundle = await writeWorkflowBundle(path.join(config.dataDir, 'workflow-bundle.js'));
  timings.bundleMs = Date.now() - t;
  if (stopRequested) return;

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    WORKFLOW_BUNDLE_PATH: workflowBundle,
    DATABASE_URL: databaseUrl,
    TEMPORAL_ADDRESS: temporalAddress,
    TEMPORAL_NAMESPACE: config.temporal.namespace,
    TEMPORAL_TASK_QUEUE: config.temporal.taskQueue,
    CARD_NETWORK_URL: config.cardNetwork.url,
    BANK_URL: config.bank.url,
  };
  // WORKER_PROCESSES workers poll the same task queue: Temporal spreads the tasks over them.
  const instances = SERVICES.flatMap((service): Array<{ name: string; entry: string }> =>
    service.name === 'worker' && config.workerProcesses > 1
      ? Array.from({ length: config.workerProcesses }, (_, i) => ({ ...service, name: `worker-${i}` }))
      : [service],
  );
  for (const service of instances) {
    const { command, args } = nodeEntry(service.entry, config.rootDir);
    services.push(
      startProcess({
        name: service.name,
        command,
        args,
        env,
        cwd: config.rootDir,
        // A supervisor: a crashed worker (or API) comes back by itself.
        restartDelayMs: 1000,
        stopTimeoutMs: 10_000,
        log,
      }),
    );
  }

  const apiUrl = `http://${config.api.host}:${config.api.port}`;
  const ready = await waitUntil(
    `API at ${apiUrl}`,
    async () => {
      const res = await fetch(`${apiUrl}/health`, { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      return res.ok;
    },
    { timeoutMs: 60_000, intervalMs: 250, abortIf: () => (stopRequested ? 'stopping' : undefined) },
  ).then(
    () => true,
    (err: Error) => {
      log.warn('the API did not answer /health yet; it keeps being supervised', { error: err.message });
      return false;
    },
  );
  if (stopRequested) return;
  timings.totalMs = Date.now() - t0;
  started = true;

  // The default demo key is in the source anyway; a key chosen through DEMO_API_KEY is not printed.
  const keyHint = process.env.DEMO_API_KEY ? 'the value of DEMO_API_KEY' : config.demo.apiKey;
  const lines = [
    '',
    ready ? 'Payment orchestrator is running.' : 'Payment orchestrator is starting (the API is not answering yet).',
    `  API            ${apiUrl}`,
    webUi ? `  Temporal UI    ${webUi}` : `  Temporal       ${temporalAddress} (TEMPORAL_ADDRESS)`,
    `  Demo merchant  "${config.demo.merchantId}": send "Authorization: Bearer <key>" with key ${keyHint}`,
    `  Ctrl-C stops everything; data stays in ${dataDirForHumans()}`,
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
  log.info('stack started', { ...timings, api: apiUrl, temporal: temporalAddress, webUi });
}

main().then(
  () => {
    if (stopRequested) void shutdown(0);
  },
  (err: unknown) => {
    const error = err instanceof Error ? err.message : String(err);
    // A Ctrl-C during start-up may break the step in progress (it also reaches `go install`).
    if (stopRequested) {
      log.info('start-up interrupted', { error });
      void shutdown(0);
    } else {
      log.error('start-up failed', { error });
      void shutdown(1);
    }
  },
);
