// Process entry of the bank simulator: `npx tsx simulators/bank/main.ts`.
// It expects PostgreSQL to be reachable (the launcher's embedded one by default) and keeps all of
// its state there, so it can be killed and restarted at any time.
import { loadConfig } from '../../platform/config.js';
import { runSimulatorProcess } from '../shared/process.js';
import { createBankServer } from './server.js';

const config = loadConfig();
const { host, port, latencyMs, errorRate, lostResponseRate, maxProcessingMs } = config.bank;
const settings = { latencyMs, errorRate, lostResponseRate, maxProcessingMs };

await runSimulatorProcess({
  component: 'bank',
  title: 'bank simulator',
  logLevel: config.logLevel,
  databaseUrl: config.bank.databaseUrl,
  host,
  port,
  settings,
  create: (pool, logger) => createBankServer({ pool, ...settings, logger }),
});
