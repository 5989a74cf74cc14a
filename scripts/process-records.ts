// What the launcher started, written under DATA_DIR/run/. A launcher killed with SIGKILL cannot stop
// anything on its way out, and its servers run in their own process groups: without these records
// PostgreSQL and Temporal would keep the ports and the data, and the next `npm start` would refuse.
// With them the next start finds what is still alive, checks that each is the very process that was
// recorded (pid plus kernel start time, so a recycled pid is never signalled), and stops it in order.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../platform/logger.js';
import type { ManagedProcess } from './processes.js';

export interface ProcessRecord {
  /** `launcher`, `postgres`, `temporal`, `api`, `worker-0`... also the file name. */
  name: string;
  pid: number;
  /** With the pid, names exactly one process since boot (see `processStartTime`). */
  startTime: string;
  /** Asks it to stop cleanly: SIGINT is PostgreSQL's fast shutdown. */
  stopSignal: NodeJS.Signals;
  /** Stopped in ascending order: services (0), then Temporal (1), then PostgreSQL (2). */
  stopOrder: number;
  /** For the people reading the file or the log. */
  command: string;
  recordedAt: string;
  /**
   * Launcher only: the processes that started it (tsx, npm). When one of them is gone, nobody can
   * stop the launcher with a Ctrl-C any more: it stops itself, and a new start may stop it.
   */
  parents?: Array<{ pid: number; startTime: string }>;
}

export const LAUNCHER = 'launcher';

let bootId: string | undefined;

function currentBootId(): string {
  try {
    bootId ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    bootId = 'unknown-boot';
  }
  return bootId;
}

function execText(file: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 5000 }, (err, stdout) => resolve(err ? undefined : stdout.trim()));
  });
}

/**
 * When `pid` started, as a string that differs for any other process that ever had this pid;
 * undefined when no live process has it (a zombie counts as gone: it holds no ports or files, and
 * in a container whose init does not reap, dead orphans stay zombies forever).
 */
export async function processStartTime(pid: number): Promise<string | undefined> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  if (process.platform === 'linux') {
    let stat: string;
    try {
      stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return undefined;
    }
    // "pid (comm) state ppid ..." where comm may hold spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = fields[0];
    if (state === 'Z' || state === 'X') return undefined;
    // Field 22 of the whole line, starttime in clock ticks since boot; the boot id makes it unique across reboots.
    return `${currentBootId()}:${fields[19]}`;
  }
  const status = await execText('ps', ['-o', 'stat=', '-p', String(pid)]);
  if (!status || status.startsWith('Z')) return undefined;
  return execText('ps', ['-o', 'lstart=', '-p', String(pid)]);
}

/** Parent process id (Linux /proc, else `ps`); undefined when the process is gone. */
async function parentPid(pid: number): Promise<number | undefined> {
  if (process.platform === 'linux') {
    try {
      const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      return undefined;
    }
  }
  const ppid = Number(await execText('ps', ['-o', 'ppid=', '-p', String(pid)]));
  return Number.isSafeInteger(ppid) && ppid > 0 ? ppid : undefined;
}

async function hasNpmLifecycle(pid: number): Promise<boolean> {
  try {
    const environ = await fs.readFile(`/proc/${pid}/environ`, 'utf8');
    return environ.split('\0').some((entry) => entry.startsWith('npm_lifecycle_event='));
  } catch {
    return false;
  }
}

/**
 * The processes between us and the person who ran `npm start`: our parent (tsx), and while a
 * parent is itself part of the npm run (it has npm's lifecycle variables), its parent too, up to and
 * including npm. Killing any of them with SIGKILL leaves us running with nobody to stop us.
 */
export async function launchingProcesses(): Promise<Array<{ pid: number; startTime: string }>> {
  const chain: Array<{ pid: number; startTime: string }> = [];
  let pid = process.ppid;
  for (let depth = 0; depth < 8 && pid > 1; depth++) {
    const startTime = await processStartTime(pid);
    if (!startTime) break;
    chain.push({ pid, startTime });
    if (!(await hasNpmLifecycle(pid))) break;
    const next = await parentPid(pid);
    if (next === undefined) break;
    pid = next;
  }
  return chain;
}

/** Whether every one of `processes` is still the process it was. */
export async function allAlive(processes: ReadonlyArray<{ pid: number; startTime: string }>): Promise<boolean> {
  for (const p of processes) if ((await processStartTime(p.pid)) !== p.startTime) return false;
  return true;
}

async function isSameProcess(record: ProcessRecord): Promise<boolean> {
  return (await processStartTime(record.pid)) === record.startTime;
}

function sendSignal(pid: number, signal: NodeJS.Signals): void {
  // Our servers lead their own process groups (spawned detached): the group reaches what they
  // started too. Fall back to the process alone when it does not lead one.
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* gone */
    }
  }
}

async function waitUntilGone(record: ProcessRecord, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await isSameProcess(record))) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return !(await isSameProcess(record));
}

/** How long a clean stop may take: PostgreSQL's fast shutdown checkpoints first, a launcher stops all of its servers in turn. */
function stopTimeoutMs(record: ProcessRecord): number {
  if (record.name === LAUNCHER) return 60_000;
  return record.stopSignal === 'SIGINT' ? 30_000 : 10_000;
}

