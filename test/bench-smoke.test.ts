// The flash-sale benchmark, small: it must run end to end against the suite's external PostgreSQL
// and Temporal (DATABASE_URL / TEMPORAL_ADDRESS from global-setup: the scale-out path), with two
// workers, and its last stdout line must be the JSON the issue specifies, with the invariants that
// make its figures worth reading: nothing oversold, no hold left behind.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');
const STOCK = 20;
const BUYERS = 120;
const REQUIRED = ['confirmed', 'confirmedPerMin', 'answeredAllMs', 'p50Ms', 'p95Ms', 'p99Ms', 'soldOutPerSec', 'oversold', 'heldLeft'] as const;

type Figures = Record<(typeof REQUIRED)[number], number> & Record<string, unknown>;

function runBench(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // Node with tsx's loader, not `npx tsx`: one process fewer, and no npm notices on stderr.
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, 'bench', 'flash-sale.ts'), ...args],
      { cwd: ROOT, env: process.env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

describe('flash-sale benchmark', () => {
  it('refuses a bad flag with exit code 2 before starting anything', async () => {
    const { code, stderr } = await runBench(['--buyers', 'many'], 30_000);
    expect(code).toBe(2);
    expect(stderr).toContain('--buyers must be a positive integer');
  });

  it(
    'runs all three designs and the raw measurement against external servers and ends with the JSON line',
    async () => {
      expect(process.env.DATABASE_URL, 'global-setup sets DATABASE_URL').toBeTruthy();
      expect(process.env.TEMPORAL_ADDRESS, 'global-setup sets TEMPORAL_ADDRESS').toBeTruthy();
      const args = [
        ...['--stock', String(STOCK), '--buyers', String(BUYERS), '--concurrency', '20', '--card-latency-ms', '50'],
        ...['--baseline-budget-s', '10', '--workers', '2', '--warmup', '10', '--baseline-pool', '10', '--raw', '--raw-seconds', '2'],
      ];
      const { code, stdout, stderr } = await runBench(args, 170_000);
      expect(code, `bench failed; stderr tail:\n${stderr.split('\n').slice(-30).join('\n')}`).toBe(0);

      const lines = stdout.trimEnd().split('\n');
      const result = JSON.parse(lines.at(-1)!) as {
        stock: number;
        buyers: number;
        concurrency: number;
        cardLatencyMs: number;
        orchestrator: Figures;
        lock: Figures;
        split: Figures;
        raw: { decrementsPerSec: number };
      };
      expect(result).toMatchObject({ stock: STOCK, buyers: BUYERS, concurrency: 20, cardLatencyMs: 50 });
      for (const design of ['orchestrator', 'lock', 'split'] as const) {
        const f = result[design];
        for (const key of REQUIRED) {
          expect(Number.isFinite(f[key]), `${design}.${key} = ${String(f[key])}`).toBe(true);
          expect(f[key], `${design}.${key}`).toBeGreaterThanOrEqual(0);
        }
        expect(f.oversold, `${design} oversold`).toBe(0);
        expect(f.p50Ms, `${design}.p50Ms`).toBeGreaterThan(0);
        expect(f.p50Ms).toBeLessThanOrEqual(f.p95Ms);
        expect(f.p95Ms).toBeLessThanOrEqual(f.p99Ms);
      }
      // Both designs that complete must sell exactly the stock and tell every other buyer no.
      for (const design of ['orchestrator', 'split'] as const) {
        const f = result[design];
        expect(f, design).toMatchObject({ confirmed: STOCK, heldLeft: 0, oversold: 0, completed: true, authorizationsLeft: 0 });
        expect(f.confirmedPerMin, `${design}.confirmedPerMin`).toBeGreaterThan(0);
        expect(f.answeredAllMs, `${design}.answeredAllMs`).toBeGreaterThan(0);
        expect(f.soldOutPerSec, `${design}.soldOutPerSec`).toBeGreaterThan(0);
      }
      expect(result.lock.confirmed).toBeLessThanOrEqual(STOCK);
      expect(result.raw.decrementsPerSec).toBeGreaterThan(0);
      // The table comes first, for people; the JSON line is the last thing on stdout.
      expect(lines.some((l) => l.startsWith('orchestrator '))).toBe(true);
    },
    180_000,
  );
});
