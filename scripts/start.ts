// `npm start`: the whole stack in the foreground on a fresh machine. PostgreSQL (embedded unless
// DATABASE_URL is set), migrations, the demo merchant, Temporal (a dev server unless
// TEMPORAL_ADDRESS is set, its Web UI decoding payloads through the codec server), then the
// card-network and bank simulators, the worker, the API and the codec server as supervised child
// processes. Ctrl-C stops them in reverse order: services, Temporal, PostgreSQL.
// What it starts is recorded in DATA_DIR/run/, so that after a launcher killed with SIGKILL the next
// start stops what was left running instead of failing on taken ports.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { loadConfig } from '../platform/config.js';
import { createLogger } from '../platform/logger.js';
import { payloadDataConverter } from '../platform/payload-codec.js';
import { formatPayloadKeys, newPayloadKey, parsePayloadKeys, type PayloadKey } from '../platform/payload-keys.js';
import { applyMigrations } from './migrate.js';
import { startEmbeddedPostgres } from './postgres.js';
import { allAlive, launchingProcesses, LAUNCHER, ProcessRecords, type ProcessRecord } from './process-records.js';
import { isPortInUse, mostTellingLine, nodeEntry, startProcess, StartError, stopAll, waitUntil, type ManagedProcess } from './processes.js';
import { seedDemoMerchant } from './seed.js';
import { ensureDevSecret, newOperatorApiKey } from './dev-secrets.js';
import { writeWorkflowBundle } from './workflow-bundle.js';
import { ensureReconciliationSchedule } from './reconciliation-schedule.js';
import { ensureSearchAttributes, resolveTemporalCli, startTemporalDevServer } from './temporal.js';

const config = (() => {
  try {
    return loadConfig();
  } catch (err) {
    // A bad setting: one line, not a stack trace.
    process.stderr.write(`npm start failed: ${(err as Error).message}\n`);
    process.exit(1);
  }
})();
const log = createLogger('launcher', config.logLevel);

const SERVICES = [
  // The simulators first: the worker's activities call them.
  { name: 'card-network', entry: 'simulators/card-network/main.ts' },
  { name: 'bank', entry: 'simulators/bank/main.ts' },
  { name: 'worker', entry: 'workers/main.ts' },
  { name: 'api', entry: 'api/main.ts' },
  // The Web UI and the CLI read encrypted payloads through it.
  { name: 'codec', entry: 'codec-server/main.ts' },
] as const;

/** What is running, in start order; stopped in reverse. */
const infrastructure: Array<{ name: string; stop: () => Promise<void> }> = [];
const services: ManagedProcess[] = [];
/** Stop order of recorded processes: services first, PostgreSQL last (the others need it to drain). */
const STOP_ORDER = { service: 0, temporal: 1, postgres: 2 } as const;
const records = new ProcessRecords(path.join(config.dataDir, 'run'));
/** Set once our own launcher record is written: only then is it ours to remove. */
let recorded = false;
let stopRequested = false;
/** Set once everything is up: from then on a signal stops at once. */
let started = false;
let stopping: Promise<void> | undefined;

/**
 * Stops everything in order and exits. `failure` is the one line that says why (start-up failed,
 * a server died): printed last, after the servers' own farewells, so it is what the person at the
 * terminal reads.
 */
function shutdown(exitCode: number, failure?: string): Promise<void> {
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
    await records.settled();
    if (recorded) await records.remove(LAUNCHER).catch(() => undefined);
    log.info('stopped');
    if (failure) process.stderr.write(`\nnpm start ${started ? 'stopped' : 'failed'}: ${failure}\n`);
    process.exit(exitCode);
  })();
  return stopping;
}

function requestStop(reason: Record<string, unknown>): void {
  // A Ctrl-C may arrive twice (terminal and npm/tsx both forward it): one shutdown is enough.
  if (stopRequested) return;
  log.info('stop requested', reason);
  stopRequested = true;
  // During start-up the current step finishes first (seconds; a terminal's Ctrl-C also reaches a
  // `go install` in progress), then main() stops what is running. Once up, stop right away.
  if (started) void shutdown(0);
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => requestStop({ signal }));
}

// A bug or a library's unhandled 'error' must not kill the launcher before it stops its servers.
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (err: unknown) => {
    const error = err instanceof Error ? err.message : String(err);
    log.error(`launcher: ${event}`, { error, stack: err instanceof Error ? err.stack : undefined });
    void shutdown(1, `${error} (an internal error of the launcher; the log line above has its stack)`);
  });
}

