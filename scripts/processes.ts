// Child processes the launcher and the end-to-end tests run: spawn, prefix their output, stop them
// in order, and (optionally) restart them when they die, so a crashed worker comes back.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from '../platform/logger.js';

export interface ChildSpec {
  /** Short name used as the output prefix and in logs (`api`, `worker`, `temporal`). */
  name: string;
  command: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  uid?: number;
  gid?: number;
  /**
   * Restart after an unexpected exit, first after this many milliseconds. A process that keeps
   * dying right after start waits twice as long each time (up to 30 s), so a broken build or a
   * taken port does not spin the CPU. Undefined: never restart.
   */
  restartDelayMs?: number;
  /** Signal that asks the process to stop cleanly (PostgreSQL wants SIGINT for a fast shutdown). */
  stopSignal?: NodeJS.Signals;
  /** How long `stop()` waits after `stopSignal` before SIGKILL. */
  stopTimeoutMs?: number;
  /**
   * Where output lines go. Default: our stdout/stderr with a `name | ` prefix. Lines are also kept
   * in a small ring buffer either way, so a failure can quote what the process said last.
   */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Stop forwarding output once `stop()` was called: servers tend to log warnings while they drain. */
  quietWhileStopping?: boolean;
  /**
   * Have the kernel send `stopSignal` to the process when we die, even by SIGKILL, when nothing of
   * ours runs any more to stop it (Linux, through util-linux's `setpriv --pdeathsig`; elsewhere the
   * launcher's pid records are the only safety net).
   */
  stopWithParent?: boolean;
  log?: Logger;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all, e.g. "/x/postgres: permission denied (EACCES)". */
  error?: string;
}

/**
 * A server that could not be started. `message` is one line naming the cause and the fix, for the
 * person at the terminal; `details` holds what the server printed, for when the line is not enough.
 */
export class StartError extends Error {
  readonly details: string | undefined;
  constructor(message: string, options: { details?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StartError';
    this.details = options.details || undefined;
  }
}

/** One line for a spawn failure: what could not be run, and why in words. */
export function describeSpawnError(command: string, err: NodeJS.ErrnoException, uid?: number): string {
  const as = uid === undefined ? '' : ` as uid ${uid}`;
  switch (err.code) {
    case 'ENOENT':
      return `${command} does not exist (ENOENT)`;
    case 'EACCES':
      return `${command} cannot be run${as}: permission denied (EACCES): the file is not executable, or a directory on its path is not searchable${as}`;
    case 'EPERM':
      return `${command} cannot be run${as}: operation not permitted (EPERM)`;
    default:
      return `${command} cannot be run${as}: ${err.message}`;
  }
}

/**
 * The line of a server's output that most likely says why it stopped: the last FATAL/PANIC/ERROR
 * line (PostgreSQL), the last line mentioning an error (Go servers), else the last line.
 */
export function mostTellingLine(output: string): string | undefined {
  const lines = output
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .reverse();
  const pick =
    lines.find((l) => /\b(FATAL|PANIC)\b/.test(l)) ??
    lines.find((l) => /\bERROR\b/.test(l)) ??
    lines.find((l) => /error|fail|denied|cannot|unable/i.test(l)) ??
    lines[0];
  return pick && pick.length > 300 ? `${pick.slice(0, 300)}…` : pick;
}

let setprivChecked = false;
let setprivPath: string | undefined;

/** util-linux's setpriv when it knows --pdeathsig (2.33, 2018, on), checked once. */
function parentDeathWrapper(): string | undefined {
  if (setprivChecked) return setprivPath;
  setprivChecked = true;
  if (process.platform !== 'linux') return undefined;
  for (const candidate of ['/usr/bin/setpriv', '/bin/setpriv']) {
    const probe = spawnSync(candidate, ['--pdeathsig', 'keep', '--', 'true'], { stdio: 'ignore', timeout: 5000 });
    if (probe.status === 0) {
      setprivPath = candidate;
      break;
    }
  }
  return setprivPath;
}

const RECENT_LINES = 200;
const MAX_RESTART_DELAY_MS = 30_000;
/** A process that ran at least this long before dying is "healthy again": backoff resets. */
const STABLE_AFTER_MS = 10_000;

/** Processes that are running now, so an exiting launcher can still signal them (see below). */
const live = new Set<ManagedProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Children run in their own process groups (see `spawn` below), so nothing else will tell them
  // that we are gone. 'exit' handlers must be synchronous: send the stop signal and let them
  // finish on their own.
  process.on('exit', () => {
    for (const child of live) child.signal(child.spec.stopSignal ?? 'SIGTERM');
  });
}

