-- Disable the enforcement of foreign-keys constraints
PRAGMA foreign_keys = off;
-- Create "new_chats" table
CREATE TABLE `new_chats` (
  `id` uuid NOT NULL,
  `created_at` datetime NOT NULL,
  `updated_at` datetime NOT NULL,
  `deleted_at` datetime NULL,
  `kind` text NOT NULL,
  `title` text NULL,
  `last_message_at` datetime NOT NULL,
  `archived_at` datetime NULL,
  `direct_key` text NULL,
  `created_by` uuid NOT NULL,
  PRIMARY KEY (`id`),
  CONSTRAINT `chats_created_by_fkey` FOREIGN KEY (`created_by`) REFERENCES `users` (`id`) ON DELETE NO ACTION,
  CONSTRAINT `chats_kind_check` CHECK (kind IN ('direct', 'group', 'assistant')),
  CONSTRAINT `chats_title_length` CHECK (length(title) <= 200)
);
-- Copy rows from old table "chats" to new temporary table "new_chats"
INSERT INTO `new_chats` (`id`, `created_at`, `updated_at`, `deleted_at`, `kind`, `title`, `last_message_at`, `archived_at`, `created_by`) SELECT `id`, `created_at`, `updated_at`, `deleted_at`, `kind`, `title`, `last_message_at`, `archived_at`, `created_by` FROM `chats`;
-- Drop "chats" table after copying rows
DROP TABLE `chats`;
-- Rename temporary table "new_chats" to "chats"
ALTER TABLE `new_chats` RENAME TO `chats`;
-- Create index "chats_created_by_idx" to table: "chats"
CREATE INDEX `chats_created_by_idx` ON `chats` (`created_by`);
-- Create index "chats_direct_key_key" to table: "chats"
CREATE UNIQUE INDEX `chats_direct_key_key` ON `chats` (`direct_key`);
-- Enable back the enforcement of foreign-keys constraints
PRAGMA foreign_keys = on;
