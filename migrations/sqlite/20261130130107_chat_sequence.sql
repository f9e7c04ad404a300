-- Disable the enforcement of foreign-keys constraints
PRAGMA foreign_keys = off;
-- Create "new_messages" table
-- atlas:nolint MF103 seq is given to every row by the copy below
CREATE TABLE `new_messages` (
  `id` uuid NOT NULL,
  `seq` integer NOT NULL,
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
-- (each message gets its place in its chat, in the chat's history order:
-- created_at, then id, as History read it before)
INSERT INTO `new_messages` (`id`, `seq`, `sender_id`, `role`, `content`, `metadata`, `created_at`, `edited_at`, `deleted_at`, `chat_id`, `reply_to_id`) SELECT `id`, row_number() OVER (PARTITION BY `chat_id` ORDER BY `created_at`, `id`), `sender_id`, `role`, `content`, `metadata`, `created_at`, `edited_at`, `deleted_at`, `chat_id`, `reply_to_id` FROM `messages`;
-- Drop "messages" table after copying rows
DROP TABLE `messages`;
-- Rename temporary table "new_messages" to "messages"
ALTER TABLE `new_messages` RENAME TO `messages`;
-- Create index "messages_chat_seq_key" to table: "messages"
-- atlas:nolint MF101 seq is the row number within each chat, unique by construction
CREATE UNIQUE INDEX `messages_chat_seq_key` ON `messages` (`chat_id`, `seq`);
-- Create index "messages_sender_idx" to table: "messages"
CREATE INDEX `messages_sender_idx` ON `messages` (`sender_id`);
-- Create index "messages_reply_to_idx" to table: "messages"
CREATE INDEX `messages_reply_to_idx` ON `messages` (`reply_to_id`);
-- Create "new_chats" table
CREATE TABLE `new_chats` (
  `id` uuid NOT NULL,
  `created_at` datetime NOT NULL,
  `updated_at` datetime NOT NULL,
  `deleted_at` datetime NULL,
  `kind` text NOT NULL,
  `title` text NULL,
  `created_by` uuid NOT NULL,
  `last_message_at` datetime NOT NULL,
  `last_seq` integer NOT NULL DEFAULT (0),
  `large` bool NOT NULL DEFAULT (false),
  `archived_at` datetime NULL,
  `direct_key` text NULL,
  PRIMARY KEY (`id`),
  CONSTRAINT `chats_created_by_fkey` FOREIGN KEY (`created_by`) REFERENCES `users` (`id`) ON DELETE NO ACTION,
  CONSTRAINT `chats_kind_check` CHECK (kind IN ('direct', 'group', 'assistant')),
  CONSTRAINT `chats_title_length` CHECK (length(title) <= 200)
);
-- Copy rows from old table "chats" to new temporary table "new_chats"
-- (with the sequence, and whether appends fan out: up to 32 members, the
-- store's default limit)
INSERT INTO `new_chats` (`id`, `created_at`, `updated_at`, `deleted_at`, `kind`, `title`, `created_by`, `last_message_at`, `last_seq`, `large`, `archived_at`, `direct_key`) SELECT `id`, `created_at`, `updated_at`, `deleted_at`, `kind`, `title`, `created_by`, `last_message_at`, COALESCE((SELECT max(`seq`) FROM `messages` WHERE `messages`.`chat_id` = `chats`.`id`), 0), (SELECT count(*) FROM `memberships` WHERE `memberships`.`chat_id` = `chats`.`id`) > 32, `archived_at`, `direct_key` FROM `chats`;
-- Drop "chats" table after copying rows
DROP TABLE `chats`;
-- Rename temporary table "new_chats" to "chats"
ALTER TABLE `new_chats` RENAME TO `chats`;
-- Create index "chats_created_by_idx" to table: "chats"
CREATE INDEX `chats_created_by_idx` ON `chats` (`created_by`);
-- Create index "chats_direct_key_key" to table: "chats"
CREATE UNIQUE INDEX `chats_direct_key_key` ON `chats` (`direct_key`);
-- Create "new_memberships" table
-- atlas:nolint DS103 the read position moves from last_read_at into read_seq by the copy below
CREATE TABLE `new_memberships` (
  `id` uuid NOT NULL,
  `user_id` uuid NOT NULL,
  `role` text NOT NULL DEFAULT ('member'),
  `joined_at` datetime NOT NULL,
  `read_seq` integer NOT NULL DEFAULT (0),
  `last_read_message_id` uuid NULL,
  `muted` bool NOT NULL DEFAULT (false),
  `chat_last_message_at` datetime NULL,
  `large` bool NOT NULL DEFAULT (false),
  `chat_id` uuid NOT NULL,
  PRIMARY KEY (`id`),
  CONSTRAINT `memberships_chat_id_fkey` FOREIGN KEY (`chat_id`) REFERENCES `chats` (`id`) ON DELETE CASCADE,
  CONSTRAINT `memberships_user_id_fkey` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`) ON DELETE CASCADE,
  CONSTRAINT `memberships_role_check` CHECK (role IN ('owner', 'admin', 'member'))
);
-- Copy rows from old table "memberships" to new temporary table "new_memberships"
-- (the read position becomes a seq, at the message read last or the member's
-- own newest message, whichever is later: a member's own messages are not
-- unread)
INSERT INTO `new_memberships` (`id`, `user_id`, `role`, `joined_at`, `read_seq`, `last_read_message_id`, `muted`, `chat_last_message_at`, `large`, `chat_id`) SELECT `id`, `user_id`, `role`, `joined_at`, max(COALESCE((SELECT `seq` FROM `messages` WHERE `messages`.`id` = `memberships`.`last_read_message_id`), 0), COALESCE((SELECT max(`seq`) FROM `messages` WHERE `messages`.`chat_id` = `memberships`.`chat_id` AND `messages`.`sender_id` = `memberships`.`user_id`), 0)), NULL, `muted`, `chat_last_message_at`, (SELECT `large` FROM `chats` WHERE `chats`.`id` = `memberships`.`chat_id`), `chat_id` FROM `memberships`;
-- Drop "memberships" table after copying rows
DROP TABLE `memberships`;
-- Rename temporary table "new_memberships" to "memberships"
ALTER TABLE `new_memberships` RENAME TO `memberships`;
-- The message at each read position.
UPDATE `memberships` SET `last_read_message_id` = (SELECT `id` FROM `messages` WHERE `messages`.`chat_id` = `memberships`.`chat_id` AND `messages`.`seq` = `memberships`.`read_seq`);
-- Create index "memberships_user_chat_key" to table: "memberships"
CREATE UNIQUE INDEX `memberships_user_chat_key` ON `memberships` (`user_id`, `chat_id`);
-- Create index "memberships_user_inbox_idx" to table: "memberships"
CREATE INDEX `memberships_user_inbox_idx` ON `memberships` (`user_id`, `chat_last_message_at`, `chat_id`) WHERE NOT large;
-- Create index "memberships_user_large_idx" to table: "memberships"
CREATE INDEX `memberships_user_large_idx` ON `memberships` (`user_id`) WHERE large;
-- Create index "memberships_chat_idx" to table: "memberships"
CREATE INDEX `memberships_chat_idx` ON `memberships` (`chat_id`);
-- Enable back the enforcement of foreign-keys constraints
PRAGMA foreign_keys = on;
