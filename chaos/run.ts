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
import { createPrisma } from '../platform/db.js';
import { createLogger } from '../platform/logger.js';
import { payloadDataConverter } from '../platform/payload-codec.js';
import { parsePayloadKeys } from '../platform/payload-keys.js';
import { startInfrastructure, type Infrastructure } from '../scripts/infrastructure.js';
import { startStack, type Stack } from '../scripts/stack.js';
import { webhookTaskQueue } from '../domain/index.js';
import { ApiClient, type Json } from './api-client.js';
import { planFaults, runFaults, type FaultCounts } from './faults.js';
import { FlagError, parseFlags, type ChaosFlags } from './flags.js';
import { checkInvariants, type InvariantReport } from './invariants.js';
import { Load } from './load.js';
import { createRng } from './rng.js';
import { createMerchant } from '../test/support/merchants.js';
import { startWebhookReceiver, type WebhookReceiver } from '../test/support/webhook-receiver.js';

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
        // The merchants' webhook receivers run in this process, on loopback; a delivery that met a
        // fault is retried within seconds, so every event is delivered before the run ends.
        WEBHOOK_ALLOW_PRIVATE_HOSTS: '1',
        WEBHOOK_RETRY_INITIAL_INTERVAL_MS: '500',
        WEBHOOK_RETRY_MAX_INTERVAL_MS: '2000',
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

/** A merchant the load runs as, with its webhook endpoint's receiver. */
interface ChaosMerchant {
  id: string;
  api: ApiClient;
  load: Load;
  receiver: WebhookReceiver;
}

async function storm(flags: ChaosFlags, rng: ReturnType<typeof createRng>, runId: string, infra: Infrastructure, stack: Stack, temporal: Client) {
  const taskQueue = stack.env.TEMPORAL_TASK_QUEUE!;
  const webhookQueue = webhookTaskQueue(taskQueue);

  // Timings short enough that every checkout finishes within the run: settled after 3 s, refundable
  // for 15 s, an unanswered 3-D Secure expires after 20 s, an uncaptured authorization after 30 s.
  const settings = { settlementDelaySeconds: 3, refundWindowSeconds: 15, actionTimeoutSeconds: 20, authorizationTtlSeconds: 30 };
  // Two merchants share the stack, the demo one with most of the load: every invariant is read per
  // merchant's rows, and neither's records may leak into the other's.
  // Written as the seed writes `demo`: a key stored only as its hash.
  const second = await createMerchant(infra.databaseUrl, `chaos_${runId}`);
  const shares = [Math.max(1, Math.ceil(flags.concurrency * 0.6)), Math.max(1, flags.concurrency - Math.ceil(flags.concurrency * 0.6))];
  // Receivers answer 500 now and then, so deliveries are retried besides the faults' retries.
  const receiverRng = createRng(flags.seed + 1);
  const merchants: ChaosMerchant[] = [];
  for (const [i, m] of [{ id: 'demo', key: 'sk_test_demo' }, second].entries()) {
    const api = new ApiClient({ baseUrl: stack.apiUrl, apiKey: m.key, tryTimeoutMs: 25_000, giveUpAfterMs: 150_000 });
    const patched = await api.patch('/v1/settings', settings);
    if (patched.status !== 200) throw new RunError(`PATCH /v1/settings (${m.id}) answered ${patched.status}: ${JSON.stringify(patched.body)}`);
    const receiver = await startWebhookReceiver(() => (receiverRng.next() < 0.1 ? 500 : 200));
    const endpoint = await api.post('/v1/webhook-endpoints', { url: receiver.url, events: ['*'] });
    if (endpoint.status !== 201) throw new RunError(`POST /v1/webhook-endpoints (${m.id}) answered ${endpoint.status}: ${JSON.stringify(endpoint.body)}`);
    receiver.secret = endpoint.body.secret as string;
    const load = new Load({ api, rng, runId, label: String.fromCharCode(97 + i), concurrency: shares[i]!, customers: i === 0 ? 16 : 8, log: say });
    await load.prepare();
    merchants.push({ id: m.id, api, load, receiver });
  }
  try {
    return await stormWith(flags, rng, infra, stack, temporal, merchants, taskQueue, webhookQueue);
  } finally {
    for (const m of merchants) await m.receiver.close();
  }
}

