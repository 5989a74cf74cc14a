// Process entry of the bank simulator: `npx tsx simulators/bank/main.ts`.
// It expects PostgreSQL to be reachable (the launcher's embedded one by default) and keeps all of
// its state there, so it can be killed and restarted at any time.
import pg from 'pg';
import { loadConfig } from '../../platform/config.js';
import { createLogger } from '../../platform/logger.js';
import { createBankServer } from './server.js';

const config = loadConfig();
const { host, port, latencyMs, errorRate, lostResponseRate } = config.bank;
const log = createLogger('bank', config.logLevel);

const pool = new pg.Pool({ connectionString: config.bank.databaseUrl });
// An idle client losing its connection must not crash the process; the next query reconnects.
pool.on('error', (err) => log.warn('idle database connection failed', { error: err.message }));

const simulator = createBankServer({ pool, latencyMs, errorRate, lostResponseRate, logger: log });

try {
  const url = await simulator.listen(port, host);
  log.info('bank simulator listening', { url, latencyMs, errorRate, lostResponseRate });
} catch (err) {
  log.error('bank simulator failed to start', { error: err instanceof Error ? err.message : String(err) });
  await pool.end().catch(() => undefined);
  process.exit(1);
}

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info('bank simulator stopping', { signal });
  try {
    await simulator.close();
    await pool.end();
    process.exit(0);
  } catch (err) {
    log.error('bank simulator did not stop cleanly', { error: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  }
}
process.once('SIGTERM', () => void stop('SIGTERM'));
process.once('SIGINT', () => void stop('SIGINT'));
