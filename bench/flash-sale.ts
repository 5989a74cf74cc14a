// `npm run bench:flash-sale`: one SKU, many more buyers than units, through each design in turn on
// the same PostgreSQL and the same card simulator, so the designs differ only in how they hold
// stock and call the card. Prints a table and, as the very
// last line of stdout, one JSON object with every figure; everything else goes to stderr, so
// `... | tail -n 1 | jq` always works. bench/README.md explains the flags and the numbers.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig } from '../platform/config.js';
import type { Logger } from '../platform/logger.js';
import { startInfrastructure, type Infrastructure } from '../scripts/infrastructure.js';
import { startStack, type Stack } from '../scripts/stack.js';
import { runBaseline } from './baselines/run.js';
import { ensureBenchSchema } from './baselines/schema.js';
import type { DesignFigures, FlashSaleRun } from './figures.js';
import { checkDriver } from './load.js';
import { parseOptions, USAGE, UsageError, type BenchOptions } from './options.js';
import { runOrchestrator } from './orchestrator.js';
import { runRaw } from './raw.js';
import { renderReport, type Report } from './report.js';

/** Progress on stderr, as JSON lines like every other component's logs. */
function stderrLogger(component: string, verbose: boolean, base: Record<string, unknown> = {}): Logger {
  const write = (level: string, msg: string, fields?: Record<string, unknown>) => {
    if (level === 'debug' && !verbose) return;
    process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, component, msg, ...base, ...fields }) + '\n');
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (fields) => stderrLogger(component, verbose, { ...base, ...fields }),
  };
}

/**
 * stdout carries the report only. The stack's and servers' output (with --logs) and anything a
 * library prints would otherwise interleave with it, so until the report is ready every write to
 * stdout goes to stderr instead.
 */
function reserveStdout(): (text: string) => Promise<void> {
  const realWrite = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) =>
    (process.stderr.write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest)) as typeof process.stdout.write;
  return (text) => {
    process.stdout.write = realWrite;
    // Resolved once written: exiting earlier could cut the JSON line off when stdout is a pipe.
    return new Promise((resolve) => realWrite(text, () => resolve()));
  };
}

async function main(options: BenchOptions, log: Logger): Promise<Report> {
  const config = loadConfig();
  const runId = randomUUID().slice(0, 8);
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'flash-sale-bench-'));
  let infra: Infrastructure | undefined;
  let stack: Stack | undefined;
  const cleanup = async () => {
    await stack?.stop().catch((err: unknown) => log.error('stopping the stack failed', { error: String(err) }));
    stack = undefined;
    await infra?.stop().catch((err: unknown) => log.error('stopping infrastructure failed', { error: String(err) }));
    infra = undefined;
    if (!options.keepData) await fs.rm(dataDir, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    log.warn('interrupted; stopping', { signal });
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const report: Report = {
      stock: options.stock,
      buyers: options.buyers,
      concurrency: options.concurrency,
      cardLatencyMs: options.cardLatencyMs,
      workers: options.workers,
      designs: {},
    };
    if (options.driverCheck) {
      report.driverCheck = await checkDriver(Math.max(5000, options.concurrency * 20), options.concurrency);
      log.info('load driver alone', report.driverCheck);
    }

    log.info('starting infrastructure', { dataDir, externalPostgres: Boolean(process.env.DATABASE_URL), externalTemporal: Boolean(process.env.TEMPORAL_ADDRESS) });
    infra = await startInfrastructure({
      dataDir,
      log,
      removeOnStop: !options.keepData,
      onLine: options.logs ? (line) => process.stderr.write(`infra        | ${line}\n`) : undefined,
    });
    log.info('starting the stack', { workers: options.workers, cardLatencyMs: options.cardLatencyMs });
    stack = await startStack({
      databaseUrl: infra.databaseUrl,
      temporalAddress: infra.temporalAddress,
      workers: options.workers,
      logs: options.logs,
      // What `npm start` runs, with its defaults (log level, rate limits): only the card network's
      // latency is the scenario's.
      env: {
        CARD_NETWORK_LATENCY_MS: String(options.cardLatencyMs),
        LOG_LEVEL: 'info',
      },
    });

    const db = new pg.Pool({ connectionString: infra.databaseUrl, max: 1 });
    try {
      await ensureBenchSchema(db);
    } finally {
      await db.end();
    }

    // The same sale and crowd for every design.
    const sale: FlashSaleRun = {
      databaseUrl: infra.databaseUrl,
      cardNetworkUrl: stack.cardNetworkUrl,
      runId,
      stock: options.stock,
      buyers: options.buyers,
      concurrency: options.concurrency,
      buyerTimeoutMs: options.buyerTimeoutMs,
      log,
    };
    for (const design of options.designs) {
      let figures: DesignFigures;
      if (design === 'orchestrator') {
        const orchestratorRun = { ...sale, apiUrl: stack.apiUrl, apiKey: config.demo.apiKey, merchantId: config.demo.merchantId };
        if (options.warmup > 0) {
          // The same flow end to end (hold, authorize, capture, sold out) on a SKU of its own; its
          // figures are thrown away.
          log.info('orchestrator: warm-up', { buyers: options.warmup });
          await runOrchestrator({
            ...orchestratorRun,
            runId: `${runId}-warmup`,
            stock: Math.ceil(options.warmup / 4),
            buyers: options.warmup,
            concurrency: Math.min(options.concurrency, options.warmup),
          });
        }
        figures = await runOrchestrator(orchestratorRun);
      } else {
        figures = await runBaseline({
          ...sale,
          design,
          rootDir: config.rootDir,
          budgetS: options.baselineBudgetS,
          warmup: options.warmup,
          poolSize: options.baselinePool,
          cardLatencyMs: options.cardLatencyMs,
          keepData: options.keepData,
          logs: options.logs,
        });
      }
      report.designs[design] = figures;
      log.info(`${design} done`, { ...figures });
    }

    if (options.raw) {
      log.info('measuring the hot row alone', { seconds: options.rawSeconds });
      report.raw = await runRaw({ databaseUrl: infra.databaseUrl, runId, concurrency: options.concurrency, seconds: options.rawSeconds });
      log.info('raw hot row', { ...report.raw });
    }
    return report;
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

let options: BenchOptions | 'help';
try {
  options = parseOptions(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`flash-sale: ${err.message}\n\n${USAGE}\n`);
  process.exit(2);
}
if (options === 'help') {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

const log = stderrLogger('bench', options.logs);
const printReport = reserveStdout();
try {
  const report = await main(options, log);
  const json = {
    stock: report.stock,
    buyers: report.buyers,
    concurrency: report.concurrency,
    cardLatencyMs: report.cardLatencyMs,
    workers: report.workers,
    ...report.designs,
    ...(report.raw ? { raw: report.raw } : {}),
    ...(report.driverCheck ? { driverCheck: report.driverCheck } : {}),
  };
  await printReport(`${renderReport(report)}\n${JSON.stringify(json)}\n`);
  process.exit(0);
} catch (err) {
  log.error('benchmark failed', { error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  process.exit(1);
}