async function stormWith(
  flags: ChaosFlags,
  rng: ReturnType<typeof createRng>,
  infra: Infrastructure,
  stack: Stack,
  temporal: Client,
  merchants: ChaosMerchant[],
  taskQueue: string,
  webhookQueue: string,
) {
  const initialStock = new Map(merchants.flatMap((m) => m.load.products.map((p) => [p.sku, p.stock] as const)));
  const loads = merchants.map((m) => m.load);
  const apis = merchants.map((m) => m.api);

  // ----- Load and faults together -----
  const durationMs = flags.durationS * 1000;
  const plan = planFaults(rng, durationMs, { workerKills: flags.workerKills, apiKills: flags.apiKills, serverRestarts: flags.serverRestarts, dbRestarts: flags.dbRestarts });
  say(`fault plan: ${plan.map((f) => `${f.kind}@${seconds(f.atMs)}`).join(', ') || 'none'}`);
  const startedAt = Date.now();
  const loadDone = Promise.all(loads.map((l) => l.run()));
  const total = (pick: (l: Load) => number) => loads.reduce((sum, l) => sum + pick(l), 0);
  const progress = setInterval(() => {
    say(
      `[${seconds(Date.now() - startedAt)}] checkouts ${total((l) => l.counts.checkouts)}, topups ${total((l) => l.counts.topups)}, payouts ${total((l) => l.counts.payouts)}, refunds ${total((l) => l.counts.refunds)}; in flight ${total((l) => l.requestsInFlight)}; retries ${apis.reduce((n, a) => n + a.stats.retries, 0)}`,
    );
  }, 10_000);
  let faults: FaultCounts;
  try {
    faults = await runFaults({ infra, stack, rng, plan, startedAt, log: say });
    const left = startedAt + durationMs - Date.now();
    if (left > 0) await sleep(left);
  } catch (err) {
    for (const l of loads) l.stop();
    clearInterval(progress);
    await loadDone;
    throw new RunError(`a fault could not be carried out: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    for (const l of loads) l.stop();
  }
  say(`[${seconds(Date.now() - startedAt)}] load stopped; waiting for ${total((l) => l.requestsInFlight)} request(s) in flight`);
  await loadDone;
  clearInterval(progress);

  // ----- Quiescence: nothing Running on the stack's task queues (payments, webhook deliveries) -----
  const queues = `(TaskQueue="${taskQueue}" OR TaskQueue="${webhookQueue}")`;
  const running = `${queues} AND ExecutionStatus="Running"`;
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
  const closedAbnormally = await countClosed(temporal, queues);

  // ----- Processes that died instead of riding out the storm -----
  const dead = Object.entries(stack.pids()).filter(([, pid]) => pid === undefined).map(([name]) => name);

  const report = await checkInvariants(infra.databaseUrl, initialStock, merchants.map((m) => m.id));
  const webhooks = await checkWebhooks(infra.databaseUrl, merchants);
  const reconciliation = await reconcile(stack);
  return summarize(flags, loads, apis, faults, report, webhooks, reconciliation, Math.max(stillRunning, 0) + (stillRunning < 0 ? 1 : 0), closedAbnormally, dead);
}

interface WebhookReport {
  events: number;
  /** Events no verified delivery answered 200 for (at least once is the promise; duplicates may happen). */
  undelivered: number;
  /** Deliveries whose signature failed, or of an event id no row of the receiving merchant has. */
  foreign: number;
  duplicates: number;
  problems: string[];
}

/** Every event of each merchant reached its endpoint, signed with its secret, and nothing else did. */
async function checkWebhooks(databaseUrl: string, merchants: ChaosMerchant[]): Promise<WebhookReport> {
  const report: WebhookReport = { events: 0, undelivered: 0, foreign: 0, duplicates: 0, problems: [] };
  const prisma = createPrisma(databaseUrl, 1);
  try {
    for (const m of merchants) {
      const events = await prisma.event.findMany({ where: { merchantId: m.id }, select: { id: true, type: true } });
      report.events += events.length;
      const ok = new Map<string, number>();
      for (const d of m.receiver.deliveries) {
        if (d.verified && d.answered === 200) ok.set(d.id, (ok.get(d.id) ?? 0) + 1);
      }
      const ids = new Set(events.map((e) => e.id));
      for (const e of events) {
        const n = ok.get(e.id) ?? 0;
        if (n === 0) {
          report.undelivered++;
          if (report.problems.length < 10) report.problems.push(`event ${e.id} (${e.type}) of ${m.id} never delivered`);
        }
        if (n > 1) report.duplicates += n - 1;
      }
      for (const d of m.receiver.deliveries) {
        if (!d.verified || !ids.has(d.id)) {
          report.foreign++;
          if (report.problems.length < 10) report.problems.push(`${m.id}'s endpoint got ${d.verified ? 'an event not its own' : 'an unsigned delivery'}: ${d.id} (${d.type})`);
        }
      }
    }
  } finally {
    await prisma.$disconnect();
  }
  return report;
}

