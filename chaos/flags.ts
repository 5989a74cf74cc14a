// Command-line flags of the chaos suite. Defaults are the "default settings": the run that
// must pass every invariant several times in a row. `--short` is the CI preset (test/chaos.test.ts).
export interface ChaosFlags {
  /** How long the load runs, in seconds; faults are injected within this window. */
  durationS: number;
  /** Worker processes on the stack's task queue. */
  workers: number;
  workerKills: number;
  apiKills: number;
  serverRestarts: number;
  dbRestarts: number;
  /** Requests the load keeps in flight at once. */
  concurrency: number;
  /** Simulator faults, applied to the card network and the bank alike. */
  errorRate: number;
  lostResponseRate: number;
  latencyMs: number;
  /** Card network only: the bank simulator has no jitter (platform/config.ts). */
  jitterMs: number;
  /** Seeds the load mix and the fault schedule (not the simulators' coin flips, nor timing). */
  seed: number;
  /** How long to wait for every workflow to finish after the load stopped. */
  quiesceTimeoutS: number;
  /** Show the stack's and servers' output as it comes. */
  logs: boolean;
  /** Keep the data directory (PostgreSQL cluster, Temporal SQLite file) for a post-mortem. */
  keepData: boolean;
  short: boolean;
}

export class FlagError extends Error {}

const DEFAULTS: ChaosFlags = {
  durationS: 90,
  workers: 2,
  workerKills: 3,
  apiKills: 1,
  serverRestarts: 1,
  dbRestarts: 1,
  concurrency: 12,
  errorRate: 0.05,
  lostResponseRate: 0.05,
  latencyMs: 100,
  jitterMs: 200,
  seed: 0,
  quiesceTimeoutS: 300,
  logs: false,
  keepData: false,
  short: false,
};

/** `--short`: ~30 s of load with one fault of each kind, for CI. Explicit flags still win. */
const SHORT: Partial<ChaosFlags> = { durationS: 30, workerKills: 1, apiKills: 1, serverRestarts: 1, dbRestarts: 1, concurrency: 8 };

type Kind = 'int' | 'posint' | 'fraction' | 'bool';
const FLAGS: Record<string, { key: keyof ChaosFlags; kind: Kind }> = {
  '--duration-s': { key: 'durationS', kind: 'posint' },
  '--workers': { key: 'workers', kind: 'posint' },
  '--worker-kills': { key: 'workerKills', kind: 'int' },
  '--api-kills': { key: 'apiKills', kind: 'int' },
  '--server-restarts': { key: 'serverRestarts', kind: 'int' },
  '--db-restarts': { key: 'dbRestarts', kind: 'int' },
  '--concurrency': { key: 'concurrency', kind: 'posint' },
  '--error-rate': { key: 'errorRate', kind: 'fraction' },
  '--lost-response-rate': { key: 'lostResponseRate', kind: 'fraction' },
  '--latency-ms': { key: 'latencyMs', kind: 'int' },
  '--jitter-ms': { key: 'jitterMs', kind: 'int' },
  '--seed': { key: 'seed', kind: 'int' },
  '--quiesce-timeout-s': { key: 'quiesceTimeoutS', kind: 'posint' },
  '--logs': { key: 'logs', kind: 'bool' },
  '--keep-data': { key: 'keepData', kind: 'bool' },
  '--short': { key: 'short', kind: 'bool' },
};

export const USAGE = `usage: npm run chaos -- [flags]
  --duration-s N          seconds of load (default ${DEFAULTS.durationS}; --short: ${SHORT.durationS})
  --workers N             worker processes (default ${DEFAULTS.workers})
  --worker-kills N        SIGKILLs of a random worker (default ${DEFAULTS.workerKills}; --short: ${SHORT.workerKills})
  --api-kills N           SIGKILLs of the API (default ${DEFAULTS.apiKills})
  --server-restarts N     Temporal server crashes + restarts (default ${DEFAULTS.serverRestarts})
  --db-restarts N         PostgreSQL restarts, crash or fast shutdown (default ${DEFAULTS.dbRestarts})
  --concurrency N         requests in flight (default ${DEFAULTS.concurrency})
  --error-rate F          simulators answer 503 without acting (default ${DEFAULTS.errorRate})
  --lost-response-rate F  simulators act but lose the response (default ${DEFAULTS.lostResponseRate})
  --latency-ms N          simulator latency (default ${DEFAULTS.latencyMs})
  --jitter-ms N           extra card-network latency, uniform 0..N (default ${DEFAULTS.jitterMs})
  --seed N                seed of the load mix and fault schedule (default: random)
  --quiesce-timeout-s N   how long to wait for quiescence (default ${DEFAULTS.quiesceTimeoutS})
  --short                 CI preset: ~30 s of load, one fault of each kind
  --logs                  show the processes' output
  --keep-data             keep the data directory after the run`;

export function parseFlags(argv: readonly string[]): ChaosFlags {
  const given: Partial<Record<keyof ChaosFlags, number | boolean>> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') throw new FlagError(USAGE);
    const [name, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const spec = FLAGS[name];
    if (!spec) throw new FlagError(`unknown flag ${arg}\n${USAGE}`);
    if (spec.kind === 'bool') {
      if (inline !== undefined && inline !== 'true' && inline !== 'false') throw new FlagError(`${name} takes no value`);
      given[spec.key] = inline !== 'false';
      continue;
    }
    const raw = inline ?? argv[++i];
    if (raw === undefined) throw new FlagError(`${name} needs a value`);
    const value = Number(raw);
    const ok =
      spec.kind === 'fraction' ? Number.isFinite(value) && value >= 0 && value < 1 : Number.isSafeInteger(value) && value >= (spec.kind === 'posint' ? 1 : 0);
    if (!ok) throw new FlagError(`${name} must be ${spec.kind === 'fraction' ? 'a fraction in [0, 1)' : spec.kind === 'posint' ? 'a positive integer' : 'a non-negative integer'}, got "${raw}"`);
    given[spec.key] = value;
  }
  const flags = { ...DEFAULTS, ...(given.short ? SHORT : {}), ...given } as ChaosFlags;
  if (given.seed === undefined) flags.seed = Math.floor(Math.random() * 2 ** 31);
  return flags;
}
