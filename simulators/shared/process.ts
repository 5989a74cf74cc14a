// The process skeleton every simulator's main.ts shares: one pool, listen, log the settings, and
// stop cleanly on SIGTERM/SIGINT. A simulator keeps all of its state in PostgreSQL, so it can be
// killed and restarted at any time.
import pg from 'pg';
import { createLogger, type Logger } from '../../platform/logger.js';

export interface SimulatorProcessOptions {
  /** Logger component, e.g. "bank". */
  component: string;
  /** How log lines name the simulator, e.g. "bank simulator". */
  title: string;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  databaseUrl: string;
  host: string;
  port: number;
  /** The simulator's latency and fault settings, logged when it starts listening. */
  settings: Record<string, unknown>;
  create: (pool: pg.Pool, logger: Logger) => { listen(port?: number, host?: string): Promise<string>; close(): Promise<void> };
}

export async function runSimulatorProcess(opts: SimulatorProcessOptions): Promise<void> {
  const { title } = opts;
  const log = createLogger(opts.component, opts.logLevel);

  const pool = new pg.Pool({ connectionString: opts.databaseUrl });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', (err) => log.warn('idle database connection failed', { error: err.message }));
  // The pool listens for errors only on idle clients. A client checked out for a transaction when
  // PostgreSQL goes away (restart, crash) emits 'error' with nobody listening, and an unhandled
  // 'error' event kills the process (found by the chaos suite: the card network exited with code 1
  // on a PostgreSQL SIGKILL). Its pending query fails anyway, the request answers 5xx, and release
  // drops the broken client, so logging is all that is left to do.
  pool.on('connect', (client) => {
    client.on('error', (err) => log.warn('database connection in use failed', { error: err.message }));
  });

  const simulator = opts.create(pool, log);

  try {
    const url = await simulator.listen(opts.port, opts.host);
    log.info(`${title} listening`, { url, ...opts.settings });
  } catch (err) {
    log.error(`${title} failed to start`, { error: err instanceof Error ? err.message : String(err) });
    await pool.end().catch(() => undefined);
    process.exit(1);
  }

  let stopping = false;
  async function stop(signal: string): Promise<void> {
    if (stopping) return;
    stopping = true;
    log.info(`${title} stopping`, { signal });
    try {
      await simulator.close();
      await pool.end();
      process.exit(0);
    } catch (err) {
      log.error(`${title} did not stop cleanly`, { error: err instanceof Error ? err.message : String(err) });
      process.exit(1);
    }
  }
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}
