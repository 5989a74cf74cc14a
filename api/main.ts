// Process entry for the HTTP API: `npx tsx api/main.ts`.
import { createServer } from 'node:http';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { loadConfig } from '../platform/config.js';
import { createCustomerSearch } from '../platform/customer-search.js';
import { createPrisma } from '../platform/db.js';
import { createLogger } from '../platform/logger.js';
import { configuredPayloadKeys, dataConverter } from '../platform/payload-codec.js';
import { createApp } from './app.js';
import { createRequestStats } from './request-stats.js';
import { createStockGate } from './stock-gate.js';
import { listenForReturnedStock } from './stock-notifications.js';

async function main(): Promise<void> {
  const config = loadConfig();
  /** How long a request waits for its workflow's answer before a 503 (retry-safe). */
  const RESERVATION_TIMEOUT_MS = config.api.workflowAnswerTimeoutMs;
  const UPDATE_TIMEOUT_MS = config.api.workflowAnswerTimeoutMs;
  /**
   * In-flight requests get this long to finish on shutdown before their sockets are cut: longer
   * than any request may wait for its workflow, so every client already waiting gets an answer.
   */
  const SHUTDOWN_GRACE_MS = config.api.workflowAnswerTimeoutMs + 5_000;
  const logger = createLogger('api', config.logLevel);
  const prisma = createPrisma(config.databaseUrl);
  // Made before connecting: without keys the API must not start a workflow.
  const converter = dataConverter(config);
  const connection = await Connection.connect({ address: config.temporal.address });
  const temporal = new Client({ connection, namespace: config.temporal.namespace, dataConverter: converter });

  const requestStats = createRequestStats(logger);
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 10 });
  // A client checked out when PostgreSQL goes away emits 'error' on itself; its query fails anyway.
  pool.on('error', (err) => logger.warn('idle database connection failed', { error: err.message }));
  pool.on('connect', (client) => client.on('error', (err) => logger.warn('database connection in use failed', { error: err.message })));
  const stockGate = createStockGate();
  const stockNotifications = listenForReturnedStock(config.databaseUrl, stockGate, logger);
  const app = createApp({
    prisma,
    pool,
    stockGate,
    temporal,
    requestStats,
    taskQueue: config.temporal.taskQueue,
    logger,
    customerSearch: createCustomerSearch(configuredPayloadKeys(config)),
    reservationTimeoutMs: RESERVATION_TIMEOUT_MS,
    updateTimeoutMs: UPDATE_TIMEOUT_MS,
    payoutDelayMs: config.payouts.delayMs,
    idempotencyKeyTtlHours: config.api.idempotencyKeyTtlHours,
    webhookRetry: { initialIntervalMs: config.webhooks.retryInitialIntervalMs, maximumIntervalMs: config.webhooks.retryMaximumIntervalMs },
    webhookAllowPrivateHosts: config.webhooks.allowPrivateHosts,
    webhookMaxEndpointsPerMerchant: config.webhooks.maxEndpointsPerMerchant,
    webhookRedeliverRateLimit: config.webhooks.redeliverRateLimit ?? null,
    operatorApiKey: config.operator.apiKey,
    ...(config.api.rateLimit ? { rateLimit: config.api.rateLimit } : {}),
    ...(config.api.ipRateLimit ? { ipRateLimit: config.api.ipRateLimit } : {}),
  });
  const server = createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.api.port, config.api.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  logger.info('api listening', {
    url: `http://${config.api.host}:${config.api.port}`,
    temporal: config.temporal.address,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
  });
  if (config.webhooks.allowPrivateHosts) logger.warn('WEBHOOK_ALLOW_PRIVATE_HOSTS is set: webhook endpoints may name loopback and private hosts');

  let stopping = false;
  const shutdown = async (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info('api stopping', { signal });
    // Stop accepting, let in-flight requests finish (a checkout may be waiting on its reservation),
    // and only cut what is still open after the grace period.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
    force.unref();
    await closed;
    clearTimeout(force);
    requestStats.stop();
    try {
      await Promise.all([prisma.$disconnect(), pool.end(), stockNotifications.stop(), connection.close()]);
    } catch (err) {
      logger.warn('error while closing connections', { error: err instanceof Error ? err.message : String(err) });
    }
    logger.info('api stopped');
    process.exit(0);
  };
  process.on('SIGTERM', (s) => void shutdown(s));
  process.on('SIGINT', (s) => void shutdown(s));
}

main().catch((err: unknown) => {
  createLogger('api').error('api failed to start', {
    error: err instanceof Error ? { name: err.name, message: err.message, stack: err.stack } : String(err),
  });
  process.exit(1);
});
