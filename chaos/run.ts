// `npm run chaos`: a mixed load of card and wallet checkouts, refunds, top-ups and payouts against
// the whole stack on real processes, while workers are SIGKILLed, the Temporal server crashes and
// PostgreSQL restarts, and the simulators fail, lag and lose responses at set rates. Then it waits
// for quiescence and checks the invariants (chaos/README.md). The human summary goes to stderr; the
// last line on stdout is one JSON object. Exit 0: every invariant holds; 1: one does not; 2: bad
// flags, or the run itself could not be carried out.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import { createLogger } from '../platform/logger.js';
import { payloadDataConverter } from '../platform/payload-codec.js';
import { parsePayloadKeys } from '../platform/payload-keys.js';
import { startInfrastructure, type Infrastructure } from '../scripts/infrastructure.js';
import { startStack, type Stack } from '../scripts/stack.js';
import { ApiClient } from './api-client.js';
import { planFaults, runFaults, type FaultCounts } from './faults.js';
import { FlagError, parseFlags, type ChaosFlags } from './flags.js';
import { checkInvariants, type InvariantReport } from './invariants.js';
import { Load } from './load.js';
import { createRng } from './rng.js';

const say = (line: string) => process.stderr.write(`chaos | ${line}\n`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

class RunError extends Error {}

async function main(): Promise<number> {
  let flags: ChaosFlags;
  try {
    flags = parseFlags(process.argv.slice(2));
  } catch (err) {
    if (err instanceof FlagError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
  // The suite restarts PostgreSQL and Temporal, so it always brings its own. Under vitest (or a
  // shell set up for the scale-out path) DATABASE_URL / TEMPORAL_ADDRESS point at servers we must
  // not restart; loadConfig() would take them as "external", so they are cleared before it runs.
  delete process.env.DATABASE_URL;
  delete process.env.TEMPORAL_ADDRESS;

  const runId = randomBytes(3).toString('hex');
  const rng = createRng(flags.seed);
  say(`seed ${flags.seed}, run ${runId}: ${flags.durationS}s of load, ${flags.workers} workers, ${flags.workerKills} worker kills, ${flags.apiKills} API kills, ${flags.serverRestarts} Temporal restarts, ${flags.dbRestarts} PostgreSQL restarts; simulators: error ${flags.errorRate}, lost ${flags.lostResponseRate}, latency ${flags.latencyMs}+0..${flags.jitterMs} ms`);

  const t0 = Date.now();
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'payment-chaos-'));
  const log = createLogger('chaos', 'warn');
  const serverLines = flags.logs ? (line: string) => process.stderr.write(`server       | ${line}\n`) : undefined;
  let infra: Infrastructure | undefined;
  let stack: Stack | undefined;
  let connection: Connection | undefined;
  let interrupted = false;
  const cleanup = async () => {
    await connection?.close().catch(() => undefined);
    await stack?.stop().catch((err: unknown) => say(`stopping the stack failed: ${String(err)}`));
    await infra?.stop().catch((err: unknown) => say(`stopping the servers failed: ${String(err)}`));
    if (flags.keepData) say(`data kept in ${dataDir}`);
  };
  process.once('SIGINT', () => {
    interrupted = true;
    say('interrupted: stopping');
    void cleanup().finally(() => process.exit(2));
  });

  let result: { summary: Record<string, unknown>; failed: string[] };
  try {
    try {
      infra = await startInfrastructure({ dataDir, log, removeOnStop: !flags.keepData, ...(serverLines ? { onLine: serverLines } : {}) });
      const faultEnv: Record<string, string> = {
        CARD_NETWORK_LATENCY_MS: String(flags.latencyMs),
        CARD_NETWORK_LATENCY_JITTER_MS: String(flags.jitterMs),
        CARD_NETWORK_ERROR_RATE: String(flags.errorRate),
        CARD_NETWORK_LOST_RESPONSE_RATE: String(flags.lostResponseRate),
        BANK_LATENCY_MS: String(flags.latencyMs),
        BANK_ERROR_RATE: String(flags.errorRate),
        BANK_LOST_RESPONSE_RATE: String(flags.lostResponseRate),
        // A request waits this long for its workflow before a retry-safe 503: shorter than the
        // default, so the load's retries find a restarted server sooner.
        API_WORKFLOW_ANSWER_TIMEOUT_MS: '15000',
        LOG_LEVEL: flags.logs ? 'info' : 'warn',
      };
      stack = await startStack({ databaseUrl: infra.databaseUrl, temporalAddress: infra.temporalAddress, workers: flags.workers, logs: flags.logs, env: faultEnv });
      connection = await Connection.connect({ address: infra.temporalAddress });
    } catch (err) {
      throw new RunError(`could not start the stack: ${err instanceof Error ? err.message : String(err)}`);
    }
    say(`stack up in ${seconds(Date.now() - t0)}: api ${stack.apiUrl}, task queue ${stack.env.TEMPORAL_TASK_QUEUE}`);
    // The stack's payload key: this client lists and counts, and nothing talks to Temporal unencrypted.
    const dataConverter = payloadDataConverter(parsePayloadKeys(stack.env.PAYLOAD_ENCRYPTION_KEYS ?? ''));
    result = await storm(flags, rng, runId, infra, stack, new Client({ connection, namespace: infra.namespace, dataConverter }));
  } catch (err) {
    if (interrupted) return 2;
    say(err instanceof RunError ? err.message : `the run failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await cleanup();
    return 2;
  }
  await cleanup();
  result.summary.elapsedS = Math.round((Date.now() - t0) / 1000);
  if (result.failed.length > 0) say(`FAILED: ${result.failed.join(', ')}`);
  else say(`all invariants hold (${seconds(Date.now() - t0)})`);
  process.stdout.write(`${JSON.stringify(result.summary)}\n`);
  return result.failed.length > 0 ? 1 : 0;
}

async function storm(flags: ChaosFlags, rng: ReturnType<typeof createRng>, runId: string, infra: Infrastructure, stack: Stack, temporal: Client) {
  const api = new ApiClient({ baseUrl: stack.apiUrl, apiKey: 'sk_test_demo', tryTimeoutMs: 25_000, giveUpAfterMs: 150_000 });
  const taskQueue = stack.env.TEMPORAL_TASK_QUEUE!;

  // Timings short enough that every checkout finishes within the run: settled after 3 s, refundable
  // for 15 s, an unanswered 3-D Secure expires after 20 s, an uncaptured authorization after 30 s.
  const settings = { settlementDelaySeconds: 3, refundWindowSeconds: 15, actionTimeoutSeconds: 20, authorizationTtlSeconds: 30 };
  const patched = await api.patch('/v1/settings', settings);
  if (patched.status !== 200) throw new RunError(`PATCH /v1/settings answered ${patched.status}: ${JSON.stringify(patched.body)}`);

  const load = new Load({ api, rng, runId, concurrency: flags.concurrency, customers: 16, log: say });
  await load.prepare();
  const initialStock = new Map(load.products.map((p) => [p.sku, p.stock]));

  // ----- Load and faults together -----
  const durationMs = flags.durationS * 1000;
  const plan = planFaults(rng, durationMs, { workerKills: flags.workerKills, apiKills: flags.apiKills, serverRestarts: flags.serverRestarts, dbRestarts: flags.dbRestarts });
  say(`fault plan: ${plan.map((f) => `${f.kind}@${seconds(f.atMs)}`).join(', ') || 'none'}`);
  const startedAt = Date.now();
  const loadDone = load.run();
  const progress = setInterval(() => {
    say(`[${seconds(Date.now() - startedAt)}] checkouts ${load.counts.checkouts}, topups ${load.counts.topups}, payouts ${load.counts.payouts}, refunds ${load.counts.refunds}; in flight ${load.requestsInFlight}; retries ${api.stats.retries}`);
  }, 10_000);
  let faults: FaultCounts;
  try {
    faults = await runFaults({ infra, stack, rng, plan, startedAt, log: say });
    const left = startedAt + durationMs - Date.now();
    if (left > 0) await sleep(left);
  } catch (err) {
    load.stop();
    clearInterval(progress);
    await loadDone;
    throw new RunError(`a fault could not be carried out: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    load.stop();
  }
  say(`[${seconds(Date.now() - startedAt)}] load stopped; waiting for ${load.requestsInFlight} request(s) in flight`);
  await loadDone;
  clearInterval(progress);

  // ----- Quiescence: nothing Running on the stack's task queue -----
  const running = `TaskQueue="${taskQueue}" AND ExecutionStatus="Running"`;
  const quiesceStart = Date.now();
  const deadline = quiesceStart + flags.quiesceTimeoutS * 1000;
  let stillRunning = -1;
  let lastShown = 0;
  for (;;) {
    try {
      stillRunning = (await temporal.workflow.count(running)).count;
    } catch (err) {
      say(`counting running workflows failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (stillRunning === 0 || Date.now() > deadline) break;
    if (Date.now() - lastShown > 10_000) {
      lastShown = Date.now();
      say(`quiescing: ${stillRunning < 0 ? '?' : stillRunning} workflow(s) running (${seconds(Date.now() - quiesceStart)})`);
    }
    await sleep(1_000);
  }
  if (stillRunning !== 0) {
    const sample: string[] = [];
    try {
      for await (const wf of temporal.workflow.list({ query: running })) {
        sample.push(`${wf.type} ${wf.workflowId}`);
        if (sample.length >= 10) break;
      }
    } catch {
      /* shown as far as it got */
    }
    say(`still running after ${flags.quiesceTimeoutS}s: ${sample.join(', ')}`);
  } else {
    say(`quiescent after ${seconds(Date.now() - quiesceStart)}`);
  }
  const closedAbnormally = await countClosed(temporal, taskQueue);

  // ----- Processes that died instead of riding out the storm -----
  const dead = Object.entries(stack.pids()).filter(([, pid]) => pid === undefined).map(([name]) => name);

  const report = await checkInvariants(infra.databaseUrl, initialStock);
  return summarize(flags, load, api, faults, report, Math.max(stillRunning, 0) + (stillRunning < 0 ? 1 : 0), closedAbnormally, dead);
}

/** Workflow runs that ended Failed, Terminated or TimedOut: a payment flow that gave up is a finding. */
async function countClosed(temporal: Client, taskQueue: string): Promise<number> {
  try {
    const { count } = await temporal.workflow.count(`TaskQueue="${taskQueue}" AND ExecutionStatus IN ("Failed", "Terminated", "TimedOut")`);
    return count;
  } catch (err) {
    say(`counting failed workflows failed: ${err instanceof Error ? err.message : String(err)}`);
    return -1;
  }
}

function summarize(
  flags: ChaosFlags,
  load: Load,
  api: ApiClient,
  faults: FaultCounts,
  report: InvariantReport,
  runningWorkflows: number,
  failedWorkflows: number,
  dead: string[],
): { summary: Record<string, unknown>; failed: string[] } {
  const nonTerminal = runningWorkflows + report.nonFinalRows;
  const checks: Record<string, number | string> = {
    oversold: report.oversold,
    doubleCaptures: report.doubleCaptures,
    lostTopups: report.lostTopups,
    ledgerImbalance: report.ledgerImbalance,
    nonTerminal,
    pendingHolds: report.pendingHolds,
    ledgerMismatches: report.ledgerMismatches,
    stockMismatches: report.stockMismatches,
    ledgerCheckFailures: report.ledgerCheckFailures,
    payoutsUnresolved: report.payoutsUnresolved,
    failedWorkflows,
    deadProcesses: dead.length,
    unexpectedAnswers: load.counts.unexpected.length,
  };
  const failed = Object.entries(checks)
    .filter(([, v]) => v !== 0 && v !== '0')
    .map(([k, v]) => `${k}=${v}`);

  say('--- summary ---');
  say(`rows: ${report.seen.checkouts} checkouts (${report.seen.capturedCheckouts} captured), ${report.seen.topups} top-ups, ${report.seen.payouts} payouts, ${report.seen.refunds} refunds; ${report.seen.transfers} ledger transfers`);
  say(`faults: ${faults.workerKills} worker kills, ${faults.apiKills} API kills, ${faults.serverRestarts} Temporal restarts, ${faults.dbRestarts} PostgreSQL restarts`);
  say(`requests: ${api.stats.requests}, retried ${api.stats.retries} times (${Object.entries(api.stats.retryCauses).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'}), given up ${api.stats.abandoned}`);
  say(`answers: ${Object.entries(load.counts.answers).sort().map(([k, v]) => `${k}: ${v}`).join(', ')}`);
  say(`workflows: ${runningWorkflows} still running, ${failedWorkflows} failed/terminated/timed out`);
  if (dead.length > 0) say(`processes dead at the end: ${dead.join(', ')}`);
  for (const u of load.counts.unexpected.slice(0, 10)) say(`unexpected answer: ${u.op} ${u.status} ${JSON.stringify(u.body)}`);
  for (const p of report.problems) say(`problem: ${p}`);
  for (const [k, v] of Object.entries(checks)) say(`${String(v) === '0' ? 'ok  ' : 'FAIL'} ${k} = ${v}`);

  const summary = {
    checkouts: report.seen.checkouts,
    topups: report.seen.topups,
    payouts: report.seen.payouts,
    refunds: report.seen.refunds,
    workerKills: faults.workerKills,
    apiKills: faults.apiKills,
    serverRestarts: faults.serverRestarts,
    dbRestarts: faults.dbRestarts,
    // The checks, in the order printed above: each must be 0.
    ...checks,
    abandonedRequests: api.stats.abandoned,
    requestRetries: api.stats.retries,
    seed: flags.seed,
    durationS: flags.durationS,
  };
  return { summary, failed };
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    say(`chaos crashed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(2);
  },
);