/** PostgreSQL or Temporal dying under the services is not something restarting the services fixes. */
function stopIfItDies(name: string, proc: ManagedProcess): void {
  proc.onExit((info, expected) => {
    if (expected) return;
    log.error(`${name} exited unexpectedly; stopping everything`, { ...info, lastOutput: proc.recentOutput(10) });
    const why = info.error ?? mostTellingLine(proc.recentOutput(40)) ?? 'no output';
    void shutdown(1, `${name} exited unexpectedly (code ${info.code}, signal ${info.signal}): ${why}; start again, and see its output above if it repeats`);
  });
}

function dataDirForHumans(): string {
  const relative = path.relative(config.rootDir, config.dataDir);
  return relative && !relative.startsWith('..') ? `${relative}/` : config.dataDir;
}

/**
 * The payload keys: PAYLOAD_ENCRYPTION_KEYS, or a development key made on the first start and kept
 * in DATA_DIR/secrets, so workflows written before a restart stay readable after it. To rotate it,
 * put a new `id:base64key` in front of the file's line (see README: Payload encryption).
 */
async function payloadKeys(): Promise<{ keys: readonly PayloadKey[]; file: string | undefined }> {
  if (config.payloadEncryption.keys.length > 0) return { keys: config.payloadEncryption.keys, file: undefined };
  const { value, file } = await ensureDevSecret(config.dataDir, 'payload-encryption-keys', () => formatPayloadKeys([newPayloadKey()]));
  try {
    return { keys: parsePayloadKeys(value, file), file };
  } catch (err) {
    throw new StartError(`${(err as Error).message}; fix the file, or set PAYLOAD_ENCRYPTION_KEYS`);
  }
}

/** A listening address as a browser on this machine reaches it. */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
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
      throw new StartError(
        `port ${port} (${what}) is already in use by another program (another checkout's stack?): stop it, or set ${env} to a free port`,
      );
    }
  }
}

function describeRecord(record: ProcessRecord): string {
  return `${record.name} (pid ${record.pid})`;
}

/**
 * Makes DATA_DIR ours: refuses when its launcher is still running and attended; stops one that
 * nobody can stop any more (whatever started it was killed), and then whatever an earlier launcher
 * left running; finally records us.
 */
