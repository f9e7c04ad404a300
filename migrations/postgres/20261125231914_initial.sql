-- Create "users" table
CREATE TABLE "users" (
  "id" uuid NOT NULL,
  "created_at" timestamptz NOT NULL,
  "updated_at" timestamptz NOT NULL,
  "deleted_at" timestamptz NULL,
  "email" character varying NOT NULL,
  "display_name" character varying NOT NULL,
  "password_hash" character varying NULL,
  "status" character varying NOT NULL DEFAULT 'active',
  PRIMARY KEY ("id"),
  CONSTRAINT "users_email_length" CHECK (length((email)::text) <= 254),
  CONSTRAINT "users_status_check" CHECK ((status)::text = ANY ((ARRAY['active'::character varying, 'suspended'::character varying])::text[]))
);
-- Create index "users_email_key" to table: "users"
CREATE UNIQUE INDEX "users_email_key" ON "users" ("email");
-- Create "chats" table
CREATE TABLE "chats" (
  "id" uuid NOT NULL,
  "created_at" timestamptz NOT NULL,
  "updated_at" timestamptz NOT NULL,
  "deleted_at" timestamptz NULL,
  "kind" character varying NOT NULL,
  "title" character varying NULL,
  "last_message_at" timestamptz NOT NULL,
  "archived_at" timestamptz NULL,
  "created_by" uuid NOT NULL,
  PRIMARY KEY ("id"),
  CONSTRAINT "chats_created_by_fkey" FOREIGN KEY ("created_by") REFERENCES "users" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION,
  CONSTRAINT "chats_kind_check" CHECK ((kind)::text = ANY ((ARRAY['direct'::character varying, 'group'::character varying, 'assistant'::character varying])::text[])),
  CONSTRAINT "chats_title_length" CHECK (length((title)::text) <= 200)
);
-- Create index "chats_created_by_idx" to table: "chats"
CREATE INDEX "chats_created_by_idx" ON "chats" ("created_by");
-- Create "memberships" table
CREATE TABLE "memberships" (
  "id" uuid NOT NULL,
  "role" character varying NOT NULL DEFAULT 'member',
  "joined_at" timestamptz NOT NULL,
  "last_read_at" timestamptz NULL,
  "last_read_message_id" uuid NULL,
  "muted" boolean NOT NULL DEFAULT false,
  "user_id" uuid NOT NULL,
  "chat_id" uuid NOT NULL,
  PRIMARY KEY ("id"),
  CONSTRAINT "memberships_chat_id_fkey" FOREIGN KEY ("chat_id") REFERENCES "chats" ("id") ON UPDATE NO ACTION ON DELETE CASCADE,
  CONSTRAINT "memberships_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON UPDATE NO ACTION ON DELETE CASCADE,
  CONSTRAINT "memberships_role_check" CHECK ((role)::text = ANY ((ARRAY['owner'::character varying, 'admin'::character varying, 'member'::character varying])::text[]))
);
-- Create index "memberships_chat_idx" to table: "memberships"
CREATE INDEX "memberships_chat_idx" ON "memberships" ("chat_id");
-- Create index "memberships_user_chat_key" to table: "memberships"
CREATE UNIQUE INDEX "memberships_user_chat_key" ON "memberships" ("user_id", "chat_id");
-- Create "messages" table
CREATE TABLE "messages" (
  "id" uuid NOT NULL,
  "role" character varying NOT NULL,
  "content" text NOT NULL,
  "metadata" jsonb NULL,
  "created_at" timestamptz NOT NULL,
  "edited_at" timestamptz NULL,
  "deleted_at" timestamptz NULL,
  "chat_id" uuid NOT NULL,
  "reply_to_id" uuid NULL,
  "sender_id" uuid NULL,
  PRIMARY KEY ("id"),
  CONSTRAINT "messages_chat_id_fkey" FOREIGN KEY ("chat_id") REFERENCES "chats" ("id") ON UPDATE NO ACTION ON DELETE CASCADE,
  CONSTRAINT "messages_messages_replies" FOREIGN KEY ("reply_to_id") REFERENCES "messages" ("id") ON UPDATE NO ACTION ON DELETE SET NULL,
  CONSTRAINT "messages_sender_id_fkey" FOREIGN KEY ("sender_id") REFERENCES "users" ("id") ON UPDATE NO ACTION ON DELETE SET NULL,
  CONSTRAINT "messages_content_length" CHECK ((octet_length(content) >= 1) AND (octet_length(content) <= 65536)),
  CONSTRAINT "messages_role_check" CHECK ((role)::text = ANY ((ARRAY['user'::character varying, 'assistant'::character varying, 'system'::character varying, 'tool'::character varying])::text[]))
);
-- Create index "messages_chat_created_id_idx" to table: "messages"
CREATE INDEX "messages_chat_created_id_idx" ON "messages" ("chat_id", "created_at", "id");
-- Create index "messages_sender_idx" to table: "messages"
CREATE INDEX "messages_sender_idx" ON "messages" ("sender_id");
