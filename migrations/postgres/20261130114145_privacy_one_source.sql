-- Create "credentials" table
CREATE TABLE "credentials" (
  "id" uuid NOT NULL,
  "created_at" timestamptz NOT NULL,
  "updated_at" timestamptz NOT NULL,
  "user_id" uuid NOT NULL,
  "password_hash" character varying NOT NULL,
  PRIMARY KEY ("id"),
  CONSTRAINT "credentials_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON UPDATE NO ACTION ON DELETE CASCADE
);
-- Create index "credentials_user_id_key" to table: "credentials"
CREATE UNIQUE INDEX "credentials_user_id_key" ON "credentials" ("user_id");
-- Move the password hashes out of users: each credential takes its user's ID,
-- unique as the user is, so the copy needs no ID generator.
INSERT INTO "credentials" ("id", "created_at", "updated_at", "user_id", "password_hash")
  SELECT "id", "created_at", "updated_at", "id", "password_hash" FROM "users"
  WHERE "password_hash" IS NOT NULL AND "password_hash" <> '';
-- Modify "users" table
-- atlas:nolint DS103 the hashes were copied into credentials just above; a hash in users is readable by every signed-in user
ALTER TABLE "users" DROP COLUMN "password_hash";
-- Modify "messages" table
ALTER TABLE "messages" ALTER COLUMN "content" DROP NOT NULL;
-- A deleted message keeps no text: erase what deletions left behind.
UPDATE "messages" SET "content" = NULL, "metadata" = NULL WHERE "deleted_at" IS NOT NULL;
ALTER TABLE "messages" ADD CONSTRAINT "messages_content_deleted" CHECK (deleted_at IS NULL AND content IS NOT NULL OR deleted_at IS NOT NULL AND content IS NULL);
