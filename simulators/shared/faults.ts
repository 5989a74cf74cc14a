// Test faults, as every simulator keeps them: a test queues one for a reference (and, where the
// system has several kinds of request, for one of them), to hit the next `times` matching requests.
// A request takes one hit inside its own transaction (simulators/shared/idempotency.ts), so a fault
// is spent exactly when the request it shaped commits. Used-up faults stay, so a test can see that
// they fired. Each system keeps the table in its own schema (`<schema>.faults`).
import type pg from 'pg';
import type { FaultMode } from './idempotency.js';

export interface FaultSpec {
  /** The business reference the requests carry (a checkout id, a payout id). */
  reference: string;
  /** Which kind of request it hits, for a system with several (the card network's operations). */
  operation?: string;
  mode: FaultMode;
  /** How many matching requests, from now on, the fault applies to. */
  times: number;
}

export type FaultRecord<Spec extends FaultSpec> = Spec & {
  id: string;
  /** Matching requests still to be hit; 0 once used up. */
  remaining: number;
  createdAt: string;
};

interface FaultRow {
  id: string; // bigserial, as a string
  reference: string;
  operation?: string;
  mode: FaultMode;
  times: number;
  remaining: number;
  created_at: Date;
}

export class FaultQueue<Spec extends FaultSpec> {
  /** `byOperation`: the table has an `operation` column and a fault hits one kind of request. */
  constructor(
    private readonly pool: pg.Pool,
    private readonly table: string,
    private readonly byOperation: boolean,
  ) {}

  /** Queues a fault behind any pending ones for the same reference (and operation). */
  async add(spec: Spec): Promise<FaultRecord<Spec>> {
    const { rows } = this.byOperation
      ? await this.pool.query<FaultRow>(
          `INSERT INTO ${this.table} (reference, operation, mode, times, remaining) VALUES ($1, $2, $3, $4, $4) RETURNING *`,
          [spec.reference, spec.operation, spec.mode, spec.times],
        )
      : await this.pool.query<FaultRow>(`INSERT INTO ${this.table} (reference, mode, times, remaining) VALUES ($1, $2, $3, $3) RETURNING *`, [
          spec.reference,
          spec.mode,
          spec.times,
        ]);
    return this.record(rows[0]!);
  }

  /** Every fault injected for a reference, oldest first, used up or not. */
  async byReference(reference: string): Promise<Array<FaultRecord<Spec>>> {
    const { rows } = await this.pool.query<FaultRow>(`SELECT * FROM ${this.table} WHERE reference = $1 ORDER BY id`, [reference]);
    return rows.map((row) => this.record(row));
  }

  /** Uses one hit of the oldest pending fault the request matches, in the request's transaction. */
  async take(c: pg.PoolClient, reference: string, operation?: string): Promise<FaultMode | undefined> {
    const match = this.byOperation ? 'reference = $1 AND operation = $2' : 'reference = $1';
    const { rows } = await c.query<{ mode: FaultMode }>(
      `UPDATE ${this.table} SET remaining = remaining - 1
        WHERE id = (SELECT id FROM ${this.table} WHERE ${match} AND remaining > 0 ORDER BY id LIMIT 1 FOR UPDATE)
        RETURNING mode`,
      this.byOperation ? [reference, operation] : [reference],
    );
    return rows[0]?.mode;
  }

  private record(row: FaultRow): FaultRecord<Spec> {
    return {
      id: row.id,
      reference: row.reference,
      ...(this.byOperation ? { operation: row.operation } : {}),
      mode: row.mode,
      times: row.times,
      remaining: row.remaining,
      createdAt: row.created_at.toISOString(),
    } as FaultRecord<Spec>;
  }
}
