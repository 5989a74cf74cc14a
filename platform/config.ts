// The one typed config loader shared by the launcher, the API, the workers and the simulators.
// Every setting has a default that works on a fresh machine and an environment variable to
// override it (README: Configuration).
import path from 'node:path';
import os from 'node:os';
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

function int(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  }
  return value;
}

function fraction(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || value > 1) {
    throw new Error(`${name} must be a fraction between 0 and 1, got "${raw}"`);
  }
  return value;
}

function bool(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === '1' || raw === 'true') return true;
  if (raw === '0' || raw === 'false') return false;
  throw new Error(`${name} must be 1 or 0 (true or false), got "${raw}"`);
}

function str(env: NodeJS.ProcessEnv, name: string, fallback: string): string {
  const raw = env[name];
  return raw === undefined || raw === '' ? fallback : raw;
}

/** `<prefix>_PER_SECOND` (0 disables) and `<prefix>_BURST` (default: twice the rate). */
function rateLimit(env: NodeJS.ProcessEnv, prefix: string, perSecondDefault: number): { perSecond: number; burst: number } | undefined {
  const perSecond = int(env, `${prefix}_PER_SECOND`, perSecondDefault);
  if (perSecond === 0) return undefined;
  const burst = int(env, `${prefix}_BURST`, 2 * perSecond);
  if (burst < 1) throw new Error(`${prefix}_BURST must be at least 1, got "${burst}"`);
  return { perSecond, burst };
}

/** WEBHOOK_REDELIVER_RATE_LIMIT_PER_MINUTE (0 disables) and _BURST: a costly request, so counted per minute. */
function redeliverRateLimit(env: NodeJS.ProcessEnv): { perSecond: number; burst: number } | undefined {
  const perMinute = int(env, 'WEBHOOK_REDELIVER_RATE_LIMIT_PER_MINUTE', DEFAULT_REDELIVER_RATE_LIMIT.perMinute);
  if (perMinute === 0) return undefined;
  const burst = int(env, 'WEBHOOK_REDELIVER_RATE_LIMIT_BURST', DEFAULT_REDELIVER_RATE_LIMIT.burst);
  if (burst < 1) throw new Error(`WEBHOOK_REDELIVER_RATE_LIMIT_BURST must be at least 1, got "${burst}"`);
  return { perSecond: perMinute / 60, burst };
}

function atLeastOne(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = int(env, name, fallback);
  if (value < 1) throw new Error(`${name} must be at least 1, got "${value}"`);
  return value;
}

/**
 * The operator key opens every merchant's records: long enough not to be guessed, and something a
 * Bearer header can carry. Never echoed in the error.
 */
function operatorApiKey(env: NodeJS.ProcessEnv, demoApiKey: string): string | undefined {
  const key = env.OPERATOR_API_KEY;
  if (key === undefined || key === '') return undefined;
  if (!/^[\x21-\x7e]{32,256}$/.test(key)) throw new Error('OPERATOR_API_KEY must be 32 to 256 visible ASCII characters without spaces (e.g. sk_op_ and 48 hex digits)');
  if (key === demoApiKey) throw new Error('OPERATOR_API_KEY must differ from DEMO_API_KEY');
  return key;
}

/** Intervals Temporal's retry policy takes (neither zero nor a maximum below the first) within the 3 days a delivery is retried. */
function webhookRetry(env: NodeJS.ProcessEnv): { retryInitialIntervalMs: number; retryMaximumIntervalMs: number } {
  const initial = int(env, 'WEBHOOK_RETRY_INITIAL_INTERVAL_MS', 30_000);
  const maximum = int(env, 'WEBHOOK_RETRY_MAX_INTERVAL_MS', 3_600_000);
  if (initial < 1 || initial > WEBHOOK_DELIVERY_WINDOW_MS) throw new Error(`WEBHOOK_RETRY_INITIAL_INTERVAL_MS must be from 1 to ${WEBHOOK_DELIVERY_WINDOW_MS}, got "${initial}"`);
  if (maximum < initial || maximum > WEBHOOK_DELIVERY_WINDOW_MS) {
    throw new Error(`WEBHOOK_RETRY_MAX_INTERVAL_MS must be from WEBHOOK_RETRY_INITIAL_INTERVAL_MS (${initial}) to ${WEBHOOK_DELIVERY_WINDOW_MS}, got "${maximum}"`);
  }
  return { retryInitialIntervalMs: initial, retryMaximumIntervalMs: maximum };
}

