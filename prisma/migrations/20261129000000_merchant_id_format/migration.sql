-- Merchant ids name ledger accounts (`wallet:<merchant>:...`, split on ':') and travel in logs:
-- letters, digits, '_' and '-' only (domain/ids.ts isMerchantId). NOT VALID: rows written before
-- the rule stay as they are; every row written from now on is checked.
ALTER TABLE "merchants" ADD CONSTRAINT "merchants_id_format" CHECK ("id" ~ '^[A-Za-z0-9_-]{1,64}$') NOT VALID;
