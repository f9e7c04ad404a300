-- Create "chats" table
CREATE TABLE `chats` (
  `id` uuid NOT NULL,
  `created_at` datetime NOT NULL,
  `updated_at` datetime NOT NULL,
  `deleted_at` datetime NULL,
  `kind` text NOT NULL,
  `title` text NULL,
  `last_message_at` datetime NOT NULL,
  `archived_at` datetime NULL,
  `created_by` uuid NOT NULL,
  PRIMARY KEY (`id`),
  CONSTRAINT `chats_created_by_fkey` FOREIGN KEY (`created_by`) REFERENCES `users` (`id`) ON DELETE NO ACTION,
  CONSTRAINT `chats_kind_check` CHECK (kind IN ('direct', 'group', 'assistant')),
  CONSTRAINT `chats_title_length` CHECK (length(title) <= 200)
);
-- Create index "chats_created_by_idx" to table: "chats"
CREATE INDEX `chats_created_by_idx` ON `chats` (`created_by`);
-- Create "memberships" table
CREATE TABLE `memberships` (
  `id` uuid NOT NULL,
  `role` text NOT NULL DEFAULT ('member'),
  `joined_at` datetime NOT NULL,
  `last_read_at` datetime NULL,
  `last_read_message_id` uuid NULL,
  `muted` bool NOT NULL DEFAULT (false),
  `user_id` uuid NOT NULL,
  `chat_id` uuid NOT NULL,
  PRIMARY KEY (`id`),
  CONSTRAINT `memberships_user_id_fkey` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`) ON DELETE CASCADE,
  CONSTRAINT `memberships_chat_id_fkey` FOREIGN KEY (`chat_id`) REFERENCES `chats` (`id`) ON DELETE CASCADE,
  CONSTRAINT `memberships_role_check` CHECK (role IN ('owner', 'admin', 'member'))
);
-- Create index "memberships_user_chat_key" to table: "memberships"
CREATE UNIQUE INDEX `memberships_user_chat_key` ON `memberships` (`user_id`, `chat_id`);
-- Create index "memberships_chat_idx" to table: "memberships"
CREATE INDEX `memberships_chat_idx` ON `memberships` (`chat_id`);
-- Create "messages" table
CREATE TABLE `messages` (
  `id` uuid NOT NULL,
  `role` text NOT NULL,
  `content` text NOT NULL,
  `metadata` json NULL,
  `created_at` datetime NOT NULL,
  `edited_at` datetime NULL,
  `deleted_at` datetime NULL,
  `chat_id` uuid NOT NULL,
  `reply_to_id` uuid NULL,
  `sender_id` uuid NULL,
  PRIMARY KEY (`id`),
  CONSTRAINT `messages_chat_id_fkey` FOREIGN KEY (`chat_id`) REFERENCES `chats` (`id`) ON DELETE CASCADE,
  CONSTRAINT `messages_messages_replies` FOREIGN KEY (`reply_to_id`) REFERENCES `messages` (`id`) ON DELETE SET NULL,
  CONSTRAINT `messages_sender_id_fkey` FOREIGN KEY (`sender_id`) REFERENCES `users` (`id`) ON DELETE SET NULL,
  CONSTRAINT `messages_content_length` CHECK (octet_length(content) BETWEEN 1 AND 65536),
  CONSTRAINT `messages_role_check` CHECK (role IN ('user', 'assistant', 'system', 'tool'))
);
-- Create index "messages_chat_created_id_idx" to table: "messages"
CREATE INDEX `messages_chat_created_id_idx` ON `messages` (`chat_id`, `created_at`, `id`);
-- Create index "messages_sender_idx" to table: "messages"
CREATE INDEX `messages_sender_idx` ON `messages` (`sender_id`);
-- Create "users" table
CREATE TABLE `users` (
  `id` uuid NOT NULL,
  `created_at` datetime NOT NULL,
  `updated_at` datetime NOT NULL,
  `deleted_at` datetime NULL,
  `email` text NOT NULL,
  `display_name` text NOT NULL,
  `password_hash` text NULL,
  `status` text NOT NULL DEFAULT ('active'),
  PRIMARY KEY (`id`),
  CONSTRAINT `users_email_length` CHECK (length(email) <= 254),
  CONSTRAINT `users_status_check` CHECK (status IN ('active', 'suspended'))
);
-- Create index "users_email_key" to table: "users"
CREATE UNIQUE INDEX `users_email_key` ON `users` (`email`);
