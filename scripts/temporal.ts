// Finding (or building) the Temporal CLI, running its dev server, and registering our search
// attributes on a server someone else runs.
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import type { SearchAttributeType } from '@temporalio/common';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes.js';
import { SEARCH_ATTRIBUTES } from '../domain/search-attributes.js';
import type { Config } from '../platform/config.js';
import type { Logger } from '../platform/logger.js';
import { findOnPath, isExecutable, mostTellingLine, startProcess, StartError, waitUntil, type ManagedProcess } from './processes.js';

const CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';

type SearchAttributeKey = (typeof SEARCH_ATTRIBUTES)[number];

/** `temporal --version`, e.g. "temporal version 1.5.1 (Server 1.29.1, UI 2.42.1)"; undefined when it fails. */
async function cliVersion(cliPath: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn(cliPath, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('error', () => resolve(undefined));
    child.once('close', (code) => resolve(code === 0 ? out.trim() : undefined));
  });
}

/**
 * The `temporal` binary to run, in this order: TEMPORAL_CLI_PATH, `temporal` on PATH (brew, the
 * official installer), a build cached under `config.temporal.cacheDir`, and finally a fresh build
 * with `go install` into that cache. The server is not on npm, so on an offline machine with Go the
 * Go module proxy is the one place it can come from.
 */
export async function resolveTemporalCli(config: Config, log: Logger): Promise<string> {
  const { cliPath, cacheDir, cliVersion: version } = config.temporal;
  if (cliPath) {
    if (!(await isExecutable(cliPath))) {
      throw new StartError(`TEMPORAL_CLI_PATH=${cliPath} is not an executable file: point it at a \`temporal\` binary, or unset it`);
    }
    log.info('using Temporal CLI from TEMPORAL_CLI_PATH', { cliPath, version: await cliVersion(cliPath) });
    return cliPath;
  }
  const onPath = await findOnPath('temporal');
  if (onPath) {
    log.info('using Temporal CLI found on PATH', { cliPath: onPath, version: await cliVersion(onPath) });
    return onPath;
  }
  const cached = path.join(cacheDir, 'temporal');
  if (await isExecutable(cached)) {
    log.debug('using cached Temporal CLI build', { cliPath: cached });
    return cached;
  }
  return buildTemporalCli(cacheDir, version, log);
}

async function buildTemporalCli(cacheDir: string, version: string, log: Logger): Promise<string> {
  const go = await findOnPath('go');
  if (!go) {
    throw new StartError(
      'the Temporal CLI (which runs the local Temporal server) was not found, and Go is not installed to build it: ' +
        'install the Temporal CLI (`brew install temporal`, or https://docs.temporal.io/cli#install) and put it on PATH or set TEMPORAL_CLI_PATH, ' +
        `or install Go (https://go.dev/dl/) so it is built once with \`go install ${CLI_MODULE}@${version}\`, ` +
        'or set TEMPORAL_ADDRESS to a Temporal server you already run',
    );
  }
  await fs.mkdir(path.dirname(cacheDir), { recursive: true });
  // Build into a private directory and rename at the end: an interrupted build never leaves a
  // half-written binary where the next run would trust it, and two concurrent builds do not clash.
  const staging = await fs.mkdtemp(`${cacheDir}.building-`);
  const target = path.join(cacheDir, 'temporal');
  log.info('building the Temporal CLI from source (first run only; takes several minutes on 2 cores)', {
    module: `${CLI_MODULE}@${version}`,
    into: target,
  });
  const startedAt = Date.now();
  const heartbeat = setInterval(
    () => log.info('still building the Temporal CLI', { elapsedS: Math.round((Date.now() - startedAt) / 1000) }),
    30_000,
  );
  try {
    const output: string[] = [];
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(go, ['install', `${CLI_MODULE}@${version}`], {
        env: { ...process.env, GOBIN: staging },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const collect = (chunk: Buffer) => {
        for (const line of chunk.toString().split('\n')) {
          if (!line.trim()) continue;
          output.push(line);
          log.info('go install', { line });
        }
      };
      child.stdout.on('data', collect);
      child.stderr.on('data', collect);
      child.on('error', (err) =>
        reject(new StartError(`could not run ${go} to build the Temporal CLI (${err.message}): fix your Go installation, or set TEMPORAL_CLI_PATH`, { cause: err })),
      );
      child.once('close', resolve);
    });
    if (code !== 0) {
      throw new StartError(
        `go install ${CLI_MODULE}@${version} failed (exit code ${code}): ${mostTellingLine(output.join('\n')) ?? 'no output'}; ` +
          'install the Temporal CLI yourself and set TEMPORAL_CLI_PATH, or check TEMPORAL_CLI_VERSION and your Go proxy settings',
        { details: output.slice(-20).join('\n') },
      );
    }
    await fs.mkdir(cacheDir, { recursive: true });
    await fs.rename(path.join(staging, 'temporal'), target);
    log.info('built the Temporal CLI', { cliPath: target, seconds: Math.round((Date.now() - startedAt) / 1000) });
    return target;
  } finally {
    clearInterval(heartbeat);
    await fs.rm(staging, { recursive: true, force: true });
  }
}

