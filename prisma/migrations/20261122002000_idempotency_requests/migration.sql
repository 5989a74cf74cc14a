-- CreateTable
CREATE TABLE "idempotency_requests" (
    "merchant_id" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "method" TEXT NOT NULL,
    "path" TEXT NOT NULL,
    "request_hash" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "response_status" INTEGER,
    "response_body" JSONB,
    "locked_until" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "idempotency_requests_pkey" PRIMARY KEY ("merchant_id","key")
);

-- CreateIndex
CREATE INDEX "idempotency_requests_expires_at_idx" ON "idempotency_requests"("expires_at");

-- Invariants Prisma cannot express: a row is either claimed (a lease, no answer yet) or finished
-- (an answer, no lease), so a replay can never serve a half-written answer.
ALTER TABLE "idempotency_requests" ADD CONSTRAINT "idempotency_requests_status_valid" CHECK (
    ("status" = 'in_progress' AND "locked_until" IS NOT NULL AND "response_status" IS NULL)
    OR ("status" = 'completed' AND "response_status" IS NOT NULL AND "response_body" IS NOT NULL)
);
