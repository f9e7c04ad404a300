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
		// The read position: the seq of the last message read in the chat. It
		// starts at the chat's last_seq when the member joins (what came before
		// is not unread), moves forward only (MarkRead, and every message the
		// member sends), and the unread count is the chat's last_seq minus it.
		field.Int64("read_seq").
			Default(0).
			NonNegative().
			Comment("seq of the last message read; the chat's last_seq when the member joined"),
		field.UUID("last_read_message_id", uuid.UUID{}).
			Optional().
			Nillable().
			Comment("id of the message at read_seq, nil while the member has read nothing since joining"),
		field.Bool("muted").
			Default(false),
		// A copy of the chat's last_message_at for the members of chats that are
		// not large, kept by the append (in the same statement), so that an inbox
		// is read in order from memberships_user_inbox_idx: a sort of all the
		// user's chats would grow with their number. A member who joins later
		// starts at the time they joined. An append writes one such copy per
		// member, so chats of more members than the store fans out to are large:
		// their members' copies stay as they are, and the inbox reads those
		// chats' times from chats (memberships_user_large_idx), which costs one
		// probe per large chat of the viewer whatever its traffic. Nullable only
		// so that the column could be added to filled tables; the migration
		// backfilled it, and ent fills it on create.
		field.Time("chat_last_message_at").
			Optional().
			Default(Now).
			Comment("the chat's last_message_at, or the joining time if later; the inbox's order in chats that are not large"),
		field.Bool("large").
			Default(false).
			Comment("the chat's large flag, copied so that the inbox's indexes can be partial on it"),
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
		// A user is a member of a chat at most once. The chat comes first: the
		// index serves "members of a chat", the foreign key to chats and the
		// rules' membership probes (chat and user known), and it gives a user's
		// memberships no full-width index: the inbox's two parts below are the
		// only ways to a user's chats, so that no plan, generic or custom, can
		// read all of a user's memberships to find the few large ones.
		index.Fields("chat_id", "user_id").
			Unique().
			StorageKey("memberships_chat_user_key"),
		// A user's inbox, newest chat first, by a backward scan: no sort, however
		// many chats the user has. Chats that are not large only: their
		// memberships' copy of the chat's time is current.
		index.Fields("user_id", "chat_last_message_at", "chat_id").
			Annotations(entsql.IndexWhere("NOT large")).
			StorageKey("memberships_user_inbox_idx"),
		// The user's large chats, whose times the inbox reads from chats.
		index.Fields("user_id").
			Annotations(entsql.IndexWhere("large")).
			StorageKey("memberships_user_large_idx"),
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

// Hooks of the Membership.
func (Membership) Hooks() []ent.Hook {
	return []ent.Hook{hook.On(joinState, ent.OpCreate)}
}
