-- A reconciliation covers every merchant (merchant_id NULL) or one merchant's records.
ALTER TABLE "reconciliations" ADD COLUMN "merchant_id" TEXT;

-- One reconciliation runs per scope ('platform', or 'merchant:<id>') at a time: the row names the run
-- that holds the scope, until it finishes (or its workflow is found gone).
CREATE TABLE "reconciliation_leases" (
    "scope" TEXT NOT NULL,
    "reconciliation_id" TEXT NOT NULL,
    "claimed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "reconciliation_leases_pkey" PRIMARY KEY ("scope")
);

CREATE INDEX "reconciliation_leases_reconciliation_id_idx" ON "reconciliation_leases"("reconciliation_id");
