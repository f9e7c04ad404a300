-- Disable the enforcement of foreign-keys constraints
PRAGMA foreign_keys = off;
-- Create "new_messages" table
CREATE TABLE `new_messages` (
  `id` uuid NOT NULL,
  `sender_id` uuid NULL,
  `role` text NOT NULL,
  `content` text NULL,
  `metadata` json NULL,
  `created_at` datetime NOT NULL,
  `edited_at` datetime NULL,
  `deleted_at` datetime NULL,
  `chat_id` uuid NOT NULL,
  `reply_to_id` uuid NULL,
  PRIMARY KEY (`id`),
  CONSTRAINT `messages_chat_id_fkey` FOREIGN KEY (`chat_id`) REFERENCES `chats` (`id`) ON DELETE CASCADE,
  CONSTRAINT `messages_messages_replies` FOREIGN KEY (`reply_to_id`) REFERENCES `messages` (`id`) ON DELETE SET NULL,
  CONSTRAINT `messages_sender_id_fkey` FOREIGN KEY (`sender_id`) REFERENCES `users` (`id`) ON DELETE SET NULL,
  CONSTRAINT `messages_content_deleted` CHECK (deleted_at IS NULL AND content IS NOT NULL OR deleted_at IS NOT NULL AND content IS NULL),
  CONSTRAINT `messages_content_length` CHECK (octet_length(content) BETWEEN 1 AND 65536),
  CONSTRAINT `messages_role_check` CHECK (role IN ('user', 'assistant', 'system', 'tool'))
);
-- Copy rows from old table "messages" to new temporary table "new_messages"
-- (a deleted message keeps no text: what deletions left behind is erased)
INSERT INTO `new_messages` (`id`, `sender_id`, `role`, `content`, `metadata`, `created_at`, `edited_at`, `deleted_at`, `chat_id`, `reply_to_id`) SELECT `id`, `sender_id`, `role`, CASE WHEN `deleted_at` IS NULL THEN `content` END, CASE WHEN `deleted_at` IS NULL THEN `metadata` END, `created_at`, `edited_at`, `deleted_at`, `chat_id`, `reply_to_id` FROM `messages`;
-- Drop "messages" table after copying rows
DROP TABLE `messages`;
-- Rename temporary table "new_messages" to "messages"
ALTER TABLE `new_messages` RENAME TO `messages`;
-- Create index "messages_chat_created_id_idx" to table: "messages"
CREATE INDEX `messages_chat_created_id_idx` ON `messages` (`chat_id`, `created_at`, `id`);
-- Create index "messages_sender_idx" to table: "messages"
CREATE INDEX `messages_sender_idx` ON `messages` (`sender_id`);
-- Create index "messages_reply_to_idx" to table: "messages"
CREATE INDEX `messages_reply_to_idx` ON `messages` (`reply_to_id`);
-- Create "credentials" table
CREATE TABLE `credentials` (
  `id` uuid NOT NULL,
  `created_at` datetime NOT NULL,
  `updated_at` datetime NOT NULL,
  `user_id` uuid NOT NULL,
  `password_hash` text NOT NULL,
  PRIMARY KEY (`id`),
  CONSTRAINT `credentials_user_id_fkey` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`) ON DELETE CASCADE
);
-- Create index "credentials_user_id_key" to table: "credentials"
CREATE UNIQUE INDEX `credentials_user_id_key` ON `credentials` (`user_id`);
-- Move the password hashes out of users: each credential takes its user's ID,
-- unique as the user is, so the copy needs no ID generator.
INSERT INTO `credentials` (`id`, `created_at`, `updated_at`, `user_id`, `password_hash`)
  SELECT `id`, `created_at`, `updated_at`, `id`, `password_hash` FROM `users`
  WHERE `password_hash` IS NOT NULL AND `password_hash` <> '';
-- Create "new_users" table
-- atlas:nolint DS103 users is rebuilt without password_hash, whose values were copied into credentials just above
CREATE TABLE `new_users` (
  `id` uuid NOT NULL,
  `created_at` datetime NOT NULL,
  `updated_at` datetime NOT NULL,
  `deleted_at` datetime NULL,
  `email` text NOT NULL,
  `display_name` text NOT NULL,
  `status` text NOT NULL DEFAULT ('active'),
  PRIMARY KEY (`id`),
  CONSTRAINT `users_email_length` CHECK (length(email) <= 254),
  CONSTRAINT `users_status_check` CHECK (status IN ('active', 'suspended'))
);
-- Copy rows from old table "users" to new temporary table "new_users"
INSERT INTO `new_users` (`id`, `created_at`, `updated_at`, `deleted_at`, `email`, `display_name`, `status`) SELECT `id`, `created_at`, `updated_at`, `deleted_at`, `email`, `display_name`, `status` FROM `users`;
-- Drop "users" table after copying rows
DROP TABLE `users`;
-- Rename temporary table "new_users" to "users"
ALTER TABLE `new_users` RENAME TO `users`;
-- Create index "users_email_key" to table: "users"
CREATE UNIQUE INDEX `users_email_key` ON `users` (`email`);
-- Enable back the enforcement of foreign-keys constraints
PRAGMA foreign_keys = on;
