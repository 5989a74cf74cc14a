-- AlterTable
ALTER TABLE "merchants" ADD COLUMN     "action_timeout_seconds" INTEGER NOT NULL DEFAULT 900,
ADD COLUMN     "authorization_ttl_seconds" INTEGER NOT NULL DEFAULT 604800,
ADD COLUMN     "refund_window_seconds" INTEGER NOT NULL DEFAULT 15552000,
ADD COLUMN     "reservation_timeout_seconds" INTEGER NOT NULL DEFAULT 600,
ADD COLUMN     "settlement_delay_seconds" INTEGER NOT NULL DEFAULT 172800;

-- AlterTable
ALTER TABLE "checkouts" ADD COLUMN     "amount_captured" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "amount_refunded" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "capture_method" TEXT NOT NULL DEFAULT 'automatic',
ADD COLUMN     "settled_at" TIMESTAMPTZ(3);

-- CreateTable
CREATE TABLE "refunds" (
    "id" TEXT NOT NULL,
    "checkout_id" TEXT NOT NULL,
    "merchant_id" TEXT NOT NULL,
    "amount" BIGINT NOT NULL,
    "currency" CHAR(3) NOT NULL,
    "status" TEXT NOT NULL,
    "failure_code" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "refunds_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "refunds_checkout_id_idx" ON "refunds"("checkout_id");

-- AddForeignKey
ALTER TABLE "refunds" ADD CONSTRAINT "refunds_checkout_id_fkey" FOREIGN KEY ("checkout_id") REFERENCES "checkouts"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- Money never goes backwards: a refund is positive, and a checkout never refunds more than it
-- captured (the workflow checks first; this makes a bug fail loudly instead of paying out).
ALTER TABLE "refunds" ADD CONSTRAINT "refunds_amount_positive" CHECK ("amount" > 0);
ALTER TABLE "checkouts" ADD CONSTRAINT "checkouts_refund_within_capture"
    CHECK ("amount_captured" >= 0 AND "amount_refunded" >= 0 AND "amount_refunded" <= "amount_captured");
ALTER TABLE "merchants" ADD CONSTRAINT "merchants_timeouts_positive"
    CHECK ("reservation_timeout_seconds" > 0 AND "action_timeout_seconds" > 0 AND "authorization_ttl_seconds" > 0
       AND "settlement_delay_seconds" >= 0 AND "refund_window_seconds" >= 0);
