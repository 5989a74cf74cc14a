// The one typed config loader shared by the launcher, the API, the workers and the simulators.
// Every setting has a default that works on a fresh machine and an environment variable to
// override it (README: Configuration). The variables are one zod schema (`settings` below): each
// line names a variable, its default and its check; a bad value stops the process at start with a
// message naming the variable. `Config` is what the processes read, built from the parsed settings.
import path from 'node:path';
import os from 'node:os';
import { z } from 'zod';
import { DEFAULT_MAX_CONCURRENT_DELIVERIES, DEFAULT_MAX_WEBHOOK_ENDPOINTS, DEFAULT_REDELIVER_RATE_LIMIT } from '../domain/events.js';
import { MAX_RECONCILIATION_OLDER_THAN_MS, WEBHOOK_DELIVERY_WINDOW_MS } from '../domain/index.js';
import { parsePayloadKeys, PAYLOAD_KEYS_SETTING, type PayloadKey } from './payload-keys.js';

export interface Config {
  /** Project root; `.data/` below it holds embedded PostgreSQL's and Temporal's files. */
  rootDir: string;
  dataDir: string;
  api: {
    host: string;
    port: number;
    /** How long a request waits for its workflow (reservation, capture, refund...) before a 503. */
    workflowAnswerTimeoutMs: number;
    /**
     * How long an Idempotency-Key is remembered (its first answer replayed). At least 24 h, as
     * Stripe promises clients; an expired key is treated as new.
     */
    idempotencyKeyTtlHours: number;
    /**
     * Requests per merchant (per API process): a token bucket refilled at `perSecond` holding up
     * to `burst`. Undefined when API_RATE_LIMIT_PER_SECOND is 0. The default carries a flash sale
     * from one merchant's server (hundreds of checkouts a second) with room to spare.
     */
    rateLimit: { perSecond: number; burst: number } | undefined;
    /** Requests per client address before authentication; coarser, so random keys cannot hammer the database. */
    ipRateLimit: { perSecond: number; burst: number } | undefined;
  };
  /** Set when DATABASE_URL is given; otherwise the launcher starts embedded PostgreSQL. */
  databaseUrl: string;
  embeddedPostgres: boolean;
  postgresPort: number;
  temporal: {
    /** host:port of the frontend. When TEMPORAL_ADDRESS is set no server is started. */
    address: string;
    external: boolean;
    namespace: string;
    taskQueue: string;
    uiPort: number;
    /** Explicit path to a `temporal` CLI binary (otherwise PATH, then a cached build). */
    cliPath: string | undefined;
    cliVersion: string;
    cacheDir: string;
  };
  cardNetwork: {
    url: string;
    host: string;
    port: number;
    latencyMs: number;
    /** Extra delay drawn uniformly from 0..this per request, so concurrent calls overtake each other. */
    latencyJitterMs: number;
    /** Fraction (0..1) of mutating requests the simulator answers 503 without acting. */
    errorRate: number;
    /** Fraction (0..1) of mutating requests the simulator acts on but never answers. */
    lostResponseRate: number;
    /** Client-side limit per request; past it the outcome is unknown and the caller looks up by key. */
    requestTimeoutMs: number;
    /**
     * The longest the network takes to act on a request it received: past it, a lookup by key that
     * finds nothing is final (the simulator enforces it; a real network documents it).
     */
    maxProcessingMs: number;
    /** The simulator's own database when set; otherwise it shares `databaseUrl` (own schema). */
    databaseUrl: string | undefined;
  };
  /** The bank simulator (payouts), and how clients reach it. */
  bank: {
    url: string;
    host: string;
    port: number;
    /** Delay before every transfer request acts. */
    latencyMs: number;
    /** Fraction (0..1) of transfer requests the simulator answers 503 without acting. */
    errorRate: number;
    /** Fraction (0..1) of transfer requests the simulator acts on but never answers. */
    lostResponseRate: number;
    /** Client-side limit per request; past it the outcome is unknown and the caller looks up by key. */
    requestTimeoutMs: number;
    /** The longest the bank takes to act on a request it received (see cardNetwork.maxProcessingMs). */
    maxProcessingMs: number;
    /** The simulator's database: BANK_DATABASE_URL, else `databaseUrl` (its own schema `bank`). */
    databaseUrl: string;
  };
  /** Payouts (wallet -> bank account). */
  payouts: {
    /** How long after the request a payout without `scheduledAt` is sent to the bank; 0: at once. */
    delayMs: number;
  };
  /** Webhook endpoints and deliveries (README: Events and webhooks). */
  webhooks: {
    /** Deliveries are retried from `retryInitialIntervalMs`, doubling up to `retryMaximumIntervalMs`, for 3 days. */
    retryInitialIntervalMs: number;
    retryMaximumIntervalMs: number;
    /**
     * WEBHOOK_ALLOW_PRIVATE_HOSTS: endpoints may be on loopback, private, link-local... hosts
     * (platform/network-policy.ts). Off by default; for local development and tests only.
     */
    allowPrivateHosts: boolean;
    /** Endpoints one merchant may have at once. */
    maxEndpointsPerMerchant: number;
    /** `POST /v1/events/:id/redeliver` per merchant (per API process); undefined when its rate is 0. */
    redeliverRateLimit: { perSecond: number; burst: number } | undefined;
    /** Deliveries in flight at once in one worker process (its webhook task queue's activity slots). */
    maxConcurrentDeliveries: number;
  };
  /** The reconciliation schedule: every `interval` (a Temporal duration such as '1h'), records older than `olderThanMs`. */
  reconciliation: { interval: string; olderThanMs: number };
  demo: { merchantId: string; apiKey: string };
  /**
   * The operator's API key (OPERATOR_API_KEY): platform-wide actions, and the payload codec
   * server. Unset: no operator actions in this process (`npm start` makes a development key once and
   * keeps it under DATA_DIR/secrets).
   */
  operator: { apiKey: string | undefined };
  /**
   * Keys of the payload codec (platform/payload-codec.ts), newest first: the first encrypts, all
   * decrypt. Empty when PAYLOAD_ENCRYPTION_KEYS is unset: such a process cannot talk to Temporal
   * (`npm start` makes a development key once and keeps it under DATA_DIR/secrets).
   */
  payloadEncryption: { keys: readonly PayloadKey[] };
  /** The codec server (codec-server/): the Web UI and the CLI read encrypted payloads through it. */
  codec: {
    host: string;
    port: number;
    /** Browser origins allowed to call it (CORS): the Web UI's, by either name of the loopback host. */
    uiOrigins: readonly string[];
    /**
     * The secret path segment of the endpoint the Web UI calls (`/ui/<token>`), which cannot send
     * the operator key; undefined: no such endpoint. `npm start` makes one per run.
     */
    uiToken: string | undefined;
  };
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** Worker processes `npm start` runs (WORKER_PROCESSES); they share the task queue. */
  workerProcesses: number;
}

