// The demo merchant `npm start` and the tests use. Idempotent: runs on every start, and a changed
// DEMO_API_KEY takes effect on the next one.
import { isMerchantId } from '../domain/index.js';
import { hashApiKey } from '../platform/api-keys.js';
import { createPrisma, type PrismaClient } from '../platform/db.js';

export interface DemoMerchant {
  merchantId: string;
  apiKey: string;
}

export const DEMO_MERCHANT_NAME = 'Demo merchant';

/** Upserts the demo merchant; accepts a DATABASE_URL (own short-lived client) or a client. */
export async function seedDemoMerchant(db: string | PrismaClient, demo: DemoMerchant): Promise<void> {
  if (!isMerchantId(demo.merchantId)) {
    throw new Error(`merchant id "${demo.merchantId}" is not valid: use 1 to 64 characters of A-Z, a-z, 0-9, "_" or "-"`);
  }
  const prisma = typeof db === 'string' ? createPrisma(db, 1) : db;
  try {
    const apiKeyHash = hashApiKey(demo.apiKey);
    await prisma.merchant.upsert({
      where: { id: demo.merchantId },
      create: { id: demo.merchantId, name: DEMO_MERCHANT_NAME, apiKeyHash },
      update: { name: DEMO_MERCHANT_NAME, apiKeyHash },
    });
  } finally {
    if (typeof db === 'string') await prisma.$disconnect();
  }
}