async function takeOverDataDir(): Promise<void> {
  let leftovers = await records.inspect();
  const other = leftovers.launcher;
  if (other && !other.abandoned) {
    throw new StartError(
      `the stack is already running from ${dataDirForHumans()} (launcher pid ${other.pid}, since ${other.recordedAt}): ` +
        `stop it with Ctrl-C in its terminal or \`kill ${other.pid}\`, or give a second stack its own DATA_DIR and ports`,
    );
  }
  if (other) {
    log.warn('an earlier launcher lost the process that started it (killed?); stopping it and its servers', { pid: other.pid });
    await records.stop([other], log);
    leftovers = await records.inspect();
  }
  if (leftovers.servers.length > 0) {
    log.warn('stopping servers left running by an earlier launcher that was killed', {
      processes: leftovers.servers.map(describeRecord),
    });
    await records.stop(leftovers.servers, log);
  }
  const parents = await launchingProcesses();
  await records.recordLauncher(parents);
  recorded = true;
  // Whoever started us (tsx, npm) killed with SIGKILL cannot pass a Ctrl-C on any more, and the
  // terminal gets its prompt back while we run on: stop as if asked.
  const watch = setInterval(() => {
    void allAlive(parents).then((alive) => {
      if (alive) return;
      clearInterval(watch);
      requestStop({ reason: 'the process that started the launcher is gone', parents });
    });
  }, 1000);
  watch.unref();
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const timings: Record<string, number> = {};
  await fs.mkdir(config.dataDir, { recursive: true });
  await takeOverDataDir();

  const ports = [
    { port: config.api.port, what: 'API', env: 'API_PORT' },
    { port: config.cardNetwork.port, what: 'card-network simulator', env: 'CARD_NETWORK_PORT' },
    { port: config.bank.port, what: 'bank simulator', env: 'BANK_PORT' },
    { port: config.codec.port, what: 'codec server', env: 'CODEC_PORT' },
  ];
  if (!config.temporal.external) {
    ports.push(
      { port: portOf(config.temporal.address), what: 'Temporal', env: 'TEMPORAL_PORT or TEMPORAL_ADDRESS' },
      { port: config.temporal.uiPort, what: 'Temporal Web UI', env: 'TEMPORAL_UI_PORT' },
    );
  }
  await assertPortsFree(ports);
  // Platform-wide actions need the operator key; a development stack makes one once.
  const operatorKey = config.operator.apiKey
    ? { value: config.operator.apiKey, file: undefined }
    : await ensureDevSecret(config.dataDir, 'operator-api-key', newOperatorApiKey);
  const payload = await payloadKeys();
  const dataConverter = payloadDataConverter(payload.keys);
  const codecUrl = `http://${urlHost(config.codec.host)}:${config.codec.port}`;
  // The Web UI cannot send the operator key (the development UI has no login): it calls the codec
  // server under a path only it is told, made afresh each start (codec-server/app.ts).
  const uiToken = config.codec.uiToken ?? randomBytes(32).toString('base64url');
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
      onProcess: (proc) => records.track(proc, STOP_ORDER.postgres),
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
      uiCodecEndpoint: `${codecUrl}/ui/${uiToken}`,
      // On disk, so workflows in flight survive a restart of `npm start`.
      dbFile: path.join(config.dataDir, 'temporal.db'),
      namespace: config.temporal.namespace,
      log,
      onProcess: (proc) => records.track(proc, STOP_ORDER.temporal),
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
    const client = new Client({ connection: scheduleConnection, namespace: config.temporal.namespace, dataConverter });
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
    OPERATOR_API_KEY: operatorKey.value,
    PAYLOAD_ENCRYPTION_KEYS: formatPayloadKeys(payload.keys),
    CODEC_UI_TOKEN: uiToken,
  };
  // WORKER_PROCESSES workers poll the same task queue: Temporal spreads the tasks over them.
  const instances = SERVICES.flatMap((service): Array<{ name: string; entry: string }> =>
    service.name === 'worker' && config.workerProcesses > 1
      ? Array.from({ length: config.workerProcesses }, (_, i) => ({ ...service, name: `worker-${i}` }))
      : [service],
  );
  for (const service of instances) {
    const { command, args } = nodeEntry(service.entry, config.rootDir);
    const proc = startProcess({
      name: service.name,
      command,
      args,
      env,
      cwd: config.rootDir,
      // A supervisor: a crashed worker (or API) comes back by itself.
      restartDelayMs: 1000,
      stopTimeoutMs: 10_000,
      stopWithParent: true,
      log,
    });
    records.track(proc, STOP_ORDER.service);
    services.push(proc);
  }

  const apiUrl = `http://${config.api.host}:${config.api.port}`;
  const answering = (what: string, url: string) =>
    waitUntil(
      `${what} at ${url}`,
      async () => {
        const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
        await res.body?.cancel();
        return res.ok;
      },
      { timeoutMs: 60_000, intervalMs: 250, abortIf: () => (stopRequested ? 'stopping' : undefined) },
    ).then(
      () => undefined,
      (err: Error) => {
        log.warn(`the ${what} did not answer /health yet; it keeps being supervised`, { error: err.message });
        return what;
      },
    );
  const notAnswering = (await Promise.all([answering('API', apiUrl), answering('codec server', codecUrl)])).filter((w) => w !== undefined);
  if (stopRequested) return;
  timings.totalMs = Date.now() - t0;
  started = true;

  // The default demo key is in the source anyway; a key chosen through DEMO_API_KEY is not printed.
  const keyHint = process.env.DEMO_API_KEY ? 'the value of DEMO_API_KEY' : config.demo.apiKey;
  // Each line begins with its label, so a script can read a URL with e.g. /^Codec +(\S+)/m.
  const lines = [
    '',
    notAnswering.length === 0 ? 'Payment orchestrator is running.' : `Payment orchestrator is starting (the ${notAnswering.join(' and the ')} ${notAnswering.length > 1 ? 'are' : 'is'} not answering yet).`,
    `API            ${apiUrl}`,
    webUi ? `Temporal UI    ${webUi}   (payloads decrypted through the codec server)` : `Temporal       ${temporalAddress} (TEMPORAL_ADDRESS)`,
    `Codec          ${codecUrl}   (temporal workflow show --codec-endpoint ${codecUrl} --codec-auth "Bearer <operator key>")`,
    `Demo merchant  "${config.demo.merchantId}": send "Authorization: Bearer <key>" with key ${keyHint}`,
    // Neither the operator key nor a payload key is printed: they reach every merchant's records.
    `Operator key   ${operatorKey.file ? `in ${operatorKey.file}` : 'the value of OPERATOR_API_KEY'}`,
    `Payload keys   ${payload.file ? `in ${payload.file}` : 'the value of PAYLOAD_ENCRYPTION_KEYS'} (encrypting with "${payload.keys[0]!.id}")`,
    `Ctrl-C stops everything; data stays in ${dataDirForHumans()}`,
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
  log.info('stack started', { ...timings, api: apiUrl, temporal: temporalAddress, webUi, codec: codecUrl });
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
      // What the failed server printed last, for when the one line is not enough.
      const details = err instanceof StartError ? err.details : err instanceof Error ? err.stack : undefined;
      log.debug('start-up failed', { error, details });
      void shutdown(1, error);
    }
  },
);