// ---------------------------------------------------------------------------------------------
// One environment variable each. An unset or empty variable takes the default.

const unset = (raw: string | undefined): raw is undefined | '' => raw === undefined || raw === '';

const text = (fallback: string) => z.string().optional().transform((raw) => (unset(raw) ? fallback : raw));
const optionalText = () => z.string().optional().transform((raw) => (unset(raw) ? undefined : raw));

/**
 * One variable read by `read`, which answers undefined for a value it refuses (`rule` then says
 * why, after the variable's name).
 */
function setting<T, F>(fallback: F, rule: string, read: (raw: string) => T | undefined) {
  return z
    .string()
    .optional()
    .transform((raw, ctx): T | F => {
      if (unset(raw)) return fallback;
      const value = read(raw);
      if (value !== undefined) return value;
      ctx.addIssue({ code: 'custom', message: rule });
      return z.NEVER;
    });
}

/** A whole number within [min, max]; `fallback` undefined: no default (the value stays undefined). */
function integer<F extends number | undefined>(fallback: F, { min = 0, max, message }: { min?: number; max?: number; message?: string } = {}) {
  const rule = message ?? (max === undefined ? (min === 0 ? 'must be a non-negative integer' : `must be an integer of at least ${min}`) : `must be an integer from ${min} to ${max}`);
  return setting(fallback, rule, (raw) => {
    const value = Number(raw);
    return Number.isSafeInteger(value) && value >= min && (max === undefined || value <= max) ? value : undefined;
  });
}

const fraction = (fallback: number) =>
  setting(fallback, 'must be a fraction between 0 and 1', (raw) => {
    const value = Number(raw);
    return Number.isFinite(value) && value >= 0 && value <= 1 ? value : undefined;
  });

const flag = (fallback: boolean) =>
  setting(fallback, 'must be 1 or 0 (true or false)', (raw) => (raw === '1' || raw === 'true' ? true : raw === '0' || raw === 'false' ? false : undefined));

/** A value checked by `pattern`; a secret's message never repeats it (see SECRETS). */
const matching = (pattern: RegExp, message: string) => setting(undefined, message, (raw) => (pattern.test(raw) ? raw : undefined));

