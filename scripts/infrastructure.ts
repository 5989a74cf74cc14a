// PostgreSQL and Temporal for the programs that bring their own (the flash-sale benchmark, the
// chaos suite): embedded and on disk under `dataDir` unless DATABASE_URL / TEMPORAL_ADDRESS point
// at external ones (the scale-out path), migrated and seeded like `npm start` does. Embedded ones
// can be restarted in place, data kept, which is what the chaos suite does to them.
import fs from 'node:fs/promises';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { loadConfig } from '../platform/config.js';
import type { Logger } from '../platform/logger.js';
import { applyMigrations } from './migrate.js';
import { postgresAnswers, startEmbeddedPostgres, type RunningPostgres } from './postgres.js';
import { getFreePort, waitUntil } from './processes.js';
import { seedDemoMerchant } from './seed.js';
import { ensureSearchAttributes, resolveTemporalCli, startTemporalDevServer, type DevServer } from './temporal.js';

export interface InfrastructureOptions {
  /** Where embedded PostgreSQL's cluster and Temporal's SQLite file live. */
  dataDir: string;
  log: Logger;
  /** Remove `dataDir` on stop (default true: benchmark and chaos data are throwaway). */
  removeOnStop?: boolean;
  /**
   * Extra `postgres -c` settings for embedded PostgreSQL. Default: the durable settings a
   * production server would run with (fsync on, synchronous commit), so figures mean something.
   */
  postgresSettings?: Record<string, string>;
  /** Extra dynamic config for the Temporal dev server (e.g. more task-queue partitions). */
  temporalDynamicConfig?: Record<string, unknown>;
  /** Web UI port of the dev server; undefined runs it headless. */
  temporalUiPort?: number;
  /** Server output; silent by default (the last lines are kept and shown when it dies). */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
}

export interface Infrastructure {
  databaseUrl: string;
  temporalAddress: string;
  namespace: string;
  /** True when DATABASE_URL / TEMPORAL_ADDRESS were given: those cannot be restarted from here. */
  externalPostgres: boolean;
  externalTemporal: boolean;
  /** Stops PostgreSQL (fast shutdown, or SIGKILL when `crash`) and starts it again on the same data. */
  restartPostgres(options?: { crash?: boolean; downMs?: number }): Promise<void>;
  /** Stops the Temporal dev server (SIGTERM, or SIGKILL when `crash`) and starts it again on the same SQLite file. */
  restartTemporal(options?: { crash?: boolean; downMs?: number }): Promise<void>;
  stop(): Promise<void>;
}

const quiet = () => undefined;

export async function startInfrastructure(options: InfrastructureOptions): Promise<Infrastructure> {
  const config = loadConfig();
  const { log } = options;
  const onLine = options.onLine ?? quiet;
  await fs.mkdir(options.dataDir, { recursive: true });
  // As root, PostgreSQL runs as the postgres user and must be able to reach its directory.
  await fs.chmod(options.dataDir, 0o755).catch(() => undefined);

  let postgres: RunningPostgres | undefined;
  let temporal: DevServer | undefined;
  const stop = async () => {
    await temporal?.stop().catch((err: unknown) => log.error('stopping Temporal failed', { error: String(err) }));
    await postgres?.stop().catch((err: unknown) => log.error('stopping PostgreSQL failed', { error: String(err) }));
    if (options.removeOnStop ?? true) await fs.rm(options.dataDir, { recursive: true, force: true });
  };

  try {
    let databaseUrl = config.databaseUrl;
    if (config.embeddedPostgres) {
      postgres = await startEmbeddedPostgres({
        dataDir: path.join(options.dataDir, 'postgres'),
        port: await getFreePort(),
        database: 'payments',
        log,
        // Throwaway data is removed by PostgreSQL's own stop too: when the postgres user cannot
        // reach `dataDir`, the cluster lives elsewhere and `dataDir` only links to it.
        persistent: !(options.removeOnStop ?? true),
        settings: { max_connections: '300', ...options.postgresSettings },
        onLine,
      });
      databaseUrl = postgres.url;
    }
    await applyMigrations(databaseUrl, undefined, log);
    await seedDemoMerchant(databaseUrl, config.demo);

    let temporalAddress = config.temporal.address;
    if (config.temporal.external) {
      const connection = await Connection.connect({ address: temporalAddress });
      try {
        await ensureSearchAttributes(connection, config.temporal.namespace, log);
      } finally {
        await connection.close();
      }
    } else {
      temporal = await startTemporalDevServer({
        cliPath: await resolveTemporalCli(config, log),
        port: await getFreePort(),
        uiPort: options.temporalUiPort,
        dbFile: path.join(options.dataDir, 'temporal.db'),
        namespace: config.temporal.namespace,
        log,
        onLine,
        ...(options.temporalDynamicConfig ? { dynamicConfig: options.temporalDynamicConfig } : {}),
      });
      temporalAddress = temporal.address;
    }

    const pause = (ms: number | undefined) => new Promise((resolve) => setTimeout(resolve, ms ?? 0));
    return {
      databaseUrl,
      temporalAddress,
      namespace: config.temporal.namespace,
      externalPostgres: !postgres,
      externalTemporal: !temporal,
      restartPostgres: async ({ crash = false, downMs } = {}) => {
        if (!postgres) throw new Error('PostgreSQL is external (DATABASE_URL): it cannot be restarted from here');
        const proc = postgres.process;
        await (crash ? proc.kill() : proc.stop());
        await pause(downMs);
        proc.start();
        const url = postgres.url;
        await waitUntil('PostgreSQL after restart', () => postgresAnswers(url), { timeoutMs: 60_000, intervalMs: 200 });
      },
      restartTemporal: async ({ crash = false, downMs } = {}) => {
        if (!temporal) throw new Error('Temporal is external (TEMPORAL_ADDRESS): it cannot be restarted from here');
        const proc = temporal.process;
        await (crash ? proc.kill() : proc.stop());
        await pause(downMs);
        proc.start();
        const address = temporal.address;
        await waitUntil('Temporal after restart', async () => {
          const connection = await Connection.connect({ address, connectTimeout: 1000 });
          try {
            await connection.withDeadline(Date.now() + 2000, () =>
              connection.workflowService.describeNamespace({ namespace: config.temporal.namespace }),
            );
            return true;
          } finally {
            await connection.close();
          }
        }, { timeoutMs: 60_000, intervalMs: 200 });
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