export interface Leftovers {
  /** A launcher of this DATA_DIR that is still running. */
  launcher: (ProcessRecord & { abandoned: boolean }) | undefined;
  /** Recorded servers that are still running (the launcher's, when it is gone or abandoned). */
  servers: ProcessRecord[];
}

/** The records of one DATA_DIR (one file per process, so restarts and exits never race on a file). */
export class ProcessRecords {
  readonly dir: string;
  private pending = new Map<string, Promise<void>>();

  constructor(dir: string) {
    this.dir = dir;
  }

  private file(name: string): string {
    return path.join(this.dir, `${name}.json`);
  }

  /** Runs `op` after the previous operation on the same record, so a quick crash cannot overtake its spawn. */
  private serial(name: string, op: () => Promise<void>): Promise<void> {
    const next = (this.pending.get(name) ?? Promise.resolve()).then(op, op);
    this.pending.set(name, next);
    return next;
  }

  async write(record: ProcessRecord): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    // Write and rename: a reader (or a kill mid-write) never sees half a record.
    const staging = `${this.file(record.name)}.${randomBytes(4).toString('hex')}.tmp`;
    await fs.writeFile(staging, JSON.stringify(record, null, 2) + '\n');
    await fs.rename(staging, this.file(record.name));
  }

  async remove(name: string): Promise<void> {
    await fs.rm(this.file(name), { force: true });
  }

  async readAll(): Promise<ProcessRecord[]> {
    const names = await fs.readdir(this.dir).catch(() => [] as string[]);
    const records: ProcessRecord[] = [];
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      try {
        const record = JSON.parse(await fs.readFile(path.join(this.dir, name), 'utf8')) as ProcessRecord;
        if (typeof record.pid === 'number' && typeof record.startTime === 'string' && typeof record.name === 'string') {
          records.push(record);
        }
      } catch {
        // Unreadable: written by something else, or damaged. Not ours to act on.
      }
    }
    return records;
  }

  /** Records this process as the launcher, with the processes that started it. */
  async recordLauncher(parents: ProcessRecord['parents']): Promise<void> {
    const startTime = await processStartTime(process.pid);
    if (!startTime) throw new Error('cannot read our own process start time');
    await this.write({
      name: LAUNCHER,
      pid: process.pid,
      startTime,
      stopSignal: 'SIGTERM',
      stopOrder: -1,
      command: process.argv.join(' '),
      recordedAt: new Date().toISOString(),
      parents,
    });
  }

  /** Records `proc` now if it runs, on every spawn (restarts included), and forgets it on every exit. */
  track(proc: ManagedProcess, stopOrder: number): void {
    const { spec } = proc;
    const record = (pid: number) => {
      void this.serial(spec.name, async () => {
        const startTime = await processStartTime(pid);
        if (!startTime || proc.pid !== pid) return; // already gone again
        await this.write({
          name: spec.name,
          pid,
          startTime,
          stopSignal: spec.stopSignal ?? 'SIGTERM',
          stopOrder,
          command: [spec.command, ...spec.args].join(' '),
          recordedAt: new Date().toISOString(),
        });
      }).catch(() => undefined);
    };
    proc.onSpawn(record);
    proc.onExit(() => {
      void this.serial(spec.name, () => this.remove(spec.name)).catch(() => undefined);
    });
    if (proc.pid !== undefined) record(proc.pid);
  }

  /** Resolves once every record write or removal started so far has finished. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.pending.values()]);
  }

  /**
   * What an earlier launcher of this DATA_DIR left running. Records of processes that are gone
   * (or whose pid now belongs to another process) are deleted on the way.
   */
  async inspect(): Promise<Leftovers> {
    let launcher: Leftovers['launcher'];
    const servers: ProcessRecord[] = [];
    for (const record of await this.readAll()) {
      if (record.name === LAUNCHER && record.pid === process.pid) continue;
      if (!(await isSameProcess(record))) {
        await this.remove(record.name);
        continue;
      }
      if (record.name === LAUNCHER) {
        launcher = { ...record, abandoned: !(await allAlive(record.parents ?? [])) };
      } else {
        servers.push(record);
      }
    }
    return { launcher, servers };
  }

  /**
   * Stops recorded processes that are still alive, lowest `stopOrder` first (those of one order
   * in parallel): their stop signal, then SIGKILL after the timeout. Resolves with what was stopped.
   */
  async stop(records: ProcessRecord[], log?: Logger): Promise<ProcessRecord[]> {
    const orders = [...new Set(records.map((r) => r.stopOrder))].sort((a, b) => a - b);
    const stopped: ProcessRecord[] = [];
    for (const order of orders) {
      await Promise.all(
        records
          .filter((r) => r.stopOrder === order)
          .map(async (record) => {
            if (!(await isSameProcess(record))) {
              await this.remove(record.name);
              return;
            }
            log?.info('stopping a process left running by an earlier launcher', {
              process: record.name,
              pid: record.pid,
              signal: record.stopSignal,
            });
            sendSignal(record.pid, record.stopSignal);
            if (!(await waitUntilGone(record, stopTimeoutMs(record)))) {
              log?.warn('it did not stop in time; killing it', { process: record.name, pid: record.pid });
              sendSignal(record.pid, 'SIGKILL');
              if (!(await waitUntilGone(record, 5000))) {
                throw new Error(`${record.name} (pid ${record.pid}) survived SIGKILL`);
              }
            }
            await this.remove(record.name);
            stopped.push(record);
          }),
      );
    }
    return stopped;
  }
}
