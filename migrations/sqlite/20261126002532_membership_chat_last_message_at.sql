-- Disable the enforcement of foreign-keys constraints
PRAGMA foreign_keys = off;
-- Create "new_memberships" table
CREATE TABLE `new_memberships` (
  `id` uuid NOT NULL,
  `role` text NOT NULL DEFAULT ('member'),
  `joined_at` datetime NOT NULL,
  `last_read_at` datetime NULL,
  `last_read_message_id` uuid NULL,
  `muted` bool NOT NULL DEFAULT (false),
  `chat_last_message_at` datetime NULL,
  `user_id` uuid NOT NULL,
  `chat_id` uuid NOT NULL,
  PRIMARY KEY (`id`),
  CONSTRAINT `memberships_user_id_fkey` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`) ON DELETE CASCADE,
  CONSTRAINT `memberships_chat_id_fkey` FOREIGN KEY (`chat_id`) REFERENCES `chats` (`id`) ON DELETE CASCADE,
  CONSTRAINT `memberships_role_check` CHECK (role IN ('owner', 'admin', 'member'))
);
-- Copy rows from old table "memberships" to new temporary table "new_memberships"
INSERT INTO `new_memberships` (`id`, `role`, `joined_at`, `last_read_at`, `last_read_message_id`, `muted`, `user_id`, `chat_id`) SELECT `id`, `role`, `joined_at`, `last_read_at`, `last_read_message_id`, `muted`, `user_id`, `chat_id` FROM `memberships`;
-- Drop "memberships" table after copying rows
DROP TABLE `memberships`;
-- Rename temporary table "new_memberships" to "memberships"
ALTER TABLE `new_memberships` RENAME TO `memberships`;
-- Backfill: each membership takes its chat's last_message_at, the inbox's order
UPDATE `memberships` SET `chat_last_message_at` = (SELECT `chats`.`last_message_at` FROM `chats` WHERE `chats`.`id` = `memberships`.`chat_id`);
-- Create index "memberships_user_chat_key" to table: "memberships"
CREATE UNIQUE INDEX `memberships_user_chat_key` ON `memberships` (`user_id`, `chat_id`);
-- Create index "memberships_user_inbox_idx" to table: "memberships"
CREATE INDEX `memberships_user_inbox_idx` ON `memberships` (`user_id`, `chat_last_message_at`, `chat_id`);
-- Create index "memberships_chat_idx" to table: "memberships"
CREATE INDEX `memberships_chat_idx` ON `memberships` (`chat_id`);
-- Enable back the enforcement of foreign-keys constraints
PRAGMA foreign_keys = on;
