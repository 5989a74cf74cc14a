-- Webhook deliveries are driven from the event log itself (an outbox): a relay in each worker
-- claims events not yet dispatched on its task queue and starts their deliveries, so an event is
-- delivered whatever step wrote it, retried or crashed. Events written before the outbox were
-- dispatched by the step that wrote them: they count as dispatched.
ALTER TABLE "events" ADD COLUMN "delivery_queue" TEXT;
ALTER TABLE "events" ADD COLUMN "dispatched_at" TIMESTAMPTZ(3);
UPDATE "events" SET "dispatched_at" = "created_at";
CREATE INDEX "events_undispatched" ON "events" ("delivery_queue", "created_at") WHERE "dispatched_at" IS NULL;