/** Comma-separated browser origins (`scheme://host[:port]`, nothing more), as a browser sends them in `Origin`. */
const origins = () =>
  setting(undefined, 'must be comma-separated origins such as http://127.0.0.1:8233 (no path, no trailing slash)', (raw) => {
    const list = raw.split(',').map((entry) => entry.trim());
    return list.every(isOrigin) ? list : undefined;
  });

function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === value;
  } catch {
    return false;
  }
}

function payloadKeys() {
  return z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (unset(raw)) return [];
      try {
        return parsePayloadKeys(raw);
      } catch (err) {
        // Its message names the setting and never the keys.
        ctx.addIssue({ code: 'custom', message: (err as Error).message, params: { whole: true } });
        return z.NEVER;
      }
    });
}

/** Settings whose value never appears in a message. */
const SECRETS = new Set(['OPERATOR_API_KEY', 'DEMO_API_KEY', 'CODEC_UI_TOKEN', PAYLOAD_KEYS_SETTING, 'DATABASE_URL', 'BANK_DATABASE_URL', 'CARD_NETWORK_DATABASE_URL']);

const settings = z
  .object({
    DATA_DIR: text('.data'),
    XDG_CACHE_HOME: text(path.join(os.homedir(), '.cache')),
    LOG_LEVEL: z
      .string()
      .optional()
      .transform((raw) => (unset(raw) ? 'info' : raw))
      .pipe(z.enum(['debug', 'info', 'warn', 'error'], { error: 'must be debug, info, warn or error' })),
    WORKER_PROCESSES: integer(1, { min: 1 }),

    API_HOST: text('127.0.0.1'),
    API_PORT: integer(3000),
    API_WORKFLOW_ANSWER_TIMEOUT_MS: integer(30_000),
    // Clients are promised that a key is honoured for 24 h; a shorter setting would break retries.
    IDEMPOTENCY_KEY_TTL_HOURS: integer(24, { min: 24 }),
    // `<prefix>_PER_SECOND` (0 disables) and `<prefix>_BURST` (default: twice the rate).
    API_RATE_LIMIT_PER_SECOND: integer(2_000),
    API_RATE_LIMIT_BURST: integer(undefined, { min: 1 }),
    API_IP_RATE_LIMIT_PER_SECOND: integer(5_000),
    API_IP_RATE_LIMIT_BURST: integer(undefined, { min: 1 }),

    DATABASE_URL: optionalText(),
    POSTGRES_PORT: integer(5433),

    TEMPORAL_ADDRESS: optionalText(),
    TEMPORAL_PORT: integer(7233),
    TEMPORAL_NAMESPACE: text('default'),
    TEMPORAL_TASK_QUEUE: text('payments'),
    TEMPORAL_UI_PORT: integer(8233),
    TEMPORAL_CLI_PATH: optionalText(),
    TEMPORAL_CLI_VERSION: text('v1.5.1'),

    CARD_NETWORK_URL: optionalText(),
    CARD_NETWORK_HOST: text('127.0.0.1'),
    CARD_NETWORK_PORT: integer(4100),
    CARD_NETWORK_LATENCY_MS: integer(100),
    CARD_NETWORK_LATENCY_JITTER_MS: integer(0),
    CARD_NETWORK_ERROR_RATE: fraction(0),
    CARD_NETWORK_LOST_RESPONSE_RATE: fraction(0),
    CARD_NETWORK_TIMEOUT_MS: integer(10_000),
    CARD_NETWORK_MAX_PROCESSING_MS: integer(30_000),
    CARD_NETWORK_DATABASE_URL: optionalText(),

    BANK_URL: optionalText(),
    BANK_HOST: text('127.0.0.1'),
    BANK_PORT: integer(4200),
    BANK_LATENCY_MS: integer(100),
    BANK_ERROR_RATE: fraction(0),
    BANK_LOST_RESPONSE_RATE: fraction(0),
    BANK_TIMEOUT_MS: integer(10_000),
    BANK_MAX_PROCESSING_MS: integer(30_000),
    BANK_DATABASE_URL: optionalText(),

    PAYOUT_DELAY_MS: integer(0),

    // Intervals Temporal's retry policy takes (neither zero nor a maximum below the first) within
    // the 3 days a delivery is retried.
    WEBHOOK_RETRY_INITIAL_INTERVAL_MS: integer(30_000, { min: 1, max: WEBHOOK_DELIVERY_WINDOW_MS }),
    WEBHOOK_RETRY_MAX_INTERVAL_MS: integer(3_600_000, { min: 1, max: WEBHOOK_DELIVERY_WINDOW_MS }),
    WEBHOOK_ALLOW_PRIVATE_HOSTS: flag(false),
    WEBHOOK_MAX_ENDPOINTS_PER_MERCHANT: integer(DEFAULT_MAX_WEBHOOK_ENDPOINTS, { min: 1 }),
    // A costly request, so counted per minute (0 disables).
    WEBHOOK_REDELIVER_RATE_LIMIT_PER_MINUTE: integer(DEFAULT_REDELIVER_RATE_LIMIT.perMinute),
    WEBHOOK_REDELIVER_RATE_LIMIT_BURST: integer(DEFAULT_REDELIVER_RATE_LIMIT.burst, { min: 1 }),
    WEBHOOK_MAX_CONCURRENT_DELIVERIES: integer(DEFAULT_MAX_CONCURRENT_DELIVERIES, { min: 1 }),

    RECONCILIATION_INTERVAL: text('1h'),
    // The workflow refuses a longer wait, so the schedule would only start failing runs.
    RECONCILIATION_OLDER_THAN_MS: integer(15 * 60_000, {
      max: MAX_RECONCILIATION_OLDER_THAN_MS,
      message: `must be at most ${MAX_RECONCILIATION_OLDER_THAN_MS} (366 days)`,
    }),

    DEMO_API_KEY: text('sk_test_demo'),
    // The operator key opens every merchant's records: long enough not to be guessed, and something
    // a Bearer header can carry.
    OPERATOR_API_KEY: matching(/^[\x21-\x7e]{32,256}$/, 'must be 32 to 256 visible ASCII characters without spaces (e.g. sk_op_ and 48 hex digits)'),
    [PAYLOAD_KEYS_SETTING]: payloadKeys(),

    CODEC_HOST: text('127.0.0.1'),
    CODEC_PORT: integer(8234),
    CODEC_UI_ORIGINS: origins(),
    // Long enough that it cannot be guessed, and only characters that need no escaping in a URL path.
    CODEC_UI_TOKEN: matching(/^[A-Za-z0-9_-]{32,128}$/, 'must be 32 to 128 letters, digits, "_" or "-"'),
  })
  .superRefine((s, ctx) => {
    if (s.WEBHOOK_RETRY_MAX_INTERVAL_MS < s.WEBHOOK_RETRY_INITIAL_INTERVAL_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['WEBHOOK_RETRY_MAX_INTERVAL_MS'],
        message: `must be from WEBHOOK_RETRY_INITIAL_INTERVAL_MS (${s.WEBHOOK_RETRY_INITIAL_INTERVAL_MS}) to ${WEBHOOK_DELIVERY_WINDOW_MS}`,
      });
    }
    if (s.OPERATOR_API_KEY !== undefined && s.OPERATOR_API_KEY === s.DEMO_API_KEY) {
      ctx.addIssue({ code: 'custom', path: ['OPERATOR_API_KEY'], message: 'must differ from DEMO_API_KEY' });
    }
  });
