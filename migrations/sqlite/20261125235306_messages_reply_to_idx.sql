-- Create index "messages_reply_to_idx" to table: "messages"
CREATE INDEX `messages_reply_to_idx` ON `messages` (`reply_to_id`);
