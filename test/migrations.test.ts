// The migration runner writes Prisma's history table the way Prisma does, and prisma/schema.prisma
// agrees with prisma/migrations: every model is written and read back through the generated client
// against a database built only from the migrations.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../platform/api-keys.js';
import { createPrisma, type PrismaClient } from '../platform/db.js';
import { applyMigrations, DEFAULT_MIGRATIONS_DIR, migrationChecksum } from '../scripts/migrate.js';
import { createLogger } from '../platform/logger.js';

const log = createLogger('migrations-test', 'error');
const created: string[] = [];
let adminUrl: string;

function urlFor(database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/** A new, empty database on the global-setup server. */
async function freshDatabase(): Promise<string> {
  const name = `migrations_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  created.push(name);
  return urlFor(name);
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** A copy of prisma/migrations that a test may change. */
async function copyOfMigrations(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'migrations-'));
  await fs.cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
  return dir;
}

async function localMigrationNames(dir = DEFAULT_MIGRATIONS_DIR): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
}

beforeAll(() => {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is not set: test/global-setup.ts should have provided it');
  const admin = new URL(url);
  admin.pathname = '/postgres';
  adminUrl = admin.toString();
});

afterAll(async () => {
  if (!adminUrl) return;
  for (const name of created) {
    await query(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
});

describe('test harness', () => {
  it('hands the global setup servers to test workers through the environment', async () => {
    expect(process.env.DATABASE_URL).toMatch(/^postgresql:\/\//);
    expect(process.env.TEMPORAL_ADDRESS).toMatch(/^127\.0\.0\.1:\d+$/);
    const [merchant] = await query<{ name: string; api_key_hash: string }>(
      process.env.DATABASE_URL!,
      'SELECT name, api_key_hash FROM merchants WHERE id = $1',
      ['demo'],
    );
    expect(merchant).toEqual({ name: 'Demo merchant', api_key_hash: hashApiKey('sk_test_demo') });
  });
});

describe('applyMigrations', () => {
  it("records each migration in _prisma_migrations the way Prisma does, and a rerun applies nothing", async () => {
    const url = await freshDatabase();
    const names = await localMigrationNames();

    const first = await applyMigrations(url, DEFAULT_MIGRATIONS_DIR, log);
    expect(first).toEqual({ applied: names, alreadyApplied: [] });

    const rows = await query<{
      id: string;
      checksum: string;
      migration_name: string;
      finished_at: Date | null;
      started_at: Date;
      rolled_back_at: Date | null;
      logs: string | null;
      applied_steps_count: number;
    }>(url, 'SELECT * FROM _prisma_migrations ORDER BY migration_name');
    expect(rows.map((r) => r.migration_name)).toEqual(names);
    for (const row of rows) {
      const script = await fs.readFile(path.join(DEFAULT_MIGRATIONS_DIR, row.migration_name, 'migration.sql'));
      expect(row.checksum).toBe(migrationChecksum(script));
      expect(row.checksum).toMatch(/^[0-9a-f]{64}$/);
      expect(row.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(row.finished_at).toBeInstanceOf(Date);
      expect(row.finished_at!.getTime()).toBeGreaterThanOrEqual(row.started_at.getTime());
      expect(row.rolled_back_at).toBeNull();
      expect(row.logs).toBeNull();
      expect(row.applied_steps_count).toBe(1);
    }

    // Prisma's column types, so `prisma migrate status` reads the table without complaint.
    const columns = await query<{ column_name: string; data_type: string; character_maximum_length: number | null; is_nullable: string }>(
      url,
      `SELECT column_name, data_type, character_maximum_length, is_nullable FROM information_schema.columns
        WHERE table_name = '_prisma_migrations' ORDER BY ordinal_position`,
    );
    expect(columns).toEqual([
      { column_name: 'id', data_type: 'character varying', character_maximum_length: 36, is_nullable: 'NO' },
      { column_name: 'checksum', data_type: 'character varying', character_maximum_length: 64, is_nullable: 'NO' },
      { column_name: 'finished_at', data_type: 'timestamp with time zone', character_maximum_length: null, is_nullable: 'YES' },
      { column_name: 'migration_name', data_type: 'character varying', character_maximum_length: 255, is_nullable: 'NO' },
      { column_name: 'logs', data_type: 'text', character_maximum_length: null, is_nullable: 'YES' },
      { column_name: 'rolled_back_at', data_type: 'timestamp with time zone', character_maximum_length: null, is_nullable: 'YES' },
      { column_name: 'started_at', data_type: 'timestamp with time zone', character_maximum_length: null, is_nullable: 'NO' },
      { column_name: 'applied_steps_count', data_type: 'integer', character_maximum_length: null, is_nullable: 'NO' },
    ]);

    const second = await applyMigrations(url, DEFAULT_MIGRATIONS_DIR, log);
    expect(second).toEqual({ applied: [], alreadyApplied: names });
    expect(await query(url, 'SELECT 1 FROM _prisma_migrations')).toHaveLength(rows.length);
  });

  it('applies each migration once when two runs race (advisory lock)', async () => {
    const url = await freshDatabase();
    const names = await localMigrationNames();
    const results = await Promise.all([
      applyMigrations(url, DEFAULT_MIGRATIONS_DIR, log),
      applyMigrations(url, DEFAULT_MIGRATIONS_DIR, log),
    ]);
    expect(results.flatMap((r) => r.applied).sort()).toEqual(names);
    expect(await query(url, 'SELECT 1 FROM _prisma_migrations')).toHaveLength(names.length);
  });

  it('applies a new migration added after the first run, in name order', async () => {
    const url = await freshDatabase();
    const dir = await copyOfMigrations();
    try {
      await applyMigrations(url, dir, log);
      await fs.mkdir(path.join(dir, '29991231000000_add_note'));
      await fs.writeFile(path.join(dir, '29991231000000_add_note', 'migration.sql'), 'ALTER TABLE "merchants" ADD COLUMN "note" TEXT;\n');
      const result = await applyMigrations(url, dir, log);
      expect(result.applied).toEqual(['29991231000000_add_note']);
      const cols = await query(url, `SELECT 1 FROM information_schema.columns WHERE table_name = 'merchants' AND column_name = 'note'`);
      expect(cols).toHaveLength(1);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to run when an applied migration file was changed', async () => {
    const url = await freshDatabase();
    const dir = await copyOfMigrations();
    try {
      await applyMigrations(url, dir, log);
      const [first] = await localMigrationNames(dir);
      await fs.appendFile(path.join(dir, first!, 'migration.sql'), '\n-- edited after it was applied\n');
      await expect(applyMigrations(url, dir, log)).rejects.toThrow(/was modified after it was applied/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('accepts an applied migration whose file only changed line endings, as Prisma does', async () => {
    const url = await freshDatabase();
    const dir = await copyOfMigrations();
    try {
      await applyMigrations(url, dir, log);
      const [first] = await localMigrationNames(dir);
      const file = path.join(dir, first!, 'migration.sql');
      await fs.writeFile(file, (await fs.readFile(file, 'utf8')).replaceAll('\n', '\r\n'));
      await expect(applyMigrations(url, dir, log)).resolves.toMatchObject({ applied: [] });
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('rolls a failing migration back completely and records nothing, so it can be fixed and rerun', async () => {
    const url = await freshDatabase();
    const dir = await copyOfMigrations();
    try {
      await applyMigrations(url, dir, log);
      const broken = path.join(dir, '29991231000000_broken');
      await fs.mkdir(broken);
      await fs.writeFile(path.join(broken, 'migration.sql'), 'CREATE TABLE "half" (id INT);\nSELECT no_such_function();\n');
      await expect(applyMigrations(url, dir, log)).rejects.toThrow(/29991231000000_broken failed and was rolled back/);
      expect(await query(url, `SELECT 1 FROM information_schema.tables WHERE table_name = 'half'`)).toHaveLength(0);
      expect(await query(url, `SELECT 1 FROM _prisma_migrations WHERE migration_name = '29991231000000_broken'`)).toHaveLength(0);

      await fs.writeFile(path.join(broken, 'migration.sql'), 'CREATE TABLE "half" (id INT);\n');
      await expect(applyMigrations(url, dir, log)).resolves.toMatchObject({ applied: ['29991231000000_broken'] });
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to run after a failed migration that Prisma recorded, until it is marked rolled back', async () => {
    const url = await freshDatabase();
    const dir = await copyOfMigrations();
    try {
      await applyMigrations(url, dir, log);
      // What `prisma migrate deploy` leaves behind when a script fails half-way.
      await fs.mkdir(path.join(dir, '29991231000000_failed'));
      await fs.writeFile(path.join(dir, '29991231000000_failed', 'migration.sql'), 'SELECT 1;\n');
      const id = randomUUID();
      await query(url, `INSERT INTO _prisma_migrations (id, checksum, migration_name, logs) VALUES ($1, $2, $3, $4)`, [
        id,
        migrationChecksum('SELECT 1;\n'),
        '29991231000000_failed',
        'boom',
      ]);
      await expect(applyMigrations(url, dir, log)).rejects.toThrow(/29991231000000_failed failed in an earlier run/);

      await query(url, 'UPDATE _prisma_migrations SET rolled_back_at = now() WHERE id = $1', [id]);
      await expect(applyMigrations(url, dir, log)).resolves.toMatchObject({ applied: ['29991231000000_failed'] });
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('schema.prisma and the migrations', () => {
  let prisma: PrismaClient;
  let url: string;

  beforeAll(async () => {
    url = await freshDatabase();
    await applyMigrations(url, DEFAULT_MIGRATIONS_DIR, log);
    prisma = createPrisma(url, 2);
  });

  afterAll(async () => {
    await prisma?.$disconnect();
  });

  it('writes and reads every model through the generated client', async () => {
    const merchant = await prisma.merchant.create({
      data: { id: 'm_schema', name: 'Schema merchant', apiKeyHash: hashApiKey('sk_schema') },
    });
    const product = await prisma.product.create({
      data: { merchantId: merchant.id, sku: 'sku-1', name: 'Ticket', priceAmount: 1999n, currency: 'JPY', available: 5 },
    });
    const checkout = await prisma.checkout.create({
      data: {
        id: 'checkout-m_schema-key1',
        merchantId: merchant.id,
        customerId: 'cus_1',
        idempotencyKey: 'key1',
        status: 'processing',
        amount: 3998n,
        currency: 'JPY',
        paymentMethod: 'card',
        items: { create: [{ sku: 'sku-1', quantity: 2, unitAmount: 1999n }] },
        reservations: { create: [{ merchantId: merchant.id, sku: 'sku-1', quantity: 2, status: 'held' }] },
        paymentAttempts: {
          create: [{ idempotencyKey: 'checkout-m_schema-key1:authorize', operation: 'authorize', status: 'approved', amount: 3998n, currency: 'JPY', networkId: 'auth_1' }],
        },
      },
    });

    const read = await prisma.checkout.findUniqueOrThrow({
      where: { merchantId_idempotencyKey: { merchantId: merchant.id, idempotencyKey: 'key1' } },
      include: { items: true, reservations: true, paymentAttempts: true, merchant: { include: { products: true } } },
    });
    expect(read).toMatchObject({
      id: checkout.id,
      status: 'processing',
      amount: 3998n,
      failureCode: null,
      items: [{ sku: 'sku-1', quantity: 2, unitAmount: 1999n }],
      reservations: [{ sku: 'sku-1', quantity: 2, status: 'held' }],
      paymentAttempts: [{ operation: 'authorize', status: 'approved', networkId: 'auth_1', declineCode: null }],
      merchant: { id: 'm_schema', products: [{ sku: 'sku-1', available: 5, reserved: 0, sold: 0, priceAmount: 1999n }] },
    });
    expect(read.createdAt).toBeInstanceOf(Date);
    expect(read.updatedAt).toBeInstanceOf(Date);
    expect(product.updatedAt).toBeInstanceOf(Date);

    const updated = await prisma.product.update({
      where: { merchantId_sku: { merchantId: merchant.id, sku: 'sku-1' } },
      data: { available: { decrement: 2 }, reserved: { increment: 2 } },
    });
    expect(updated).toMatchObject({ available: 3, reserved: 2 });
    expect(await prisma.merchant.findUnique({ where: { apiKeyHash: hashApiKey('sk_schema') } })).toMatchObject({ id: 'm_schema' });
  });

  it('writes and reads the later models through the generated client', async () => {
    const merchant = await prisma.merchant.create({ data: { id: 'm_later', name: 'Later merchant', apiKeyHash: hashApiKey('sk_later') } });
    expect(merchant).toMatchObject({ reservationTimeoutSeconds: 600, settlementDelaySeconds: 172800, refundWindowSeconds: 15552000 });
    await prisma.checkout.create({
      data: {
        id: 'checkout-m_later-k',
        merchantId: merchant.id,
        customerId: 'cus_1',
        idempotencyKey: 'k',
        status: 'captured',
        amount: 1000n,
        currency: 'JPY',
        paymentMethod: 'wallet',
        captureMethod: 'manual',
        amountCaptured: 1000n,
        refunds: { create: [{ id: 're_1', merchantId: merchant.id, amount: 400n, currency: 'JPY', status: 'succeeded' }] },
      },
    });
    expect(await prisma.checkout.findUniqueOrThrow({ where: { id: 'checkout-m_later-k' }, include: { refunds: true } })).toMatchObject({
      captureMethod: 'manual',
      amountCaptured: 1000n,
      amountRefunded: 0n,
      settledAt: null,
      refunds: [{ id: 're_1', amount: 400n, status: 'succeeded', failureCode: null }],
    });

    await prisma.ledgerAccount.create({
      data: { id: 'wallet:m_later:cus_1:JPY', kind: 'wallet', currency: 'JPY', allowOverdraft: false, balances: { create: [{ shard: 0, creditsPosted: 500n }] } },
    });
    await prisma.ledgerTransfer.create({
      data: { id: 't1', debitAccountId: 'platform:card_clearing:JPY', creditAccountId: 'wallet:m_later:cus_1:JPY', amount: 500n, currency: 'JPY', kind: 'posted', code: 'topup' },
    });
    expect(await prisma.ledgerAccount.findUniqueOrThrow({ where: { id: 'wallet:m_later:cus_1:JPY' }, include: { balances: true } })).toMatchObject({
      shards: 1,
      balances: [{ shard: 0, debitsPending: 0n, debitsPosted: 0n, creditsPending: 0n, creditsPosted: 500n }],
    });
    expect(await prisma.ledgerTransfer.findUniqueOrThrow({ where: { id: 't1' } })).toMatchObject({ pendingId: null, reference: null, amount: 500n });

    await prisma.topup.create({ data: { id: 'topup-m_later-k', merchantId: merchant.id, customerId: 'cus_1', idempotencyKey: 'k', amount: 500n, currency: 'JPY', status: 'succeeded' } });
    await prisma.payout.create({
      data: {
        id: 'payout-m_later-k',
        merchantId: merchant.id,
        customerId: 'cus_1',
        idempotencyKey: 'k',
        amount: 100n,
        currency: 'JPY',
        bankCode: '0001',
        accountNumber: '1234567',
        scheduledAt: new Date(),
        status: 'pending',
      },
    });
    expect(await prisma.topup.findUniqueOrThrow({ where: { merchantId_idempotencyKey: { merchantId: merchant.id, idempotencyKey: 'k' } } })).toMatchObject({ failureCode: null });
    expect(await prisma.payout.findUniqueOrThrow({ where: { id: 'payout-m_later-k' } })).toMatchObject({ bankTransferId: null, status: 'pending' });

    await prisma.idempotencyRequest.create({
      data: { merchantId: merchant.id, key: 'k', method: 'POST', path: '/v1/topups', requestHash: 'h', status: 'completed', responseStatus: 201, responseBody: { id: 'x' }, expiresAt: new Date(Date.now() + 86_400_000) },
    });
    expect(await prisma.idempotencyRequest.findUniqueOrThrow({ where: { merchantId_key: { merchantId: merchant.id, key: 'k' } } })).toMatchObject({
      responseStatus: 201,
      responseBody: { id: 'x' },
      lockedUntil: null,
    });

    await prisma.reconciliation.create({
      data: { id: 'reconciliation-m', status: 'running', until: new Date(), merchantId: merchant.id, items: { create: [{ kind: 'topup_not_credited', resourceId: 'tu_1', merchantId: merchant.id, action: 'repaired', details: {} }] } },
    });
    await prisma.reconciliation.create({ data: { id: 'reconciliation-p', status: 'completed', until: new Date() } });
    expect(await prisma.reconciliation.findUniqueOrThrow({ where: { id: 'reconciliation-m' }, include: { items: true } })).toMatchObject({
      merchantId: merchant.id,
      counts: {},
      items: [{ kind: 'topup_not_credited', merchantId: merchant.id }],
    });
    expect(await prisma.reconciliation.findUniqueOrThrow({ where: { id: 'reconciliation-p' } })).toMatchObject({ merchantId: null });
    await prisma.reconciliationLease.create({ data: { scope: `merchant:${merchant.id}`, reconciliationId: 'reconciliation-m' } });
    expect(await prisma.reconciliationLease.findFirstOrThrow({ where: { reconciliationId: 'reconciliation-m' } })).toMatchObject({ scope: 'merchant:m_later', claimedAt: expect.any(Date) });
    // One run per scope: the scope is the key.
    await expect(prisma.reconciliationLease.create({ data: { scope: `merchant:${merchant.id}`, reconciliationId: 'reconciliation-other' } })).rejects.toThrow();
  });

  it('enforces the invariants only the migration can express (CHECK constraints)', async () => {
    await prisma.merchant.create({ data: { id: 'm_check', name: 'Check merchant', apiKeyHash: hashApiKey('sk_check') } });
    await prisma.product.create({
      data: { merchantId: 'm_check', sku: 'sku-1', name: 'Ticket', priceAmount: 100n, currency: 'EUR', available: 1 },
    });
    await expect(
      prisma.product.update({
        where: { merchantId_sku: { merchantId: 'm_check', sku: 'sku-1' } },
        data: { available: { decrement: 2 } },
      }),
    ).rejects.toThrow(/products_counters_nonnegative/);
  });
});