/** What every scheduled reconciliation waits: the workflow refuses a longer wait, so the schedule would only start failing runs. */
function reconciliationOlderThanMs(env: NodeJS.ProcessEnv): number {
  const ms = int(env, 'RECONCILIATION_OLDER_THAN_MS', 15 * 60_000);
  if (ms > MAX_RECONCILIATION_OLDER_THAN_MS) throw new Error(`RECONCILIATION_OLDER_THAN_MS must be at most ${MAX_RECONCILIATION_OLDER_THAN_MS} (366 days), got "${ms}"`);
  return ms;
}

/** Clients are promised that a key is honoured for 24 h; a shorter setting would break retries. */
function idempotencyKeyTtlHours(env: NodeJS.ProcessEnv): number {
  const hours = int(env, 'IDEMPOTENCY_KEY_TTL_HOURS', 24);
  if (hours < 24) throw new Error(`IDEMPOTENCY_KEY_TTL_HOURS must be at least 24, got "${hours}"`);
  return hours;
}

/** Comma-separated browser origins (`scheme://host[:port]`, nothing more), as a browser sends them in `Origin`. */
function origins(env: NodeJS.ProcessEnv, name: string, fallback: string[]): string[] {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  return raw.split(',').map((entry) => {
    const value = entry.trim();
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.origin !== value) {
      throw new Error(`${name} must be comma-separated origins such as http://127.0.0.1:8233 (no path, no trailing slash), got "${value}"`);
    }
    return value;
  });
}

/** Long enough that it cannot be guessed, and only characters that need no escaping in a URL path. */
function uiToken(env: NodeJS.ProcessEnv): string | undefined {
  const raw = env.CODEC_UI_TOKEN;
  if (raw === undefined || raw === '') return undefined;
  if (!/^[A-Za-z0-9_-]{32,128}$/.test(raw)) throw new Error('CODEC_UI_TOKEN must be 32 to 128 letters, digits, "_" or "-"');
  return raw;
}