/**
 * Dynamic config for the dev server. Update-with-start (the API's `POST /v1/checkouts`) needs
 * `frontend.enableUpdateWorkflowExecution` and `frontend.enableExecuteMultiOperation`; both default
 * to true from server 1.28 on (the CLI we build bundles 1.29.1), but a `temporal` found on PATH may
 * be older, where they default to false. The version check calls home, which these machines cannot.
 */
const DEV_SERVER_DYNAMIC_CONFIG: Record<string, unknown> = {
  'frontend.enableUpdateWorkflowExecution': true,
  'frontend.enableExecuteMultiOperation': true,
  'frontend.enableServerVersionCheck': false,
  // A workflow task that schedules an activity gets the activity task back in its completion's
  // answer when this worker has a free slot, instead of the activity waiting in matching for a
  // poll: one round trip less for every card call (the SDK asks for it by default).
  'system.enableActivityEagerExecution': true,
  // One partition per task queue: a single-process server gains nothing from spreading a queue,
  // and with four a poll can wait on an empty partition while another holds the backlog.
  'matching.numTaskqueueReadPartitions': 1,
  'matching.numTaskqueueWritePartitions': 1,
};

/**
 * SQLite's defaults (a rollback journal and synchronous=FULL) fsync several times per commit, and
 * the dev server commits for every history event batch. A write-ahead log with synchronous=NORMAL
 * commits with one append: still durable when the server process is killed (the chaos suite does
 * that), only an OS crash or power loss may lose the last transactions. Production runs Temporal on
 * PostgreSQL or Cassandra, where these settings do not apply.
 */
const DEV_SERVER_SQLITE_PRAGMAS: Record<string, string> = {
  journal_mode: 'wal',
  synchronous: 'normal',
};

export interface DevServerOptions {
  cliPath: string;
  port: number;
  /** Web UI port; undefined runs headless. */
  uiPort: number | undefined;
  /**
   * The codec server endpoint the Web UI decodes payloads through (`--ui-codec-endpoint`); without
   * one the UI shows encrypted payloads as they are stored.
   */
  uiCodecEndpoint?: string;
  /** SQLite file so workflows survive a restart; undefined keeps everything in memory. */
  dbFile: string | undefined;
  namespace: string;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  log: Logger;
  ip?: string;
  searchAttributes?: readonly SearchAttributeKey[];
  dynamicConfig?: Record<string, unknown>;
  /** Output of the server; defaults to our stdout/stderr with a `temporal | ` prefix. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  startTimeoutMs?: number;
  /** Called as soon as the server process exists, before it is ready (the launcher records its pid). */
  onProcess?: (proc: ManagedProcess) => void;
}

export interface DevServer {
  /** host:port of the frontend, as clients and TEMPORAL_ADDRESS want it. */
  address: string;
  uiUrl: string | undefined;
  process: ManagedProcess;
  /** Milliseconds from spawn until the namespace answered. */
  startupMs: number;
  stop(): Promise<void>;
}

function searchAttributeTypeName(type: SearchAttributeType): string {
  // The CLI takes the proto shorthand names, case-insensitively: Keyword, KeywordList, ...
  return type === 'KEYWORD_LIST' ? 'KeywordList' : type.charAt(0) + type.slice(1).toLowerCase();
}

