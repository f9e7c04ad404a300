package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema"
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
		field.Enum("status").
			Values("active", "suspended").
			Default("active"),
	}
}

// Edges of the User: none, on purpose. Every signed-in user reads every live
// user's profile, so an edge from users to chats, memberships or messages would
// let anyone filter users by data they may not see (user.HasSentMessagesWith
// a guessed text tells who wrote it), and an edge into users from them would
// let members filter by a deleted user's profile. The foreign keys such edges
// would carry are declared in foreignkeys.go instead.
func (User) Edges() []ent.Edge { return nil }

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