interface ReconciliationReport {
  status: string;
  /** Items the platform-wide run found: after a storm whose invariants hold, there is nothing to repair or report. */
  items: number;
  problems: string[];
}

/** A platform-wide reconciliation over everything the storm wrote, run once it is quiescent. */
async function reconcile(stack: Stack): Promise<ReconciliationReport> {
  const operator = new ApiClient({ baseUrl: stack.apiUrl, apiKey: stack.env.OPERATOR_API_KEY!, tryTimeoutMs: 25_000, giveUpAfterMs: 60_000 });
  const started = await operator.post('/v1/reconciliations', { olderThanMs: 0 });
  if (started.status !== 202) return { status: `not started (${started.status})`, items: 0, problems: [`POST /v1/reconciliations answered ${started.status}: ${JSON.stringify(started.body)}`] };
  const deadline = Date.now() + 90_000;
  for (;;) {
    const run = await operator.get(`/v1/reconciliations/${started.body.id as string}`);
    const status = run.body.status as string | undefined;
    if (status === 'completed' || status === 'failed' || Date.now() > deadline) {
      const items = (run.body.items as Json[] | undefined) ?? [];
      say(`reconciliation ${started.body.id as string}: ${status ?? run.status}, ${items.length} item(s)`);
      return {
        status: status ?? `unknown (${run.status})`,
        items: items.length,
        problems: items.slice(0, 10).map((i) => `reconciliation item: ${i.kind as string} ${i.resourceId as string} ${i.action as string} ${JSON.stringify(i.details)}`),
      };
    }
    await sleep(1_000);
  }
}

/** Workflow runs that ended Failed, Terminated or TimedOut: a payment flow that gave up is a finding. */
async function countClosed(temporal: Client, queues: string): Promise<number> {
  try {
    const query = `${queues} AND ExecutionStatus IN ("Failed", "Terminated", "TimedOut")`;
    const { count } = await temporal.workflow.count(query);
    // Which ones, and why: the failure is the finding.
    let shown = 0;
    for await (const wf of temporal.workflow.list({ query })) {
      if (shown++ >= 5) break;
      const why = await temporal.workflow
        .getHandle(wf.workflowId, wf.runId)
        .result()
        .then(
          () => 'no failure',
          (err: unknown) => describeFailure(err),
        );
      say(`closed abnormally: ${wf.type} ${wf.workflowId} ${wf.status.name}: ${why}`);
    }
    return count;
  } catch (err) {
    say(`counting failed workflows failed: ${err instanceof Error ? err.message : String(err)}`);
    return -1;
  }
}