type Settings = z.output<typeof settings>;

/** The first problem, as one line naming the variable (and its value, unless it is a secret). */
function describe(issue: z.core.$ZodIssue, env: NodeJS.ProcessEnv): string {
  const name = String(issue.path[0] ?? 'configuration');
  if ((issue as { params?: { whole?: boolean } }).params?.whole) return issue.message;
  const raw = env[name];
  return `${name} ${issue.message}${SECRETS.has(name) || raw === undefined ? '' : `, got "${raw}"`}`;
}

function perSecond(rate: number, burst: number | undefined): { perSecond: number; burst: number } | undefined {
  return rate === 0 ? undefined : { perSecond: rate, burst: burst ?? 2 * rate };
}

const PROJECT_ROOT = path.resolve(import.meta.dirname, '..');

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = settings.safeParse(env);
  if (!parsed.success) throw new Error(describe(parsed.error.issues[0]!, env));
  return configOf(parsed.data);
}

function configOf(s: Settings): Config {
  const rootDir = PROJECT_ROOT;
  const databaseUrl = s.DATABASE_URL ?? `postgresql://postgres:postgres@127.0.0.1:${s.POSTGRES_PORT}/payments`;
  return {
    rootDir,
    dataDir: path.resolve(rootDir, s.DATA_DIR),
    api: {
      host: s.API_HOST,
      port: s.API_PORT,
      workflowAnswerTimeoutMs: s.API_WORKFLOW_ANSWER_TIMEOUT_MS,
      idempotencyKeyTtlHours: s.IDEMPOTENCY_KEY_TTL_HOURS,
      rateLimit: perSecond(s.API_RATE_LIMIT_PER_SECOND, s.API_RATE_LIMIT_BURST),
      ipRateLimit: perSecond(s.API_IP_RATE_LIMIT_PER_SECOND, s.API_IP_RATE_LIMIT_BURST),
    },
    databaseUrl,
    embeddedPostgres: s.DATABASE_URL === undefined,
    postgresPort: s.POSTGRES_PORT,
    temporal: {
      address: s.TEMPORAL_ADDRESS ?? `127.0.0.1:${s.TEMPORAL_PORT}`,
      external: s.TEMPORAL_ADDRESS !== undefined,
      namespace: s.TEMPORAL_NAMESPACE,
      taskQueue: s.TEMPORAL_TASK_QUEUE,
      uiPort: s.TEMPORAL_UI_PORT,
      cliPath: s.TEMPORAL_CLI_PATH,
      cliVersion: s.TEMPORAL_CLI_VERSION,
      cacheDir: path.join(s.XDG_CACHE_HOME, 'payment-orchestrator', `temporal-cli-${s.TEMPORAL_CLI_VERSION}`),
    },
    cardNetwork: {
      url: s.CARD_NETWORK_URL ?? `http://${s.CARD_NETWORK_HOST}:${s.CARD_NETWORK_PORT}`,
      host: s.CARD_NETWORK_HOST,
      port: s.CARD_NETWORK_PORT,
      latencyMs: s.CARD_NETWORK_LATENCY_MS,
      latencyJitterMs: s.CARD_NETWORK_LATENCY_JITTER_MS,
      errorRate: s.CARD_NETWORK_ERROR_RATE,
      lostResponseRate: s.CARD_NETWORK_LOST_RESPONSE_RATE,
      requestTimeoutMs: s.CARD_NETWORK_TIMEOUT_MS,
      maxProcessingMs: s.CARD_NETWORK_MAX_PROCESSING_MS,
      databaseUrl: s.CARD_NETWORK_DATABASE_URL,
    },
    bank: {
      url: s.BANK_URL ?? `http://${s.BANK_HOST}:${s.BANK_PORT}`,
      host: s.BANK_HOST,
      port: s.BANK_PORT,
      latencyMs: s.BANK_LATENCY_MS,
      errorRate: s.BANK_ERROR_RATE,
      lostResponseRate: s.BANK_LOST_RESPONSE_RATE,
      requestTimeoutMs: s.BANK_TIMEOUT_MS,
      maxProcessingMs: s.BANK_MAX_PROCESSING_MS,
      databaseUrl: s.BANK_DATABASE_URL ?? databaseUrl,
    },
    payouts: { delayMs: s.PAYOUT_DELAY_MS },
    webhooks: {
      retryInitialIntervalMs: s.WEBHOOK_RETRY_INITIAL_INTERVAL_MS,
      retryMaximumIntervalMs: s.WEBHOOK_RETRY_MAX_INTERVAL_MS,
      allowPrivateHosts: s.WEBHOOK_ALLOW_PRIVATE_HOSTS,
      maxEndpointsPerMerchant: s.WEBHOOK_MAX_ENDPOINTS_PER_MERCHANT,
      redeliverRateLimit:
        s.WEBHOOK_REDELIVER_RATE_LIMIT_PER_MINUTE === 0
          ? undefined
          : { perSecond: s.WEBHOOK_REDELIVER_RATE_LIMIT_PER_MINUTE / 60, burst: s.WEBHOOK_REDELIVER_RATE_LIMIT_BURST },
      maxConcurrentDeliveries: s.WEBHOOK_MAX_CONCURRENT_DELIVERIES,
    },
    reconciliation: { interval: s.RECONCILIATION_INTERVAL, olderThanMs: s.RECONCILIATION_OLDER_THAN_MS },
    demo: { merchantId: 'demo', apiKey: s.DEMO_API_KEY },
    operator: { apiKey: s.OPERATOR_API_KEY },
    payloadEncryption: { keys: s[PAYLOAD_KEYS_SETTING] },
    codec: {
      host: s.CODEC_HOST,
      port: s.CODEC_PORT,
      uiOrigins: s.CODEC_UI_ORIGINS ?? [`http://127.0.0.1:${s.TEMPORAL_UI_PORT}`, `http://localhost:${s.TEMPORAL_UI_PORT}`],
      uiToken: s.CODEC_UI_TOKEN,
    },
    logLevel: s.LOG_LEVEL,
    workerProcesses: s.WORKER_PROCESSES,
  };
}
