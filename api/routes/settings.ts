// The merchant's checkout timings. They are resolved into each checkout's workflow input when it is
// created, so a change applies to checkouts created afterwards and never moves the deadlines of a
// running one (its workflow already has its durations as data).
import { Router } from 'express';
import type { PrismaClient } from '../../platform/db.js';
import type { Logger } from '../../platform/logger.js';
import type { CheckoutTimeouts } from '../../domain/index.js';
import { merchantIdOf } from '../auth.js';
import { requireJson } from '../json.js';
import { settingsResource, type MerchantSettings } from '../serialize.js';
import { parseBody, settingsPatchBody } from '../validation.js';

export const SETTINGS_SELECT = {
  reservationTimeoutSeconds: true,
  actionTimeoutSeconds: true,
  authorizationTtlSeconds: true,
  settlementDelaySeconds: true,
  refundWindowSeconds: true,
} as const;

export function loadSettings(prisma: PrismaClient, merchantId: string): Promise<MerchantSettings> {
  // Only reachable behind requireApiKey, which found this merchant.
  return prisma.merchant.findUniqueOrThrow({ where: { id: merchantId }, select: SETTINGS_SELECT });
}

/** Seconds on the merchant row -> the milliseconds the workflow's timers take. */
export function checkoutTimeoutsOf(s: MerchantSettings): CheckoutTimeouts {
  return {
    reservationTimeoutMs: s.reservationTimeoutSeconds * 1000,
    actionTimeoutMs: s.actionTimeoutSeconds * 1000,
    authorizationTtlMs: s.authorizationTtlSeconds * 1000,
    settlementDelayMs: s.settlementDelaySeconds * 1000,
    refundWindowMs: s.refundWindowSeconds * 1000,
  };
}

export function settingsRouter(prisma: PrismaClient, logger: Logger): Router {
  const router = Router();

  router.get('/', async (_req, res) => {
    res.json(settingsResource(await loadSettings(prisma, merchantIdOf(res))));
  });

  router.patch('/', ...requireJson, async (req, res) => {
    const merchantId = merchantIdOf(res);
    // No body changes nothing, like `{}`.
    const changes = parseBody(settingsPatchBody, req.body === undefined ? {} : req.body);
    const updated = await prisma.merchant.update({ where: { id: merchantId }, data: changes, select: SETTINGS_SELECT });
    logger.info('settings changed', { requestId: res.locals.requestId as string, merchantId, changes });
    res.json(settingsResource(updated));
  });

  return router;
}
