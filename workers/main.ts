// One payment worker process. Run as many as you like against the same Temporal server and
// database: they share the task queue, and every step is idempotent.
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type LogEntry } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import { createBankClient } from '../platform/bank-client.js';
import { createCardNetworkClient } from '../platform/card-network-client.js';
import { loadConfig } from '../platform/config.js';
import { createPrisma } from '../platform/db.js';
import { createLogger } from '../platform/logger.js';
import { dataConverter as configuredDataConverter } from '../platform/payload-codec.js';
import { startOutboxRelay } from '../platform/webhook-deliveries.js';
import { bundlePaymentWorkflows, createPaymentWorker, createWebhookWorker } from './payment-worker.js';

const config = loadConfig();
const log = createLogger('worker', config.logLevel);
// Before anything connects: without keys this process must not write a payload.
const dataConverter = configuredDataConverter(config);

// The SDK's own lines and the workflows' `log` calls go through our structured logger at LOG_LEVEL,
// as one JSON line each with the workflow's ids, instead of the SDK's multi-line console output.
const sdkLog = createLogger('temporal-sdk', config.logLevel);
const SDK_LEVEL = { debug: 'DEBUG', info: 'INFO', warn: 'WARN', error: 'ERROR' } as const;
Runtime.install({
  logger: new DefaultLogger(SDK_LEVEL[config.logLevel], ({ level, message, meta }: LogEntry) => {
    const write = level === 'ERROR' ? sdkLog.error : level === 'WARN' ? sdkLog.warn : level === 'INFO' ? sdkLog.info : sdkLog.debug;
    write.call(sdkLog, message, meta);
  }),
});

const prisma = createPrisma(config.databaseUrl);
const cardNetwork = createCardNetworkClient({
  baseUrl: config.cardNetwork.url,
  timeoutMs: config.cardNetwork.requestTimeoutMs,
  maxProcessingMs: config.cardNetwork.maxProcessingMs,
});
const bank = createBankClient({ baseUrl: config.bank.url, timeoutMs: config.bank.requestTimeoutMs, maxProcessingMs: config.bank.maxProcessingMs });
const connection = await NativeConnection.connect({ address: config.temporal.address });
// The outbox relay starts webhook deliveries through this client; reconciliation asks it which payments still run.
const clientConnection = await Connection.connect({ address: config.temporal.address });
const temporal = new Client({ connection: clientConnection, namespace: config.temporal.namespace, dataConverter });
const webhookRetry = { initialIntervalMs: config.webhooks.retryInitialIntervalMs, maximumIntervalMs: config.webhooks.retryMaximumIntervalMs };
// Bundled once by whoever started us (scripts/workflow-bundle.ts); otherwise bundled here, once for both workers.
const bundlePath = process.env.WORKFLOW_BUNDLE_PATH;
const workflowBundle = bundlePath ? { codePath: bundlePath } : await bundlePaymentWorkflows();
const activities = createActivities({ prisma, cardNetwork, bank, temporal, webhooks: { allowPrivateHosts: config.webhooks.allowPrivateHosts } });
// The payment worker keeps deliverWebhook registered: deliveries started on the payments queue
// before deliveries had a queue of their own still finish there.
const common = { connection, namespace: config.temporal.namespace, taskQueue: config.temporal.taskQueue, activities, dataConverter, workflowBundle };
const worker = await createPaymentWorker(common);
// Webhook deliveries on a task queue of their own (domain webhookTaskQueue): hanging endpoints hold
// this worker's slots, not the payment worker's.
const webhookWorker = await createWebhookWorker({ ...common, maxConcurrentDeliveries: config.webhooks.maxConcurrentDeliveries });

if (config.webhooks.allowPrivateHosts) log.warn('WEBHOOK_ALLOW_PRIVATE_HOSTS is set: webhooks may reach loopback and private addresses');

/** Stops whichever of the two still runs: a signal stops both, and so does either one failing. */
const stopWorkers = () => {
  for (const w of [worker, webhookWorker]) if (w.getState() === 'RUNNING') w.shutdown();
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log.info('shutting down', { signal });
    stopWorkers();
  });
}

// Deliveries of the events recorded on this queue (platform/webhook-deliveries.ts): each worker
// process runs a relay; they share the outbox without waiting on each other.
const relay = startOutboxRelay({ prisma, temporal, taskQueue: config.temporal.taskQueue, logger: log, retry: webhookRetry });

log.info('worker polling', { taskQueue: config.temporal.taskQueue, temporal: config.temporal.address, namespace: config.temporal.namespace });
try {
  // Either one failing stops the other, and the process fails (the launcher restarts it).
  const runs = await Promise.allSettled([worker.run().finally(stopWorkers), webhookWorker.run().finally(stopWorkers)]);
  for (const run of runs) if (run.status === 'rejected') throw run.reason;
} finally {
  await relay.stop();
  await connection.close();
  await clientConnection.close();
  await prisma.$disconnect();
  log.info('worker stopped');
}
