package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"

	"github.com/chatdb/chatdb/ent/hook"
	"github.com/chatdb/chatdb/schema/schematype"
)

// Message holds the schema definition for the Message entity.
type Message struct {
	ent.Schema
}

// Mixin of the Message.
func (Message) Mixin() []ent.Mixin {
	return []ent.Mixin{IDMixin{}}
}

// Fields of the Message.
func (Message) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("chat_id", uuid.UUID{}).
			Immutable(),
		// The message's place in its chat: 1, 2, 3, ... in commit order, without
		// gaps (see Chat.last_seq). History is read in seq order and its cursors
		// name a seq, and a client resumes a sync from the last seq it has.
		field.Int64("seq").
			Positive().
			Immutable().
			Comment("the message's place in its chat: gapless, increasing in commit order"),
		field.UUID("sender_id", uuid.UUID{}).
			Optional().
			Nillable().
			Immutable().
			Comment("the user who sent it; NULL for system and assistant messages"),
		field.Enum("role").
			Values("user", "assistant", "system", "tool").
			Immutable(),
		field.Text("content").
			// NULL once the message is deleted, and only then (the CHECK
			// messages_content_deleted): deleting a message erases its text, as
			// Matrix redacts an event, so nobody can read it back by any path.
			Optional().
			Validate(ValidateContent).
			Comment("the text; NULL when the message is deleted"),
		// A JSON document typed in Go. field.Other rather than field.JSON: ent
		// passes JSON fields to the driver as []byte, which lib/pq's binary
		// parameters send in a format jsonb refuses; MessageMetadata.Value gives text.
		field.Other("metadata", schematype.MessageMetadata{}).
			SchemaType(map[string]string{
				dialect.Postgres: "jsonb",
				dialect.SQLite:   "json",
			}).
			Optional(),
		field.UUID("reply_to_id", uuid.UUID{}).
			Optional().
			Nillable().
			Immutable(),
		field.Time("created_at").
			Default(Now).
			Immutable(),
		field.Time("edited_at").
			Optional().
			Nillable(),
		field.Time("deleted_at").
			Optional().
			Nillable().
			Comment("set when the message is soft-deleted: its content and metadata are erased, and history shows it as deleted"),
	}
}

// Edges of the Message: its chat, and replies within that chat (the reply rule
// in hooks.go keeps them there), all rows a reader of the message may read.
// The sender is a plain field: see User.Edges.
func (Message) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("chat", Chat.Type).
			Ref("messages").
			Field("chat_id").
			Unique().
			Required().
			Immutable(),
		edge.To("replies", Message.Type).
			// Deleting a message for good leaves its replies standing, unlinked.
			// (ent names this constraint itself: a self-reference cannot take a
			// storage key on one side only.)
			Annotations(entsql.OnDelete(entsql.SetNull)).
			From("reply_to").
			Field("reply_to_id").
			Unique().
			Immutable(),
	}
}

// Indexes of the Message.
func (Message) Indexes() []ent.Index {
	return []ent.Index{
		// A chat's history in seq order, read by keyset in either direction,
		// and one seq per place in the chat.
		index.Fields("chat_id", "seq").
			Unique().
			StorageKey("messages_chat_seq_key"),
		// Serves the foreign key to users (SET NULL on delete) and "messages by user".
		index.Fields("sender_id").
			StorageKey("messages_sender_idx"),
		// Serves the self-referencing foreign key: without it, every message deleted
		// for good (a chat removed, a user erased) scans the table for replies to
		// set NULL.
		index.Fields("reply_to_id").
			StorageKey("messages_reply_to_idx"),
	}
}

// Annotations of the Message.
func (Message) Annotations() []schema.Annotation {
	return []schema.Annotation{
		// The database enforces the content limit too, for writers that bypass the
		// Go validators. octet_length counts bytes on both PostgreSQL and SQLite.
		entsql.Checks(map[string]string{
			"messages_content_length": "octet_length(content) BETWEEN 1 AND 65536",
			// A live message has content; a deleted one has none, so its text is
			// gone for every reader, whatever client wrote the deletion.
			"messages_content_deleted": "deleted_at IS NULL AND content IS NOT NULL OR deleted_at IS NOT NULL AND content IS NULL",
			"messages_role_check":      "role IN ('user', 'assistant', 'system', 'tool')",
		}),
	}
}

// Hooks of the Message.
func (Message) Hooks() []ent.Hook {
	return []ent.Hook{validateMetadata, eraseDeleted, replyInChat, hook.On(sequence, ent.OpCreate)}
}
