// The chaos suite's short preset as part of the test run: load, one worker SIGKILL, one Temporal
// crash, one PostgreSQL restart, faulty simulators; every invariant must hold. It runs
// chaos/run.ts as a child process because the suite restarts its own PostgreSQL and Temporal:
// the child must not inherit the global setup's DATABASE_URL / TEMPORAL_ADDRESS (those servers are
// shared by every test file and must not be restarted).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');
/** The child's budget; the test's timeout is a little longer, so the child's summary arrives first. */
const CHILD_BUDGET_MS = 220_000;

function runChaos(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.DATABASE_URL;
  delete env.TEMPORAL_ADDRESS;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'chaos/run.ts'), ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // Past the test's own budget, SIGINT: the suite then stops its stack and servers before exiting.
    const guard = setTimeout(() => child.kill('SIGINT'), CHILD_BUDGET_MS);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(guard);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('chaos (short)', () => {
  it(
    'keeps every invariant, every webhook delivered and nothing for reconciliation, through a worker SIGKILL, an API SIGKILL, a Temporal crash, a PostgreSQL restart and faulty simulators',
    async () => {
      const { code, stdout, stderr } = await runChaos(['--short', '--quiesce-timeout-s', '60']);
      const last = stdout.trim().split('\n').pop() ?? '';
      let summary: Record<string, unknown>;
      try {
        summary = JSON.parse(last) as Record<string, unknown>;
      } catch {
        throw new Error(`no JSON summary (exit ${code}); stderr:\n${stderr.slice(-6000)}`);
      }
      // On failure, the human summary says which payment broke which invariant.
      if (code !== 0) console.error(stderr.slice(-6000));
      expect(code).toBe(0);
      for (const field of ['checkouts', 'topups', 'payouts', 'refunds', 'workerKills', 'apiKills', 'serverRestarts', 'dbRestarts']) {
        expect(summary[field], field).toBeGreaterThan(0);
      }
      expect(summary).toMatchObject({
        oversold: 0,
        doubleCaptures: 0,
        lostTopups: 0,
        ledgerImbalance: '0',
        nonTerminal: 0,
        pendingHolds: 0,
        ledgerMismatches: 0,
        stockMismatches: 0,
        ledgerCheckFailures: 0,
        payoutsUnresolved: 0,
        failedWorkflows: 0,
        deadProcesses: 0,
        unexpectedAnswers: 0,
        // Two merchants' loads, each with a webhook endpoint every event must reach, and a
        // platform-wide reconciliation afterwards that finds nothing to repair or report.
        merchants: 2,
        webhooksUndelivered: 0,
        webhooksForeign: 0,
        reconciliationItems: 0,
        reconciliationNotCompleted: 0,
      });
      expect(summary.webhookEvents).toBeGreaterThan(0);
    },
    // ~30 s of load plus start-up, quiescence (the last refund windows close) and checks.
    240_000,
  );
});
