package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// User holds the schema definition for the User entity.
type User struct {
	ent.Schema
}

// Mixin of the User.
func (User) Mixin() []ent.Mixin {
	return []ent.Mixin{IDMixin{}, TimeMixin{}, SoftDeleteMixin{}}
}

// Fields of the User.
func (User) Fields() []ent.Field {
	return []ent.Field{
		field.String("email").
			// ValidateEmail first: it says which rule failed (schema.ErrTooLong);
			// ent's own MaxLen check would not.
			Validate(ValidateEmail).
			MaxLen(MaxEmailBytes).
			Comment("stored trimmed and lower-cased (see NormalizeEmail), so the unique index ignores case"),
		field.String("display_name").
			Validate(ValidateDisplayName),
		field.String("password_hash").
			Optional().
			// Hashes are text (PHC strings); a NUL or invalid UTF-8 is refused
			// before PostgreSQL would refuse it unclassified.
			Validate(ValidateText).
			Sensitive().
			Comment("a password hash (never the password); empty for users who sign in elsewhere"),
		field.Enum("status").
			Values("active", "suspended").
			Default("active"),
	}
}

// Edges of the User.
func (User) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("chats", Chat.Type).
			Through("memberships", Membership.Type),
		edge.To("created_chats", Chat.Type).
			// Users are soft-deleted; hard-deleting one who created chats is refused
			// rather than leaving chats without a creator. NO ACTION, not RESTRICT:
			// the same refusal, reported by SQLite as a foreign key error.
			Annotations(entsql.OnDelete(entsql.NoAction)).
			StorageKey(edge.Symbol("chats_created_by_fkey")),
		edge.To("sent_messages", Message.Type).
			// A hard-deleted user's messages stay in their chats, without a sender.
			Annotations(entsql.OnDelete(entsql.SetNull)).
			StorageKey(edge.Symbol("messages_sender_id_fkey")),
	}
}

// Indexes of the User.
func (User) Indexes() []ent.Index {
	return []ent.Index{
		// One account per address; emails are stored normalised, so this is
		// case-insensitive.
		index.Fields("email").
			Unique().
			StorageKey("users_email_key"),
	}
}

// Hooks of the User.
func (User) Hooks() []ent.Hook {
	return []ent.Hook{normalizeEmail}
}

// Annotations of the User.
func (User) Annotations() []schema.Annotation {
	return []schema.Annotation{
		// The database enforces the limits too, for writers that bypass ent: ent
		// leaves PostgreSQL's varchar unbounded whatever MaxLen says.
		entsql.Checks(map[string]string{
			"users_email_length": "length(email) <= 254",
			"users_status_check": "status IN ('active', 'suspended')",
		}),
	}
}
