-- Modify "chats" table
ALTER TABLE "chats" ADD COLUMN "direct_key" character varying NULL;
-- Create index "chats_direct_key_key" to table: "chats"
CREATE UNIQUE INDEX "chats_direct_key_key" ON "chats" ("direct_key");
