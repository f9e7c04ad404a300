package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"

	"github.com/chatdb/chatdb/ent/hook"
)

// Chat holds the schema definition for the Chat entity.
type Chat struct {
	ent.Schema
}

// Mixin of the Chat.
func (Chat) Mixin() []ent.Mixin {
	return []ent.Mixin{IDMixin{}, TimeMixin{}, SoftDeleteMixin{}}
}

// Fields of the Chat.
func (Chat) Fields() []ent.Field {
	return []ent.Field{
		field.Enum("kind").
			Values("direct", "group", "assistant").
			Immutable(),
		field.String("title").
			Optional().
			Validate(ValidateTitle),
		field.UUID("created_by", uuid.UUID{}).
			Immutable(),
		field.Time("last_message_at").
			Default(Now).
			Comment("time of the newest message, or of creation; an inbox sorts by it"),
		// The chat's sequence: the seq of its newest message (0 for none). An
		// append takes the chat's row lock and gives the message last_seq+1, so
		// seqs are gapless and increase in commit order; a member's unread count
		// is last_seq minus their read_seq, whatever the backlog.
		field.Int64("last_seq").
			Default(0).
			NonNegative().
			Comment("seq of the newest message; 0 while the chat has none"),
		// Whether appends leave the members' inbox order alone (see
		// Membership.large): set by the store once the chat has more members than
		// it fans out to, and never cleared.
		field.Bool("large").
			Default(false).
			Comment("true once the chat has more members than an append writes to"),
		field.Time("archived_at").
			Optional().
			Nillable(),
		field.String("direct_key").
			Optional().
			Nillable().
			Immutable().
			Comment("for a direct chat, the two users' IDs in order; unique, so a pair has one direct chat"),
	}
}

// Edges of the Chat. Both lead to rows a member of the chat may read, so
// filtering a chat the viewer sees by them reveals nothing; there is no edge to
// users (see User.Edges).
func (Chat) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("messages", Message.Type).
			// Messages belong to their chat: removing a chat for good removes them.
			Annotations(entsql.OnDelete(entsql.Cascade)).
			StorageKey(edge.Symbol("messages_chat_id_fkey")),
		edge.To("memberships", Membership.Type).
			// Memberships belong to their chat, as its messages do.
			Annotations(entsql.OnDelete(entsql.Cascade)).
			StorageKey(edge.Symbol("memberships_chat_id_fkey")),
	}
}

// Indexes of the Chat.
func (Chat) Indexes() []ent.Index {
	return []ent.Index{
		// Serves the foreign key and "chats this user created".
		index.Fields("created_by").
			StorageKey("chats_created_by_idx"),
		// Exactly one direct chat per pair of users, even when both create it at
		// once: the loser of the race gets a unique violation and reads the winner's.
		// NULL for other kinds, and NULLs never collide.
		index.Fields("direct_key").
			Unique().
			StorageKey("chats_direct_key_key"),
	}
}

// Hooks of the Chat.
func (Chat) Hooks() []ent.Hook {
	return []ent.Hook{hook.On(chatStart, ent.OpCreate)}
}

// Annotations of the Chat.
func (Chat) Annotations() []schema.Annotation {
	return []schema.Annotation{
		// The title limit is enforced by the database too, for writers that bypass
		// the Go validators.
		entsql.Checks(map[string]string{
			"chats_title_length": "length(title) <= 200",
			"chats_kind_check":   "kind IN ('direct', 'group', 'assistant')",
		}),
	}
}