export class ManagedProcess {
  readonly spec: ChildSpec;
  private child: ChildProcess | undefined;
  private exitPromise: Promise<ExitInfo> | undefined;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private consecutiveQuickCrashes = 0;
  private startedAt = 0;
  private readonly recent: string[] = [];
  private readonly exitListeners = new Set<(info: ExitInfo, expected: boolean) => void>();
  private readonly spawnListeners = new Set<(pid: number) => void>();
  restarts = 0;

  constructor(spec: ChildSpec) {
    this.spec = spec;
  }

  get name(): string {
    return this.spec.name;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** When the current (or last) incarnation was spawned, in epoch milliseconds. */
  get spawnedAt(): number {
    return this.startedAt;
  }

  /** The last lines the process printed, oldest first. */
  recentOutput(lines = 40): string {
    return this.recent.slice(-lines).join('\n');
  }

  /** Called on every exit; `expected` is false when nobody asked the process to stop. */
  onExit(listener: (info: ExitInfo, expected: boolean) => void): () => void {
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  /** Called after every spawn (restarts included) with the new process id. */
  onSpawn(listener: (pid: number) => void): () => void {
    this.spawnListeners.add(listener);
    return () => this.spawnListeners.delete(listener);
  }

  /** Spawns the process unless it is already running. Re-arms restarts after `stop()`/`kill()`. */
  start(): void {
    if (this.child) return;
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    this.stopping = false;
    this.spawnOnce();
  }

  private spawnOnce(): void {
    const { spec } = this;
    installExitHook();
    const wrapper = spec.stopWithParent ? parentDeathWrapper() : undefined;
    const [command, args] = wrapper
      ? [wrapper, ['--pdeathsig', spec.stopSignal ?? 'SIGTERM', '--', spec.command, ...spec.args]]
      : [spec.command, [...spec.args]];
    // detached: own process group. A Ctrl-C in the terminal then reaches only the launcher, which
    // stops everything in order (children, then Temporal, then PostgreSQL) instead of all at once.
    const child = spawn(command, args, {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      uid: spec.uid,
      gid: spec.gid,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.startedAt = Date.now();
    live.add(this);
    this.pipe(child, 'stdout');
    this.pipe(child, 'stderr');

    let resolveExit!: (info: ExitInfo) => void;
    this.exitPromise = new Promise((resolve) => (resolveExit = resolve));
    let settled = false;
    const settle = (info: ExitInfo) => {
      if (settled) return;
      settled = true;
      this.handleExit(child, info);
      resolveExit(info);
    };
    // 'error' without 'exit' happens when the binary cannot be spawned at all (ENOENT, EACCES). It
    // may also come later (a failed kill): `on`, not `once`, since an 'error' event nobody listens
    // to crashes the whole launcher with a stack trace.
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (settled || child.pid !== undefined) {
        spec.log?.warn('process error', { process: spec.name, error: err.message });
        return;
      }
      const error = describeSpawnError(spec.command, err, spec.uid);
      this.remember(`[spawn error] ${error}`);
      spec.log?.error('process could not be started', { process: spec.name, command: spec.command, error });
      settle({ code: null, signal: null, error });
    });
    // 'close' rather than 'exit': it fires after stdout/stderr are drained, so the last lines a
    // crashing process printed are in recentOutput() when listeners run.
    child.once('close', (code, signal) => {
      // Through the wrapper a command that cannot be executed is an exit 126/127 with setpriv's
      // complaint instead of a spawn error: report it the same way.
      const last = this.recent.at(-1) ?? '';
      const error =
        wrapper && (code === 126 || code === 127) && last.startsWith('setpriv: failed to execute')
          ? last.replace(/^setpriv: failed to execute /, '')
          : undefined;
      settle({ code, signal, ...(error ? { error } : {}) });
    });
    if (child.pid !== undefined) for (const listener of this.spawnListeners) listener(child.pid);
  }

  private pipe(child: ChildProcess, stream: 'stdout' | 'stderr'): void {
    const source = child[stream];
    if (!source) return;
    const write =
      this.spec.onLine ??
      ((line: string, s: 'stdout' | 'stderr') =>
        (s === 'stderr' ? process.stderr : process.stdout).write(`${this.spec.name.padEnd(13)}| ${line}\n`));
    createInterface({ input: source, crlfDelay: Infinity }).on('line', (line) => {
      this.remember(line);
      if (this.stopping && this.spec.quietWhileStopping) return;
      write(line, stream);
    });
  }

  private remember(line: string): void {
    this.recent.push(line);
    if (this.recent.length > RECENT_LINES) this.recent.shift();
  }

  private handleExit(child: ChildProcess, info: ExitInfo): void {
    if (this.child === child) this.child = undefined;
    live.delete(this);
    const expected = this.stopping;
    for (const listener of this.exitListeners) listener(info, expected);
    if (expected) return;

    const { spec } = this;
    const ranMs = Date.now() - this.startedAt;
    this.consecutiveQuickCrashes = ranMs >= STABLE_AFTER_MS ? 0 : this.consecutiveQuickCrashes + 1;
    if (spec.restartDelayMs === undefined) {
      spec.log?.warn('process exited unexpectedly', { process: spec.name, ...info, ranMs });
      return;
    }
    const delayMs = Math.min(
      MAX_RESTART_DELAY_MS,
      spec.restartDelayMs * 2 ** Math.max(0, this.consecutiveQuickCrashes - 1),
    );
    spec.log?.warn('process exited unexpectedly; restarting', { process: spec.name, ...info, ranMs, restartInMs: delayMs });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopping || this.child) return;
      this.restarts += 1;
      spec.log?.info('restarting process', { process: spec.name, restart: this.restarts });
      this.spawnOnce();
    }, delayMs);
  }

  /** Sends a signal to the whole process group (our child and anything it spawned). */
  signal(sig: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, sig);
    } catch {
      // The group may already be gone, or the child may not lead one (spawn failed half-way).
      try {
        this.child?.kill(sig);
      } catch {
        /* already exited */
      }
    }
  }

  /** Resolves when the current incarnation has exited (immediately when none is running). */
  async waitForExit(): Promise<ExitInfo | undefined> {
    if (!this.child) return undefined;
    return this.exitPromise;
  }

  /**
   * Asks the process to stop (`stopSignal`, default SIGTERM), SIGKILLs it after `stopTimeoutMs`
   * (default 10 s), and cancels any pending restart. Resolves once it has exited.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    if (!this.child || !this.exitPromise) return;
    const exited = this.exitPromise;
    this.signal(this.spec.stopSignal ?? 'SIGTERM');
    const timeoutMs = this.spec.stopTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      exited.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.spec.log?.warn('process did not stop in time; killing it', { process: this.spec.name, timeoutMs });
      this.signal('SIGKILL');
      await exited;
    }
  }

  /** SIGKILL now, like a crash or `kill -9`; no restart follows. Resolves once it has exited. */
  async kill(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    if (!this.child || !this.exitPromise) return;
    const exited = this.exitPromise;
    this.signal('SIGKILL');
    await exited;
  }
}