/** Starts `temporal server start-dev` and resolves once the namespace answers. */
export async function startTemporalDevServer(options: DevServerOptions): Promise<DevServer> {
  const ip = options.ip ?? '127.0.0.1';
  const address = `${ip}:${options.port}`;
  const args = ['server', 'start-dev', '--ip', ip, '--port', String(options.port), '--namespace', options.namespace];
  args.push('--log-level', options.logLevel ?? 'warn');
  if (options.uiPort === undefined) args.push('--headless');
  else {
    args.push('--ui-port', String(options.uiPort));
    if (options.uiCodecEndpoint !== undefined) args.push('--ui-codec-endpoint', options.uiCodecEndpoint);
  }
  if (options.dbFile !== undefined) {
    await fs.mkdir(path.dirname(options.dbFile), { recursive: true });
    args.push('--db-filename', options.dbFile);
    for (const [key, value] of Object.entries(DEV_SERVER_SQLITE_PRAGMAS)) args.push('--sqlite-pragma', `${key}=${value}`);
  }
  for (const key of options.searchAttributes ?? SEARCH_ATTRIBUTES) {
    args.push('--search-attribute', `${key.name}=${searchAttributeTypeName(key.type)}`);
  }
  for (const [key, value] of Object.entries({ ...DEV_SERVER_DYNAMIC_CONFIG, ...options.dynamicConfig })) {
    args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  }

  const log = options.log.child({ process: 'temporal' });
  log.info('starting Temporal dev server', { address, uiPort: options.uiPort, dbFile: options.dbFile ?? '(in memory)' });
  const startedAt = Date.now();
  const proc = startProcess({
    name: 'temporal',
    command: options.cliPath,
    args,
    // Go's collector runs when the heap doubles (GOGC=100); the dev server allocates fast and keeps
    // little, so letting the heap grow 5x before collecting cut its CPU per checkout by ~15% (and
    // raised flash-sale confirmations ~12%) for some tens of MB. GOGC from the environment wins.
    env: { ...process.env, GOGC: process.env.GOGC ?? '400' },
    // The CLI shuts down cleanly on SIGTERM within a second or two.
    stopSignal: 'SIGTERM',
    stopTimeoutMs: 10_000,
    stopWithParent: true,
    quietWhileStopping: true,
    onLine: options.onLine,
    log,
  });

  options.onProcess?.(proc);
  let exited: string | undefined;
  proc.onExit((info) => {
    exited = info.error
      ? `could not run the Temporal CLI: ${info.error}`
      : `the Temporal dev server exited during start-up (code ${info.code}, signal ${info.signal}): ${mostTellingLine(proc.recentOutput(40)) ?? 'no output'}`;
  });
  try {
    await waitUntil(`Temporal dev server at ${address}`, () => namespaceAnswers(address, options.namespace), {
      timeoutMs: options.startTimeoutMs ?? 60_000,
      intervalMs: 200,
      abortIf: () => exited,
    });
  } catch (err) {
    await proc.stop();
    throw new StartError(
      `${(err as Error).message}; fix that (a taken port: set TEMPORAL_PORT / TEMPORAL_UI_PORT), or set TEMPORAL_ADDRESS to a Temporal server you run`,
      { details: proc.recentOutput(40), cause: err },
    );
  }
  // The CLI registers --search-attribute only when it creates the database file: one made by an
  // older version of this launcher would lack attributes added since. Adding them is idempotent.
  try {
    const connection = await Connection.connect({ address });
    try {
      await ensureSearchAttributes(connection, options.namespace, log, options.searchAttributes);
    } finally {
      await connection.close();
    }
  } catch (err) {
    await proc.stop();
    throw err;
  }
  const startupMs = Date.now() - startedAt;
  log.info('Temporal dev server is ready', {
    address,
    ui: options.uiPort === undefined ? undefined : `http://${ip}:${options.uiPort}`,
    startupMs,
  });
  return {
    address,
    uiUrl: options.uiPort === undefined ? undefined : `http://${ip}:${options.uiPort}`,
    process: proc,
    startupMs,
    stop: async () => {
      await proc.stop();
      log.info('Temporal dev server stopped');
    },
  };
}

async function namespaceAnswers(address: string, namespace: string): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: 1000 });
  try {
    await connection.withDeadline(Date.now() + 2000, () => connection.workflowService.describeNamespace({ namespace }));
    return true;
  } finally {
    await connection.close();
  }
}

/**
 * Registers our search attributes on a server we did not start (TEMPORAL_ADDRESS). Idempotent:
 * only missing ones are added. An attribute that exists with another type is an error, since
 * workflows would fail to upsert it.
 */
export async function ensureSearchAttributes(
  connection: Connection,
  namespace: string,
  log?: Logger,
  keys: readonly SearchAttributeKey[] = SEARCH_ATTRIBUTES,
): Promise<string[]> {
  const { customAttributes, systemAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
  const existing = { ...systemAttributes, ...customAttributes };
  const missing: Record<string, NonNullable<ReturnType<typeof encodeSearchAttributeIndexedValueType>>> = {};
  for (const key of keys) {
    const wanted = encodeSearchAttributeIndexedValueType(key.type);
    if (wanted === undefined) throw new Error(`unknown search attribute type ${key.type}`);
    const current = existing[key.name];
    if (current === undefined) missing[key.name] = wanted;
    else if (current !== wanted) {
      throw new Error(
        `search attribute ${key.name} exists in namespace ${namespace} with another type (${current}); we need ${key.type}`,
      );
    }
  }
  const names = Object.keys(missing);
  if (names.length === 0) {
    log?.debug('search attributes already registered', { namespace });
    return [];
  }
  try {
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: missing });
  } catch (err) {
    // Two launchers racing to add the same attribute: the loser sees ALREADY_EXISTS (gRPC 6).
    if ((err as { code?: number }).code !== 6) {
      throw new Error(
        `could not register search attributes ${names.join(', ')} in namespace ${namespace}: ${(err as Error).message}. ` +
          'On Temporal Cloud, add them with tcld or the Cloud UI.',
        { cause: err },
      );
    }
  }
  log?.info('registered search attributes', { namespace, added: names });
  return names;
}
