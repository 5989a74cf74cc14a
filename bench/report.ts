// The human half of the output: one row per design, then how the orchestrator compares. The
// machine half is the JSON line flash-sale.ts prints after it.
import type { DesignFigures } from './figures.js';
import type { Design } from './options.js';
import type { RawFigures } from './raw.js';

export interface Report {
  stock: number;
  buyers: number;
  concurrency: number;
  cardLatencyMs: number;
  workers: number;
  designs: Partial<Record<Design, DesignFigures>>;
  raw?: RawFigures;
  driverCheck?: { requestsPerSec: number };
}

const fmt = (x: number, digits = 0) => x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n');
}

function ratio(a: number, b: number): string {
  if (!(b > 0) || !Number.isFinite(a / b)) return 'n/a';
  const r = a / b;
  return r >= 10 ? `${fmt(r)}x` : `${fmt(r, 2)}x`;
}

export function renderReport(r: Report): string {
  const lines: string[] = [];
  lines.push(
    `Flash sale: stock ${fmt(r.stock)}, ${fmt(r.buyers)} buyers, concurrency ${r.concurrency}, card latency ${fmt(r.cardLatencyMs)} ms per call, ${r.workers} worker(s)`,
  );
  lines.push('');
  const header = ['design', 'confirmed', 'confirmed/min', 'answered all (s)', 'p50 ms', 'p95 ms', 'p99 ms', 'sold-out/s', 'oversold', 'held left', 'timeouts', 'retries', 'completed'];
  const rows = [header];
  for (const [design, f] of Object.entries(r.designs)) {
    rows.push([
      design,
      fmt(f.confirmed),
      fmt(f.confirmedPerMin),
      `${f.answeredAllProjected ? '~' : ''}${fmt(f.answeredAllMs / 1000, 1)}`,
      fmt(f.p50Ms),
      fmt(f.p95Ms),
      fmt(f.p99Ms),
      fmt(f.soldOutPerSec),
      fmt(f.oversold),
      fmt(f.heldLeft),
      fmt(f.timeouts),
      fmt(f.retries),
      f.completed ? 'yes' : `no (${fmt(f.answered)} answered)`,
    ]);
  }
  lines.push(table(rows));
  if (Object.values(r.designs).some((f) => f.answeredAllProjected)) {
    lines.push('~ projected: the design ran out of budget; units left at its time per unit, then the rest at its sold-out rate (bench/README.md).');
  }
  lines.push('POST latency is per buyer, first send to final answer, retries included.');

  const o = r.designs.orchestrator;
  if (o) {
    lines.push('');
    for (const other of ['lock', 'split'] as const) {
      const b = r.designs[other];
      if (!b) continue;
      lines.push(
        `orchestrator vs ${other}: confirmed/min ${ratio(o.confirmedPerMin, b.confirmedPerMin)}, answers everyone ${ratio(b.answeredAllMs, o.answeredAllMs)} sooner, sold-out/s ${ratio(o.soldOutPerSec, b.soldOutPerSec)}`,
      );
    }
    if (r.raw) {
      const rawPerMin = r.raw.decrementsPerSec * 60;
      lines.push(
        `orchestrator vs raw hot row (${fmt(r.raw.decrementsPerSec)} decrements/s, synchronous_commit=${r.raw.synchronousCommit}, fsync=${r.raw.fsync}): ` +
          `confirmed/min ${fmt((o.confirmedPerMin / rawPerMin) * 100, 2)}% of it, sold-out/s ${fmt((o.soldOutPerSec / r.raw.decrementsPerSec) * 100, 1)}% of it`,
      );
    }
  } else if (r.raw) {
    lines.push('');
    lines.push(`raw hot row: ${fmt(r.raw.decrementsPerSec)} decrements/s (synchronous_commit=${r.raw.synchronousCommit}, fsync=${r.raw.fsync})`);
  }
  if (r.driverCheck) lines.push(`load driver alone: ${fmt(r.driverCheck.requestsPerSec)} trivial requests/s`);
  return lines.join('\n');
}