/** Spawns a process described by `spec` and returns its handle. */
export function startProcess(spec: ChildSpec): ManagedProcess {
  const proc = new ManagedProcess(spec);
  proc.start();
  return proc;
}

/**
 * Command line that runs a TypeScript entry point with the Node running us, through tsx's loader:
 * one process per service (no tsx wrapper process in between), so signals reach the service itself.
 */
export function nodeEntry(entry: string, rootDir: string): { command: string; args: string[] } {
  return { command: process.execPath, args: ['--import', 'tsx', path.resolve(rootDir, entry)] };
}

/** Stops processes in parallel; resolves when all have exited. */
export async function stopAll(processes: Iterable<ManagedProcess>): Promise<void> {
  await Promise.all([...processes].map((p) => p.stop()));
}

/** A TCP port that was free a moment ago (the OS picks it). Callers bind it soon after. */
export async function getFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not determine a free port'));
      });
    });
  });
}

/** Whether something accepts TCP connections on host:port right now. */
export async function isPortInUse(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Polls `probe` until it returns true; fails after `timeoutMs`, or early when `abortIf` says so. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  { timeoutMs, intervalMs = 250, abortIf }: { timeoutMs: number; intervalMs?: number; abortIf?: () => string | undefined },
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const abortReason = abortIf?.();
    if (abortReason) throw new Error(`${what}: ${abortReason}`);
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`${what}: not ready after ${timeoutMs} ms${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export interface CommandResult extends ExitInfo {
  /** Everything it printed, stdout and stderr interleaved as they came. */
  output: string;
}

/**
 * Runs a short-lived command (initdb, useradd) to completion and resolves with how it ended; never
 * rejects, so a binary that cannot be spawned is an outcome the caller words, not a crash.
 */
export async function runCommand(
  spec: Pick<ChildSpec, 'name' | 'command' | 'args' | 'env' | 'cwd' | 'uid' | 'gid' | 'stopWithParent'>,
): Promise<CommandResult> {
  const lines: string[] = [];
  // No logger: its exit is the expected outcome, not news; the caller words any failure.
  const proc = new ManagedProcess({ ...spec, onLine: (line) => lines.push(line) });
  const done = new Promise<ExitInfo>((resolve) => proc.onExit((info) => resolve(info)));
  proc.start();
  const info = await done;
  return { ...info, output: lines.join('\n') };
}

/** Whether `file` is a regular file this process may execute. */
export async function isExecutable(file: string): Promise<boolean> {
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) return false;
    await fs.access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable `name` on the PATH, as a shell would find it. */
export async function findOnPath(name: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}
