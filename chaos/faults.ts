// The storm: worker and API SIGKILLs, Temporal server crashes and PostgreSQL restarts, spread over the load
// window in a seeded order, one at a time (each waits until what it broke is back up, so the counts
// mean "survived N of these", not "N overlapped into one long outage").
import { setTimeout as sleep } from 'node:timers/promises';
import type { Infrastructure } from '../scripts/infrastructure.js';
import type { Stack } from '../scripts/stack.js';
import type { Rng } from './rng.js';

export type FaultKind = 'workerKill' | 'apiKill' | 'serverRestart' | 'dbRestart';

export interface FaultCounts {
  workerKills: number;
  /**
   * SIGKILLs of the API: requests in flight lose their answer (the client retries them with their
   * key), and a checkout whose workflow was started but whose order the API had not placed yet is
   * fenced by its workflow.
   */
  apiKills: number;
  serverRestarts: number;
  dbRestarts: number;
}

export interface PlannedFault {
  kind: FaultKind;
  /** Milliseconds after the load started. */
  atMs: number;
}

/** Evenly over 15%..85% of the window (jittered), so the load is running before the first and after the last. */
export function planFaults(rng: Rng, durationMs: number, counts: FaultCounts): PlannedFault[] {
  const kinds: FaultKind[] = [
    ...Array<FaultKind>(counts.workerKills).fill('workerKill'),
    ...Array<FaultKind>(counts.apiKills).fill('apiKill'),
    ...Array<FaultKind>(counts.serverRestarts).fill('serverRestart'),
    ...Array<FaultKind>(counts.dbRestarts).fill('dbRestart'),
  ];
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  const start = 0.15 * durationMs;
  const span = 0.7 * durationMs;
  const slot = kinds.length > 0 ? span / kinds.length : 0;
  return kinds.map((kind, i) => ({ kind, atMs: Math.round(start + slot * i + rng.next() * slot * 0.5) }));
}

export interface FaultRunOptions {
  infra: Infrastructure;
  stack: Stack;
  rng: Rng;
  plan: PlannedFault[];
  startedAt: number;
  log: (line: string) => void;
}

/** Runs the plan in order; resolves with what was done. A fault that cannot be carried out rejects. */
export async function runFaults({ infra, stack, rng, plan, startedAt, log }: FaultRunOptions): Promise<FaultCounts> {
  const done: FaultCounts = { workerKills: 0, apiKills: 0, serverRestarts: 0, dbRestarts: 0 };
  for (const fault of plan) {
    const wait = startedAt + fault.atMs - Date.now();
    if (wait > 0) await sleep(wait);
    const t0 = Date.now();
    const at = `${((t0 - startedAt) / 1000).toFixed(1)}s`;
    switch (fault.kind) {
      case 'workerKill': {
        const index = rng.int(0, stack.workerCount - 1);
        const downMs = rng.int(1_000, 3_000);
        log(`[${at}] SIGKILL worker ${index}, down ${downMs} ms`);
        await stack.killWorker(index);
        await sleep(downMs);
        await stack.startWorker(index);
        done.workerKills++;
        break;
      }
      case 'apiKill': {
        const downMs = rng.int(500, 2_000);
        log(`[${at}] SIGKILL API, down ${downMs} ms`);
        await stack.killApi();
        await sleep(downMs);
        await stack.startApi();
        done.apiKills++;
        break;
      }
      case 'serverRestart': {
        const downMs = rng.int(1_500, 2_500);
        log(`[${at}] Temporal server: SIGKILL, down ${downMs} ms`);
        await infra.restartTemporal({ crash: true, downMs });
        done.serverRestarts++;
        break;
      }
      case 'dbRestart': {
        const crash = rng.next() < 0.5;
        const downMs = rng.int(1_000, 3_000);
        log(`[${at}] PostgreSQL: ${crash ? 'SIGKILL' : 'fast shutdown'}, down ${downMs} ms`);
        await infra.restartPostgres({ crash, downMs });
        done.dbRestarts++;
        break;
      }
    }
    log(`[${((Date.now() - startedAt) / 1000).toFixed(1)}s] ${fault.kind} done, back after ${Date.now() - t0} ms`);
  }
  return done;
}
