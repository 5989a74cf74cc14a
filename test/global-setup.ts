// Runs once per `vitest run`, in the main process, before any test worker exists: a throwaway
// PostgreSQL (migrated, demo merchant seeded) and an in-memory Temporal dev server, both on free
// ports. Test files find them through DATABASE_URL and TEMPORAL_ADDRESS: the workers vitest forks
// afterwards inherit this process's environment (test/migrations.test.ts checks that it did).
// Meanwhile it prepares Temporal's time-skipping test server (jars, launcher, CDS archive; cached
// under ~/.cache, so only the first run on a machine does work) and passes its path on as
// TEMPORAL_TEST_SERVER_PATH: test files then pay only a JVM start (test/support/time-skipping.ts).
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../platform/config.js';
import { createPrisma } from '../platform/db.js';
import { checkLedger } from '../platform/ledger.js';
import { createLogger } from '../platform/logger.js';
import { applyMigrations } from '../scripts/migrate.js';
import { startEmbeddedPostgres, type RunningPostgres } from '../scripts/postgres.js';
import { getFreePort } from '../scripts/processes.js';
import { seedDemoMerchant } from '../scripts/seed.js';
import { resolveTemporalCli, startTemporalDevServer, type DevServer } from '../scripts/temporal.js';
import { ensureTimeSkippingServer } from '../scripts/time-skipping-server.js';
import { TEST_PAYLOAD_KEYS } from './support/payload-keys.js';

/** Lines of server output worth showing are only the ones before a failure: keep them quiet. */
const quiet = () => undefined;

export default async function setup(): Promise<() => Promise<void>> {
  // Every client, worker and stack of the run encrypts with the committed test key, whatever the
  // shell has in PAYLOAD_ENCRYPTION_KEYS: histories recorded here must replay from the repository.
  process.env.PAYLOAD_ENCRYPTION_KEYS = TEST_PAYLOAD_KEYS;
  const config = loadConfig();
  // The harness logs only what goes wrong; TEST_LOG_LEVEL=info shows timings.
  const log = createLogger('test-setup', (process.env.TEST_LOG_LEVEL as 'info' | undefined) ?? 'warn');
  const started = Date.now();
  let postgres: RunningPostgres | undefined;
  let temporal: DevServer | undefined;
  let tempDir: string | undefined;

  // In parallel with everything below. Its first run on a machine takes 15-30 s (Maven fetch, CDS
  // archive) and says so at info level; afterwards it only checks the cache (0.1-0.3 s, silent).
  // It never rejects: without Java or Maven the other tests still run, and the time-skipping ones
  // fail with the reason (TEMPORAL_TEST_SERVER_ERROR).
  const timeSkippingLog = createLogger('test-setup', (process.env.TEST_LOG_LEVEL as 'debug' | undefined) ?? 'info');
  const timeSkipping = ensureTimeSkippingServer(timeSkippingLog).then(
    (serverPath) => ({ serverPath, error: undefined }),
    (err: unknown) => ({ serverPath: undefined, error: err instanceof Error ? err.message : String(err) }),
  );

  const teardown = async () => {
    await temporal?.stop().catch((err: unknown) => log.error('stopping Temporal failed', { error: String(err) }));
    await postgres?.stop().catch((err: unknown) => log.error('stopping PostgreSQL failed', { error: String(err) }));
    if (tempDir) await fs.rm(tempDir, { recursive: true, force: true });
  };

  try {
    // Resolve first: on a machine without a cached CLI this builds it (minutes), and there is no
    // point holding a database open meanwhile.
    const cliPath = await resolveTemporalCli(config, log);

    tempDir = await fs.mkdtemp(path.join(os.tmpdir(), 'payment-orchestrator-test-'));
    // mkdtemp makes the directory 0700; as root, PostgreSQL runs as the postgres user and must be
    // able to reach its data directory inside.
    await fs.chmod(tempDir, 0o755);

    const [pgPort, temporalPort] = await Promise.all([getFreePort(), getFreePort()]);
    // Both start in parallel; allSettled so that when one fails the other is stopped, not leaked.
    const results = await Promise.allSettled([
      startEmbeddedPostgres({
        dataDir: path.join(tempDir, 'postgres'),
        port: pgPort,
        database: 'payments_test',
        log,
        persistent: false,
        // Throwaway data: durability only costs time here.
        settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' },
        onLine: quiet,
      }).then((pg) => (postgres = pg)),
      startTemporalDevServer({
        cliPath,
        port: temporalPort,
        uiPort: undefined,
        dbFile: undefined,
        namespace: config.temporal.namespace,
        log,
        onLine: quiet,
      }).then((server) => (temporal = server)),
    ]);
    for (const result of results) if (result.status === 'rejected') throw result.reason;
    await applyMigrations(postgres!.url, undefined, log);
    await seedDemoMerchant(postgres!.url, config.demo);
  } catch (err) {
    // Let a first-run preparation finish rather than leave its archive JVM behind.
    await timeSkipping;
    await teardown();
    throw err;
  }

  if (!postgres || !temporal) throw new Error('unreachable: both servers started');
  process.env.DATABASE_URL = postgres.url;
  process.env.TEMPORAL_ADDRESS = temporal.address;
  process.env.TEMPORAL_NAMESPACE = config.temporal.namespace;
  const testServer = await timeSkipping;
  if (testServer.serverPath) {
    process.env.TEMPORAL_TEST_SERVER_PATH = testServer.serverPath;
    delete process.env.TEMPORAL_TEST_SERVER_ERROR;
  } else {
    log.warn('time-skipping test server unavailable; time-skipping tests will fail', { error: testServer.error });
    process.env.TEMPORAL_TEST_SERVER_ERROR = `time-skipping test server unavailable: ${testServer.error}`;
  }
  log.info('test infrastructure ready', {
    databaseUrl: postgres.url,
    temporalAddress: temporal.address,
    postgresStartupMs: postgres.startupMs,
    postgresInitMs: postgres.initMs,
    temporalStartupMs: temporal.startupMs,
    timeSkippingServer: testServer.serverPath,
    totalMs: Date.now() - started,
  });
  const url = postgres.url;
  return async () => {
    // After the whole suite, every test's money movements together must still form a consistent
    // ledger: journal balanced per currency, balances equal to the journal, no wallet overdrawn.
    // A failure here fails the run even when every test passed on its own.
    let report: Awaited<ReturnType<typeof checkLedger>> | undefined;
    const prisma = createPrisma(url);
    try {
      report = await checkLedger(prisma);
    } finally {
      await prisma.$disconnect();
      await teardown();
    }
    if (!report.ok) {
      // vitest reports an error thrown here but still exits 0: set the exit code ourselves.
      process.exitCode = 1;
      const json = JSON.stringify(report, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2);
      throw new Error(`the ledger check failed after the test suite:\n${json}`);
    }
    process.stdout.write(`ledger check after the suite: ok (${report.accounts} accounts, ${report.transfers} transfers)\n`);
  };
}
