-- Drop index "memberships_user_chat_key" from table: "memberships"
DROP INDEX `memberships_user_chat_key`;
-- Drop index "memberships_chat_idx" from table: "memberships"
DROP INDEX `memberships_chat_idx`;
-- Create index "memberships_chat_user_key" to table: "memberships"
CREATE UNIQUE INDEX `memberships_chat_user_key` ON `memberships` (`chat_id`, `user_id`);
