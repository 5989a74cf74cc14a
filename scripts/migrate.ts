// Applies prisma/migrations the way `prisma migrate deploy` does, without Prisma's schema engine
// (a binary these machines cannot download). It writes `_prisma_migrations` exactly as Prisma does,
// so `prisma migrate deploy` / `prisma migrate status` agree wherever the engine is available:
// same DDL, same checksum (sha256 hex of migration.sql), same advisory lock, same row life cycle.
//
// Unlike Prisma, each migration runs in one transaction together with its history row. PostgreSQL
// DDL is transactional, so a failing migration leaves no trace and can simply be fixed and rerun;
// Prisma instead keeps a "failed" row that only `prisma migrate resolve` (the engine) can clear.
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { loadConfig } from '../platform/config.js';
import { createLogger, type Logger } from '../platform/logger.js';

/** Prisma's lock id for migrations on PostgreSQL; holding it keeps `prisma migrate` out too. */
export const PRISMA_MIGRATE_LOCK_ID = 72707369;
const LOCK_WAIT_MS = 60_000;

// Prisma's DDL (schema-engine, PostgreSQL flavour); IF NOT EXISTS because every run issues it.
const CREATE_MIGRATIONS_TABLE = `
CREATE TABLE IF NOT EXISTS _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
)`;

export const DEFAULT_MIGRATIONS_DIR = path.resolve(import.meta.dirname, '..', 'prisma', 'migrations');

export interface MigrationResult {
  /** Migrations applied by this run, in order. */
  applied: string[];
  /** Migrations that were already applied before this run. */
  alreadyApplied: string[];
}

interface LocalMigration {
  name: string;
  script: Buffer;
}

interface HistoryRow {
  id: string;
  checksum: string;
  migration_name: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
  started_at: Date;
  logs: string | null;
}

/** sha256 hex of the script's bytes: what Prisma stores in `_prisma_migrations.checksum`. */
export function migrationChecksum(script: Buffer | string): string {
  return createHash('sha256').update(script).digest('hex');
}

/**
 * Prisma's comparison: a checksum also matches when only line endings differ (git may convert
 * them on checkout), and very old Prisma versions wrote hex without zero padding.
 */
function checksumMatches(script: Buffer, stored: string): boolean {
  const text = script.toString('utf8');
  const variants = [script, Buffer.from(text.replaceAll('\r\n', '\n')), Buffer.from(text.replaceAll('\n', '\r\n'))];
  return variants.some((variant) => {
    const digest = createHash('sha256').update(variant).digest();
    const rendered =
      stored.length !== 64 ? [...digest].map((byte) => byte.toString(16)).join('') : digest.toString('hex');
    return rendered === stored;
  });
}

async function readLocalMigrations(migrationsDir: string): Promise<LocalMigration[]> {
  const entries = await fs.readdir(migrationsDir, { withFileTypes: true });
  const names = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  const migrations: LocalMigration[] = [];
  for (const name of names) {
    const file = path.join(migrationsDir, name, 'migration.sql');
    const script = await fs.readFile(file).catch((err: NodeJS.ErrnoException) => {
      throw new Error(`migration ${name} has no readable migration.sql (${err.code ?? err.message})`);
    });
    migrations.push({ name, script });
  }
  return migrations;
}

