// Merchants of a test file's own, so that one file's products, checkouts, wallets and counts never
// meet another's assertions in the database every file of the run shares (test/global-setup.ts).
// Only Prisma and the key hash: a file that needs a merchant does not need the API harness with it.
import { randomUUID } from 'node:crypto';
import { hashApiKey } from '../../platform/api-keys.js';
import { createPrisma, type PrismaClient } from '../../platform/db.js';

export interface TestMerchant {
  id: string;
  key: string;
}

/**
 * A merchant of its own (`<prefix>_<random>`, with a random key), stored the way scripts/seed.ts
 * stores one: only the key's hash. Takes a client, or a DATABASE_URL for a short-lived client of its
 * own (a file that speaks only HTTP to a stack sharing that database).
 */
export async function createMerchant(db: PrismaClient | string, prefix: string): Promise<TestMerchant> {
  const suffix = randomUUID().slice(0, 8);
  const merchant = { id: `${prefix}_${suffix}`, key: `sk_test_${prefix}_${randomUUID()}` };
  const prisma = typeof db === 'string' ? createPrisma(db, 1) : db;
  try {
    await prisma.merchant.create({ data: { id: merchant.id, name: `${prefix} shop`, apiKeyHash: hashApiKey(merchant.key) } });
  } finally {
    if (typeof db === 'string') await prisma.$disconnect();
  }
  return merchant;
}
