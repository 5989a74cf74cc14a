// Process entry of the card-network simulator: `npx tsx simulators/card-network/main.ts`.
// It expects PostgreSQL to be reachable (the launcher's embedded one by default) and keeps all of
// its state there, so it can be killed and restarted at any time.
import { loadConfig } from '../../platform/config.js';
import { runSimulatorProcess } from '../shared/process.js';
import { createCardNetworkServer } from './server.js';

const config = loadConfig();
const { host, port, latencyMs, latencyJitterMs, errorRate, lostResponseRate, maxProcessingMs } = config.cardNetwork;
const settings = { latencyMs, latencyJitterMs, errorRate, lostResponseRate, maxProcessingMs };

await runSimulatorProcess({
  component: 'card-network',
  title: 'card network simulator',
  logLevel: config.logLevel,
  databaseUrl: config.cardNetwork.databaseUrl ?? config.databaseUrl,
  host,
  port,
  settings,
  create: (pool, logger) => createCardNetworkServer({ pool, ...settings, logger }),
});