/** A workflow's failure and its causes, one line. */
function describeFailure(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const type = (e as { type?: unknown }).type;
    parts.push(`${e.name}${typeof type === 'string' ? `(${type})` : ''}: ${e.message}`);
  }
  return parts.join(' <- ');
}

function summarize(
  flags: ChaosFlags,
  loads: Load[],
  apis: ApiClient[],
  faults: FaultCounts,
  report: InvariantReport,
  webhooks: WebhookReport,
  reconciliation: ReconciliationReport,
  runningWorkflows: number,
  failedWorkflows: number,
  dead: string[],
): { summary: Record<string, unknown>; failed: string[] } {
  const nonTerminal = runningWorkflows + report.nonFinalRows;
  const unexpected = loads.flatMap((l) => l.counts.unexpected);
  const answers: Record<string, number> = {};
  const cancelsByState: Record<string, number> = {};
  for (const l of loads) {
    for (const [k, v] of Object.entries(l.counts.answers)) answers[k] = (answers[k] ?? 0) + v;
    for (const [k, v] of Object.entries(l.counts.cancelsByState)) cancelsByState[k] = (cancelsByState[k] ?? 0) + v;
  }
  const stats = { requests: 0, retries: 0, abandoned: 0, retryCauses: {} as Record<string, number> };
  for (const a of apis) {
    stats.requests += a.stats.requests;
    stats.retries += a.stats.retries;
    stats.abandoned += a.stats.abandoned;
    for (const [k, v] of Object.entries(a.stats.retryCauses)) stats.retryCauses[k] = (stats.retryCauses[k] ?? 0) + v;
  }
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
    unexpectedAnswers: unexpected.length,
    webhooksUndelivered: webhooks.undelivered,
    webhooksForeign: webhooks.foreign,
    reconciliationItems: reconciliation.items,
    reconciliationNotCompleted: reconciliation.status === 'completed' ? 0 : reconciliation.status,
  };
  const failed = Object.entries(checks)
    .filter(([, v]) => v !== 0 && v !== '0')
    .map(([k, v]) => `${k}=${v}`);

  say('--- summary ---');
  say(`rows: ${report.seen.checkouts} checkouts (${report.seen.capturedCheckouts} captured), ${report.seen.topups} top-ups, ${report.seen.payouts} payouts, ${report.seen.refunds} refunds; ${report.seen.transfers} ledger transfers`);
  say(`faults: ${faults.workerKills} worker kills, ${faults.apiKills} API kills, ${faults.serverRestarts} Temporal restarts, ${faults.dbRestarts} PostgreSQL restarts`);
  say(`requests: ${stats.requests}, retried ${stats.retries} times (${Object.entries(stats.retryCauses).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'}), given up ${stats.abandoned}`);
  say(`answers: ${Object.entries(answers).sort().map(([k, v]) => `${k}: ${v}`).join(', ')}`);
  say(`cancels that took effect, by the status they met: ${Object.entries(cancelsByState).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'}`);
  say(`webhooks: ${webhooks.events} events, ${webhooks.undelivered} undelivered, ${webhooks.duplicates} delivered more than once, ${webhooks.foreign} foreign or unsigned`);
  say(`workflows: ${runningWorkflows} still running, ${failedWorkflows} failed/terminated/timed out`);
  if (dead.length > 0) say(`processes dead at the end: ${dead.join(', ')}`);
  for (const u of unexpected.slice(0, 10)) say(`unexpected answer: ${u.op} ${u.status} ${JSON.stringify(u.body)}`);
  for (const p of [...report.problems, ...webhooks.problems, ...reconciliation.problems]) say(`problem: ${p}`);
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
    merchants: loads.length,
    cancelsByState,
    webhookEvents: webhooks.events,
    webhookDuplicates: webhooks.duplicates,
    abandonedRequests: stats.abandoned,
    requestRetries: stats.retries,
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
