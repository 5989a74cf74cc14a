-- CreateTable
CREATE TABLE "ledger_accounts" (
    "id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "currency" CHAR(3) NOT NULL,
    "allow_overdraft" BOOLEAN NOT NULL,
    "shards" INTEGER NOT NULL DEFAULT 1,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ledger_accounts_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ledger_balances" (
    "account_id" TEXT NOT NULL,
    "shard" INTEGER NOT NULL,
    "debits_pending" BIGINT NOT NULL DEFAULT 0,
    "debits_posted" BIGINT NOT NULL DEFAULT 0,
    "credits_pending" BIGINT NOT NULL DEFAULT 0,
    "credits_posted" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "ledger_balances_pkey" PRIMARY KEY ("account_id","shard")
);

-- CreateTable
CREATE TABLE "ledger_transfers" (
    "id" TEXT NOT NULL,
    "debit_account_id" TEXT NOT NULL,
    "credit_account_id" TEXT NOT NULL,
    "amount" BIGINT NOT NULL,
    "currency" CHAR(3) NOT NULL,
    "kind" TEXT NOT NULL,
    "pending_id" TEXT,
    "code" TEXT NOT NULL,
    "reference" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ledger_transfers_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "topups" (
    "id" TEXT NOT NULL,
    "merchant_id" TEXT NOT NULL,
    "customer_id" TEXT NOT NULL,
    "idempotency_key" TEXT NOT NULL,
    "amount" BIGINT NOT NULL,
    "currency" CHAR(3) NOT NULL,
    "status" TEXT NOT NULL,
    "failure_code" TEXT,
    "failure_message" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "topups_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "payouts" (
    "id" TEXT NOT NULL,
    "merchant_id" TEXT NOT NULL,
    "customer_id" TEXT NOT NULL,
    "idempotency_key" TEXT NOT NULL,
    "amount" BIGINT NOT NULL,
    "currency" CHAR(3) NOT NULL,
    "bank_code" TEXT NOT NULL,
    "account_number" TEXT NOT NULL,
    "scheduled_at" TIMESTAMPTZ(3) NOT NULL,
    "status" TEXT NOT NULL,
    "bank_transfer_id" TEXT,
    "failure_code" TEXT,
    "failure_message" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "payouts_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "ledger_transfers_pending_id_key" ON "ledger_transfers"("pending_id");

-- CreateIndex
CREATE INDEX "ledger_transfers_debit_account_id_created_at_idx" ON "ledger_transfers"("debit_account_id", "created_at");

-- CreateIndex
CREATE INDEX "ledger_transfers_credit_account_id_created_at_idx" ON "ledger_transfers"("credit_account_id", "created_at");

-- CreateIndex
CREATE INDEX "ledger_transfers_reference_idx" ON "ledger_transfers"("reference");

-- CreateIndex
CREATE UNIQUE INDEX "topups_merchant_id_idempotency_key_key" ON "topups"("merchant_id", "idempotency_key");

-- CreateIndex
CREATE UNIQUE INDEX "payouts_merchant_id_idempotency_key_key" ON "payouts"("merchant_id", "idempotency_key");

-- CreateIndex
CREATE INDEX "payouts_merchant_id_customer_id_idx" ON "payouts"("merchant_id", "customer_id");

-- AddForeignKey
ALTER TABLE "ledger_balances" ADD CONSTRAINT "ledger_balances_account_id_fkey" FOREIGN KEY ("account_id") REFERENCES "ledger_accounts"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- The ledger's invariants, enforced by the database as well as the code: amounts are positive,
-- counters never negative, a transfer stays in one currency between two different accounts, a
-- resolution names a pending transfer and nothing else does. (No overdraft is enforced by the
-- conditional balance update in platform/ledger.ts: it needs the account's flag.)
ALTER TABLE "ledger_transfers" ADD CONSTRAINT "ledger_transfers_amount_positive" CHECK ("amount" > 0);
ALTER TABLE "ledger_transfers" ADD CONSTRAINT "ledger_transfers_two_accounts" CHECK ("debit_account_id" <> "credit_account_id");
ALTER TABLE "ledger_transfers" ADD CONSTRAINT "ledger_transfers_kind"
    CHECK ("kind" IN ('posted', 'pending', 'post_pending', 'void_pending'));
ALTER TABLE "ledger_transfers" ADD CONSTRAINT "ledger_transfers_pending_id_only_on_resolutions"
    CHECK (("pending_id" IS NOT NULL) = ("kind" IN ('post_pending', 'void_pending')));
ALTER TABLE "ledger_balances" ADD CONSTRAINT "ledger_balances_nonnegative"
    CHECK ("debits_pending" >= 0 AND "debits_posted" >= 0 AND "credits_pending" >= 0 AND "credits_posted" >= 0);
ALTER TABLE "ledger_accounts" ADD CONSTRAINT "ledger_accounts_shards_positive" CHECK ("shards" BETWEEN 1 AND 64);
ALTER TABLE "topups" ADD CONSTRAINT "topups_amount_positive" CHECK ("amount" > 0);
ALTER TABLE "payouts" ADD CONSTRAINT "payouts_amount_positive" CHECK ("amount" > 0);

-- Append-only: the journal can be inserted into, never changed.
CREATE FUNCTION "ledger_transfers_append_only"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger_transfers is append-only';
END;
$$;
CREATE TRIGGER "ledger_transfers_no_update_or_delete" BEFORE UPDATE OR DELETE ON "ledger_transfers"
    FOR EACH ROW EXECUTE FUNCTION "ledger_transfers_append_only"();