async function acquireLock(client: pg.Client, log: Logger): Promise<void> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  let told = false;
  for (;;) {
    const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [
      PRISMA_MIGRATE_LOCK_ID,
    ]);
    if (rows[0]?.locked) return;
    if (Date.now() > deadline) {
      throw new Error(
        `another migration run holds advisory lock ${PRISMA_MIGRATE_LOCK_ID} for more than ${LOCK_WAIT_MS / 1000} s`,
      );
    }
    if (!told) {
      log.info('waiting for another migration run to finish', { lockId: PRISMA_MIGRATE_LOCK_ID });
      told = true;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/**
 * Applies every migration directory under `migrationsDir` not yet recorded as applied, in name
 * order, each in its own transaction. Refuses to run when an applied migration's file changed or
 * an earlier (Prisma) run left a failed migration behind.
 */
export async function applyMigrations(
  databaseUrl: string,
  migrationsDir: string = DEFAULT_MIGRATIONS_DIR,
  log: Logger = createLogger('migrate'),
): Promise<MigrationResult> {
  const local = await readLocalMigrations(migrationsDir);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await acquireLock(client, log);
    try {
      await client.query(CREATE_MIGRATIONS_TABLE);
      const { rows: history } = await client.query<HistoryRow>(
        'SELECT id, checksum, migration_name, finished_at, rolled_back_at, started_at, logs FROM _prisma_migrations ORDER BY started_at',
      );
      // Rolled-back rows are history only: Prisma applies such a migration again.
      const live = history.filter((row) => row.rolled_back_at === null);

      const failed = live.find((row) => row.finished_at === null);
      if (failed) {
        throw new Error(
          `migration ${failed.migration_name} failed in an earlier run (started ${failed.started_at.toISOString()}) ` +
            `and may be partly applied. Logs: ${failed.logs ?? '(none)'}\n` +
            `Inspect the database and undo what it did, then mark it rolled back, as \`prisma migrate resolve ` +
            `--rolled-back ${failed.migration_name}\` would: UPDATE _prisma_migrations SET rolled_back_at = now() ` +
            `WHERE id = '${failed.id}';`,
        );
      }

      const applied = new Map(live.map((row) => [row.migration_name, row]));
      for (const migration of local) {
        const row = applied.get(migration.name);
        if (row && !checksumMatches(migration.script, row.checksum)) {
          throw new Error(
            `migration ${migration.name} was modified after it was applied (recorded checksum ${row.checksum}, ` +
              `file now ${migrationChecksum(migration.script)}). Applied migrations must not change: restore the ` +
              'file and put the change in a new migration.',
          );
        }
      }
      const localNames = new Set(local.map((m) => m.name));
      const unknown = [...applied.keys()].filter((name) => !localNames.has(name));
      if (unknown.length > 0) {
        log.warn('the database has migrations this checkout does not know; is the code older than the database?', {
          migrations: unknown,
        });
      }

      const result: MigrationResult = { applied: [], alreadyApplied: [] };
      for (const migration of local) {
        if (applied.has(migration.name)) {
          result.alreadyApplied.push(migration.name);
          continue;
        }
        const started = Date.now();
        const id = randomUUID();
        await client.query('BEGIN');
        try {
          await client.query('INSERT INTO _prisma_migrations (id, checksum, migration_name) VALUES ($1, $2, $3)', [
            id,
            migrationChecksum(migration.script),
            migration.name,
          ]);
          // No parameters: the simple query protocol, which runs a multi-statement script.
          await client.query(migration.script.toString('utf8'));
          // clock_timestamp(): now() would be the transaction's start, i.e. started_at again.
          await client.query(
            'UPDATE _prisma_migrations SET applied_steps_count = 1, finished_at = clock_timestamp() WHERE id = $1',
            [id],
          );
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          const e = err as Error & { position?: string };
          throw new Error(
            `migration ${migration.name} failed and was rolled back; nothing of it was applied: ${e.message}` +
              (e.position ? ` (at character ${e.position} of migration.sql)` : ''),
            { cause: err },
          );
        }
        result.applied.push(migration.name);
        log.info('applied migration', { migration: migration.name, ms: Date.now() - started });
      }
      if (result.applied.length === 0) log.info('database schema is up to date', { migrations: local.length });
      return result;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [PRISMA_MIGRATE_LOCK_ID]).catch(() => undefined);
    }
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger('migrate', config.logLevel);
  try {
    await applyMigrations(config.databaseUrl, DEFAULT_MIGRATIONS_DIR, log);
  } catch (err) {
    const code = (err as { code?: string }).code;
    const hint =
      code === 'ECONNREFUSED'
        ? ' (is PostgreSQL running? `npm start` runs an embedded one; otherwise set DATABASE_URL)'
        : '';
    log.error('migration failed', { error: (err as Error).message + hint });
    process.exitCode = 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  await main();
}
