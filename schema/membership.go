package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
	"github.com/google/uuid"
)

// Membership holds the schema definition for the Membership entity: a user's
// place in a chat, with their role and read state.
type Membership struct {
	ent.Schema
}

// Mixin of the Membership.
func (Membership) Mixin() []ent.Mixin {
	return []ent.Mixin{IDMixin{}}
}

// Fields of the Membership.
func (Membership) Fields() []ent.Field {
	return []ent.Field{
		field.UUID("user_id", uuid.UUID{}).
			Immutable(),
		field.UUID("chat_id", uuid.UUID{}).
			Immutable(),
		field.Enum("role").
			Values("owner", "admin", "member").
			Default("member"),
		field.Time("joined_at").
			Default(Now).
			Immutable(),
		field.Time("last_read_at").
			Optional().
			Nillable().
			Comment("created_at of the last message read; with last_read_message_id, the read position"),
		field.UUID("last_read_message_id", uuid.UUID{}).
			Optional().
			Nillable().
			Comment("id of the last message read; ties on last_read_at are broken by id, as in history order"),
		field.Bool("muted").
			Default(false),
		// A copy of the chat's last_message_at, kept by the store (the append that
		// bumps the chat bumps its memberships in the same statement), so that an
		// inbox is read in order from memberships_user_inbox_idx alone: a sort of
		// all the user's chats would grow with their number. A member who joins
		// later starts at the time they joined. Nullable only so that the column
		// could be added to filled tables; the migration backfills it, and ent
		// fills it on create.
		field.Time("chat_last_message_at").
			Optional().
			Default(Now).
			Comment("the chat's last_message_at, or the joining time if later; the inbox's order"),
	}
}

// Edges of the Membership: its chat only (see User.Edges for why not its
// user).
func (Membership) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("chat", Chat.Type).
			Ref("memberships").
			Field("chat_id").
			Unique().
			Required().
			Immutable(),
	}
}

// Indexes of the Membership.
func (Membership) Indexes() []ent.Index {
	return []ent.Index{
		// A user is a member of a chat at most once; the index also serves
		// "a user's chats" (the inbox) by its leading column.
		index.Fields("user_id", "chat_id").
			Unique().
			StorageKey("memberships_user_chat_key"),
		// A user's inbox, newest chat first, by a backward scan: no sort, however
		// many chats the user has.
		index.Fields("user_id", "chat_last_message_at", "chat_id").
			StorageKey("memberships_user_inbox_idx"),
		// Serves "members of a chat" and the foreign key to chats.
		index.Fields("chat_id").
			StorageKey("memberships_chat_idx"),
	}
}

// Annotations of the Membership.
func (Membership) Annotations() []schema.Annotation {
	return []schema.Annotation{
		// Enum values are checked by the database too, for writers that bypass ent.
		entsql.Checks(map[string]string{
			"memberships_role_check": "role IN ('owner', 'admin', 'member')",
		}),
	}
}
