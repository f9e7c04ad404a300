-- Modify "memberships" table
ALTER TABLE "memberships" ADD COLUMN "chat_last_message_at" timestamptz NULL;
-- Backfill: each membership takes its chat's last_message_at, the inbox's order
UPDATE "memberships" SET "chat_last_message_at" = "chats"."last_message_at" FROM "chats" WHERE "chats"."id" = "memberships"."chat_id";
-- Create index "memberships_user_inbox_idx" to table: "memberships"
CREATE INDEX "memberships_user_inbox_idx" ON "memberships" ("user_id", "chat_last_message_at", "chat_id");