const PROJECT_ROOT = path.resolve(import.meta.dirname, '..');

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const rootDir = PROJECT_ROOT;
  const dataDir = path.resolve(rootDir, str(env, 'DATA_DIR', '.data'));
  const postgresPort = int(env, 'POSTGRES_PORT', 5433);
  const databaseUrl = str(env, 'DATABASE_URL', '');
  const temporalAddress = str(env, 'TEMPORAL_ADDRESS', '');
  const cardHost = str(env, 'CARD_NETWORK_HOST', '127.0.0.1');
  const cardPort = int(env, 'CARD_NETWORK_PORT', 4100);
  const bankHost = str(env, 'BANK_HOST', '127.0.0.1');
  const bankPort = int(env, 'BANK_PORT', 4200);
  const logLevel = str(env, 'LOG_LEVEL', 'info');
  const workerProcesses = int(env, 'WORKER_PROCESSES', 1);
  if (workerProcesses < 1) throw new Error(`WORKER_PROCESSES must be at least 1, got ${workerProcesses}`);
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) {
    throw new Error(`LOG_LEVEL must be debug, info, warn or error, got "${logLevel}"`);
  }
  const cacheHome = str(env, 'XDG_CACHE_HOME', path.join(os.homedir(), '.cache'));
  const cliVersion = str(env, 'TEMPORAL_CLI_VERSION', 'v1.5.1');
  const uiPort = int(env, 'TEMPORAL_UI_PORT', 8233);
  const resolvedDatabaseUrl = databaseUrl || `postgresql://postgres:postgres@127.0.0.1:${postgresPort}/payments`;
  const demoApiKey = str(env, 'DEMO_API_KEY', 'sk_test_demo');
  return {
    rootDir,
    dataDir,
    api: {
      host: str(env, 'API_HOST', '127.0.0.1'),
      port: int(env, 'API_PORT', 3000),
      workflowAnswerTimeoutMs: int(env, 'API_WORKFLOW_ANSWER_TIMEOUT_MS', 30_000),
      idempotencyKeyTtlHours: idempotencyKeyTtlHours(env),
      rateLimit: rateLimit(env, 'API_RATE_LIMIT', 2_000),
      ipRateLimit: rateLimit(env, 'API_IP_RATE_LIMIT', 5_000),
    },
    databaseUrl: resolvedDatabaseUrl,
    embeddedPostgres: databaseUrl === '',
    postgresPort,
    temporal: {
      address: temporalAddress || `127.0.0.1:${int(env, 'TEMPORAL_PORT', 7233)}`,
      external: temporalAddress !== '',
      namespace: str(env, 'TEMPORAL_NAMESPACE', 'default'),
      taskQueue: str(env, 'TEMPORAL_TASK_QUEUE', 'payments'),
      uiPort,
      cliPath: env.TEMPORAL_CLI_PATH || undefined,
      cliVersion,
      cacheDir: path.join(cacheHome, 'payment-orchestrator', `temporal-cli-${cliVersion}`),
    },
    cardNetwork: {
      url: str(env, 'CARD_NETWORK_URL', `http://${cardHost}:${cardPort}`),
      host: cardHost,
      port: cardPort,
      latencyMs: int(env, 'CARD_NETWORK_LATENCY_MS', 100),
      latencyJitterMs: int(env, 'CARD_NETWORK_LATENCY_JITTER_MS', 0),
      errorRate: fraction(env, 'CARD_NETWORK_ERROR_RATE', 0),
      lostResponseRate: fraction(env, 'CARD_NETWORK_LOST_RESPONSE_RATE', 0),
      requestTimeoutMs: int(env, 'CARD_NETWORK_TIMEOUT_MS', 10_000),
      maxProcessingMs: int(env, 'CARD_NETWORK_MAX_PROCESSING_MS', 30_000),
      databaseUrl: env.CARD_NETWORK_DATABASE_URL || undefined,
    },
    bank: {
      url: str(env, 'BANK_URL', `http://${bankHost}:${bankPort}`),
      host: bankHost,
      port: bankPort,
      latencyMs: int(env, 'BANK_LATENCY_MS', 100),
      errorRate: fraction(env, 'BANK_ERROR_RATE', 0),
      lostResponseRate: fraction(env, 'BANK_LOST_RESPONSE_RATE', 0),
      requestTimeoutMs: int(env, 'BANK_TIMEOUT_MS', 10_000),
      maxProcessingMs: int(env, 'BANK_MAX_PROCESSING_MS', 30_000),
      databaseUrl: str(env, 'BANK_DATABASE_URL', resolvedDatabaseUrl),
    },
    payouts: {
      delayMs: int(env, 'PAYOUT_DELAY_MS', 0),
    },
    webhooks: {
      ...webhookRetry(env),
      allowPrivateHosts: bool(env, 'WEBHOOK_ALLOW_PRIVATE_HOSTS', false),
      maxEndpointsPerMerchant: atLeastOne(env, 'WEBHOOK_MAX_ENDPOINTS_PER_MERCHANT', DEFAULT_MAX_WEBHOOK_ENDPOINTS),
      redeliverRateLimit: redeliverRateLimit(env),
      maxConcurrentDeliveries: atLeastOne(env, 'WEBHOOK_MAX_CONCURRENT_DELIVERIES', DEFAULT_MAX_CONCURRENT_DELIVERIES),
    },
    reconciliation: {
      interval: str(env, 'RECONCILIATION_INTERVAL', '1h'),
      olderThanMs: reconciliationOlderThanMs(env),
    },
    demo: { merchantId: 'demo', apiKey: demoApiKey },
    operator: { apiKey: operatorApiKey(env, demoApiKey) },
    payloadEncryption: { keys: env[PAYLOAD_KEYS_SETTING] ? parsePayloadKeys(env[PAYLOAD_KEYS_SETTING]) : [] },
    codec: {
      host: str(env, 'CODEC_HOST', '127.0.0.1'),
      port: int(env, 'CODEC_PORT', 8234),
      uiOrigins: origins(env, 'CODEC_UI_ORIGINS', [`http://127.0.0.1:${uiPort}`, `http://localhost:${uiPort}`]),
      uiToken: uiToken(env),
    },
    logLevel: logLevel as Config['logLevel'],
    workerProcesses,
  };
}
