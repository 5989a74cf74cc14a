import { Router } from 'express';
import type { PrismaClient } from '../../platform/db.js';
import { Prisma } from '../../generated/prisma/client.js';
import { merchantIdOf } from '../auth.js';
import { conflict, notFound } from '../errors.js';
import { productResource } from '../serialize.js';
import { createProductBody, isSku, parseBody } from '../validation.js';
import { requireJson } from '../json.js';

export function productsRouter(prisma: PrismaClient): Router {
  const router = Router();

  router.post('/', ...requireJson, async (req, res) => {
    const merchantId = merchantIdOf(res);
    const body = parseBody(createProductBody, req.body);
    try {
      const product = await prisma.product.create({
        data: {
          merchantId,
          sku: body.sku,
          name: body.name,
          priceAmount: BigInt(body.price.amount),
          currency: body.price.currency,
          available: body.stock,
        },
      });
      res.status(201).json(productResource(product));
    } catch (err) {
      // Insert-and-catch rather than check-then-insert: two concurrent creates cannot both win.
      if (err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002') {
        throw conflict('product_exists', `A product with sku ${body.sku} already exists.`, 'sku');
      }
      throw err;
    }
  });

  router.get('/:sku', async (req, res) => {
    const merchantId = merchantIdOf(res);
    const { sku } = req.params;
    const product = isSku(sku) ? await prisma.product.findUnique({ where: { merchantId_sku: { merchantId, sku } } }) : null;
    if (!product) throw notFound(`No such product: ${isSku(sku) ? sku : '(invalid sku)'}.`);
    res.json(productResource(product));
  });

  return router;
}
