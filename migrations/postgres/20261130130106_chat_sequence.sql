-- Modify "messages" table: each message gets its place in its chat, in the
-- chat's history order (created_at, then id, as History read it before).
ALTER TABLE "messages" ADD COLUMN "seq" bigint NULL;
UPDATE "messages" SET "seq" = s."rn"
  FROM (SELECT "id", row_number() OVER (PARTITION BY "chat_id" ORDER BY "created_at", "id") AS "rn" FROM "messages") AS s
  WHERE "messages"."id" = s."id";
-- atlas:nolint MF104 every row got its seq just above
ALTER TABLE "messages" ALTER COLUMN "seq" SET NOT NULL;
-- Create index "messages_chat_seq_key" to table: "messages"
-- atlas:nolint MF101 seq is the row number within each chat, unique by construction
CREATE UNIQUE INDEX "messages_chat_seq_key" ON "messages" ("chat_id", "seq");
-- Drop index "messages_chat_created_id_idx" from table: "messages"
DROP INDEX "messages_chat_created_id_idx";
-- Modify "chats" table: the sequence, and whether appends fan out (up to 32
-- members, the store's default limit).
ALTER TABLE "chats" ADD COLUMN "last_seq" bigint NOT NULL DEFAULT 0, ADD COLUMN "large" boolean NOT NULL DEFAULT false;
UPDATE "chats" SET
  "last_seq" = COALESCE((SELECT max("seq") FROM "messages" WHERE "messages"."chat_id" = "chats"."id"), 0),
  "large" = (SELECT count(*) FROM "memberships" WHERE "memberships"."chat_id" = "chats"."id") > 32;
-- Modify "memberships" table: the read position becomes a seq, at the message
-- read last or the member's own newest message, whichever is later (a member's
-- own messages are not unread).
ALTER TABLE "memberships" ADD COLUMN "read_seq" bigint NOT NULL DEFAULT 0, ADD COLUMN "large" boolean NOT NULL DEFAULT false;
UPDATE "memberships" SET
  "read_seq" = GREATEST(
    COALESCE((SELECT "seq" FROM "messages" WHERE "messages"."id" = "memberships"."last_read_message_id"), 0),
    COALESCE((SELECT max("seq") FROM "messages" WHERE "messages"."chat_id" = "memberships"."chat_id" AND "messages"."sender_id" = "memberships"."user_id"), 0)),
  "large" = (SELECT "large" FROM "chats" WHERE "chats"."id" = "memberships"."chat_id");
UPDATE "memberships" SET "last_read_message_id" =
  (SELECT "id" FROM "messages" WHERE "messages"."chat_id" = "memberships"."chat_id" AND "messages"."seq" = "memberships"."read_seq");
-- atlas:nolint DS103 the read position moved into read_seq just above
ALTER TABLE "memberships" DROP COLUMN "last_read_at";
-- Drop index "memberships_user_inbox_idx" from table: "memberships"
DROP INDEX "memberships_user_inbox_idx";
-- Create index "memberships_user_inbox_idx" to table: "memberships"
CREATE INDEX "memberships_user_inbox_idx" ON "memberships" ("user_id", "chat_last_message_at", "chat_id") WHERE (NOT large);
-- Create index "memberships_user_large_idx" to table: "memberships"
CREATE INDEX "memberships_user_large_idx" ON "memberships" ("user_id") WHERE large;
